import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { ServerConfig } from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { auditAllowed, listOutcome, type AuditOutcome } from '../observability/allowed.js'
import type { Decided } from '../policy/decided.js'
import { decideAccess } from '../policy/evaluate.js'
import { noticeOf } from '../policy/notice.js'
import type { PolicyStore } from '../policy/store.js'
import { outcomeOf } from '../observability/tracing.js'
import { randomBytes } from 'node:crypto'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import type { Child } from './child.js'
import type { OutputCaps } from './result-cap.js'
import { asksForTask, capTaskStatus, TaskBook, type TaskTool } from './tasks.js'
import type { CredentialGate, GatedSession } from './credential-gate.js'
import { BridgeError, exposedError, RPC } from './errors.js'
import { auditRefused, refusedBy } from './refused.js'
import { covers, refuseUndeclared } from './modern-call.js'
import { exchange, initializeTimeout } from './handshake.js'
import { EarlyRequests } from './early-requests.js'
import { SessionEventStore } from './event-store.js'
import {
  type Envelope,
  envelope,
  progressToken,
  rpcError,
  rpcErrorObject,
  type RequestId,
  type RpcErrorObject,
} from './jsonrpc.js'
import type { EndReason, OutboundStream } from './outbound.js'
import type { QueueBudget } from './outbound-budget.js'
import { type ServerAsk, ServerAsks } from './server-asks.js'
import { SessionStreams } from './session-streams.js'
import { handOff, sendSafely, StreamTransport } from './stream-transport.js'
import type { ClientTransport, SessionBody, SessionRequest } from './stream-transport.js'
import type { TransportReply } from './stream-transport.js'
import { RequestTimeouts, type Timeout } from './timeouts.js'

/** The seam a session's client-facing transport fits (named here for the registries). */
export type { ClientTransport } from './stream-transport.js'

/** Who sent a server session's HTTP request, and what policy decided for its requests (by id). */
export interface SessionCaller {
  principal: Principal
  decided: ReadonlyMap<RequestId, Decided>
  /** Stays here: only a credential exchange at the IdP ever sees it, never the process. */
  bearer?: string
}

/**
 * Rewrites a server's reply to a list request for the caller (policy filtering); identity by
 * default. `taskTool`: the tool each task of the session runs (`tasks/list` is filtered by it).
 */
export type ResultFilter = (
  server: string,
  method: string,
  result: unknown,
  principal: Principal,
  taskTool?: TaskTool,
) => unknown

interface InFlight {
  method: string
  principal: Principal
  progressToken: RequestId | undefined
  timer: Timeout | undefined
  /** SSE polling: closes the request's stream once it has been pending `closeAfter` ms. */
  poll: NodeJS.Timeout | undefined
  decided: Decided | undefined
  start: number
  /** Handed to the process (a request waiting for its credentials is not yet). */
  forwarded: boolean
  /** Which credentials the process acted with, for the audit line (names and sources only). */
  credentials?: ResolvedCredentials['supplied']
  /** Tasks: the tool a task-augmented call runs, or the task a result or cancel names. */
  task?: { creates: string } | { names: string }
  /** A request waiting for its credentials: aborted when it is settled, so the wait ends. */
  waiting?: AbortController
}

/** What a session of a server that takes per-user credentials needs. */
export interface SessionCredentials {
  gate: CredentialGate
  /** Which values the first process was started with. */
  fingerprint: string
  /** A process started with these credentials, for this session's owner. */
  spawn(credentials: ResolvedCredentials): Promise<Child>
  /**
   * A process of the session's that is no longer its (replaced, or a replacement that did not
   * initialize), being closed: it counts toward the session's bounds until it is gone.
   */
  ended(child: Child): void
}

/** What task bookkeeping a request needs: a task-augmented `tools/call`, or a task it names. */
function taskOf(
  method: string,
  params: Record<string, unknown> | undefined,
  tool: string | undefined,
): InFlight['task'] {
  if (method === 'tools/call')
    return tool !== undefined && asksForTask(params) ? { creates: tool } : undefined
  if (method !== 'tasks/result' && method !== 'tasks/cancel') return undefined
  return typeof params?.taskId === 'string' ? { names: params.taskId } : undefined
}

/**
 * The stable identity a session is bound to: issuer and subject, never the token. Encoded so no
 * two (iss, sub) pairs share a key, whatever characters they hold.
 */
export function ownerKey(p: Pick<Principal, 'iss' | 'sub'>): string {
  // A verified token's principal is one object for as long as the token is cached: its key is
  // encoded once, not on every request that finds its session.
  let key = owners.get(p)
  if (key === undefined || key.iss !== p.iss || key.sub !== p.sub)
    owners.set(p, (key = { iss: p.iss, sub: p.sub, key: JSON.stringify([p.iss, p.sub]) }))
  return key.key
}

