import type { classifyInboundRequest } from '@modelcontextprotocol/server'
import type { Context } from 'hono'
import type { Authenticator } from '../auth/authenticator.js'
import { parseBearer } from '../auth/bearer.js'
import type { Resources } from '../auth/resources.js'
import type { Aggregate } from '../bridge/aggregate.js'
import type { AggregateSessions } from '../bridge/aggregate-sessions.js'
import { BridgeError } from '../bridge/errors.js'
import type { LogWindow } from '../bridge/log-window.js'
import { auditRefused } from '../bridge/refused.js'
import { envelope, type Envelope, type RequestId } from '../bridge/jsonrpc.js'
import type { SessionRegistry } from '../bridge/registry.js'
import type { GatewayConfig } from '../config/schema.js'
import { GatewayError } from '../errors.js'
import { decideAccess } from '../policy/evaluate.js'
import type { PolicyStore } from '../policy/store.js'
import type { PinGate } from '../pins/pins.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { NO_HTTP_TRACE, type HttpTrace, type Tracing } from '../observability/tracing.js'
import type { SessionRequest } from '../bridge/stream-transport.js'
import { readJsonBody } from './body.js'
import { classify, INVALID_BODY } from './classify.js'
import { clientGone, sendReply } from './reply.js'
import { answeredStatus, errorOutcome, statusOutcome, traceBody } from './traced.js'
import { routeBody } from './endpoint-route.js'
import { admitBody, readsTask, recordRefusal, refuseEndpointAccess } from './decide.js'
import { sessionNotFound } from './session-probe.js'
import type { RateLimits } from './rate-limit.js'
import type { Vars } from './request-id.js'
import { MODERN_PROTOCOL_VERSION, MODERN_RPC } from '../bridge/modern-wire.js'
import { lazyLogger, serveModern, type ModernDeps } from './modern.js'
import { standardHeaders } from './modern-headers.js'
import {
  decisionResponse,
  errorResponse,
  negotiationRefusal,
  rpcErrorObjectResponse,
  rpcErrorResponse,
} from './respond.js'

/** What the MCP endpoint needs to serve one server. */
export interface McpEndpointDeps {
  config: GatewayConfig
  /** Resource URLs, metadata URLs and accepted audiences of each server. */
  resources: Resources
  /** Under --insecure-no-auth it answers every request with the anonymous principal. */
  authenticator: Authenticator
  policy: PolicyStore
  registry: SessionRegistry
  audit: AuditLog
  metrics: Metrics
  /** The policy's rate limits, counted in the store. */
  rates: RateLimits
  /** Baseline scopes of a server, named in 401 challenges. */
  /** The scopes that open a session on a server, or on every server of an endpoint. */
  scopes: (servers: string | readonly string[] | undefined) => string[]
  /** The sessionless (2026-07-28) path. */
  modern: ModernDeps
  /** Aggregating endpoints, by name, and their session-era sessions. */
  aggregates?: ReadonlyMap<string, Aggregate>
  endpointSessions?: AggregateSessions
  /** Tool pinning: calls of tools no operator approved are refused (when a server pins). */
  pins?: PinGate
  /** Spans of the MCP messages POSTed (a no-op object when tracing is off). */
  tracing: Tracing
  /** The budget of audit lines for session ids no session here has (session-probe.ts). */
  unknownSessions: LogWindow
}

/** What an MCP request is for: one server, or an endpoint aggregating several; `routed` when it came to a routed host's `/mcp`. */
export type Target = ({ server: string } | { endpoint: string }) & { routed?: boolean }

/**
 * `POST/GET/DELETE /mcp/:server`, both protocol eras on one endpoint. Authenticate, then
 * classify the body with the SDK's dual-era classifier: a request carrying the 2026-07-28
 * per-request envelope is served sessionless (modern.ts); anything else finds the caller's
 * session (or opens one on `initialize`), is decided by policy message by message, and goes
 * to the session's SDK transport. Order of checks: auth → era and headers → session →
 * policy → process (checklist "recommended order"; Origin ran before this, in middleware).
 */
