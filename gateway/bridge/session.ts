import { WebStandardStreamableHTTPServerTransport, type AuthInfo } from '@modelcontextprotocol/server'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { ServerConfig } from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import type { Decision } from '../policy/evaluate.js'
import type { Child } from './child.js'
import { RPC } from './errors.js'
import { SessionEventStore } from './event-store.js'
import { envelope, progressToken, rpcError, type RequestId } from './jsonrpc.js'

/**
 * What a session needs of its client-facing transport: the SDK's Streamable HTTP server
 * transport has it, and so does the legacy HTTP+SSE one.
 */
export interface ClientTransport {
  /** `closeSSEStream` is set when the request's stream can be resumed (primed, with an event store). */
  onmessage?: (message: JSONRPCMessage, extra?: { authInfo?: AuthInfo; closeSSEStream?: () => void }) => void
  onerror?: (error: Error) => void
  handleRequest(req: Request, options: { parsedBody?: unknown; authInfo?: AuthInfo }): Promise<Response>
  send(message: JSONRPCMessage, options?: { relatedRequestId?: RequestId }): Promise<void>
  closeSSEStream(requestId: RequestId): void
  close(): Promise<void>
}

/** Rewrites a server's reply to a list request for the caller (policy filtering); identity by default. */
export type ResultFilter = (server: string, method: string, result: unknown, principal: Principal) => unknown

/** A policy verdict on one request, and the name it was about. */
export interface Decided {
  decision: Decision
  name?: string
}

/** How an audit line names the rule behind a decision (or a refusal's reason). */
export function ruleOf(d: Pick<Decision, 'reason' | 'source'>): string {
  return d.source ? `${d.source.file}:${d.source.line ?? '?'} ${d.reason}` : d.reason
}

interface InFlight {
  method: string
  principal: Principal
  progressToken: RequestId | undefined
  timer: NodeJS.Timeout | undefined
  /** SSE polling: closes the request's stream once it has been pending `closeAfter` ms. */
  poll: NodeJS.Timeout | undefined
  decided: Decided | undefined
  start: number
}

/**
 * The stable identity a session is bound to: issuer and subject, never the token. Encoded so no
 * two (iss, sub) pairs share a key, whatever characters they hold.
 */
export function ownerKey(p: Pick<Principal, 'iss' | 'sub'>): string {
  return JSON.stringify([p.iss, p.sub])
}

/**
 * One MCP session: an SDK Streamable HTTP server transport facing the client, relaying raw
 * JSON-RPC to and from its own stdio process. Replies route by id; progress by token; other
 * server notifications and server→client requests go with the one request in flight, else on
 * the GET stream. With `resumability` on (the default) every SSE event is kept in the
 * session's replay buffer, so a client that lost a stream resumes it with GET +
 * Last-Event-ID; a dropped stream never cancels its request (MCP 2025-11-25 §Sending
 * Messages 6). A process exit fails every request in flight and ends the session.
 */
export class Session {
  readonly id: string
  readonly server: string
  readonly owner: string
  readonly child: Child
  readonly transport: ClientTransport
  lastActive = Date.now()
  /** The protocol version negotiated at initialize, once the server has answered it. */
  version: string | undefined
  /**
   * How the session's `initialize` ended: its result, or the error the client got (from the
   * server, or the gateway's when the request never reached it). A session whose initialize
   * failed must not outlive that response.
   */
  readonly initialized: Promise<{ ok: true } | { ok: false; error: { code: number; message: string; data?: unknown } }>
  private settleInit!: (outcome: { ok: true } | { ok: false; error: { code: number; message: string; data?: unknown } }) => void
  private readonly inflight = new Map<RequestId, InFlight>()
  /** Listening streams open (the GET stream; the legacy transport's event stream). */
  private streams = 0
  private readonly progress = new Map<RequestId, RequestId>()
  private closed = false
  /** The latest message handed to the transport; earlier ones are written before it. */
  private lastSend: Promise<void> = Promise.resolve()