const owners = new WeakMap<object, { iss: string; sub: string; key: string }>()

/**
 * Whether a client message says the session is past its initialization: `initialized`, or (a
 * client that never sends it) a request other than initialize or ping. The process's requests
 * held until then go to the client (checklist D28).
 */
function operating(env: Envelope): boolean {
  if (env.kind === 'notification') return env.method === 'notifications/initialized'
  return env.kind === 'request' && env.method !== 'initialize' && env.method !== 'ping'
}

/** How a session's `initialize` ended (see {@link Session.initialized}). */
export type InitOutcome = { ok: true } | { ok: false; error: RpcErrorObject; startFailed?: boolean }

/**
 * One MCP session: an SDK Streamable HTTP server transport facing the client, relaying raw
 * JSON-RPC to and from its own stdio process. Replies route by id; progress by token; other
 * server notifications and server→client requests go with the one request in flight, else on
 * the GET stream. With `resumability` on (the default) every SSE event is kept in the
 * session's replay buffer, so a client that lost a stream resumes it with GET +
 * Last-Event-ID; a dropped stream never cancels its request (MCP 2025-11-25 §Sending
 * Messages 6). Every SSE body leaves through a bounded stream charged to the session's queue
 * budget (outbound.ts), so a client that stops reading costs at most the limits. A process
 * exit fails every request in flight and ends the session.
 */
export class Session implements GatedSession {
  readonly id: string
  readonly server: string
  readonly owner: string
  readonly transport: ClientTransport<SessionCaller>
  /** When it opened (epoch ms): its duration is recorded when it ends. */
  readonly opened = Date.now()
  /** When it was last active, on the idle clock (`now`): what the reaper measures. */
  lastActive: number
  /** The protocol version negotiated at initialize, once the server has answered it. */
  version: string | undefined
  /**
   * How the session's `initialize` ended: its result, or the error the client got (from the
   * server, or the gateway's when the request never reached it). A session whose initialize
   * failed must not outlive that response. `startFailed`: the process exited, or stayed silent
   * past the timeout, before it answered (a start failure, bridge/start-failures.ts).
   */
  readonly initialized: Promise<InitOutcome>
  private settleInit!: (outcome: InitOutcome) => void
  /** Whether `initialized` has settled (a process exiting after that is no start failure). */
  private initSettled = false
  private readonly inflight = new Map<RequestId, InFlight>()
  private readonly streams: SessionStreams
  private readonly progress = new Map<RequestId, RequestId>()
  private closed = false
  /** The replay buffer, when resumability is on. */
  private readonly store: SessionEventStore | undefined
  /** The process; replaced when the user's credentials change (credential servers only). */
  private current: Child
  /** Which credential values the process was started with. */
  fingerprint = ''
  /** The client's initialize params (a replacement process is initialized with them). */
  private initParams: Record<string, unknown> | undefined
  /** A process replacement under way: messages for the process wait for it. */
  private swapping: Promise<void> | undefined
  /** Waiting for the requests handed to the process to finish (a replacement). */
  private idleWaiters: (() => void)[] = []
  /** The gateway's own requests to the client (elicitations), by id, waiting for answers. */
  private readonly asked = new Map<string, (answer: JSONRPCMessage | undefined) => void>()
  /** The tool each task of this session runs: `tasks/result` is held to that tool's cap. */
  private readonly tasks = new TaskBook()
  /** Its requests' timeouts (`requestTimeout`), on one timer. */
  private readonly timeouts = new RequestTimeouts()
  /** Whom the session's latest request came from: a task's status is decided for them. */
  private principal: Principal | undefined
  /** The process's requests that came before the client's `initialized` (checklist D28). */
  private readonly early: EarlyRequests
  /** The processes' requests relayed to the client, awaiting its answers: each goes to its asker. */
  private readonly serverAsks: ServerAsks

  /** The tool a task of this session runs (policy decides its status and result by it). */
  taskTool(taskId: unknown): string | undefined {
    return this.tasks.toolOf(taskId)
  }

