import type { JSONRPCMessage } from '@modelcontextprotocol/server'

/** Comment lines sent on a quiet stream so proxies keep it open, in ms (2026-07-28 encourages them). */
export const DEFAULT_SSE_KEEPALIVE_MS = 15_000

/** Headers of every SSE response of the gateway's own: no caching, no proxy buffering. */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
}

/** An SSE response the gateway writes JSON-RPC messages to. */
export interface EventStream {
  response: Response
  write(message: unknown): void
  /** Writes the last message, if any, and ends the stream. */
  end(last?: unknown): void
  readonly closed: boolean
}

/**
 * Opens an SSE response for JSON-RPC messages (2026-07-28 streams carry no event ids: they
 * are not resumable). `onCancel` runs if the client goes away before `end`.
 */
export function openEventStream(onCancel: () => void, keepAliveMs = DEFAULT_SSE_KEEPALIVE_MS): EventStream {
  const encoder = new TextEncoder()
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let closed = false
  let keepAlive: NodeJS.Timeout | undefined
  const frame = (text: string) => {
    if (closed) return
    try {
      controller.enqueue(encoder.encode(text))
    } catch {
      closed = true
    }
  }
  const stop = () => {
    closed = true
    clearInterval(keepAlive)
  }
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
      if (keepAliveMs > 0) keepAlive = setInterval(() => frame(': keepalive\n\n'), keepAliveMs).unref()
    },
    cancel() {
      if (closed) return
      stop()
      onCancel()
    },
  })
  return {
    response: new Response(body, { status: 200, headers: SSE_HEADERS }),
    write: (m) => frame(`event: message\ndata: ${JSON.stringify(m as JSONRPCMessage)}\n\n`),
    end(last) {
      if (last !== undefined) frame(`event: message\ndata: ${JSON.stringify(last)}\n\n`)
      if (closed) return
      stop()
      try {
        controller.close()
      } catch {
        // already closed by the client
      }
    },
    get closed() {
      return closed
    },
  }
}
