import { ServerResponse } from 'node:http'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import type { Context } from 'hono'
import { ClientGone } from '../bridge/gone.js'
import type { TransportReply } from '../bridge/stream-transport.js'
import type { Vars } from './request-id.js'

/**
 * Writes a session transport's reply. Behind Node's HTTP server it goes straight to the
 * response, no web `Response` or stream between: a JSON body (or none) in one `end`, an SSE
 * body written by its stream as events come (outbound.ts: one write per event, the headers
 * with the first, a reply that ends the stream in one `end`); the framework is told it was
 * sent. Elsewhere (`app.request()` in tests) it is a web `Response`. Headers the middleware
 * adds to every response (`replyHeaders`: request id, CORS) go with it either way.
 */
export function sendReply(c: Context<Vars>, reply: TransportReply): Response {
  const extra = c.get('replyHeaders')
  const headers = extra === undefined ? reply.headers : { ...reply.headers, ...extra }
  const res = c.env?.outgoing
  if (reply.kind === 'json') {
    const text = reply.body === undefined ? undefined : JSON.stringify(reply.body)
    const all = text === undefined ? headers : { ...headers, 'content-type': 'application/json' }
    if (!(res instanceof ServerResponse))
      return new Response(text ?? null, { status: reply.status, headers: all })
    if (text === undefined) {
      res.writeHead(reply.status, { ...all, 'content-length': '0' })
      res.end()
    } else {
      res.writeHead(reply.status, { ...all, 'content-length': String(Buffer.byteLength(text)) })
      res.end(text)
    }
    return RESPONSE_ALREADY_SENT
  }
  if (!(res instanceof ServerResponse))
    return new Response(reply.stream.body, { status: reply.status, headers })
  reply.stream.attach(res, { status: reply.status, headers, flush: reply.flush })
  return RESPONSE_ALREADY_SENT
}

/** Whether a handler wrote its response itself (middleware must not touch the shared marker). */
export function alreadySent(res: Response): boolean {
  return res === RESPONSE_ALREADY_SENT
}

/**
 * The client's going, told by Node's response: its connection closed before the response
 * finished (or the request errored), as @hono/node-server decides for `Request.signal`, without
 * the AbortController that signal costs each request. Undefined outside Node's server.
 */
export function clientGone(c: Context<Vars>): ClientGone | undefined {
  const res = c.env?.outgoing
  const req = c.env?.incoming
  if (!(res instanceof ServerResponse) || req === undefined) return undefined
  const gone = new ClientGone()
  const closed = () => {
    if (req.errored || !res.writableFinished) gone.abort()
  }
  // Closed already (the client left before this was asked): that close is not emitted again.
  if (res.closed) closed()
  else res.once('close', closed)
  return gone
}