  constructor(
    private readonly o: {
      id: string
      server: string
      config: ServerConfig
      owner: Principal
      child: Child
      log: Logger
      filter?: ResultFilter
      /**
       * The live policy: what the server sends on its own is decided by it on arrival
       * (policy/notice.ts). None: everything is relayed (tests of the relay alone).
       */
      policy?: PolicyStore
      /** Output caps (servers.<name>.output); none: results pass as they are. */
      caps?: OutputCaps
      audit?: AuditLog
      metrics?: Metrics
      /** What the session's streams may queue together for a client that is not reading. */
      budget: QueueBudget
      /** The client-facing transport; default: the Streamable HTTP one (stream-transport.ts). */
      transport?: (session: Session) => ClientTransport<SessionCaller>
      onclose: (session: Session) => void
      /** The idle clock, epoch ms (default Date.now): `lastActive` reads it. */
      now?: () => number
      /** For a server that takes per-user credentials. */
      credentials?: SessionCredentials
    },
  ) {
    this.initialized = new Promise((resolve) => {
      this.settleInit = (outcome) => {
        this.initSettled = true
        resolve(outcome)
      }
    })
    this.id = o.id
    this.server = o.server
    this.owner = ownerKey(o.owner)
    this.current = o.child
    this.fingerprint = o.credentials?.fingerprint ?? ''
    const now = o.now ?? Date.now
    this.lastActive = now()
    this.streams = new SessionStreams(o.budget, o.log, () => (this.lastActive = now()))
    const { sessionEvents, sessionBytes } = o.budget.limits
    this.early = new EarlyRequests({ events: sessionEvents, bytes: sessionBytes })
    this.serverAsks = new ServerAsks(sessionEvents, sessionBytes)
    const { resumability, ssePolling } = o.config
    this.store =
      o.transport === undefined && resumability.enabled
        ? new SessionEventStore(resumability)
        : undefined
    this.transport =
      o.transport?.(this) ??
      new StreamTransport<SessionCaller>({
        sessionId: o.id,
        open: (s) => this.streams.stream({ ...s, keepAlive: true }),
        json: o.config.responses === 'json',
        store: this.store,
        retry: ssePolling?.retry,
        onDelete: () => {
          o.log.info('session deleted by client')
          void this.close()
        },
      })
    this.transport.onmessage = (message, env, extra) =>
      this.fromClient(message, env, extra.caller, extra.closeSSEStream)
    this.attach(o.child)
  }

  /** The session's process (the current one, when credentials replaced it). */
  get child(): Child {
    return this.current
  }

  private attach(child: Child): void {
    child.onmessage = (message) => this.fromServer(message)
    child.onexit = () => this.onChildExit()
  }

  /**
   * Hands one HTTP request to the session's transport, the body already parsed, the caller
   * authenticated and every request in it allowed by policy (`caller.decided`, by id). An SSE
   * reply is a bounded stream of the session's, for http/ to write.
   */
  handle(
    req: SessionRequest,
    body: SessionBody | undefined,
    caller: SessionCaller,
  ): TransportReply | Promise<TransportReply> {
    this.lastActive = (this.o.now ?? Date.now)()
    // MCP: a request id is never reused within a session. One still in flight is refused here,
    // before the transport maps it to this request's stream.
    for (const id of caller.decided.keys()) {
      if (!this.inflight.has(id)) continue
      return {
        kind: 'json',
        status: 400,
        headers: {},
        body: rpcError(
          null,
          -32600,
          `Invalid Request: a request with id ${JSON.stringify(id)} is already in progress on this session`,
        ),
      }
    }
    return handOff(this.transport, req, body, caller)
  }

  /** Whether a client holds one of the session's listening streams open. */
  get listening(): boolean {
    return this.streams.listening
  }

  /** A stream to this session's client (session-streams.ts): the legacy transport's event stream. */
  openStream(o: {
    listening: boolean
    exp?: number
    onEnd?: (why: EndReason) => void
  }): OutboundStream {
    return this.streams.stream(o)
  }

  /** Sends a message of the gateway's own to the client (a refusal, on transports without a reply body). */
  tell(message: JSONRPCMessage, relatedId?: RequestId): void {
    this.send(message, this.o.config.responses === 'json' ? undefined : relatedId)
  }

  /**
   * Whether the policy in force now takes the server away from the session's user (the
   * principal of its latest request): its next request would be refused.
   */
  get accessWithdrawn(): boolean {
    const policy = this.o.policy?.current
    if (policy === undefined) return false
    // Denied, not merely challenged: a client that steps up goes on on the same session.
    return decideAccess(policy, this.principal ?? this.o.owner, this.server).effect === 'deny'
  }

  /** Number of client requests awaiting a reply. */
  get pending(): number {
    return this.inflight.size
  }

