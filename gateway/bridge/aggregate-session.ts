import { randomBytes } from 'node:crypto'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_WARNINGS_PER_WINDOW,
  DEFAULT_WARNINGS_WINDOW_MS,
  type GatewayConfig,
} from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import { outcomeOf, type Outcome } from '../observability/tracing.js'
import type { Metrics } from '../observability/metrics.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import { LISTS, type Aggregate, type AggregateCaller, type ListMethod } from './aggregate.js'
import { SessionSubscriptions } from './aggregate-subscriptions.js'
import type { CredentialGate } from './credential-gate.js'
import { BridgeError, exposedError, RPC } from './errors.js'
import { auditRefused, refusedBy } from './refused.js'
import { SessionEventStore } from './event-store.js'
import { GATEWAY_PROTOCOL_VERSIONS, negotiate } from './handshake.js'
import { type Envelope, isObject, progressToken, rpcError, type RequestId } from './jsonrpc.js'
import type { LanePool } from './lanes.js'
import { LogWindow } from './log-window.js'
import { BackendCall, type InputRequest } from './modern-call.js'
import type { EndReason, OutboundStream } from './outbound.js'
import type { QueueBudget } from './outbound-budget.js'
import { auditAllowed, type AuditOutcome } from '../observability/allowed.js'
import type { Decided } from '../policy/decided.js'
import { ownerKey } from './session.js'
import type { OutputCaps } from './result-cap.js'
import { SessionStreams } from './session-streams.js'
import { handOff, sendSafely, StreamTransport } from './stream-transport.js'
import type { ClientTransport, SessionBody, SessionRequest } from './stream-transport.js'
import type { TransportReply } from './stream-transport.js'

/** A request of the HTTP body, routed to its backend and allowed there by policy. */
export interface RoutedRequest {
  server: string
  params: Record<string, unknown>
  decided: Decided
  /** The params as the client sent them (public names). */
  original: Record<string, unknown>
}

/** Who sent an endpoint session's HTTP request, and where each of its requests goes (by id). */
export interface EndpointCaller {
  principal: Principal
  routed: ReadonlyMap<RequestId, RoutedRequest>
  bearer?: string
}

/** The list-changed notifications an endpoint relays, one per kind, from any of its backends. */
const LIST_CHANGED = new Set([
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/resources/list_changed',
])

/**
 * A session-era (2025-03-26 … 2025-11-25) session on an aggregating endpoint. The gateway is
 * the MCP server here: it answers `initialize`, `ping` and `logging/setLevel` itself, merges
 * the backends' lists, and runs each call, read, prompt and completion on one of the user's
 * processes of its backend (a lane, as sessionless requests do), relaying what the process
 * asks the client mid-call (sampling, elicitation, roots) on the call's stream, its progress
 * and its logs at the session's level (every log, until the client sets one). List changes of
 * any backend become one list_changed; a resource subscription holds the process that took it
 * (aggregate-subscriptions.ts), whose updates reach the session by public URI. Its streams
 * follow the endpoint's own `resumability` and `ssePolling`, as a server session's follow its
 * server's: events kept for GET + Last-Event-ID, a long call's stream closed and resumed.
 */
export class AggregateSession {
  readonly id: string
  /** When it opened (epoch ms): its duration is recorded when it ends. */
  readonly opened = Date.now()
  readonly endpoint: string
  readonly owner: string
  readonly transport: ClientTransport<EndpointCaller>
  /** When it was last active, on the idle clock (`now`): what the reaper measures. */
  lastActive: number
  version: string | undefined
  private capabilities: Record<string, unknown> = {}
  /** Set by the client's logging/setLevel; until then every log the backends send is relayed. */
  private logLevel: string | undefined
  private readonly calls = new Map<RequestId, BackendCall>()
  /** Requests of the client being answered (`pending`). */
  private active = 0
  /** Routed requests from their arrival to their end: a cancel aborts the one of its id. */
  private readonly waiting = new Map<RequestId, AbortController>()
  private readonly asked = new Map<string, (answer: JSONRPCMessage | undefined) => void>()
  private readonly subscriptions: SessionSubscriptions
  private readonly streams: SessionStreams
  private closed = false
  /** The replay buffer, when the endpoint's resumability is on. */
  private readonly store: SessionEventStore | undefined
  private readonly unlisten: () => void
  /**
   * The budget of warnings about messages the session could not pass on (one that cannot be
   * serialized): its backends' processes write them, so they are bounded as a process's
   * warnings are (`warnings` defaults; the rest counted when a window or the session ends).
   */
  private readonly warnings: LogWindow
  private readonly budgeted = {
    warn: (fields: object, msg: string) => {
      if (this.warnings.admit()) this.o.log.warn(fields, msg)
    },
  }
  /** List-changed notifications already sent this tick (several backends, one notification). */
  private readonly sentThisTick = new Set<string>()
  /** Whom the session's latest request came from: the policy decides what reaches them. */
  private principal: Principal | undefined

