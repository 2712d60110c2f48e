import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { rpcError } from './jsonrpc.js'
import type { EndReason, OutboundStream } from './outbound.js'
import type { ChunkKind } from './sse-chunk.js'
import type { ClientTransport, TransportReply, TransportRequest } from './stream-transport.js'
import { validMessage } from './wire-check.js'

const encoder = new TextEncoder()

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
  onmessage?: ClientTransport['onmessage']
  /** The stream ended other than by `close()`. */
  onclosed?: (why: EndReason) => void
  /** The event stream, for http/ to write to its client. */
  readonly out: OutboundStream
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
    // HTTP+SSE (2024-11-05): the first event names the URI for client messages.
    this.write(`event: endpoint\ndata: ${endpoint}\n\n`, 'owed')
    this.keepAlive = setInterval(
      () => this.write(': keepalive\n\n', 'control'),
      keepAliveMs,
    ).unref()
  }

  /** The event stream as a web body (a client that is not a Node response). */
  get stream(): ReadableStream<Uint8Array> {
    return this.out.body
  }

  handle(req: TransportRequest<unknown>): TransportReply {
    const messages = (Array.isArray(req.body) ? req.body : [req.body]) as JSONRPCMessage[]
    const envs = req.envelopes ?? []
    // The shape Streamable HTTP checks too (wire-check.ts): a process reads only what it would.
    if (messages.length === 0 || messages.some((m, i) => !validMessage(m, envs[i]))) {
      return {
        kind: 'json',
        status: 400,
        headers: {},
        body: rpcError(null, -32600, 'Invalid Request: not a JSON-RPC message'),
      }
    }
    for (let i = 0; i < messages.length; i++)
      this.onmessage?.(messages[i]!, envs[i]!, { caller: req.caller })
    return { kind: 'json', status: 202, headers: {} }
  }

  send(message: JSONRPCMessage): boolean {
    // A notification has a method and no id; replies and server requests are owed.
    const kind = 'method' in message && !('id' in message) ? 'notification' : 'owed'
    return this.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`, kind)
  }

  /** Replies share the one stream: there is no per-request stream to close. */
  closeSSEStream(): void {}

  /** Nothing is kept per request here. */
  cancel(): void {}

  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.keepAlive)
    this.out.end()
  }

  private write(text: string, kind: ChunkKind): boolean {
    if (this.closed) return false
    return this.out.push(encoder.encode(text), kind)
  }
}
