import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { ChunkKind } from '../bridge/sse-chunk.js'
import type { Outbound } from '../bridge/outbound-budget.js'

/** Comment lines sent on a quiet stream so proxies keep it open, in ms (2026-07-28 encourages them). */

/** Headers of every SSE response of the gateway's own: no caching, no proxy buffering. */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
}

/** An SSE response the gateway writes JSON-RPC messages to. */
export interface EventStream {
  response: Response
  /** Writes a notification (dropped past the queue bound), or a message its client is `owed`. */
  write(message: unknown, kind?: 'notification' | 'owed'): void
  /** Writes the last message, if any (always queued), and ends the stream. */
  end(last?: unknown): void
  readonly closed: boolean
}

/**
 * Opens an SSE response for JSON-RPC messages (2026-07-28 streams carry no event ids: they
 * are not resumable), bounded like every stream of the gateway and charged to the budget the
 * principal's sessionless streams share (`owner`). `onCancel` runs if the stream ends before
 * `end`: the client went away, or was owed more than the bound while not reading.
 */
export function openEventStream(o: {
  outbound: Outbound
  owner: string
  log?: Logger
  onCancel: () => void
  keepAliveMs?: number
}): EventStream {
  const encoder = new TextEncoder()
  const keepAliveMs = o.keepAliveMs ?? o.outbound.keepAliveMs
  let ended = false
  let keepAlive: NodeJS.Timeout | undefined
  const out = o.outbound.principalStream(o.owner, {
    log: o.log,
    onEnd: () => {
      clearInterval(keepAlive)
      if (ended) return
      ended = true
      o.onCancel()
    },
  })
  const frame = (text: string, kind: ChunkKind) => void out.push(encoder.encode(text), kind)
  if (keepAliveMs > 0)
    keepAlive = setInterval(() => frame(': keepalive\n\n', 'control'), keepAliveMs).unref()
  return {
    response: new Response(out.body, { status: 200, headers: SSE_HEADERS }),
    write: (m, kind = 'notification') =>
      frame(`event: message\ndata: ${JSON.stringify(m as JSONRPCMessage)}\n\n`, kind),
    end(last) {
      if (ended) return
      ended = true
      clearInterval(keepAlive)
      if (last !== undefined) frame(`event: message\ndata: ${JSON.stringify(last)}\n\n`, 'final')
      out.end()
    },
    get closed() {
      return ended
    },
  }
}