  constructor(
    private readonly o: {
      id: string
      agg: Aggregate
      owner: Principal
      config: GatewayConfig
      lanes: LanePool
      gate?: CredentialGate
      /** Output caps, each backend's own. */
      caps?: OutputCaps
      log: Logger
      audit?: AuditLog
      metrics?: Metrics
      budget: QueueBudget
      transport?: (session: AggregateSession) => ClientTransport<EndpointCaller>
      onclose: (session: AggregateSession) => void
      /** The idle clock, epoch ms (default Date.now): `lastActive` reads it. */
      now?: () => number
    },
  ) {
    this.id = o.id
    this.endpoint = o.agg.name
    this.warnings = new LogWindow({
      linesPerWindow: DEFAULT_WARNINGS_PER_WINDOW,
      window: DEFAULT_WARNINGS_WINDOW_MS,
      ended: (n) => {
        o.log.warn(
          { suppressed: n },
          `${n} more warnings about what the endpoint session could not pass on suppressed`,
        )
        o.metrics?.logLinesSuppressed.inc({ server: this.endpoint, source: 'warnings' }, n)
      },
    })
    this.owner = ownerKey(o.owner)
    this.subscriptions = new SessionSubscriptions(o.log, o.agg.endpoint.maxSubscriptions)
    const now = o.now ?? Date.now
    this.lastActive = now()
    this.streams = new SessionStreams(o.budget, o.log, () => (this.lastActive = now()))
    const { resumability, ssePolling } = o.agg.endpoint
    this.store =
      o.transport === undefined && resumability.enabled
        ? new SessionEventStore(resumability)
        : undefined
    this.transport =
      o.transport?.(this) ??
      new StreamTransport<EndpointCaller>({
        sessionId: o.id,
        open: (s) => this.streams.stream({ ...s, keepAlive: true }),
        store: this.store,
        retry: ssePolling?.retry,
        onDelete: () => void this.close(),
      })
    this.transport.onmessage = (message, env, extra) =>
      void this.fromClient(message, env, extra.caller, extra.closeSSEStream)
    this.unlisten = o.lanes.onEventOf(this.owner, (e) => {
      if (this.closed) return
      this.serverEvent(e.server, e.method, e.params)
    })
  }

  /**
   * The backend and its own URI a resource subscription of the session is held under (by the
   * public URI it was subscribed with): where its `resources/unsubscribe` goes, even once the
   * backend's list no longer names the URI (endpoint-route.ts).
   */
  subscribedAt(publicUri: string): { server: string; uri: string } | undefined {
    return this.subscriptions.heldAt(publicUri)
  }

  /** A stream to the client (session-streams.ts): the legacy transport's event stream. */
  openStream(o: {
    listening: boolean
    exp?: number
    onEnd?: (why: EndReason) => void
  }): OutboundStream {
    return this.streams.stream(o)
  }

  /** One HTTP request of the session: its requests already routed (`caller.routed`) and allowed. */
  handle(
    req: SessionRequest,
    body: SessionBody | undefined,
    caller: EndpointCaller,
  ): TransportReply | Promise<TransportReply> {
    this.lastActive = (this.o.now ?? Date.now)()
    return handOff(this.transport, req, body, caller)
  }

  /** Sends a message of the gateway's own to the client (a refusal, on the legacy transport's stream). */
  tell(message: JSONRPCMessage): void {
    this.send(message)
  }

  /**
   * Requests in flight, from their arrival to their answer: a call on a backend, one waiting for
   * a process or at the credential gate, a list being gathered. What makes a session not idle.
   */
  get pending(): number {
    return this.active
  }

  get listening(): boolean {
    return this.streams.listening
  }

  /**
   * Whether the policy in force now denies the session's user (the principal of its latest
   * request) every backend of the endpoint: the session has nothing left to serve. Backends
   * the user lacks a scope for are not denied: the client may step up on the same session.
   */
  get accessWithdrawn(): boolean {
    return this.o.agg.deniedAll(this.principal ?? this.o.owner)
  }

