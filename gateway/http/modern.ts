import type {
  InboundModernRoute,
  JSONRPCMessage,
  JSONRPCRequest,
} from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { CredentialGate } from '../bridge/credential-gate.js'
import type { LanePool } from '../bridge/lanes.js'
import type { Outbound } from '../bridge/outbound-budget.js'
import { LISTS, type Aggregate, type ListMethod } from '../bridge/aggregate.js'
import {
  completeResult,
  discoverResult,
  MODERN_METHODS,
  MODERN_PROTOCOL_VERSION,
  MODERN_RPC,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '../bridge/modern-wire.js'
import { envelope, rpcError } from '../bridge/jsonrpc.js'
import { BridgeError } from '../bridge/errors.js'
import { auditRefused } from '../bridge/refused.js'
import { GatewayError } from '../errors.js'
import { ownerKey } from '../bridge/session.js'
import { ClientGone, type GoneSignal } from '../bridge/gone.js'
import type { CallOutcome, Caller, Sessionless } from '../bridge/sessionless.js'
import type { GatewayConfig } from '../config/schema.js'
import { auditAllowed, auditEndpoint, type AuditOutcome } from '../observability/allowed.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { outcomeOf, type HttpTrace, type Tracing } from '../observability/tracing.js'
import type { Decided } from '../policy/decided.js'
import type { Policy } from '../policy/policy.js'
import type { PolicyStore } from '../policy/store.js'
import {
  admitBody,
  limitEndpointRequest,
  recordRefusal,
  refuseDisguised,
  refuseEndpointAccess,
} from './decide.js'
import { recordUnrouted, ROUTED } from './endpoint-route.js'
import { errorOutcome, traceBody, type TracedBody } from './traced.js'
import type { RateLimits } from './rate-limit.js'
import { listenEndpoint } from './endpoint-listen.js'
import { listenStream } from './listen.js'
import { headerMismatch, standardHeaders } from './modern-headers.js'
import { type ParamHeader, paramHeaderMismatch, paramHeadersOf } from './param-headers.js'
import {
  callOutcomeBody,
  decisionResponse,
  jsonResponse,
  negotiationRefusal,
  rpcErrorObjectResponse,
  rpcErrorResponse,
} from './respond.js'
import { openEventStream, type EventStream } from './sse.js'

/** What the sessionless path needs. */
export interface ModernDeps {
  config: GatewayConfig
  /** The live policy (a listen stream decides each notification by the policy in force). */
  policy: PolicyStore
  /** The sessionless engine: leases, rounds, outcomes. */
  engine: Sessionless
  /** Listen streams' slots and the lanes their subscriptions live on. */
  lanes: LanePool
  audit: AuditLog
  metrics: Metrics
  /** The policy's rate limits, counted in the store. */
  rates: RateLimits
  /** Where SSE streams get their bounds (a principal's streams share one budget). */
  outbound: Outbound
  pins?: import('../pins/pins.js').PinGate
  /** Per-user credentials, for a listen stream's subscriptions (the engine has its own). */
  gate?: CredentialGate
}

/** One modern request, already authenticated and classified. */
export interface ModernRequest {
  req: Request
  server: string
  principal: Principal
  policy: Policy
  route: InboundModernRoute
  /**
   * The resource metadata URL, built only when an answer names it (most answers do not). A
   * function, not a getter on this object: with the getter in its literal, every request's
   * objects (the whole HTTP request, ~6 KB) outlived two scavenges and were promoted to old
   * space, to die there at the next full GC (measured with --trace-gc-nvp).
   */
  resourceMetadata: () => string
  log: Logger
  /** When the HTTP request arrived (Date.now()): one accepted before shutdown is still served. */
  accepted: number
  /** The verified bearer token, for a credential exchange at the IdP only. */
  bearer?: string
  /**
   * The client's going (its connection closed before the answer), fed by Node's response;
   * default the web request's signal (reading that builds an AbortController per request).
   */
  gone?: GoneSignal
  /** Set when the request is for an aggregating endpoint (then `server` is the endpoint's name). */
  aggregate?: Aggregate
  /** The HTTP request's trace (its `auth` step done); a no-op object when tracing is off. */
  trace: HttpTrace
  /** Whether tracing is on: the off path builds no span. */
  tracing: Tracing
  /**
   * Sends a request's JSON answer (reply.ts: straight to the socket behind Node's server, with
   * the headers every response gets); default a web `Response` (jsonResponse).
   */
  reply?: (status: number, body: unknown) => Response
}

/**
 * Serves a sessionless (2026-07-28) request on the MCP endpoint: version, standard headers
 * and method checked with the revision's own codes, policy decided from the body exactly as
 * in the session era, then run on one of the principal's lanes, its result translated
 * (`resultType`, cache hints, error codes) and a mid-request server→client request turned
 * into an `input_required` round. A client that disconnects cancels the request.
 */
export async function serveModern(d: ModernDeps, r: ModernRequest): Promise<Response> {
  const { route } = r
  // A notification means nothing to a 2026-07-28 server: cancellation is a disconnect.
  if (route.messageKind === 'notification') return new Response(null, { status: 202 })
  const message = route.message
  const notAcceptable = negotiationRefusal(r.req, message.id)
  if (notAcceptable) return notAcceptable
  const revision = route.classification.revision
  if (revision !== MODERN_PROTOCOL_VERSION) {
    return rpcErrorResponse(
      400,
      MODERN_RPC.unsupportedVersion,
      `Unsupported protocol version: ${revision ?? 'none named'}`,
      {
        id: message.id,
        data: {
          supported: SUPPORTED_PROTOCOL_VERSIONS,
          requested: revision ?? 'unknown',
        },
      },
    )
  }
  const mismatch = headerMismatch(standardHeaders(r.req.headers), message)
  if (mismatch) {
    // A proxy may route by the header while the server acts on the body: audited as the
    // refusal of an authenticated request it may be an attempt at, naming the header.
    const p = message.params as Record<string, unknown> | undefined
    const named =
      typeof p?.name === 'string' ? p.name : typeof p?.uri === 'string' ? p.uri : undefined
    recordRefusal(d, r.principal, r.server, message.method, named, {
      effect: 'deny',
      reason: `headers.${mismatch.header}`,
      source: undefined,
    })
    return rpcErrorResponse(400, MODERN_RPC.headerMismatch, mismatch.message, {
      id: message.id,
      data: mismatch.data,
    })
  }
  // MCP's own method in disguise (`TOOLS/CALL`): not found like any unknown method, and
  // audited as the refusal it is.
  const disguised = refuseDisguised(d, [envelope(message)], r.principal, r.server)
  if (disguised)
    return rpcErrorResponse(404, MODERN_RPC.methodNotFound, disguised.decision.reason, {
      id: message.id,
    })
  if (!MODERN_METHODS.has(message.method))
    return rpcErrorResponse(404, MODERN_RPC.methodNotFound, `Method not found: ${message.method}`, {
      id: message.id,
    })

  const messages = [envelope(message)]
  const traced = traceBody(r.tracing, r.trace, messages, {
    server: r.server,
    principal: r.principal,
    protocolVersion: revision,
  })
  if (r.aggregate) return serveEndpoint(d, r, r.aggregate, message, traced)

  const verdict = await admitBody(d, messages, r.principal, r.server, r.policy, traced)
  if (verdict.refused)
    return decisionResponse(verdict.refused.decision, {
      resourceMetadata: r.resourceMetadata(),
      id: message.id,
    })
  const decided = verdict.decided.get(message.id)

  if (message.method === 'server/discover' || message.method === 'subscriptions/listen') {
    const start = performance.now()
    const res = await (message.method === 'server/discover'
      ? d.engine.discover(r.server, { ...callerOf(r), signal: r.req.signal }).then((init) =>
          jsonResponse(200, {
            jsonrpc: '2.0',
            id: message.id,
            result: discoverResult(init),
          }),
        )
      : listenStream({
          lanes: d.lanes,
          policy: d.policy,
          audit: d.audit,
          outbound: d.outbound,
          message,
          server: r.server,
          owner: ownerKey(r.principal),
          principal: r.principal,
          signal: r.req.signal,
          log: r.log,
          gate: d.gate,
          bearer: r.bearer,
        })
    ).catch((err: unknown) => {
      // The process it needed was refused or failed: answered by mcp.ts, audited here.
      const { principal, server } = r
      auditRefused(d.audit, d.metrics, {
        principal,
        server,
        method: message.method,
        decided,
        start,
        err,
        status: true,
      })
      throw err
    })
    audit(d, r, message.method, decided, start, { kind: 'status', status: res.status })
    return res
  }
  return call(d, r, r.server, message, decided)
}

/**
 * A 2026-07-28 request to an aggregating endpoint: lists merged from the backends the caller
 * may use; a call, read, prompt or completion routed by its public name to its backend, where
 * policy decides on the backend's own names and it runs as a request to that server would.
 */
async function serveEndpoint(
  d: ModernDeps,
  r: ModernRequest,
  agg: Aggregate,
  message: JSONRPCRequest,
  traced: TracedBody | undefined,
): Promise<Response> {
  const denied = refuseEndpointAccess(d, agg, r.principal, message.method, r.policy)
  if (denied)
    return decisionResponse(denied, { resourceMetadata: r.resourceMetadata(), id: message.id })
  const caller = { ...callerOf(r), signal: r.req.signal }
  const params = (message.params ?? {}) as Record<string, unknown>
  const start = performance.now()
  // The endpoint's own requests are counted by rate limits too (routed ones by their backend's).
  if (!ROUTED.has(message.method)) {
    const limited = await limitEndpointRequest(d, message.method, r.principal, agg.name, r.policy)
    if (limited)
      return decisionResponse(limited, { resourceMetadata: r.resourceMetadata(), id: message.id })
  }
  if (message.method === 'server/discover') {
    const init = agg.initResult(r.principal, MODERN_PROTOCOL_VERSION)
    return jsonResponse(200, {
      jsonrpc: '2.0',
      id: message.id,
      result: discoverResult(init as never),
    })
  }
  if (message.method in LISTS) {
    const listed = await agg.list(message.method as ListMethod, caller, params.cursor)
    if ('error' in listed) return rpcErrorObjectResponse(200, message.id, listed.error)
    auditEndpoint(d.audit, {
      principal: r.principal,
      endpoint: agg.name,
      method: message.method,
      start,
      outcome: { kind: 'left_out', servers: listed.skipped },
    })
    return jsonResponse(200, {
      jsonrpc: '2.0',
      id: message.id,
      result: completeResult(
        message.method,
        listed.result,
        agg.initResult(r.principal, MODERN_PROTOCOL_VERSION).serverInfo,
      ),
    })
  }
  if (message.method === 'subscriptions/listen') {
    const listened = (status: number) =>
      auditEndpoint(d.audit, {
        principal: r.principal,
        endpoint: agg.name,
        method: message.method,
        start,
        outcome: { kind: 'status', status },
      })
    const res = await listenEndpoint({
      lanes: d.lanes,
      policy: d.policy,
      audit: d.audit,
      outbound: d.outbound,
      message,
      agg,
      owner: ownerKey(r.principal),
      principal: r.principal,
      bearer: r.bearer,
      signal: r.req.signal,
      log: r.log,
      gate: d.gate,
    }).catch((err: unknown) => {
      // A backend's process refused by a limit: that limit is the line's rule; else the status.
      if (err instanceof BridgeError && err.limit !== undefined)
        auditRefused(d.audit, d.metrics, {
          principal: r.principal,
          server: agg.name,
          method: message.method,
          start,
          err,
        })
      else listened(err instanceof GatewayError ? err.status : 500)
      throw err
    })
    listened(res.status)
    return res
  }
  const routed = await agg.route(message.method, params, caller)
  if ('error' in routed) {
    recordUnrouted(d, r.principal, agg.name, message.method, params, routed.error)
    traced?.spans.get(message.id)?.end({ code: routed.error.code, message: routed.error.message })
    return rpcErrorObjectResponse(200, message.id, routed.error)
  }
  const backend = { ...message, params: routed.params } as JSONRPCRequest
  const verdict = await admitBody(
    d,
    [envelope(backend)],
    r.principal,
    routed.server,
    r.policy,
    traced,
  )
  if (verdict.refused)
    return decisionResponse(verdict.refused.decision, {
      resourceMetadata: r.resourceMetadata(),
      id: message.id,
    })
  const publish = (result: Record<string, unknown>) =>
    agg.publish(routed.server, result, caller) as Promise<Record<string, unknown>>
  return call(d, r, routed.server, backend, verdict.decided.get(message.id), publish)
}

/**
 * A request run by the engine on one of the caller's lanes. Progress and logs it asked for
 * turn the answer into an event stream (when the client takes one), which the outcome ends;
 * a stream the client stops reading cancels the request like a disconnect.
 */
async function call(
  d: ModernDeps,
  r: ModernRequest,
  server: string,
  message: JSONRPCRequest,
  decided: Decided | undefined,
  publish?: (result: Record<string, unknown>) => Promise<Record<string, unknown>>,
): Promise<Response> {
  const params = (message.params ?? {}) as Record<string, unknown>
  const sse = (r.req.headers.get('accept') ?? '').includes('text/event-stream')
  // The span ends with the call, which may outlive the HTTP handler (an SSE answer).
  const span = decided?.span
  span?.take()
  // Aborted when the client goes: its HTTP request ends, or its event stream is cancelled (one
  // signal fed by both; not an AbortController: each costs more than the rest of the call).
  const gone = new ClientGone()
  const clientGone = () => gone.abort()
  const reqSignal = r.gone ?? r.req.signal
  if (reqSignal.aborted) gone.abort()
  else reqSignal.addEventListener('abort', clientGone, { once: true })
  let stream: EventStream | undefined
  let opened!: (res: Response) => void
  const early = new Promise<Response>((resolve) => (opened = resolve))
  const notify = (m: JSONRPCMessage) => {
    if (!sse) return
    if (stream === undefined) {
      stream = openEventStream({
        outbound: d.outbound,
        owner: ownerKey(r.principal),
        log: r.log,
        onCancel: clientGone,
      })
      opened(stream.response)
    }
    stream.write(m)
  }
  // Given by the engine before it audits a round that ran, else when `call` resolves: once.
  let answered: Response | undefined
  const answer = (outcome: CallOutcome): Response => {
    if (answered !== undefined) return answered
    const { status, body } = callOutcomeBody(outcome, message.id)
    span?.end(
      outcome.kind === 'cancelled'
        ? { errorType: 'cancelled' }
        : outcome.kind === 'error' && outcome.traced !== undefined
          ? { code: outcome.error.code, message: outcome.traced }
          : outcomeOf(body),
    )
    if (stream === undefined) return (answered = (r.reply ?? jsonResponse)(status, body))
    stream.end(body)
    return (answered = stream.response)
  }
  const done = d.engine
    .call(
      { ...callerOf(r), signal: gone },
      {
        server,
        message,
        decided,
        notify,
        publish,
        answer: (outcome) => void answer(outcome),
        // SEP-2243 Mcp-Param-* headers, checked against the tool's own schema.
        checkArguments: (schemas) =>
          paramHeaderMismatch(
            declaredHeaders(schemas.get(String(params.name))),
            params.arguments,
            r.req.headers,
          ),
      },
    )
    .then(answer, (err: unknown) => {
      // Answered already (the engine failed after its answer, giving its lane back): logged.
      if (answered !== undefined) {
        r.log.error({ err }, 'sessionless request failed after its answer')
        return answered
      }
      span?.end(errorOutcome(err))
      // Before the stream opened, the one place errors become responses decides (mcp.ts).
      if (stream === undefined) throw err
      r.log.error({ err }, 'sessionless request failed')
      stream.end(rpcError(message.id, -32603, 'internal error'))
      return stream.response
    })
  // Over (answered, or its stream ended): the request's signal has nothing more to cancel.
  void done.finally(() => reqSignal.removeEventListener('abort', clientGone)).catch(() => {})
  return Promise.race([done, early])
}

/**
 * The `Mcp-Param-*` declarations of a tool's input schema, walked once per schema: the lanes'
 * catalog keeps one object per tool until the server's tool list changes.
 */
function declaredHeaders(schema: unknown): readonly ParamHeader[] {
  if (typeof schema !== 'object' || schema === null) return paramHeadersOf(schema)
  let found = DECLARED.get(schema)
  if (found === undefined) DECLARED.set(schema, (found = paramHeadersOf(schema)))
  return found
}

const DECLARED = new WeakMap<object, readonly ParamHeader[]>()

/**
 * A logger made by `make` on first use (a pino child logger costs its bindings' serialization
 * and its redaction set-up, and most sessionless requests log nothing).
 */
export function lazyLogger(make: () => Logger): Logger {
  let made: Logger | undefined
  return new Proxy({} as Logger, {
    get(_, key) {
      made ??= make()
      const value = Reflect.get(made, key, made) as unknown
      return typeof value === 'function' ? value.bind(made) : value
    },
  })
}

/**
 * The caller of a request, as the engine sees it (an endpoint's routing too), but for the
 * signal of its going: each use names its own (reading `req.signal` builds an AbortController).
 */
function callerOf(r: ModernRequest): Omit<Caller, 'signal'> {
  return { principal: r.principal, bearer: r.bearer, log: r.log, accepted: r.accepted }
}

function audit(
  d: ModernDeps,
  r: ModernRequest,
  method: string,
  decided: Decided | undefined,
  start: number,
  outcome: AuditOutcome,
): void {
  if (decided !== undefined)
    auditAllowed(d.audit, d.metrics, {
      principal: r.principal,
      server: r.server,
      method,
      decided,
      start,
      outcome,
    })
}