  /** Ends the session: streams closed, process stopped. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.settleInit({
      ok: false,
      error: rpcErrorObject(RPC.connectionClosed, 'the session was closed'),
    })
    this.o.onclose(this)
    this.failInflight(RPC.connectionClosed, 'the session was closed')
    this.timeouts.release()
    for (const answer of [...this.asked.values()]) answer(undefined)
    this.serverAsks.clear()
    // The last errors are on their streams already: what is queued still goes.
    this.transport.close()
    await this.child.close()
  }

  private fromClient(
    message: JSONRPCMessage,
    env: Envelope,
    caller: SessionCaller,
    closeStream: (() => void) | undefined,
  ): void {
    if (env.kind === 'response' && typeof env.id === 'string' && this.asked.has(env.id)) {
      // The client's answer to the gateway's own request (an elicitation): never the process's.
      return this.asked.get(env.id)!(message)
    }
    if (env.kind === 'response') return this.answered(message, env.id)
    // The process's requests held until the client's initialization ended go to it now (D28).
    if (!this.early.open && operating(env))
      for (const held of this.early.release()) this.fromServer(held)
    if (env.kind === 'request' && this.inflight.has(env.id)) {
      // Two concurrent bodies with one id got past handle(): the second is not relayed, so the
      // first keeps its entry (a list reply is filtered by its own method, never another's).
      this.o.log.warn('a request reused the id of one in progress; refused')
      this.send(
        rpcError(
          env.id,
          -32600,
          'Invalid Request: a request with this id is already in progress on this session',
        ),
      )
      return
    }
    if (env.kind === 'request') {
      const { principal, decided, bearer } = caller
      this.principal = principal
      const token = progressToken(env.params)
      const gate = this.o.credentials?.gate
      const gated = gate?.applies(this.server, env.method)
      // A request waiting for its credentials is not yet the server's: its timeout starts when it is.
      const timer = gated ? undefined : this.requestTimer(env.id)
      // Only a primed stream may be closed: the client needs an event id to resume from.
      const polling = this.o.config.ssePolling
      const poll =
        polling && closeStream
          ? setTimeout(() => this.pollClose(env.id, closeStream), polling.closeAfter)
          : undefined
      const verdict = decided.get(env.id)
      // Its span is the session's to end now, with the reply (or the error that replaces it).
      verdict?.span?.take()
      this.inflight.set(env.id, {
        method: env.method,
        principal,
        progressToken: token,
        timer,
        poll,
        decided: verdict,
        start: performance.now(),
        forwarded: false,
        task: taskOf(env.method, env.params, verdict?.name),
        ...(gated ? { waiting: new AbortController() } : {}),
      })
      if (token !== undefined) this.progress.set(token, env.id)
      if (env.method === 'initialize') this.initParams = env.params
      if (gated)
        return void this.gated(message, env, {
          id: env.id,
          method: env.method,
          principal,
          bearer,
          signal: this.inflight.get(env.id)!.waiting!.signal,
        })
    } else if (env.kind === 'notification' && env.method === 'notifications/cancelled') {
      return this.cancelled(message, env.params)
    }
    this.forward(message, env)
  }

  /**
   * The client's answer to a server→client request: to the process that asked, under that
   * process's own id, at once (a replacement under way waits for the requests of the process
   * running now, which may wait for this answer). An answer to a request no process of the
   * session has pending (answered already, or never asked) is never relayed.
   */
  private answered(message: JSONRPCMessage, id: RequestId): void {
    const ask = this.serverAsks.take(id)
    if (ask === undefined) {
      this.o.log.warn('the client answered a request no process of the session asked; dropped')
      return
    }
    this.toAsker(ask, ask.id === id ? message : ({ ...message, id: ask.id } as JSONRPCMessage))
  }

  /**
   * The client's cancellation: of a request of its own the process has (to it now, as an answer
   * goes: a replacement waits for that request), or of a server request (to the process that
   * asked it, under its own id). A request still waiting for its credentials is settled here
   * and never reaches the process; a cancellation of nothing pending is dropped.
   */
  private cancelled(message: JSONRPCMessage, params: Record<string, unknown> | undefined): void {
    const id = params?.requestId
    if (typeof id !== 'string' && typeof id !== 'number') return
    const mine = this.inflight.get(id)
    if (mine !== undefined) {
      this.cancelledByClient(id)
      if (mine.forwarded) this.toAsker({ child: this.current, id }, message)
      return
    }
    const ask = this.serverAsks.take(id)
    if (ask === undefined) {
      this.o.log.debug('the client cancelled a request no longer pending; dropped')
      return
    }
    const own = ask.id === id ? message : { ...message, params: { ...params, requestId: ask.id } }
    this.toAsker(ask, own as JSONRPCMessage)
  }

  /** Sends a message to the process a request belongs to (a replaced one's input is closed). */
  private toAsker(ask: ServerAsk, message: JSONRPCMessage): void {
    const { child } = ask
    if (child === undefined) {
      this.o.log.debug("the process that asked was replaced; the client's message dropped")
      return
    }
    child.send(message).catch((err: Error) => {
      const gone = child !== this.current || !child.alive
      this.o.log[gone ? 'debug' : 'warn'](
        { err: { message: err.message }, pid: child.pid },
        gone
          ? "the process that asked is gone (replaced or exited); the client's message dropped"
          : 'could not write to server process',
      )
    })
  }

  private requestTimer(id: RequestId): Timeout | undefined {
    const timeout = this.o.config.requestTimeout
    if (timeout <= 0) return undefined
    return this.timeouts.add(timeout, () => this.timeOut(id))
  }

