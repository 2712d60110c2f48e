import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  type InboundModernRoute,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { InputRounds, RoundBinding } from '../bridge/input-rounds.js'
import type { LanePool } from '../bridge/lanes.js'
import type { Outbound } from '../bridge/outbound-budget.js'
import { BackendCall, type ClientMeta, type Outcome } from '../bridge/modern-call.js'
import { LISTS, type Aggregate, type ListMethod } from '../bridge/aggregate.js'
import type { CredentialGate } from '../bridge/credential-gate.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import {
  completeResult,
  discoverResult,
  inputRequiredResult,
  missingCapability,
  MODERN_METHODS,
  MODERN_PROTOCOL_VERSION,
  MODERN_RPC,
  modernError,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '../bridge/modern-wire.js'
import { envelope, isObject, progressToken, rpcError } from '../bridge/jsonrpc.js'
import {
  auditAllowed,
  listOutcome,
  ownerKey,
  type Decided,
  type ResultFilter,
} from '../bridge/session.js'
import type { GatewayConfig } from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { outcomeOf, type HttpTrace, type Tracing } from '../observability/tracing.js'
import type { Policy } from '../policy/policy.js'
import type { PolicyStore } from '../policy/store.js'
import { admitBody } from './decide.js'
import { errorOutcome, traceBody, type TracedBody } from './traced.js'
import type { RateLimits } from './rate-limit.js'
import { listenEndpoint } from './endpoint-listen.js'
import { listenStream } from './listen.js'
import { headerMismatch, standardHeaders } from './modern-headers.js'
import { paramHeaderMismatch, paramHeadersOf } from './param-headers.js'
import {
  decisionResponse,
  jsonResponse,
  negotiationRefusal,
  rpcErrorObjectResponse,
  rpcErrorResponse,
} from './respond.js'
import { openEventStream } from './sse.js'

/** What the sessionless path needs. */
export interface ModernDeps {
  config: GatewayConfig
  /** The live policy (a listen stream decides each notification by the policy in force). */
  policy: PolicyStore
  lanes: LanePool
  rounds: InputRounds
  audit: AuditLog
  metrics: Metrics
  /** The policy's rate limits, counted in the store. */
  rates: RateLimits
  filter: ResultFilter
  /** Where SSE streams get their bounds (a principal's streams share one budget). */
  outbound: Outbound
  /** Stands before requests of servers that take per-user credentials. */
  gate?: CredentialGate
}

/** One modern request, already authenticated and classified. */
export interface ModernRequest {
  req: Request
  server: string
  principal: Principal
  policy: Policy
  route: InboundModernRoute
  resourceMetadata: string
  log: Logger
  /** When the HTTP request arrived (Date.now()): one accepted before shutdown is still served. */
  accepted: number
  /** The verified bearer token, for a credential exchange at the IdP only. */
  bearer?: string
  /** Set when the request is for an aggregating endpoint (then `server` is the endpoint's name). */
  aggregate?: Aggregate
  /** The HTTP request's trace (its `auth` step done); a no-op object when tracing is off. */
  trace: HttpTrace
  /** Whether tracing is on: the off path builds no span. */
  tracing: Tracing
}

