import { randomUUID } from 'node:crypto'
import {
  DEFAULT_NEGOTIATED_PROTOCOL_VERSION,
  type JSONRPCMessage,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server'
import type { SessionEventStore } from './event-store.js'
import { type Envelope, type RequestId, rpcError } from './jsonrpc.js'
import type { EndReason, OutboundStream } from './outbound.js'
import { validMessage } from './wire-check.js'

/** One HTTP request as a session transport sees it: http/ has read, parsed and decided it. */
export interface TransportRequest<C> {
  method: string
  /** A request header (lower-case name), if sent. */
  header(name: string): string | undefined
  /** A POST's body as parsed, and its messages' envelopes (one each, in order). */
  body?: unknown
  envelopes?: readonly Envelope[]
  /** Who sent it and what was decided for it, handed to `onmessage` with each message. */
  caller: C
  /** When the caller's token expires (seconds since the epoch): a listening stream ends then. */
  exp?: number
}

/** What a session transport answers an HTTP request with; http/ writes it. */
export type TransportReply =
  /** A JSON body (none when `body` is undefined). */
  | { kind: 'json'; status: number; headers: Record<string, string>; body?: unknown }
  /** An SSE body: the stream, written to as the session's messages come; `flush`: headers at once. */
  | {
      kind: 'stream'
      status: number
      headers: Record<string, string>
      stream: OutboundStream
      flush?: boolean
    }

/** What a session needs of its client-facing transport: this one, and the legacy HTTP+SSE one. */
export interface ClientTransport<C = unknown> {
  /** A client message, its envelope read once; `closeSSEStream` when its stream can be resumed. */
  onmessage?: (
    message: JSONRPCMessage,
    env: Envelope,
    extra: { caller: C; closeSSEStream?: () => void },
  ) => void
  handle(req: TransportRequest<C>): TransportReply | Promise<TransportReply>
  /** Sends a message to the client; false when no stream could take it (it may be kept for replay). */
  send(message: JSONRPCMessage, relatedRequestId?: RequestId): boolean
  closeSSEStream(requestId: RequestId): void
  /** A request the session will not answer (the client cancelled it): its stream ends now. */
  cancel(requestId: RequestId): void
  close(): void
}

/** An HTTP request as a session takes it: its method and headers (http/ reads the body). */
export type SessionRequest = Pick<TransportRequest<unknown>, 'method' | 'header'>

/** A session-era request's body as parsed, and its messages' envelopes, read once. */
export interface SessionBody {
  body: unknown
  envelopes: readonly Envelope[]
}

/**
 * Hands a message to a transport, which serializes it now. One that cannot be serialized (a
 * process's hostile message) is dropped with a log line, never thrown into the process's
 * stdout handler; a reply is replaced by an error, so its request still ends.
 */
export function sendSafely(
  transport: { send(message: JSONRPCMessage, relatedRequestId?: RequestId): unknown },
  message: JSONRPCMessage,
  relatedRequestId: RequestId | undefined,
  log: { warn(o: object, msg: string): void },
): boolean {
  try {
    transport.send(message, relatedRequestId)
    return true
  } catch (err) {
    log.warn(
      { err: { message: (err as Error).message } },
      'a message could not be serialized for the client; dropped',
    )
    const id = (message as { id?: unknown }).id
    if ((typeof id === 'string' || typeof id === 'number') && !('method' in message))
      transport.send(
        rpcError(id, -32603, "the MCP server's reply could not be passed on"),
        relatedRequestId,
      )
    return false
  }
}

/**
 * Hands one HTTP request to a session's transport, the caller (with its token's expiry)
 * travelling with each of its messages: the one hand-off every session kind makes.
 */
export function handOff<C extends { principal: { exp?: number } }>(
  transport: ClientTransport<C>,
  req: SessionRequest,
  body: SessionBody | undefined,
  caller: C,
): TransportReply | Promise<TransportReply> {
  return transport.handle({
    method: req.method,
    header: req.header,
    body: body?.body,
    envelopes: body?.envelopes,
    caller,
    exp: caller.principal.exp,
  })
}

/** How a session's transport opens a stream to its client (session-streams.ts bounds it). */
export type OpenStream = (o: {
  listening: boolean
  exp?: number
  onEnd: (why: EndReason) => void
}) => OutboundStream

/** The standalone (GET) stream's id, in the event store too. */
const GET_STREAM = '_GET_stream'

/** Headers of every SSE reply (MCP transports: no caching, no proxy buffering). */
const SSE = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
}

const encoder = new TextEncoder()
/** Stands for the reply of a request the client cancelled (none will come). */
const CANCELLED = {} as JSONRPCMessage