  /** A request that acts with the user's credentials: to the process once the gate lets it through. */
  private async gated(
    message: JSONRPCMessage,
    env: Envelope,
    req: {
      id: RequestId
      method: string
      principal: Principal
      bearer: string | undefined
      signal: AbortSignal
    },
  ): Promise<void> {
    let outcome: Awaited<ReturnType<CredentialGate['run']>>
    try {
      outcome = await this.o.credentials!.gate.run(this, req)
    } catch (err) {
      if (req.signal.aborted) return
      // The replacement process would pass the user's process-start budget: told as such (it
      // can be waited out: `data.retryAfter`, as on every other transport), audited with the
      // budget as its rule, and the session keeps its process.
      if (err instanceof BridgeError && err.code === 'process_start_limit') {
        const pending = this.inflight.get(req.id)
        if (pending !== undefined)
          auditRefused(this.o.audit, this.o.metrics, {
            principal: pending.principal,
            server: this.server,
            method: pending.method,
            decided: pending.decided,
            start: pending.start,
            err,
          })
        const { code, message, data } = exposedError(err)
        return this.reply(req.id, code, message, { data, audited: true })
      }
      this.o.log.warn(
        { err: { message: (err as Error).message } },
        'the request could not get its credentials',
      )
      return this.reply(req.id, -32603, 'the MCP server could not be started with your credentials')
    }
    // Cancelled, timed out or the session ended while it waited (its entry settled, which aborts
    // the signal): nothing reaches the process. The id may be another request's by now (free
    // once cancelled): that one is not this one's to forward, answer or time.
    if (req.signal.aborted) return
    const pending = this.inflight.get(req.id)
    if (pending === undefined) return
    if (!outcome.forward) {
      this.settle(req.id, pending)
      this.audit(pending, outcome.outcome)
      pending.decided?.span?.end(outcomeOf(outcome.reply))
      this.send(outcome.reply, req.id)
      // Its process holds a deleted value and none starts without it: the answer goes, then
      // the session with that process.
      if (outcome.end) void this.close()
      return
    }
    pending.credentials = outcome.supplied
    pending.timer = this.requestTimer(req.id)
    this.forward(message, env)
  }