export function mcpEndpoint(d: McpEndpointDeps) {
  const handleEndpoint = endpointHandler(d)
  const handleServer = serverHandler(d)
  return async function handleMcp(
    c: Context<Vars>,
    target: Target = { server: c.req.param('server') ?? '' },
  ): Promise<Response> {
    const accepted = Date.now()
    // A POST carries MCP messages: its trace begins here, at the entry (auth is its first step).
    const trace = d.tracing.on
      ? d.tracing.begin(c.req.raw.headers, c.get('clientIp'))
      : NO_HTTP_TRACE
    const res =
      'endpoint' in target
        ? await handleEndpoint(c, target.endpoint, accepted, target.routed === true, trace)
        : await handleServer(c, target.server, accepted, trace, target.routed === true)
    // Spans the bridge did not take (notifications, requests refused or failed) end with it.
    if (d.tracing.on) trace.done(statusOutcome(answeredStatus(c, res)))
    return res
  }
}

/** `/mcp/:server`: one server, both eras. */
function serverHandler(d: McpEndpointDeps) {
  return async function handleServer(
    c: Context<Vars>,
    server: string,
    accepted: number,
    trace: HttpTrace,
    routed: boolean,
  ): Promise<Response> {
    // Made only when something is logged: most requests log nothing here.
    const log = () => c.get('log').child({ server })
    // Made only when a response names it: an answered request never does.
    let metadataUrl: string | undefined
    const resourceMetadata = () =>
      (metadataUrl ??= d.resources.metadata(server, 'mcp', c.req.header('host'), routed))
    try {
      if (d.config.servers[server] === undefined)
        throw new BridgeError('unknown_server', `no MCP server named ${server}`)
      const method = c.req.method
      const notServed = edgeRefusal(c, d.config.limits.maxBodyBytes)
      if (notServed) return notServed
      const principal = await authenticated(trace, () =>
        d.authenticator.authenticate(authorizationOf(c), d.resources.audiences(server)),
      )
      const sessionId = c.req.header('mcp-session-id')
      const policy = d.policy.current

      if (method !== 'POST') {
        const postOnly = modernGetRefusal(c.req.raw)
        if (postOnly) return postOnly
        if (sessionId === undefined)
          throw new BridgeError('session_required', 'the Mcp-Session-Id header is required')
        const session = d.registry.find(sessionId, server, principal)
        if (session === undefined)
          throw sessionNotFound(d, d.registry, sessionId, {
            principal,
            server,
            method: `${method} /mcp`,
          })
        const wrongVersion = versionMismatch(c.req.raw, session.version)
        if (wrongVersion) return wrongVersion
        const access = decideAccess(policy, principal, server)
        if (access.effect !== 'allow') {
          // The session's stream or its end, refused: no JSON-RPC method, the HTTP request named.
          recordRefusal(d, principal, server, `${method} /mcp`, undefined, access)
          return decisionResponse(access, { resourceMetadata: resourceMetadata(), id: null })
        }
        const caller = { principal, decided: new Map(), bearer: bearerOf(c) }
        return sendReply(c, await session.handle(requestOf(c), undefined, caller))
      }

      const body = await readJsonBody(c.req.raw, d.config.limits, c.env?.incoming)
      const route = classify(c.req.raw, body)
      if (route.kind === 'modern') {
        const id = route.messageKind === 'request' ? route.message.id : null
        try {
          return await serveModern(d.modern, {
            req: c.req.raw,
            server,
            principal,
            policy,
            route,
            resourceMetadata,
            log: lazyLogger(log),
            accepted,
            bearer: bearerOf(c),
            gone: clientGone(c),
            trace,
            tracing: d.tracing,
            reply: (status, body) => sendReply(c, { kind: 'json', status, headers: {}, body }),
          })
        } catch (err) {
          // 2026-07-28: every error answer echoes the request's id (checklist D33).
          return errorResponse(err, {
            resourceMetadata: resourceMetadata(),
            scope: d.scopes(server),
            log: log(),
            metrics: d.metrics,
            id,
          })
        }
      }
      const rejected = classifierRefusal(route, body, (m, named, rule) =>
        recordRefusal(d, principal, server, m, named, headerDenial(rule)),
      )
      if (rejected) return rejected
      // An existing session's version is known now (an initialize's when its server answers):
      // looked up once, when a batch is checked against it or a trace names it.
      const known =
        sessionId === undefined || !(d.tracing.on || Array.isArray(body))
          ? undefined
          : d.registry.find(sessionId, server, principal)
      const unbatched = Array.isArray(body) && batchAfter20250326(known)
      if (unbatched) return unbatched
      const messages = (Array.isArray(body) ? body : [body]).map(envelope)
      const traced = traceBody(d.tracing, trace, messages, {
        server,
        principal,
        sessionId: known?.id,
        protocolVersion: known?.version,
      })
      // A task's status and result are decided by its tool (decide.ts): the session knows it.
      const owner =
        sessionId !== undefined && messages.some(readsTask)
          ? (known ?? d.registry.find(sessionId, server, principal))
          : undefined
      // A shared process offers no tasks: tasks/* are unknown methods there, not refusals.
      const taskTool =
        owner && d.config.servers[server]?.mode !== 'shared'
          ? (taskId: unknown) => owner.taskTool(taskId)
          : undefined
      const { refused, decided } = await admitBody(
        d,
        messages,
        principal,
        server,
        policy,
        traced,
        taskTool,
      )
      if (refused) {
        const { message: m, decision } = refused
        return decisionResponse(decision, {
          resourceMetadata: resourceMetadata(),
          id: Array.isArray(body) || m.kind !== 'request' ? null : m.id,
        })
      }

      if (sessionId === undefined) {
        requireInitialize(messages)
        // Checked before a process is spawned for a request the transport would refuse anyway.
        const notAcceptable = negotiationRefusal(c.req.raw)
        if (notAcceptable) return notAcceptable
        const lease = trace.step('lease')
        const start = performance.now()
        const session = await d.registry
          .open(server, principal, log(), undefined, bearerOf(c))
          .catch((err: unknown) => {
            lease.end(errorOutcome(err).errorType)
            // No session, so no session audits it: its one line is here.
            const init = messages[0] as { id: RequestId }
            auditRefused(d.audit, d.metrics, {
              principal,
              server,
              method: 'initialize',
              decided: decided.get(init.id),
              start,
              err,
            })
            throw err
          })
        lease.end()
        const caller = { principal, decided, bearer: bearerOf(c) }
        const reply = await session.handle(requestOf(c), { body, envelopes: messages }, caller)
        // The transport refused the initialize: nothing may outlive it.
        if (reply.status !== 200) {
          await session.close()
          return sendReply(c, reply)
        }
        // A session is handed out only once its server accepted the initialize (an SSE answer
        // is already on its way; it is held until then). A failed one ends here, with its
        // error and no Mcp-Session-Id.
        const outcome = await session.initialized
        if (outcome.ok) return sendReply(c, reply)
        if (reply.kind === 'stream') reply.stream.close('cancelled')
        await session.close()
        log().info({ code: outcome.error.code }, 'initialize failed; no session was opened')
        return rpcErrorObjectResponse(200, (messages[0] as { id: RequestId }).id, outcome.error)
      }
      const lease = trace.step('lease')
      const session = d.registry.find(sessionId, server, principal)
      lease.end(session === undefined ? 'session_not_found' : undefined)
      if (session === undefined)
        throw sessionNotFound(d, d.registry, sessionId, {
          principal,
          server,
          method: `${method} /mcp`,
        })
      const wrongVersion = versionMismatch(c.req.raw, session.version)
      if (wrongVersion) return wrongVersion
      const caller = { principal, decided, bearer: bearerOf(c) }
      return sendReply(c, await session.handle(requestOf(c), { body, envelopes: messages }, caller))
    } catch (err) {
      if (d.tracing.on) trace.done(errorOutcome(err))
      return errorResponse(err, {
        resourceMetadata: resourceMetadata(),
        scope: d.scopes(server),
        log: log(),
        metrics: d.metrics,
      })
    }
  }
}