interface Stream {
  out: OutboundStream | undefined
  /** JSON mode: settles the POST with its replies. */
  json?: (reply: TransportReply) => void
  /** The POST's requests, in order, and the replies that came so far. */
  ids: RequestId[]
  replies: Map<RequestId, JSONRPCMessage>
}

/**
 * The server side of the session-era Streamable HTTP transport (MCP 2025-03-26 … 2025-11-25
 * §Transports), for one session, in place of the SDK's web-stream transport: a POST with
 * requests gets one SSE stream carrying its replies and whatever relates to them (or one JSON
 * body, `json`), a POST without requests a 202, GET the standalone stream (one at a time:
 * 409), DELETE ends the session. Streams are primed (an event id, empty data) only for
 * clients at 2025-11-25 or later, and only with an event store; every event is kept there
 * first and a `Last-Event-ID` replays the rest of its stream. Messages are checked once, by
 * shape (no schema library on the hot path), each serialized once for both the wire and the
 * store; events go out through the session's bounded streams (outbound.ts), written to the
 * socket as they come.
 */
export class StreamTransport<C> implements ClientTransport<C> {
  onmessage?: ClientTransport<C>['onmessage']
  private readonly streams = new Map<string, Stream>()
  private readonly requestStream = new Map<RequestId, string>()
  private initialized = false
  private closed = false

  constructor(
    private readonly o: {
      sessionId: string
      open: OpenStream
      /** JSON bodies instead of SSE for POSTs (`responses: json`). */
      json?: boolean
      store?: SessionEventStore
      /** The `retry:` hint (ms) on priming events: SSE polling. */
      retry?: number
      /** DELETE: the client ended the session. */
      onDelete: () => void
    },
  ) {}

  handle(req: TransportRequest<C>): TransportReply | Promise<TransportReply> {
    if (this.closed) return error(404, -32001, 'Session not found')
    switch (req.method) {
      case 'POST':
        return this.post(req)
      case 'GET':
        return this.get(req)
      case 'DELETE':
        return this.delete(req)
    }
    return error(405, -32000, 'Method not allowed.', { allow: 'GET, POST, DELETE' })
  }

  private post(req: TransportRequest<C>): TransportReply | Promise<TransportReply> {
    // MCP transports §Sending Messages to the Server: JSON in, and a client that takes both answers.
    const accept = req.header('accept')
    if (!accept?.includes('application/json') || !accept.includes('text/event-stream'))
      return error(
        406,
        -32000,
        'Not Acceptable: Client must accept both application/json and text/event-stream',
      )
    if (!isJson(req.header('content-type')))
      return error(415, -32000, 'Unsupported Media Type: Content-Type must be application/json')
    const messages = (Array.isArray(req.body) ? req.body : [req.body]) as JSONRPCMessage[]
    const envs = req.envelopes ?? []
    for (let i = 0; i < messages.length; i++) {
      if (!validMessage(messages[i], envs[i]))
        return error(400, -32700, 'Parse error: Invalid JSON-RPC message')
    }
    const init = envs.find((e) => e.kind === 'request' && e.method === 'initialize') as
      | Extract<Envelope, { kind: 'request' }>
      | undefined
    if (init !== undefined) {
      if (this.initialized) return error(400, -32600, 'Invalid Request: Server already initialized')
      if (messages.length > 1)
        return error(400, -32600, 'Invalid Request: Only one initialization request is allowed')
      this.initialized = true
    } else {
      const refused = this.checkSession(req)
      if (refused) return refused
    }
    const requests = envs.filter((e) => e.kind === 'request') as Extract<
      Envelope,
      { kind: 'request' }
    >[]
    if (requests.length === 0) {
      for (let i = 0; i < messages.length; i++)
        this.onmessage?.(messages[i]!, envs[i]!, { caller: req.caller })
      return { kind: 'json', status: 202, headers: {} }
    }
    // MCP: a request id is never reused within a session. One still mapped to a stream would
    // take that stream's reply (an endpoint session has no in-flight check of its own).
    const busy = requests.find((r) => this.requestStream.has(r.id))
    if (busy !== undefined)
      return error(
        400,
        -32600,
        `Invalid Request: a request with id ${JSON.stringify(busy.id)} is already in progress on this session`,
      )
    const streamId = randomUUID()
    const stream: Stream = { out: undefined, ids: requests.map((r) => r.id), replies: new Map() }
    for (const r of requests) this.requestStream.set(r.id, streamId)
    this.streams.set(streamId, stream)
    const headers = { 'mcp-session-id': this.o.sessionId }
    if (this.o.json) {
      return new Promise<TransportReply>((resolve) => {
        stream.json = resolve
        for (let i = 0; i < messages.length; i++)
          this.onmessage?.(messages[i]!, envs[i]!, { caller: req.caller })
      })
    }
    const version =
      (init?.params?.protocolVersion as string | undefined) ??
      req.header('mcp-protocol-version') ??
      DEFAULT_NEGOTIATED_PROTOCOL_VERSION
    const out = this.open(streamId, stream, false, undefined)
    const primed = this.o.store !== undefined && primes(version)
    if (primed) out.push(this.priming(streamId), 'control')
    for (let i = 0; i < messages.length; i++) {
      const env = envs[i]!
      const closeSSEStream =
        primed && env.kind === 'request' ? () => this.closeSSEStream(env.id) : undefined
      this.onmessage?.(messages[i]!, env, { caller: req.caller, closeSSEStream })
    }
    return { kind: 'stream', status: 200, headers: { ...SSE, ...headers }, stream: out }
  }