  /**
   * Hands a client request or notification to the process, after a process replacement under
   * way. (Answers and cancellations go to the process they belong to: `answered`, `cancelled`.)
   */
  private forward(message: JSONRPCMessage, env: Envelope): void {
    if (this.swapping !== undefined) {
      void this.swapping.then(() => this.forward(message, env))
      return
    }
    if (env.kind === 'request') {
      const pending = this.inflight.get(env.id)
      if (pending === undefined) return
      pending.forwarded = true
      // Traced: the process gets the gateway's CLIENT span as its parent, in `_meta`.
      const span = pending.decided?.span
      if (span !== undefined) message = span.toChild(message, { server: this.server })
    }
    this.child.send(message).catch((err: Error) => {
      // A message that cannot be serialized fails here too, with the process still running.
      const running = this.child.alive
      this.o.log.warn(
        { err: { message: err.message }, running },
        'could not write to server process',
      )
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
        else this.current.warn({}, 'server sent a reply to no pending request; dropped')
        return
      }
      this.settle(env.id, req)
      // Refused in the process's place by a limit (a shared process's crash budget): its one
      // audit line is that refusal's, not an allowed request's error (refused.ts).
      const limited = refusedBy(message)
      if (limited !== undefined) {
        this.sent(message)
        if (req.decided !== undefined)
          auditRefused(this.o.audit, this.o.metrics, {
            principal: req.principal,
            server: this.server,
            method: req.method,
            decided: req.decided,
            err: limited,
          })
        req.decided?.span?.end(exposedError(limited))
        return
      }
      const m = message as { result?: unknown; error?: { code?: unknown } }
      if (req.method === 'initialize') {
        const v = (m.result as { protocolVersion?: unknown } | undefined)?.protocolVersion
        if (typeof v === 'string') this.version = v
        req.decided?.span?.session(this.id, this.version)
        const error = (message as { error?: { code: number; message: string; data?: unknown } })
          .error
        this.settleInit(error ? { ok: false, error } : { ok: true })
      }
      // A task's result is its tool's: held to that tool's cap (result-cap.ts CapFinder).
      const capName =
        req.task !== undefined && 'names' in req.task
          ? this.tasks.toolOf(req.task.names)
          : req.decided?.name
      if (req.task !== undefined) this.taskSettled(req, req.task, m.result)
      let outcome: AuditOutcome = m.error ? { kind: 'error', code: m.error.code } : { kind: 'ok' }
      const cutError =
        m.error !== undefined
          ? this.o.caps?.applyError(this.server, req.method, capName, m.error)
          : undefined
      if (cutError) message = rpcError(env.id, cutError.code, cutError.message)
      const capped =
        m.result !== undefined
          ? this.o.caps?.apply(this.server, req.method, capName, m.result)
          : undefined
      if (capped !== undefined) {
        if ('error' in capped) {
          this.audit(req, capped.audit)
          this.send(rpcError(env.id, capped.error.code, capped.error.message))
          return
        }
        outcome = capped.audit
        m.result = capped.result
        message = { ...message, result: capped.result } as JSONRPCMessage
      }
      if (this.o.filter && m.result !== undefined) {
        const result = this.o.filter(
          this.server,
          req.method,
          m.result,
          req.principal,
          this.tasks.toolOf,
        )
        if (result !== m.result) {
          outcome = listOutcome(m.result, result)
          message = { ...message, result } as JSONRPCMessage
        }
      }
      // The reply goes first, its audit line after: the line is not on the client's path.
      const end = performance.now()
      // The outcome is what the client got: -32603 when the reply could not be serialized.
      if (!this.sent(message)) outcome = { kind: 'error', code: -32603 }
      const redact = this.current.redact
      const after = () => {
        this.audit(req, outcome, end)
        req.decided?.span?.end(outcomeOf(m, redact))
      }
      // An SSE reply is on the socket already; a JSON one is written by its HTTP request's own
      // continuation, which `sent` queued as a promise reaction: the line waits behind it.
      if (this.o.config.responses === 'json') queueMicrotask(after)
      else after()
      return
    }
    if (env.kind === 'invalid') {
      this.current.warn({}, 'server sent an invalid JSON-RPC message; dropped')
      return
    }
    // Only negotiated capabilities are used (MCP lifecycle §Operation, checklist D27): a request
    // for one the client did not declare at initialize is refused here, never relayed to it.
    if (env.kind === 'request' && !covers(this.initParams?.capabilities, env.method, env.params)) {
      this.child
        .send(refuseUndeclared(env.id, env.method, env.params, this.initParams?.capabilities))
        .catch(() => {})
      return
    }
    // MCP lifecycle (checklist D28): before the client's `initialized` the server sends no
    // request but ping; one that does waits for it here, bounded like the session's queues.
    const early = this.early.wait(message, env)
    if (early !== undefined) {
      if ('refused' in early) {
        // The process's name for it, blotted then cut as a disguised one's is (child.ts).
        const method =
          env.kind === 'request'
            ? (this.current.redact?.(env.method) ?? env.method).slice(0, 120)
            : undefined
        this.current.warn(
          { method },
          "server request before the client's initialized past the session's bounds; refused",
        )
        this.child.send(early.refused).catch(() => {})
      }
      return
    }
    // What the server sends on its own follows the policy loaded now (as on a listen stream).
    const policy = this.o.policy?.current
    if (policy !== undefined) {
      const principal = this.principal ?? this.o.owner
      const notice = noticeOf(policy, principal, this.server, env.method, env.params)
      if (notice === 'withdrawn') return this.withdraw()
      if (notice === 'drop') return
      // The client may step up and go on on this session: until then it hears no notification
      // (a request of the server's belongs to a client request allowed before, and goes on).
      if (notice === 'challenged' && env.kind === 'notification') return
    }
    if (env.kind === 'notification' && env.method === 'notifications/tasks/status') {
      if (!this.taskShown(env.params)) return
      message = { ...message, params: capTaskStatus(env.method, env.params) } as JSONRPCMessage
    }
    const related = this.relatedRequest(env)
    if (env.kind === 'request') return this.relayAsk(message, env.id, related)
    if (env.kind === 'notification' && env.method === 'notifications/cancelled') {
      // The process withdrew a request of its own: the client knows it by the id it was relayed under.
      const id = env.params?.requestId
      const known =
        typeof id === 'string' || typeof id === 'number'
          ? this.serverAsks.withdraw(this.current, id)
          : undefined
      if (known !== undefined && known !== id)
        message = { ...message, params: { ...env.params, requestId: known } } as JSONRPCMessage
    }
    this.send(message, related)
  }

  /**
   * Relays a request of the process's to the client, remembered until it is answered so the
   * answer reaches this process and no other (server-asks.ts); past the session's bound it is
   * refused to the process instead.
   */
  private relayAsk(message: JSONRPCMessage, id: RequestId, related: RequestId | undefined): void {
    const asker = this.current
    const relayed = this.serverAsks.relay(asker, id)
    if (relayed === undefined) {
      asker.warn(
        { pending: this.serverAsks.size },
        "server request past the session's bound of requests awaiting the client's answers; refused",
      )
      asker
        .send(rpcError(id, -32603, "too many requests awaiting the client's answers"))
        .catch(() => {})
      return
    }
    if (relayed !== id) message = { ...message, id: relayed } as JSONRPCMessage
    if (!this.sent(message, related)) this.serverAsks.take(relayed)
  }

