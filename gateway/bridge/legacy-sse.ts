import type { AuthInfo, JSONRPCMessage } from '@modelcontextprotocol/server'
import type { ClientTransport } from './session.js'
import { envelope, rpcError } from './jsonrpc.js'
import type { EndReason, OutboundStream } from './outbound.js'
import type { ChunkKind } from './sse-chunk.js'

/**
 * The HTTP+SSE transport of protocol 2024-11-05 (deprecated, kept for old clients): one
 * long-lived `GET /sse/<server>` event stream that first names the endpoint to POST to, then
 * carries every server message as an `event: message`; each `POST /messages/<server>` is
 * answered `202` and its reply comes on the stream. The stream is a bounded one of the
 * session's (`open`); it cannot be resumed, so its ending for any reason but the session's own
 * close (the client went away, its token expired, it owed a client that was not reading more
 * than the bound) ends the session: `onclosed` says why.
 */
export class LegacySseTransport implements ClientTransport {
  onmessage?: (message: JSONRPCMessage, extra?: { authInfo?: AuthInfo }) => void
  onerror?: (error: Error) => void
  /** The stream ended other than by `close()`. */
  onclosed?: (why: EndReason) => void
  readonly stream: ReadableStream<Uint8Array>
  private readonly out: OutboundStream
  private readonly encoder = new TextEncoder()
  private readonly keepAlive: NodeJS.Timeout
  private closed = false

  /** `keepAliveMs`: a comment line on the idle stream this often, so proxies keep it open. */
  constructor(
    endpoint: string,
    open: (onEnd: (why: EndReason) => void) => OutboundStream,
    keepAliveMs: number,
  ) {
    this.out = open((why) => {
      clearInterval(this.keepAlive)
      if (this.closed) return
      this.closed = true
      this.onclosed?.(why)
    })
    this.stream = this.out.body
    // HTTP+SSE (2024-11-05): the first event names the URI for client messages.
    this.write(`event: endpoint\ndata: ${endpoint}\n\n`, 'owed')
    this.keepAlive = setInterval(
      () => this.write(': keepalive\n\n', 'control'),
      keepAliveMs,
    ).unref()
  }

  async handleRequest(
    _req: Request,
    options: { parsedBody?: unknown; authInfo?: AuthInfo },
  ): Promise<Response> {
    const body = options.parsedBody
    const messages = Array.isArray(body) ? body : [body]
    if (messages.length === 0 || messages.some((m) => envelope(m).kind === 'invalid')) {
      return Response.json(rpcError(null, -32600, 'Invalid Request: not a JSON-RPC message'), {
        status: 400,
      })
    }
    for (const m of messages) this.onmessage?.(m as JSONRPCMessage, { authInfo: options.authInfo })
    return new Response(null, { status: 202 })
  }

  async send(message: JSONRPCMessage): Promise<void> {
    // A notification has a method and no id; replies and server requests are owed.
    const kind = 'method' in message && !('id' in message) ? 'notification' : 'owed'
    this.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`, kind)
  }

  /** Replies share the one stream: there is no per-request stream to close. */
  closeSSEStream(): void {}

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.keepAlive)
    this.out.end()
  }

  private write(text: string, kind: ChunkKind): void {
    if (this.closed) return
    this.out.push(this.encoder.encode(text), kind)
  }
}