  private get(req: TransportRequest<C>): TransportReply {
    if (!req.header('accept')?.includes('text/event-stream'))
      return error(406, -32000, 'Not Acceptable: Client must accept text/event-stream')
    const refused = this.checkSession(req)
    if (refused) return refused
    const lastEventId = this.o.store && req.header('last-event-id')
    if (lastEventId) return this.replay(lastEventId, req.exp)
    if (this.streams.has(GET_STREAM))
      return error(409, -32000, 'Conflict: Only one SSE stream is allowed per session')
    const stream: Stream = { out: undefined, ids: [], replies: new Map() }
    this.streams.set(GET_STREAM, stream)
    const out = this.open(GET_STREAM, stream, true, req.exp)
    // A listening client waits for the headers before any event comes.
    return { kind: 'stream', status: 200, headers: this.sseHeaders(), stream: out, flush: true }
  }

  /** GET + Last-Event-ID: the rest of that stream, then (if it is still live) what comes next. */
  private replay(lastEventId: string, exp: number | undefined): TransportReply {
    const store = this.o.store!
    const streamId = store.streamOf(lastEventId)
    if (streamId === undefined) return error(400, -32000, 'Invalid event ID format')
    if (this.streams.get(streamId)?.out !== undefined)
      return error(409, -32000, 'Conflict: Stream already has an active connection')
    const events = store.after(lastEventId)
    if (events === undefined) return error(500, -32000, 'Error replaying events')
    const live = streamId === GET_STREAM || this.streams.has(streamId)
    const stream = this.streams.get(streamId) ?? { out: undefined, ids: [], replies: new Map() }
    const out = this.open(streamId, stream, true, exp)
    if (live) this.streams.set(streamId, stream)
    out.replay(events.map(([id, data]) => encoder.encode(frame(data, id))))
    // A finished request's stream has nothing more to come.
    if (!live) out.end()
    return { kind: 'stream', status: 200, headers: this.sseHeaders(), stream: out, flush: true }
  }

  private delete(req: TransportRequest<C>): TransportReply {
    const refused = this.checkSession(req)
    if (refused) return refused
    this.o.onDelete()
    this.close()
    return { kind: 'json', status: 200, headers: {} }
  }