  /**
   * Whether a task's status may reach the client: decided as `tasks/list` shows a task, by the
   * principal of the session's latest request (a newer token may carry fewer scopes). A task whose
   * tool is denied now, or which the session's book does not know, is withheld (tasks.ts).
   */
  private taskShown(task: unknown): boolean {
    if (this.tasks.toolOf((task as { taskId?: unknown } | undefined)?.taskId) === undefined)
      return false
    if (this.o.filter === undefined) return true
    if (this.principal === undefined) return false
    const r = this.o.filter(
      this.server,
      'tasks/list',
      { tasks: [task] },
      this.principal,
      this.tasks.toolOf,
    )
    return (r as { tasks?: unknown[] }).tasks?.length === 1
  }

  /** The client request a server notification or request belongs to, if it can be told. */
  private relatedRequest(env: {
    method: string
    params: Record<string, unknown> | undefined
  }): RequestId | undefined {
    // JSON replies carry only the response: anything else goes on the GET stream.
    if (this.o.config.responses === 'json') return undefined
    if (env.method === 'notifications/progress') {
      const token = env.params?.progressToken
      return typeof token === 'string' || typeof token === 'number'
        ? this.progress.get(token)
        : undefined
    }
    // MCP transports §Sending Messages: server messages SHOULD relate to the originating
    // request; over stdio the relation is lost, so only a lone request in flight is certain.
    if (this.inflight.size === 1) return this.inflight.keys().next().value
    return undefined
  }

  /** Task bookkeeping once a task request is answered: a task created, or one that ended. */
  private taskSettled(req: InFlight, task: NonNullable<InFlight['task']>, result: unknown): void {
    if ('creates' in task) return this.tasks.created(result, task.creates)
    // Its result delivered, or it was cancelled: the task is over for this session.
    if (req.method === 'tasks/result' || result !== undefined) this.tasks.ended(task.names)
  }

  /** Hands a message to the transport (stream-transport.ts `sendSafely`: never throws). */
  private send(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    this.sent(message, relatedRequestId)
  }

  /** {@link send}, false when the message could not be serialized (a reply's client got -32603). */
  private sent(message: JSONRPCMessage, relatedRequestId?: RequestId): boolean {
    // A message that cannot be serialized is the process's: its warning is within its budget.
    return sendSafely(this.transport, message, relatedRequestId, this.current)
  }

  /** `end`: when the server's reply came, if it is not now. */
  private audit(req: InFlight, outcome: AuditOutcome, end?: number): void {
    if (req.decided === undefined || this.o.audit === undefined) return
    auditAllowed(this.o.audit, this.o.metrics, {
      principal: req.principal,
      server: this.server,
      method: req.method,
      decided: req.decided,
      start: req.start,
      end,
      outcome,
      credentials: req.credentials,
    })
  }

  private settle(id: RequestId, req: InFlight): void {
    req.timer?.cancel()
    clearTimeout(req.poll)
    req.waiting?.abort()
    this.inflight.delete(id)
    if (req.progressToken !== undefined) this.progress.delete(req.progressToken)
    if (this.idleWaiters.length > 0 && this.forwardedCount() === 0)
      for (const wake of this.idleWaiters.splice(0)) wake()
  }

  private forwardedCount(): number {
    let n = 0
    for (const r of this.inflight.values()) if (r.forwarded) n++
    return n
  }

