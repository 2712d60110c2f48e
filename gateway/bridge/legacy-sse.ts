import type { AuthInfo, JSONRPCMessage } from '@modelcontextprotocol/server'
import type { ClientTransport } from './session.js'
import { envelope } from './jsonrpc.js'

/** Comment lines sent on an idle legacy event stream so proxies keep it open, in ms. */
export const DEFAULT_LEGACY_KEEPALIVE_MS = 15_000

/**
 * The HTTP+SSE transport of protocol 2024-11-05 (deprecated, kept for old clients): one
 * long-lived `GET /sse/<server>` event stream that first names the endpoint to POST to, then
 * carries every server message as an `event: message`; each `POST /messages/<server>` is
 * answered `202` and its reply comes on the stream. The stream closing ends the session.
 */
export class LegacySseTransport implements ClientTransport {
  onmessage?: (message: JSONRPCMessage, extra?: { authInfo?: AuthInfo }) => void
  onerror?: (error: Error) => void
  /** The client went away (stream cancelled). */
  onclosed?: () => void
  readonly stream: ReadableStream<Uint8Array>
  private controller!: ReadableStreamDefaultController<Uint8Array>
  private readonly encoder = new TextEncoder()
  private readonly keepAlive: NodeJS.Timeout
  private closed = false

  constructor(endpoint: string) {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller
        // HTTP+SSE (2024-11-05): the first event names the URI for client messages.
        this.write(`event: endpoint\ndata: ${endpoint}\n\n`)
      },
      cancel: () => {
        this.closed = true
        clearInterval(this.keepAlive)
        this.onclosed?.()
      },
    })
    this.keepAlive = setInterval(() => this.write(': keepalive\n\n'), DEFAULT_LEGACY_KEEPALIVE_MS).unref()
  }

  async handleRequest(_req: Request, options: { parsedBody?: unknown; authInfo?: AuthInfo }): Promise<Response> {
    const body = options.parsedBody
    const messages = Array.isArray(body) ? body : [body]
    if (messages.length === 0 || messages.some((m) => envelope(m).kind === 'invalid')) {
      return Response.json({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request: not a JSON-RPC message' }, id: null }, { status: 400 })
    }
    for (const m of messages) this.onmessage?.(m as JSONRPCMessage, { authInfo: options.authInfo })
    return new Response(null, { status: 202 })
  }

  async send(message: JSONRPCMessage): Promise<void> {
    this.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`)
  }

  /** Replies share the one stream: there is no per-request stream to close. */
  closeSSEStream(): void {}

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.keepAlive)
    try {
      this.controller.close()
    } catch {
      // already closed by the client
    }
  }

  private write(text: string): void {
    if (this.closed) return
    try {
      this.controller.enqueue(this.encoder.encode(text))
    } catch (err) {
      this.onerror?.(err as Error)
    }
  }
}