/** The envelope keys of 2026-07-28 that are the gateway's to read, never the process's. */
const ENVELOPE_KEYS = [
  PROTOCOL_VERSION_META_KEY,
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
]

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
  if (mismatch)
    return rpcErrorResponse(400, MODERN_RPC.headerMismatch, mismatch.message, {
      id: message.id,
      data: mismatch.data,
    })
  if (!MODERN_METHODS.has(message.method))
    return rpcErrorResponse(404, MODERN_RPC.methodNotFound, `Method not found: ${message.method}`, {
      id: message.id,
    })

  const traced = traceBody(r.tracing, r.trace, [envelope(message)], {
    server: r.server,
    principal: r.principal,
    protocolVersion: revision,
  })
  if (r.aggregate) return serveEndpoint(d, r, r.aggregate, message, traced)

  const verdict = await admitBody(d, [envelope(message)], r.principal, r.server, r.policy, traced)
  if (verdict.refused)
    return decisionResponse(verdict.refused.decision, {
      resourceMetadata: r.resourceMetadata,
      id: message.id,
    })
  const decided = verdict.decided.get(message.id)

  const meta = clientMeta(message)
  if (message.method === 'server/discover' || message.method === 'subscriptions/listen') {
    const start = performance.now()
    const res =
      message.method === 'server/discover'
        ? await discover(d, r, message)
        : await listenStream({
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
          })
    audit(d, r, message.method, decided, start, res.status === 200 ? 'ok' : `status ${res.status}`)
    return res
  }
  return call(d, r, message, meta, decided)
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
  const caller = {
    principal: r.principal,
    bearer: r.bearer,
    log: r.log,
    accepted: r.accepted,
    signal: r.req.signal,
  }
  const params = (message.params ?? {}) as Record<string, unknown>
  const start = performance.now()
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
    d.audit.record({
      sub: r.principal.sub,
      iss: r.principal.iss,
      clientId: r.principal.clientId,
      server: agg.name,
      method: message.method,
      decision: 'filter',
      rule: "endpoint: each backend's policy",
      durationMs: +(performance.now() - start).toFixed(2),
      outcome: listed.skipped.length > 0 ? `left out ${listed.skipped.join(',')}` : 'ok',
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
    })
    d.audit.record({
      sub: r.principal.sub,
      iss: r.principal.iss,
      clientId: r.principal.clientId,
      server: agg.name,
      method: message.method,
      decision: 'filter',
      rule: "endpoint: each backend's policy",
      durationMs: +(performance.now() - start).toFixed(2),
      outcome: res.status === 200 ? 'ok' : `status ${res.status}`,
    })
    return res
  }
  const routed = await agg.route(message.method, params, caller)
  if ('error' in routed) {
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
      resourceMetadata: r.resourceMetadata,
      id: message.id,
    })
  const publish = (result: Record<string, unknown>) =>
    agg.publish(routed.server, result, caller) as Promise<Record<string, unknown>>
  return call(
    d,
    { ...r, server: routed.server, aggregate: undefined },
    backend,
    clientMeta(backend),
    verdict.decided.get(message.id),
    publish,
  )
}

async function discover(
  d: ModernDeps,
  r: ModernRequest,
  message: JSONRPCRequest,
): Promise<Response> {
  let init = d.lanes.initOf(r.server, r.principal)
  if (init === undefined) {
    // No process of this server has started yet: start the caller's, and keep it.
    const credentials = d.gate?.needs(r.server)
      ? await d.gate.initial(r.server, r.principal, r.bearer)
      : undefined
    const lane = await d.lanes.acquire(
      r.server,
      r.principal,
      r.log,
      r.accepted,
      undefined,
      credentials,
    )
    init = lane.init
    d.lanes.release(lane)
  }
  return jsonResponse(200, { jsonrpc: '2.0', id: message.id, result: discoverResult(init) })
}