  /** The policy left the session's user no backend: the session ends, its streams with it. */
  withdraw(): void {
    if (this.closed) return
    this.o.log.info(
      'the policy in force no longer grants access to any backend of the endpoint; session closed',
    )
    void this.close()
  }

  /**
   * After a policy reload: the resource subscriptions on backends the policy now denies the
   * session's user are given back (their processes unpinned). Its client could not: an
   * unsubscribe on such a backend is refused like any request to it.
   */
  releaseDenied(): void {
    const principal = this.principal ?? this.o.owner
    this.subscriptions.releaseOn((server) => this.o.agg.denied(principal, server))
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.unlisten()
    this.subscriptions.releaseAll()
    this.o.onclose(this)
    for (const call of this.calls.values()) {
      call.cancel('the session was closed')
      this.o.lanes.release(call.lane, call)
    }
    this.calls.clear()
    for (const gone of this.waiting.values()) gone.abort()
    this.waiting.clear()
    for (const answer of [...this.asked.values()]) answer(undefined)
    this.transport.close()
    // Its last window's count now: the session's lines end with it.
    this.warnings.end()
  }

  /** Hands a message to the transport (stream-transport.ts `sendSafely`: never throws). */
  private send(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    sendSafely(this.transport, message, relatedRequestId, this.budgeted)
  }

  /** Sends a result; false when it could not be serialized (the client got -32603 instead). */
  private reply(id: RequestId, result: unknown): boolean {
    return sendSafely(
      this.transport,
      { jsonrpc: '2.0', id, result } as JSONRPCMessage,
      id,
      this.budgeted,
    )
  }

  private async fromClient(
    message: JSONRPCMessage,
    env: Envelope,
    caller0: EndpointCaller,
    closeStream: (() => void) | undefined,
  ): Promise<void> {
    if (env.kind === 'response') {
      if (typeof env.id === 'string') this.asked.get(env.id)?.(message)
      return
    }
    if (env.kind === 'notification') {
      if (env.method === 'notifications/cancelled') {
        const id = env.params?.requestId
        if (typeof id !== 'string' && typeof id !== 'number') return
        const waiting = this.waiting.get(id)
        if (waiting === undefined) return
        waiting.abort()
        const call = this.calls.get(id)
        if (call !== undefined) {
          call.cancel('cancelled by the client')
          this.o.lanes.release(call.lane, call)
        }
        // No reply is owed: its stream ends now (it was left open, the reply never coming).
        this.transport.cancel(id)
      }
      return
    }
    if (env.kind !== 'request') return
    this.active++
    try {
      await this.request(env, caller0, closeStream)
    } finally {
      this.active--
    }
  }

  /** One request of the client, answered on its stream (a refusal of the bridge's too). */
  private async request(
    env: Extract<Envelope, { kind: 'request' }>,
    caller0: EndpointCaller,
    closeStream: (() => void) | undefined,
  ): Promise<void> {
    const { principal, routed, bearer } = caller0
    this.principal = principal
    const caller: AggregateCaller = { principal, bearer, log: this.o.log, accepted: Date.now() }
    const params = env.params ?? {}
    // SSE polling (MCP 2025-11-25 §Sending Messages 6, SEP-1699): a request still running after
    // closeAfter has its (primed) stream closed; the reply waits in the replay buffer.
    const polling = this.o.agg.endpoint.ssePolling
    const poll = polling && closeStream ? setTimeout(closeStream, polling.closeAfter) : undefined
    try {
      switch (env.method) {
        case 'initialize': {
          this.version = negotiate(params.protocolVersion, GATEWAY_PROTOCOL_VERSIONS[0]!)
          this.capabilities = isObject(params.capabilities) ? params.capabilities : {}
          return void this.reply(env.id, this.o.agg.initResult(principal, this.version))
        }
        case 'ping':
          return void this.reply(env.id, {})
        case 'logging/setLevel':
          this.logLevel = typeof params.level === 'string' ? params.level : undefined
          return void this.reply(env.id, {})
      }
      if (env.method in LISTS)
        return await this.list(env.id, env.method as ListMethod, params, caller)
      const target = routed.get(env.id)
      if (target === undefined)
        return this.send(rpcError(env.id, -32601, `Method not found: ${env.method}`), env.id)
      if (
        env.method === 'resources/unsubscribe' ||
        (env.method === 'resources/subscribe' &&
          this.subscriptions.has(String(target.original.uri)))
      ) {
        return this.answerSubscription(env.id, env.method, target, caller)
      }
      if (env.method !== 'resources/subscribe')
        return await this.call(env.id, env.method, target, caller)
      // Each subscription is kept here and pins a process: a session holds a bounded number.
      if (!this.subscriptions.reserve()) {
        return this.send(
          rpcError(
            env.id,
            -32000,
            `this session holds ${this.subscriptions.max} resource subscriptions, the most allowed; unsubscribe from one first`,
          ),
          env.id,
        )
      }
      try {
        await this.call(env.id, env.method, target, caller)
      } finally {
        this.subscriptions.settled()
      }
    } catch (err) {
      // A refusal of the bridge's (the user's session bounds, the process-start budget, a
      // server that cannot start): answered as on every other transport (exposedError), and
      // no failure of the gateway's.
      if (err instanceof BridgeError) {
        const error = exposedError(err)
        this.o.log.info({ code: err.code, reason: err.message }, 'request refused')
        routed.get(env.id)?.decided.span?.end({ code: error.code, message: error.message })
        this.send(rpcError(env.id, error.code, error.message, error.data), env.id)
        return
      }
      this.o.log.error(
        { err: { message: (err as Error).message }, method: env.method },
        'endpoint request failed',
      )
      // A routed request's span is call()'s once taken (the HTTP trace no longer ends it):
      // ended here with what the client gets. A second end is a no-op.
      routed.get(env.id)?.decided.span?.end({ code: -32603, message: 'internal error' })
      this.send(rpcError(env.id, -32603, 'internal error'), env.id)
    } finally {
      clearTimeout(poll)
    }
  }