/** Authentication, timed as the trace's `auth` step (its error code when it refuses). */
export async function authenticated<T>(
  trace: HttpTrace,
  authenticate: () => Promise<T>,
): Promise<T> {
  const step = trace.step('auth')
  try {
    const principal = await authenticate()
    step.end()
    return principal
  } catch (err) {
    step.end(errorOutcome(err).errorType)
    throw err
  }
}

/**
 * An aggregating endpoint: its own audience and metadata; 2026-07-28 requests served by the
 * sessionless path with the endpoint's routing, session-era ones by {@link AggregateSession}s.
 */
function endpointHandler(d: McpEndpointDeps) {
  return async function handleEndpoint(
    c: Context<Vars>,
    name: string,
    accepted: number,
    routed: boolean,
    trace: HttpTrace,
  ): Promise<Response> {
    const agg = d.aggregates?.get(name)
    const log = () => c.get('log').child({ endpoint: name })
    let metadataUrl: string | undefined
    const resourceMetadata = () =>
      (metadataUrl ??= d.resources.endpointMetadata(name, c.req.header('host'), 'mcp', routed))
    const scopes = () => (agg ? d.scopes(agg.servers) : [])
    try {
      if (agg === undefined)
        throw new BridgeError('unknown_server', `no MCP endpoint named ${name}`)
      const method = c.req.method
      const notServed = edgeRefusal(c, d.config.limits.maxBodyBytes)
      if (notServed) return notServed
      const principal = await authenticated(trace, () =>
        d.authenticator.authenticate(authorizationOf(c), d.resources.endpointAudiences(name)),
      )
      const sessions = d.endpointSessions!
      const sessionId = c.req.header('mcp-session-id')
      if (method !== 'POST') {
        const postOnly = modernGetRefusal(c.req.raw)
        if (postOnly) return postOnly
        if (sessionId === undefined)
          throw new BridgeError('session_required', 'the Mcp-Session-Id header is required')
        const session = sessions.find(sessionId, name, principal)
        if (session === undefined)
          throw sessionNotFound(d, sessions, sessionId, {
            principal,
            server: name,
            method: `${method} /mcp`,
          })
        const wrongVersion = versionMismatch(c.req.raw, session.version)
        if (wrongVersion) return wrongVersion
        const caller = { principal, routed: new Map(), bearer: bearerOf(c) }
        return sendReply(c, await session.handle(requestOf(c), undefined, caller))
      }
      const body = await readJsonBody(c.req.raw, d.config.limits, c.env?.incoming)
      const route = classify(c.req.raw, body)
      if (route.kind === 'modern') {
        const id = route.messageKind === 'request' ? route.message.id : null
        try {
          return await serveModern(d.modern, {
            req: c.req.raw,
            server: name,
            principal,
            policy: d.policy.current,
            route,
            resourceMetadata,
            log: lazyLogger(log),
            accepted,
            bearer: bearerOf(c),
            gone: clientGone(c),
            aggregate: agg,
            trace,
            tracing: d.tracing,
            reply: (status, body) => sendReply(c, { kind: 'json', status, headers: {}, body }),
          })
        } catch (err) {
          return errorResponse(err, {
            resourceMetadata: resourceMetadata(),
            scope: scopes(),
            log: log(),
            metrics: d.metrics,
            id,
          })
        }
      }
      const rejected = classifierRefusal(route, body, (m, named, rule) =>
        recordRefusal(d, principal, name, m, named, headerDenial(rule)),
      )
      if (rejected) return rejected
      // Looked up once, when a batch is checked against its version or a trace names it.
      const known =
        sessionId === undefined || !(d.tracing.on || Array.isArray(body))
          ? undefined
          : sessions.find(sessionId, name, principal)
      const unbatched = Array.isArray(body) && batchAfter20250326(known)
      if (unbatched) return unbatched
      const messages = (Array.isArray(body) ? body : [body]).map(envelope)
      const caller = { principal, bearer: bearerOf(c), log: log(), accepted }
      const traced = traceBody(d.tracing, trace, messages, {
        server: name,
        principal,
        sessionId: known?.id,
        protocolVersion: known?.version,
      })
      const verdict = await routeBody(
        d,
        agg,
        body,
        messages,
        caller,
        d.policy.current,
        resourceMetadata(),
        undefined,
        traced,
        sessionId === undefined
          ? undefined
          : (uri) => sessions.find(sessionId, name, principal)?.subscribedAt(uri),
      )
      if ('refused' in verdict) return verdict.refused
      const { routed } = verdict
      if (sessionId === undefined) {
        requireInitialize(messages)
        const notAcceptable = negotiationRefusal(c.req.raw)
        if (notAcceptable) return notAcceptable
        const denied = refuseEndpointAccess(d, agg, principal, 'initialize', d.policy.current)
        if (denied) {
          const init = messages.find((m) => m.kind === 'request')
          const id = !Array.isArray(body) && init?.kind === 'request' ? init.id : null
          return decisionResponse(denied, { resourceMetadata: resourceMetadata(), id })
        }
        const lease = trace.step('lease')
        const session = await sessions.open(agg, principal, log()).catch((err: unknown) => {
          lease.end(errorOutcome(err).errorType)
          auditRefused(d.audit, d.metrics, {
            principal,
            server: name,
            method: 'initialize',
            err,
          })
          throw err
        })
        lease.end()
        const from = { principal, routed, bearer: bearerOf(c) }
        const reply = await session.handle(requestOf(c), { body, envelopes: messages }, from)
        if (reply.status !== 200) await session.close()
        return sendReply(c, reply)
      }
      const lease = trace.step('lease')
      const session = sessions.find(sessionId, name, principal)
      lease.end(session === undefined ? 'session_not_found' : undefined)
      if (session === undefined)
        throw sessionNotFound(d, sessions, sessionId, {
          principal,
          server: name,
          method: `${method} /mcp`,
        })
      const wrongVersion = versionMismatch(c.req.raw, session.version)
      if (wrongVersion) return wrongVersion
      const from = { principal, routed, bearer: bearerOf(c) }
      return sendReply(c, await session.handle(requestOf(c), { body, envelopes: messages }, from))
    } catch (err) {
      if (d.tracing.on) trace.done(errorOutcome(err))
      return errorResponse(err, {
        resourceMetadata: resourceMetadata(),
        scope: scopes(),
        log: log(),
        metrics: d.metrics,
      })
    }
  }
}