async function call(
  d: ModernDeps,
  r: ModernRequest,
  message: JSONRPCRequest,
  meta: ClientMeta,
  decided: Decided | undefined,
  publish?: (result: Record<string, unknown>) => Promise<Record<string, unknown>>,
): Promise<Response> {
  const start = performance.now()
  const span = decided?.span
  const params = (message.params ?? {}) as Record<string, unknown>
  const binding: RoundBinding = {
    owner: ownerKey(r.principal),
    server: r.server,
    method: message.method,
    name: decided?.name,
  }
  const state = params.requestState
  let backend: BackendCall
  let responses: Record<string, unknown> | undefined
  let credentials: ResolvedCredentials | undefined
  if (state !== undefined) {
    if (typeof state !== 'string')
      return rpcErrorResponse(200, MODERN_RPC.invalidParams, 'requestState must be a string', {
        id: message.id,
      })
    const claimed = await d.rounds.claim(state, binding)
    if ('refused' in claimed) {
      const why =
        claimed.refused === 'invalid'
          ? 'requestState failed verification'
          : 'requestState names no request waiting for input (it expired, was already answered, or its server process ended); send the request again without it'
      audit(d, r, message.method, decided, start, `refused requestState (${claimed.refused})`)
      return rpcErrorResponse(200, MODERN_RPC.invalidParams, why, { id: message.id })
    }
    backend = claimed.call
    const answers = params.inputResponses
    if (answers !== undefined && !isObject(answers)) {
      backend.cancel('invalid inputResponses')
      d.lanes.release(backend.lane, backend)
      return rpcErrorResponse(
        200,
        MODERN_RPC.invalidParams,
        'inputResponses must be an object keyed by the inputRequests keys',
        { id: message.id },
      )
    }
    responses = answers ?? {}
  } else {
    // SEP-2243 Mcp-Param-* headers, checked against the tool's own schema: before any process
    // is taken when the schemas are known, else once the lane has read them.
    const badHeaders = (schemas: Map<string, unknown>) =>
      paramHeaderMismatch(
        paramHeadersOf(schemas.get(String(params.name))),
        params.arguments,
        r.req.headers,
      )
    const known =
      message.method === 'tools/call' ? d.lanes.knownToolSchemas(r.server, r.principal) : undefined
    const early = known && badHeaders(known)
    if (early)
      return rpcErrorResponse(400, MODERN_RPC.headerMismatch, early.message, {
        id: message.id,
        data: early.data,
      })
    // The user's own credentials, for a server that takes them: a missing one is asked for.
    if (d.gate?.needs(r.server)) {
      const got = await d.gate.sessionless(
        r.server,
        message.method,
        { principal: r.principal, bearer: r.bearer },
        meta.capabilities,
      )
      if (!got.ok) {
        audit(d, r, message.method, decided, start, got.outcome)
        if (got.error) return rpcErrorObjectResponse(200, message.id, got.error)
        return jsonResponse(200, {
          jsonrpc: '2.0',
          id: message.id,
          result: completeResult(
            message.method,
            { content: [{ type: 'text', text: got.toolText }], isError: true },
            undefined,
          ),
        })
      }
      credentials = got.credentials
    }
    const lease = r.trace.step('lease')
    const lane = await d.lanes
      .acquire(r.server, r.principal, r.log, r.accepted, r.req.signal, credentials)
      .catch((err: unknown) => {
        lease.end(errorOutcome(err).errorType)
        throw err
      })
    lease.end()
    if (message.method === 'tools/call' && known === undefined) {
      const bad = badHeaders(await d.lanes.toolSchemas(lane))
      if (bad) {
        d.lanes.release(lane)
        return rpcErrorResponse(400, MODERN_RPC.headerMismatch, bad.message, {
          id: message.id,
          data: bad.data,
        })
      }
    }
    const given = params.inputResponses
    const presupplied = isObject(given) ? { ...given } : {}
    const request = { method: message.method, params: backendParams(params) }
    backend = new BackendCall(
      lane,
      // Traced: the process gets the gateway's CLIENT span as its parent, in `_meta`.
      span ? span.toChild(request, { server: r.server }) : request,
      meta,
      d.config.servers[r.server]!.requestTimeout,
      presupplied,
    )
    lane.user = backend
  }

  const sse = (r.req.headers.get('accept') ?? '').includes('text/event-stream')
  // The span ends with the round, which may outlive the HTTP handler (an SSE answer).
  span?.take()
  return new Promise<Response>((resolve) => {
    let stream: ReturnType<typeof openEventStream> | undefined
    let aborted = false
    const onAbort = () => {
      if (aborted || backend.done) return
      aborted = true
      backend.cancel('the client disconnected')
      d.lanes.release(backend.lane, backend)
      audit(d, r, message.method, decided, start, 'cancelled')
      span?.end({ errorType: 'cancelled' })
    }
    r.req.signal.addEventListener('abort', onAbort, { once: true })
    // Gone already (while its schemas were read, say): nothing is sent to the process.
    if (r.req.signal.aborted) {
      onAbort()
      return resolve(rpcErrorResponse(499, -32000, 'the client disconnected', { id: message.id }))
    }
    const notify = (m: JSONRPCMessage) => {
      if (!sse) return
      if (stream === undefined) {
        stream = openEventStream({
          outbound: d.outbound,
          owner: binding.owner,
          log: r.log,
          onCancel: onAbort,
        })
        resolve(stream.response)
      }
      stream.write(m)
    }
    const round =
      responses === undefined ? backend.begin(notify) : backend.resume(responses, meta, notify)
    void round
      .then((o) => settle(d, r, message, backend, binding, o, publish))
      .then(({ status, body, outcome }) => {
        r.req.signal.removeEventListener('abort', onAbort)
        if (aborted) return resolve(jsonResponse(499, body))
        audit(d, r, message.method, decided, start, outcome, credentials?.supplied)
        span?.end(outcomeOf(body))
        if (stream !== undefined) return stream.end(body)
        resolve(jsonResponse(status, body))
      })
      .catch((err: Error) => {
        r.log.error({ err }, 'sessionless request failed')
        const body = rpcError(message.id, -32603, 'internal error')
        span?.end({ code: -32603, message: 'internal error' })
        if (stream !== undefined) return stream.end(body)
        resolve(jsonResponse(500, body))
      })
  })
}