  private async list(
    id: RequestId,
    method: ListMethod,
    params: Record<string, unknown>,
    caller: AggregateCaller,
  ): Promise<void> {
    const start = performance.now()
    const listed = await this.o.agg.list(method, caller, params.cursor)
    if ('error' in listed)
      return this.send(rpcError(id, listed.error.code, listed.error.message), id)
    // 2025-11-25 and later: the client hears which backends are missing from the list.
    if (listed.skipped.length > 0 && (this.version ?? '') >= '2025-11-25') {
      this.send(
        {
          jsonrpc: '2.0',
          method: 'notifications/message',
          params: {
            level: 'warning',
            logger: 'mcp-edge',
            data: `left out of this list (not answering): ${listed.skipped.join(', ')}`,
          },
        } as JSONRPCMessage,
        id,
      )
    }
    this.o.audit?.record({
      sub: caller.principal.sub,
      iss: caller.principal.iss,
      clientId: caller.principal.clientId,
      server: this.endpoint,
      method,
      decision: 'filter',
      rule: "endpoint: each backend's policy",
      durationMs: +(performance.now() - start).toFixed(2),
      outcome: listed.skipped.length > 0 ? `left out ${listed.skipped.join(',')}` : 'ok',
    })
    this.reply(id, listed.result)
  }

  /**
   * A routed request, run on one of the user's processes of its backend. Until a process has
   * it (at the credential gate, waiting for a lane), a cancel ends the wait: it never runs.
   */
  private async call(
    id: RequestId,
    method: string,
    target: RoutedRequest,
    caller: AggregateCaller,
  ): Promise<void> {
    const gone = new AbortController()
    this.waiting.set(id, gone)
    try {
      await this.run(id, method, target, caller, gone)
    } finally {
      // The id may be another request's by now (free once cancelled).
      if (this.waiting.get(id) === gone) this.waiting.delete(id)
    }
  }