/**
 * Before any auth work: a method the MCP endpoint has (else 405), and a declared body within
 * the limit (else 413, thrown: refused unread).
 */
function edgeRefusal(c: Context, maxBodyBytes: number): Response | undefined {
  const method = c.req.method
  if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
    return rpcErrorResponse(405, -32000, 'method not allowed', {
      headers: { allow: 'GET, POST, DELETE' },
    })
  }
  const declared = Number(c.req.header('content-length') ?? NaN)
  if (declared > maxBodyBytes) {
    throw new GatewayError(
      'body_too_large',
      `the request body is larger than ${maxBodyBytes} bytes`,
      { status: 413, expose: true },
    )
  }
  return undefined
}

/** 2026-07-28 has only POST (checklist D43): a GET or DELETE naming it is a 405. */
function modernGetRefusal(req: Request): Response | undefined {
  if (standardHeaders(req.headers).protocolVersion !== MODERN_PROTOCOL_VERSION) return undefined
  return rpcErrorResponse(
    405,
    -32000,
    'Method not allowed: protocol revision 2026-07-28 has no GET or DELETE',
    { headers: { allow: 'POST' } },
  )
}

/**
 * The classifier's refusal, where it is the one to refuse: a malformed batch stays the
 * session transport's to refuse, as it always was; a batch with a 2026-07-28 request in it is
 * the classifier's (batches are session-era only), and so is a single message that claims
 * 2026-07-28 but is no valid request (classify.ts says what is wrong with it): a session-era
 * refusal would tell its client to send an Mcp-Session-Id.
 */