  /** Resolves once no request handed to the process is in flight. */
  private whenIdle(): Promise<void> {
    if (this.forwardedCount() === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Whether a URL elicitation can reach the client: declared at initialize, and a stream to carry it. */
  get canElicitUrl(): boolean {
    const declared = covers(this.initParams?.capabilities, 'elicitation/create', { mode: 'url' })
    return declared && (this.o.config.responses !== 'json' || this.listening)
  }

  ask(
    relatedId: RequestId,
    method: string,
    params: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<JSONRPCMessage | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined)
    const id = `mcp-edge-ask-${randomBytes(9).toString('base64url')}`
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs)
      const gone = () => done(undefined)
      const done = (answer: JSONRPCMessage | undefined) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', gone)
        this.asked.delete(id)
        resolve(answer)
      }
      // The request it is for was settled (cancelled): its question is no longer waited on.
      signal?.addEventListener('abort', gone, { once: true })
      this.asked.set(id, done)
      this.send(
        { jsonrpc: '2.0', id, method, params } as JSONRPCMessage,
        this.o.config.responses === 'json' ? undefined : relatedId,
      )
    })
  }

  /**
   * Replaces the process by one started with `credentials`, at a request boundary: requests
   * the old one has finish first, messages for the process wait meanwhile, and the new one is
   * initialized with the client's own initialize params before it gets any. Its server-side
   * state (subscriptions, log level) starts afresh.
   * @throws BridgeError when no process can be started (the session keeps its old one)
   */
  replaceChild(credentials: ResolvedCredentials): Promise<void> {
    const previous = this.swapping ?? Promise.resolve()
    const run = previous.then(async () => {
      if (credentials.fingerprint === this.fingerprint || this.closed) return
      const inFlight = this.forwardedCount()
      if (inFlight > 0)
        this.o.log.debug(
          { inFlight },
          "the user's credentials changed: the process is replaced once its requests are answered",
        )
      await this.whenIdle()
      // Ended meanwhile (DELETE, its process crashed, reaped): no process is started for it.
      if (this.closed) return
      const next = await this.o.credentials!.spawn(credentials)
      const timeout = initializeTimeout(this.o.config)
      const init = (await exchange(next, 'initialize', this.initParams, timeout)) as
        | { result?: unknown }
        | undefined
      if (init?.result === undefined || this.closed) {
        this.o.credentials!.ended(next)
        await next.close()
        if (this.closed) return
        throw new Error('the replacement process did not initialize')
      }
      await next.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage)
      const old = this.current
      old.onmessage = undefined
      old.onexit = undefined
      this.current = next
      this.attach(next)
      this.serverAsks.retire(old)
      this.fingerprint = credentials.fingerprint
      this.o.log.info(
        { pid: next.pid, replaced: old.pid },
        "process replaced: the user's credentials changed",
      )
      this.o.credentials!.ended(old)
      void old.close()
    })
    const settled = run.catch(() => {})
    this.swapping = settled
    void settled.then(() => {
      if (this.swapping === settled) this.swapping = undefined
    })
    return run
  }

  /**
   * Answers request `id` with an error. `startFailed`: an initialize whose process never
   * answered; `audited`: its audit line is written already (a refusal's: refused.ts).
   */
  private reply(
    id: RequestId,
    code: number,
    text: string,
    o: { startFailed?: boolean; data?: unknown; audited?: boolean } = {},
  ): void {
    const { startFailed = false, data, audited = false } = o
    const req = this.inflight.get(id)
    if (req === undefined) return
    if (req.method === 'initialize')
      this.settleInit({ ok: false, error: rpcErrorObject(code, text, data), startFailed })
    this.settle(id, req)
    if (!audited) this.audit(req, { kind: 'error', code })
    this.send(rpcError(id, code, text, data))
    req.decided?.span?.end({ code, message: text })
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
    if (this.o.config.responses === 'json')
      return this.reply(id, RPC.connectionClosed, 'the request was cancelled')
    this.settle(id, req)
    this.audit(req, { kind: 'cancelled' })
    req.decided?.span?.end({ errorType: 'cancelled' })
    this.transport.cancel(id)
  }

  /**
   * SSE polling (MCP 2025-11-25 §Sending Messages 6, SEP-1699): the server MAY close the
   * connection without ending the stream; the reply waits in the replay buffer.
   */
  private pollClose(id: RequestId, closeStream: () => void): void {
    if (!this.inflight.has(id)) return
    this.o.log.debug(
      { closeAfter: this.o.config.ssePolling?.closeAfter },
      'SSE polling: stream closed while its request runs',
    )
    closeStream()
  }

  private timeOut(id: RequestId): void {
    this.o.log.warn({ requestTimeout: this.o.config.requestTimeout }, 'server request timed out')
    const initialize = this.inflight.get(id)?.method === 'initialize'
    this.reply(id, RPC.requestTimeout, 'the MCP server did not answer in time', {
      startFailed: initialize,
    })
    void this.child
      .send({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: id, reason: 'timeout' },
      } as JSONRPCMessage)
      .catch(() => {})
  }

  /**
   * The policy took the server away from the session's user: the session ends (its streams
   * with it); the client's next request finds no session.
   */
  withdraw(): void {
    if (this.closed) return
    this.o.log.info('the policy in force no longer grants access to the server; session closed')
    void this.close()
  }

  private failInflight(code: number, text: string): void {
    for (const id of [...this.inflight.keys()]) this.reply(id, code, text)
  }

  private onChildExit(): void {
    if (this.closed) return
    this.o.log.warn({ pending: this.inflight.size }, 'server process exited; ending its session')
    this.o.metrics?.childExits.inc({ server: this.server })
    // Before its initialize was answered (sent yet or not), the process never started.
    if (!this.initSettled)
      this.settleInit({
        ok: false,
        error: rpcErrorObject(RPC.connectionClosed, 'the MCP server process exited'),
        startFailed: true,
      })
    this.failInflight(RPC.connectionClosed, 'the MCP server process exited')
    void this.close()
  }
}