/** Turns how a round ended into the response body, parking the request if it waits for input. */
async function settle(
  d: ModernDeps,
  r: ModernRequest,
  message: JSONRPCRequest,
  backend: BackendCall,
  binding: RoundBinding,
  o: Outcome,
  publish?: (result: Record<string, unknown>) => Promise<Record<string, unknown>>,
): Promise<{ status: number; body: unknown; outcome: string }> {
  const id = message.id
  if (o.kind === 'input') {
    const requestState = await d.rounds.park(backend, binding, () => {
      backend.cancel('the client did not answer in time')
      d.lanes.release(backend.lane, backend)
    })
    return {
      status: 200,
      body: { jsonrpc: '2.0', id, result: inputRequiredResult(o.requests, requestState) },
      outcome: `input_required ${[...o.requests.keys()].join(',')}`,
    }
  }
  d.lanes.release(backend.lane, backend)
  if (o.kind === 'failed') {
    return {
      status: 200,
      body: rpcError(id, o.code, o.message),
      outcome: `error ${o.code}`,
    }
  }
  const m = o.message as {
    result?: Record<string, unknown>
    error?: { code?: unknown; message?: unknown; data?: unknown }
  }
  if (m.error !== undefined) {
    const e = modernError(m.error, backend.refused)
    return {
      status: e.status,
      body: rpcError(id, e.error.code, e.error.message, e.error.data),
      outcome: `error ${e.error.code}`,
    }
  }
  let result = m.result ?? {}
  if (result.isError === true && backend.refused.size > 0) {
    const e = missingCapability(backend.refused)
    return {
      status: e.status,
      body: rpcError(id, e.error.code, e.error.message, e.error.data),
      outcome: `error ${e.error.code}`,
    }
  }
  const filtered = d.filter(r.server, message.method, result, r.principal) as Record<
    string,
    unknown
  >
  const outcome = filtered === result ? 'ok' : listOutcome(result, filtered)
  // Through an endpoint: its resource URIs in their public form.
  result = completeResult(
    message.method,
    publish ? await publish(filtered) : filtered,
    backend.lane.init.serverInfo,
  )
  return { status: 200, body: { jsonrpc: '2.0', id, result }, outcome }
}

/** What the request's `_meta` declares (validated by the SDK's classifier already). */
function clientMeta(message: JSONRPCRequest): ClientMeta {
  const meta = ((message.params as Record<string, unknown> | undefined)?._meta ?? {}) as Record<
    string,
    unknown
  >
  const caps = meta[CLIENT_CAPABILITIES_META_KEY]
  const level = meta[LOG_LEVEL_META_KEY]
  return {
    capabilities:
      typeof caps === 'object' && caps !== null ? (caps as Record<string, unknown>) : {},
    logLevel: typeof level === 'string' ? level : undefined,
    progressToken: progressToken(message.params as Record<string, unknown> | undefined),
  }
}

/** The request as the session-era process gets it: no envelope keys, no round fields. */
function backendParams(params: Record<string, unknown>): Record<string, unknown> {
  const { requestState: _s, inputResponses: _i, _meta, ...rest } = params
  if (typeof _meta !== 'object' || _meta === null) return rest
  const kept: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(_meta)) if (!ENVELOPE_KEYS.includes(k)) kept[k] = v
  return Object.keys(kept).length > 0 ? { ...rest, _meta: kept } : rest
}

function audit(
  d: ModernDeps,
  r: ModernRequest,
  method: string,
  decided: Decided | undefined,
  start: number,
  outcome: string,
  credentials?: ResolvedCredentials['supplied'],
): void {
  if (decided !== undefined)
    auditAllowed(d.audit, d.metrics, {
      principal: r.principal,
      server: r.server,
      method,
      decided,
      start,
      outcome,
      credentials,
    })
}