function classifierRefusal(
  route: ReturnType<typeof classifyInboundRequest>,
  body: unknown,
  /** Told of a header that disagrees with the body: its method, name, and the header's rule. */
  mismatched: (method: string, name: string | undefined, rule: string) => void,
): Response | undefined {
  if (route.kind !== 'reject') return undefined
  if (
    route.rung === 'jsonrpc-shape' &&
    route.cell !== 'batch-with-modern-element' &&
    route.cell !== INVALID_BODY
  )
    return undefined
  // A header that disagrees with the body (the version, Mcp-Method): a proxy may route by the
  // header while the server acts on the body, so the refusal is audited (modern.ts likewise).
  if (
    route.code === MODERN_RPC.headerMismatch &&
    isRecord(body) &&
    typeof body.method === 'string'
  ) {
    const params = isRecord(body.params) ? body.params : {}
    const named =
      typeof params.name === 'string'
        ? params.name
        : typeof params.uri === 'string'
          ? params.uri
          : undefined
    const header = route.cell.includes('method') ? 'Mcp-Method' : 'MCP-Protocol-Version'
    mismatched(body.method, named, `headers.${header}`)
  }
  return rpcErrorResponse(route.httpStatus, route.code, route.message, {
    id: idOf(body),
    data: route.data,
  })
}