  private async run(
    id: RequestId,
    method: string,
    target: RoutedRequest,
    caller: AggregateCaller,
    gone: AbortController,
  ): Promise<void> {
    const start = performance.now()
    const server = target.server
    const config = this.o.config.servers[server]!
    // Traced: the request's span is this call's to end, with what the client gets.
    const span = target.decided.span
    span?.take()
    const audit = (outcome: AuditOutcome, traced?: Outcome) => {
      span?.end(traced)
      if (this.o.audit)
        auditAllowed(this.o.audit, this.o.metrics, {
          principal: caller.principal,
          server,
          method,
          decided: target.decided,
          start,
          outcome,
          // Names and sources of what the process acted with, as at the server's own URL.
          credentials: credentials?.supplied,
        })
    }
    let credentials: ResolvedCredentials | undefined
    if (this.o.gate?.needs(server)) {
      const got = await this.o.gate.sessionless(server, method, caller, this.capabilities)
      if (!got.ok) {
        // A secret deleted: the lanes still holding it end (the refusal takes no lease that would).
        if (got.current) this.o.lanes.retireStale(server, caller.principal, got.current)
        audit(got.outcome, got.error ? { code: got.error.code } : { toolError: true })
        if (got.error)
          return this.send(rpcError(id, got.error.code, got.error.message, got.error.data), id)
        return void this.reply(id, {
          content: [{ type: 'text', text: got.toolText }],
          isError: true,
        })
      }
      credentials = got.credentials
    }
    const cancelled = () => audit({ kind: 'cancelled' }, { errorType: 'cancelled' })
    if (gone.signal.aborted) return cancelled()
    const lease = span?.step('lease')
    const lane = await this.o.lanes
      .acquire(server, caller.principal, caller.log, caller.accepted, gone.signal, credentials)
      .catch((err: unknown) => {
        lease?.end('lease_failed')
        if (gone.signal.aborted) return undefined
        // Refused (fromClient() answers it): audited once, here, with the limit that refused
        // it as the rule (the budget or bound does not audit), else as the call's outcome.
        if (err instanceof BridgeError) {
          const { code, message } = exposedError(err)
          span?.end({ code, message })
          auditRefused(this.o.audit, this.o.metrics, {
            principal: caller.principal,
            server,
            method,
            decided: target.decided,
            start,
            err,
            credentials: credentials?.supplied,
          })
        } else span?.end({ errorType: 'lease_failed' })
        throw err
      })
    if (lane === undefined) return cancelled()
    lease?.end()
    if (gone.signal.aborted) {
      this.o.lanes.release(lane)
      return cancelled()
    }
    // MCP logging: the level is a minimum the client may set. A session-era client that never
    // set one hears every log, as from the server itself (the lane's process sends them all).
    const meta = {
      capabilities: this.capabilities,
      logLevel: this.logLevel ?? 'debug',
      progressToken: progressToken(target.params),
    }
    const request = { method, params: target.params }
    const backend = new BackendCall(
      lane,
      // Traced: the process gets the gateway's CLIENT span as its parent, in `_meta`.
      span ? span.toChild(request, { server }) : request,
      meta,
      config.requestTimeout,
    )
    lane.user = backend
    this.calls.set(id, backend)
    const notify = (m: JSONRPCMessage) => this.send(m, id)
    try {
      let outcome = await backend.begin(notify)
      while (outcome.kind === 'input') {
        const answers = await this.ask(id, backend, outcome.requests)
        outcome = await backend.resume(answers, meta, notify)
      }
      if (
        method === 'resources/subscribe' &&
        outcome.kind === 'response' &&
        !('error' in outcome.message)
      ) {
        // Held before the lane is released below (given back at once if the session has ended).
        this.subscriptions.hold(
          String(target.original.uri),
          server,
          String(target.params.uri),
          lane,
        )
      }
      if (this.calls.get(id) !== backend) return cancelled()
      // Refused in the process's place by a limit (a shared process's crash budget): audited
      // as that refusal, once, as a refusal at the lease is (refused.ts).
      const limited = outcome.kind === 'response' ? refusedBy(outcome.message) : undefined
      if (limited !== undefined) {
        const error = exposedError(limited)
        span?.end(error)
        auditRefused(this.o.audit, this.o.metrics, {
          principal: caller.principal,
          server,
          method,
          decided: target.decided,
          err: limited,
        })
        return this.send(rpcError(id, error.code, error.message, error.data), id)
      }
      if (outcome.kind === 'failed') {
        audit(
          { kind: 'error', code: outcome.code },
          { code: outcome.code, message: outcome.message },
        )
        return this.send(rpcError(id, outcome.code, outcome.message), id)
      }
      const m = outcome.message as {
        result?: unknown
        error?: { code: number; message: string; data?: unknown }
      }
      // The backend's own tool name: its caps are by that name.
      const toolName = typeof target.params.name === 'string' ? target.params.name : undefined
      if (m.error !== undefined) {
        audit(
          { kind: 'error', code: m.error.code },
          outcomeOf({ error: m.error }, lane.child.redact),
        )
        const cut = this.o.caps?.applyError(server, method, toolName, m.error)
        if (cut) return this.send(rpcError(id, cut.code, cut.message), id)
        return this.send(rpcError(id, m.error.code, m.error.message, m.error.data), id)
      }
      const capped = this.o.caps?.apply(server, method, toolName, m.result ?? {})
      if (capped !== undefined && 'error' in capped) {
        audit(capped.audit, { code: capped.error.code, message: capped.error.message })
        return this.send(rpcError(id, capped.error.code, capped.error.message), id)
      }
      const result = await this.o.agg.publish(server, capped?.result ?? m.result ?? {}, caller)
      // The outcome is what the client got: -32603 when the reply could not be serialized.
      if (this.reply(id, result)) audit(capped?.audit ?? { kind: 'ok' }, outcomeOf(m))
      else audit({ kind: 'error', code: -32603 }, { code: -32603 })
    } finally {
      if (this.calls.get(id) === backend) this.calls.delete(id)
      this.o.lanes.release(lane, backend)
    }
  }