  /** The SDK transport's session checks: initialized, this session's id, a version it knows. */
  private checkSession(req: TransportRequest<C>): TransportReply | undefined {
    if (!this.initialized) return error(400, -32000, 'Bad Request: Server not initialized')
    const id = req.header('mcp-session-id')
    if (!id) return error(400, -32000, 'Bad Request: Mcp-Session-Id header is required')
    if (id !== this.o.sessionId) return error(404, -32001, 'Session not found')
    const version = req.header('mcp-protocol-version')
    if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version))
      return error(
        400,
        -32000,
        `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
      )
    return undefined
  }

  /** Opens `stream`'s client stream; its end unmaps it (later events are kept for replay only). */
  private open(
    streamId: string,
    stream: Stream,
    listening: boolean,
    exp: number | undefined,
  ): OutboundStream {
    const out = this.o.open({
      listening,
      exp,
      onEnd: () => {
        if (stream.out !== out) return
        stream.out = undefined
        if (streamId === GET_STREAM && this.streams.get(GET_STREAM) === stream)
          this.streams.delete(GET_STREAM)
      },
    })
    stream.out = out
    return out
  }

  private priming(streamId: string): Uint8Array {
    const id = this.o.store!.append(streamId, undefined)
    const retry = this.o.retry === undefined ? '' : `retry: ${this.o.retry}\n`
    return encoder.encode(`id: ${id}\n${retry}data: \n\n`)
  }

  private sseHeaders(): Record<string, string> {
    return { ...SSE, 'mcp-session-id': this.o.sessionId }
  }

  send(message: JSONRPCMessage, relatedRequestId?: RequestId): boolean {
    const m = message as { id?: RequestId; result?: unknown; error?: unknown }
    const response = m.result !== undefined || m.error !== undefined
    const requestId = response ? m.id! : relatedRequestId
    if (requestId === undefined) {
      const data = JSON.stringify(message)
      const id = this.o.store?.append(GET_STREAM, data)
      const out = this.streams.get(GET_STREAM)?.out
      return out?.push(encoder.encode(frame(data, id)), kind(m, response)) ?? false
    }
    const streamId = this.requestStream.get(requestId)
    if (streamId === undefined) return false
    const stream = this.streams.get(streamId)
    if (stream === undefined) return false
    if (this.o.json) {
      if (!response) return false
      stream.replies.set(requestId, message)
      if (stream.replies.size < stream.ids.length) return true
      this.unmap(streamId, stream)
      const replies = stream.ids.map((id) => stream.replies.get(id)!)
      stream.json?.({
        kind: 'json',
        status: 200,
        headers: { 'mcp-session-id': this.o.sessionId },
        body: replies.length === 1 ? replies[0] : replies,
      })
      return true
    }
    const data = JSON.stringify(message)
    const id = this.o.store?.append(streamId, data)
    const out = stream.out
    if (!response) return out?.push(encoder.encode(frame(data, id)), kind(m)) ?? false
    stream.replies.set(requestId, message)
    const last = stream.replies.size === stream.ids.length
    if (last) this.unmap(streamId, stream)
    if (out === undefined) return this.o.store !== undefined
    const chunk = encoder.encode(frame(data, id))
    // The last reply and the end of its stream go together (one write to a client keeping up).
    if (last) out.end(chunk, 'owed')
    else out.push(chunk, 'owed')
    return true
  }

  /** A stream whose requests are all answered: forgotten (its events stay in the store). */
  private unmap(streamId: string, stream: Stream): void {
    this.streams.delete(streamId)
    for (const id of stream.ids) this.requestStream.delete(id)
  }

  /** Closes the stream carrying `requestId` (SSE polling; a cancelled request): it can be resumed. */
  closeSSEStream(requestId: RequestId): void {
    const streamId = this.requestStream.get(requestId)
    const stream = streamId === undefined ? undefined : this.streams.get(streamId)
    stream?.out?.end()
  }

  /**
   * The client cancelled `requestId` (MCP cancellation: no reply is owed): its stream ends
   * now, and once none of the stream's requests is owed a reply, the stream is forgotten.
   */
  cancel(requestId: RequestId): void {
    const streamId = this.requestStream.get(requestId)
    const stream = streamId === undefined ? undefined : this.streams.get(streamId)
    if (stream === undefined) return
    stream.replies.set(requestId, CANCELLED)
    // The stream ends only when none of its requests is owed a reply (a batch's others still are).
    if (stream.replies.size < stream.ids.length) return
    this.unmap(streamId!, stream)
    stream.out?.end()
  }

  /** Ends every stream (what is queued still goes); a JSON POST still waiting gets a 404. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const stream of this.streams.values()) {
      stream.out?.end()
      stream.json?.(error(404, -32001, 'Session not found'))
    }
    this.streams.clear()
    this.requestStream.clear()
  }
}

/** One SSE event carrying a message (JSON text), with its event id when there is a store. */
function frame(data: string, id: string | undefined): string {
  return id === undefined
    ? `event: message\ndata: ${data}\n\n`
    : `event: message\nid: ${id}\ndata: ${data}\n\n`
}

/** What the bound makes of a message: a notification may be dropped, anything else is owed. */
function kind(m: { id?: unknown }, response = false): 'notification' | 'owed' {
  return response || m.id !== undefined ? 'owed' : 'notification'
}

/** The SDK primes streams only for clients that can take an event with empty data (2025-11-25+). */
function primes(version: string): boolean {
  return SUPPORTED_PROTOCOL_VERSIONS.includes(version) && version >= '2025-11-25'
}

/** `application/json`, with or without parameters (RFC 9110 §8.3.1: case-insensitive type). */
function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false
  if (contentType === 'application/json') return true
  const semi = contentType.indexOf(';')
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  // A list of types (a comma outside any parameter) is not one media type.
  return type === 'application/json' && !contentType.includes(',')
}

function error(
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
): TransportReply {
  return { kind: 'json', status, headers, body: rpcError(null, code, message) }
}