/** The policy-shaped refusal of a request whose header disagrees with its body (`rule`: the header). */
function headerDenial(rule: string) {
  return { effect: 'deny' as const, reason: rule, source: undefined }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** A body without a session must be one `initialize`. */
function requireInitialize(messages: readonly Envelope[]): void {
  const init =
    messages.length === 1 && messages[0]!.kind === 'request' && messages[0]!.method === 'initialize'
  if (!init)
    throw new BridgeError(
      'session_required',
      'the Mcp-Session-Id header is required (send initialize first)',
    )
}

/**
 * MCP transports §Protocol Version Header: a session's later requests name the version it
 * negotiated; another one (even one the gateway supports) is a 400. No header is fine: the
 * negotiated version applies.
 */
function versionMismatch(req: Request, negotiated: string | undefined): Response | undefined {
  const header = req.headers.get('mcp-protocol-version')?.trim()
  if (header === undefined || negotiated === undefined || header === negotiated) return undefined
  return rpcErrorResponse(
    400,
    -32000,
    `Bad Request: MCP-Protocol-Version ${header} is not the version negotiated for this session (${negotiated})`,
  )
}

/** An HTTP request as a session takes it: its method and headers. */
export function requestOf(c: Context): SessionRequest {
  return { method: c.req.method, header: (name) => c.req.header(name) }
}

/** Each request's Authorization header, read once (authentication, then the caller's bearer). */
const authorizations = new WeakMap<Context, string | undefined>()

/** The request's Authorization header (the framework's lookup checks the whole value each time). */
function authorizationOf(c: Context): string | undefined {
  if (authorizations.has(c)) return authorizations.get(c)
  const header = c.req.header('authorization')
  authorizations.set(c, header)
  return header
}

/**
 * The request's bearer token (already verified), for a credential exchange at the IdP; never
 * handed to a process. Undefined without one (--insecure-no-auth).
 */
export function bearerOf(c: Context): string | undefined {
  try {
    return parseBearer(authorizationOf(c))
  } catch {
    return undefined
  }
}

/** The id of a single JSON-RPC request body, to echo in an error about it. */
function idOf(body: unknown): string | number | null {
  const id = (body as { id?: unknown } | null)?.id
  return typeof id === 'string' || typeof id === 'number' ? id : null
}

/**
 * Batches are 2025-03-26's alone: 2025-06-18 removed them, so on a session negotiated at a later
 * revision a batch is refused whole (400 -32600, no id) before any of it is decided or relayed
 * (checklist D3; a 2025-03-26 session keeps them, F6). Asked of a batch only: the session is
 * not looked up for it on every request's path.
 */
function batchAfter20250326(
  session: { version: string | undefined } | undefined,
): Response | undefined {
  if (!session || session.version === undefined) return undefined
  if (session.version <= '2025-03-26') return undefined
  return rpcErrorResponse(
    400,
    -32600,
    `Invalid Request: protocol ${session.version} has no batches; send one message per request`,
  )
}