  /**
   * `resources/unsubscribe`, or a subscribe to a URI the session already holds: answered here.
   * An unsubscribe goes to the process holding the subscription; one for a URI the session
   * never subscribed to has nothing to undo.
   */
  private answerSubscription(
    id: RequestId,
    method: string,
    target: RoutedRequest,
    caller: AggregateCaller,
  ): void {
    const start = performance.now()
    if (method === 'resources/unsubscribe')
      this.subscriptions.release(String(target.original.uri), true)
    if (this.o.audit)
      auditAllowed(this.o.audit, this.o.metrics, {
        principal: caller.principal,
        server: target.server,
        method,
        decided: target.decided,
        start,
        outcome: { kind: 'ok' },
      })
    this.reply(id, {})
  }

  /**
   * Relays what a backend's process asks the client mid-call, on the call's stream, and hands
   * the answers back: a result to the process as a result, an error as an error.
   */
  private async ask(
    relatedId: RequestId,
    backend: BackendCall,
    requests: ReadonlyMap<string, InputRequest>,
  ): Promise<Record<string, unknown>> {
    const timeout =
      this.o.config.servers[backend.lane.server]?.requestTimeout || DEFAULT_REQUEST_TIMEOUT_MS
    const answers: Record<string, unknown> = {}
    await Promise.all(
      [...requests].map(async ([key, r]) => {
        const id = `mcp-edge-ask-${randomBytes(9).toString('base64url')}`
        const answer = await new Promise<JSONRPCMessage | undefined>((resolve) => {
          const timer = setTimeout(() => done(undefined), timeout)
          const done = (m: JSONRPCMessage | undefined) => {
            clearTimeout(timer)
            this.asked.delete(id)
            resolve(m)
          }
          this.asked.set(id, done)
          this.send(
            {
              jsonrpc: '2.0',
              id,
              method: r.method,
              ...(r.params ? { params: r.params } : {}),
            } as JSONRPCMessage,
            relatedId,
          )
        })
        const a = answer as
          | { result?: unknown; error?: { code?: unknown; message?: unknown } }
          | undefined
        if (a !== undefined && isObject(a.result)) answers[key] = a.result
        else
          backend.refuse(key, {
            code: typeof a?.error?.code === 'number' ? a.error.code : RPC.connectionClosed,
            message:
              typeof a?.error?.message === 'string' ? a.error.message : 'the client did not answer',
          })
      }),
    )
    return answers
  }

  /** A backend's event for this session's user: one list_changed per kind, subscribed resource updates. */
  private serverEvent(
    server: string,
    method: string,
    params: Record<string, unknown> | undefined,
  ): void {
    if (!this.o.agg.servers.includes(server)) return
    // Decided by the policy loaded now, as on a listen stream: a backend they lost, or a URI
    // they may no longer read, sends them nothing; a user denied every backend is done (only
    // then looked at: denied this one is the first sign of it).
    const notice = this.o.agg.notice(this.principal ?? this.o.owner, server, method, params)
    if (notice === 'withdrawn' && this.accessWithdrawn) return this.withdraw()
    if (notice !== 'relay') return
    if (LIST_CHANGED.has(method)) {
      if (this.sentThisTick.has(method)) return
      this.sentThisTick.add(method)
      if (this.sentThisTick.size === 1) setImmediate(() => this.sentThisTick.clear())
      return this.send({ jsonrpc: '2.0', method } as JSONRPCMessage)
    }
    if (method === 'notifications/resources/updated') {
      const uri = this.subscriptions.publicUri(server, String(params?.uri))
      if (uri !== undefined)
        this.send({ jsonrpc: '2.0', method, params: { ...params, uri } } as JSONRPCMessage)
    }
  }
}