  constructor(
    private readonly o: {
      id: string
      server: string
      config: ServerConfig
      owner: Principal
      child: Child
      log: Logger
      filter?: ResultFilter
      audit?: AuditLog
      metrics?: Metrics
      /** The client-facing transport; default: the SDK's Streamable HTTP server transport. */
      transport?: (session: Session) => ClientTransport
      onclose: (session: Session) => void
    },
  ) {
    this.initialized = new Promise((resolve) => (this.settleInit = resolve))
    this.id = o.id
    this.server = o.server
    this.owner = ownerKey(o.owner)
    this.child = o.child
    const { resumability, ssePolling } = o.config
    this.transport =
      o.transport?.(this) ??
      new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => o.id,
        enableJsonResponse: o.config.responses === 'json',
        // The SDK primes streams (id, empty data) only for clients at 2025-11-25 or later.
        eventStore: resumability.enabled ? new SessionEventStore(resumability) : undefined,
        retryInterval: ssePolling?.retry,
        onsessionclosed: () => {
          o.log.info('session deleted by client')
          void this.close()
        },
      })
    this.transport.onmessage = (message, extra) => this.fromClient(message, extra?.authInfo, extra?.closeSSEStream)
    this.transport.onerror = (err) => o.log.debug({ err: { message: err.message } }, 'transport refused a request')
    o.child.onmessage = (message) => this.fromServer(message)
    o.child.onexit = () => this.onChildExit()
  }

  /**
   * Hands one HTTP request to the session's transport, the body already parsed, the caller
   * authenticated and every request in it allowed by policy (`decided`, by id).
   */
  async handle(req: Request, parsedBody: unknown, principal: Principal, decided: ReadonlyMap<RequestId, Decided>): Promise<Response> {
    this.lastActive = Date.now()
    // MCP: a request id is never reused within a session. One still in flight is refused here,
    // before the transport maps it to this request's stream.
    const busy = [...decided.keys()].find((id) => this.inflight.has(id))
    if (busy !== undefined) {
      return Response.json(rpcError(null, -32600, `Invalid Request: a request with id ${JSON.stringify(busy)} is already in progress on this session`), { status: 400 })
    }
    const authInfo: AuthInfo = { token: '', clientId: principal.clientId ?? '', scopes: [...principal.scopes], extra: { principal, decided } }
    const res = await this.transport.handleRequest(req, { parsedBody, authInfo })
    // The GET stream is the client listening: the session is not idle while it is open.
    if (req.method === 'GET' && res.status === 200 && res.body !== null) {
      return new Response(this.holdStream(res.body, principal.exp), { status: res.status, headers: res.headers })
    }
    return res
  }

  /** Whether a client holds one of the session's listening streams open. */
  get listening(): boolean {
    return this.streams > 0
  }

  /**
   * The same stream, counted while it is open: idle reaping spares a session whose client
   * listens, and its idle time starts when the stream ends. It lasts no longer than the token
   * that opened it (`exp`, seconds since the epoch): then the client reconnects with a new one.
   */
  holdStream(body: ReadableStream<Uint8Array>, exp: number | undefined): ReadableStream<Uint8Array> {
    this.streams++
    const reader = body.getReader()
    let ended = false
    let expiry: NodeJS.Timeout | undefined
    const end = () => {
      if (ended) return
      ended = true
      clearTimeout(expiry)
      this.streams--
      this.lastActive = Date.now()
    }
    return new ReadableStream<Uint8Array>({
      start(controller) {
        if (exp === undefined) return
        expiry = setTimeout(() => {
          end()
          void reader.cancel('the token that opened the stream expired').catch(() => {})
          try {
            controller.close()
          } catch {
            // already closed
          }
        }, Math.max(0, exp * 1000 - Date.now())).unref()
      },
      async pull(controller) {
        try {
          const chunk = await reader.read()
          if (chunk.done) {
            end()
            controller.close()
          } else controller.enqueue(chunk.value)
        } catch (err) {
          end()
          controller.error(err)
        }
      },
      cancel(reason) {
        end()
        return reader.cancel(reason)
      },
    })
  }

  /** Sends a message of the gateway's own to the client (a refusal, on transports without a reply body). */
  tell(message: JSONRPCMessage): void {
    this.send(message)
  }

  /** Number of client requests awaiting a reply. */
  get pending(): number {
    return this.inflight.size
  }

  /** Ends the session: streams closed, process stopped. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.settleInit({ ok: false, error: { code: RPC.connectionClosed, message: 'the session was closed' } })
    this.o.onclose(this)
    this.failInflight(RPC.connectionClosed, 'the session was closed')
    // The transport stores each event before writing it: let the last errors reach their
    // streams before the streams are closed.
    await this.lastSend
    await this.transport.close()
    await this.child.close()
  }

  private fromClient(message: JSONRPCMessage, authInfo: AuthInfo | undefined, closeStream: (() => void) | undefined): void {
    const env = envelope(message)
    if (env.kind === 'request' && this.inflight.has(env.id)) {
      // Two concurrent bodies with one id got past handle(): the second is not relayed, so the
      // first keeps its entry (a list reply is filtered by its own method, never another's).
      this.o.log.warn('a request reused the id of one in progress; refused')
      this.send(rpcError(env.id, -32600, 'Invalid Request: a request with this id is already in progress on this session'))
      return
    }
    if (env.kind === 'request') {
      const { principal, decided } = authInfo?.extra as { principal: Principal; decided: ReadonlyMap<RequestId, Decided> }
      const token = progressToken(env.params)
      const timeout = this.o.config.requestTimeout
      const timer = timeout > 0 ? setTimeout(() => this.timeOut(env.id), timeout) : undefined
      // Only a primed stream may be closed: the client needs an event id to resume from.
      const polling = this.o.config.ssePolling
      const poll = polling && closeStream ? setTimeout(() => this.pollClose(env.id, closeStream), polling.closeAfter) : undefined
      this.inflight.set(env.id, { method: env.method, principal, progressToken: token, timer, poll, decided: decided.get(env.id), start: performance.now() })
      if (token !== undefined) this.progress.set(token, env.id)
    } else if (env.kind === 'notification' && env.method === 'notifications/cancelled') {
      this.cancelledByClient(env.params?.requestId)
    }
    this.child.send(message).catch((err: Error) => {
      // A message that cannot be serialized fails here too, with the process still running.
      const running = this.child.alive
      this.o.log.warn({ err: { message: err.message }, running }, 'could not write to server process')
      if (env.kind === 'request') {
        if (running) this.reply(env.id, -32603, 'the request could not be passed to the MCP server')
        else this.reply(env.id, RPC.connectionClosed, 'the MCP server process is not running')
      }
    })
  }

  private fromServer(message: JSONRPCMessage): void {
    const env = envelope(message)
    if (env.kind === 'response') {
      const req = this.inflight.get(env.id)
      if (req === undefined) {
        // After the session closed, a late reply is expected (e.g. DELETE during initialize).
        if (this.closed) this.o.log.debug('reply after the session closed; dropped')
        else this.o.log.warn('server sent a reply to no pending request; dropped')
        return
      }
      this.settle(env.id, req)
      const m = message as { result?: unknown; error?: { code?: unknown } }
      if (req.method === 'initialize') {
        const v = (m.result as { protocolVersion?: unknown } | undefined)?.protocolVersion
        if (typeof v === 'string') this.version = v
        const error = (message as { error?: { code: number; message: string; data?: unknown } }).error
        this.settleInit(error ? { ok: false, error } : { ok: true })
      }
      let outcome = m.error ? `error ${m.error.code}` : 'ok'
      if (this.o.filter && m.result !== undefined) {
        const result = this.o.filter(this.server, req.method, m.result, req.principal)
        if (result !== m.result) outcome = listOutcome(m.result, result)
        message = { ...message, result } as JSONRPCMessage
      }
      this.audit(req, outcome)
      this.send(message)
      return
    }
    if (env.kind === 'invalid') {
      this.o.log.warn('server sent an invalid JSON-RPC message; dropped')
      return
    }
    this.send(message, this.relatedRequest(env))
  }

  /** The client request a server notification or request belongs to, if it can be told. */
  private relatedRequest(env: { method: string; params: Record<string, unknown> | undefined }): RequestId | undefined {
    // JSON replies carry only the response: anything else goes on the GET stream.
    if (this.o.config.responses === 'json') return undefined
    if (env.method === 'notifications/progress') {
      const token = env.params?.progressToken
      return typeof token === 'string' || typeof token === 'number' ? this.progress.get(token) : undefined
    }
    // MCP transports §Sending Messages: server messages SHOULD relate to the originating
    // request; over stdio the relation is lost, so only a lone request in flight is certain.
    if (this.inflight.size === 1) return this.inflight.keys().next().value
    return undefined
  }

  private send(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    this.lastSend = this.transport.send(message, relatedRequestId === undefined ? undefined : { relatedRequestId }).catch((err: Error) => {
      this.o.log.debug({ err: { message: err.message } }, 'message for a closed stream dropped')
    })
  }

  private audit(req: InFlight, outcome: string): void {
    if (req.decided === undefined || this.o.audit === undefined) return
    auditAllowed(this.o.audit, this.o.metrics, { ...req, decided: req.decided, server: this.server, outcome })
  }

  private settle(id: RequestId, req: InFlight): void {
    clearTimeout(req.timer)
    clearTimeout(req.poll)
    this.inflight.delete(id)
    if (req.progressToken !== undefined) this.progress.delete(req.progressToken)
  }

  private reply(id: RequestId, code: number, text: string): void {
    const req = this.inflight.get(id)
    if (req === undefined) return
    if (req.method === 'initialize') this.settleInit({ ok: false, error: { code, message: text } })
    this.settle(id, req)
    this.audit(req, `error ${code}`)
    this.send(rpcError(id, code, text))
  }

  /**
   * The client gave up on a request (MCP cancellation): no reply is owed, so its stream is
   * closed now rather than left open until the timeout. A JSON reply cannot be withdrawn; it
   * ends with an error the client no longer waits for.
   */
  private cancelledByClient(id: unknown): void {
    if (typeof id !== 'string' && typeof id !== 'number') return
    const req = this.inflight.get(id)
    if (req === undefined) return
    if (this.o.config.responses === 'json') return this.reply(id, RPC.connectionClosed, 'the request was cancelled')
    this.settle(id, req)
    this.audit(req, 'cancelled')
    this.transport.closeSSEStream(id)
  }

  /**
   * SSE polling (MCP 2025-11-25 §Sending Messages 6, SEP-1699): the server MAY close the
   * connection without ending the stream; the reply waits in the replay buffer.
   */
  private pollClose(id: RequestId, closeStream: () => void): void {
    if (!this.inflight.has(id)) return
    this.o.log.debug({ closeAfter: this.o.config.ssePolling?.closeAfter }, 'SSE polling: stream closed while its request runs')
    closeStream()
  }

  private timeOut(id: RequestId): void {
    this.o.log.warn({ requestTimeout: this.o.config.requestTimeout }, 'server request timed out')
    this.reply(id, RPC.requestTimeout, 'the MCP server did not answer in time')
    void this.child
      .send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'timeout' } } as JSONRPCMessage)
      .catch(() => {})
  }

  private failInflight(code: number, text: string): void {
    for (const id of [...this.inflight.keys()]) this.reply(id, code, text)
  }

  private onChildExit(): void {
    if (this.closed) return
    this.o.log.warn({ pending: this.inflight.size }, 'server process exited; ending its session')
    this.o.metrics?.childExits.inc({ server: this.server })
    this.failInflight(RPC.connectionClosed, 'the MCP server process exited')
    void this.close()
  }
}

/**
 * The audit event (and decision count) of a request policy allowed, once its outcome is known;
 * an outcome `kept N of M` is a list the policy filtered. Both eras record requests this way.
 */
export function auditAllowed(
  audit: AuditLog,
  metrics: Metrics | undefined,
  e: { principal: Principal; server: string; method: string; decided: Decided; start: number; outcome: string },
): void {
  const decision = e.outcome.startsWith('kept ') ? 'filter' : 'allow'
  metrics?.decisions.inc({ server: e.server, decision })
  audit.record({
    sub: e.principal.sub,
    iss: e.principal.iss,
    clientId: e.principal.clientId,
    server: e.server,
    method: e.method,
    name: e.decided.name,
    decision,
    rule: ruleOf(e.decided.decision),
    durationMs: +(performance.now() - e.start).toFixed(2),
    outcome: e.outcome,
  })
}

/** `kept N of M` for a filtered list result. */
export function listOutcome(before: unknown, after: unknown): string {
  const count = (r: unknown) => {
    const arr = Object.values(r as Record<string, unknown>).find(Array.isArray)
    return arr ? arr.length : 0
  }
  return `kept ${count(after)} of ${count(before)}`
}
