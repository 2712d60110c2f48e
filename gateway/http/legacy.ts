import type { Context } from 'hono'
import type { Principal } from '../auth/principal.js'
import { BridgeError } from '../bridge/errors.js'
import { auditRefused } from '../bridge/refused.js'
import { envelope } from '../bridge/jsonrpc.js'
import { LegacySseTransport } from '../bridge/legacy-sse.js'
import type { TransportReply } from '../bridge/stream-transport.js'
import { decideAccess, type Decision } from '../policy/evaluate.js'
import { readJsonBody } from './body.js'
import { SSE_HEADERS } from './sse.js'
import { admitBody, recordRefusal, refuseEndpointAccess } from './decide.js'
import { sessionNotFound } from './session-probe.js'
import { routeBody } from './endpoint-route.js'
import { authenticated, bearerOf, requestOf, type McpEndpointDeps } from './mcp.js'
import { sendReply } from './reply.js'
import { errorOutcome, statusOutcome, traceBody } from './traced.js'
import { NO_HTTP_TRACE } from '../observability/tracing.js'
import type { Vars } from './request-id.js'
import { decisionResponse, errorResponse, refusalReply } from './respond.js'

/** How the audit log names a legacy `GET /sse/<server>` (it opens a session; no JSON-RPC method). */
const SSE_OPEN = 'GET /sse'

/** The legacy event stream as a reply: headers at once (the client waits for its endpoint event). */
function streamReply(transport: LegacySseTransport): TransportReply {
  return { kind: 'stream', status: 200, headers: SSE_HEADERS, stream: transport.out, flush: true }
}

/**
 * The deprecated HTTP+SSE transport (2024-11-05) for clients that still use it, with the same
 * authentication, subject-bound sessions, policy and audit as the MCP endpoint:
 * `GET /sse/<server>` opens a session and its event stream, `POST /messages/<server>?sessionId=`
 * carries the client's messages. Every request needs a token, the POST one too.
 */
export function legacyEndpoints(d: McpEndpointDeps & { basePath: string }) {
  const authenticate = (c: Context<Vars>, server: string) =>
    d.authenticator.authenticate(c.req.header('authorization'), d.resources.audiences(server))
  // RFC 9728 §3.3: the metadata a client finds from /sse/<server> names /sse/<server> itself.
  const metadataOf = (c: Context<Vars>, server: string) =>
    d.resources.metadata(server, 'sse', c.req.header('host'))
  const fail = (c: Context<Vars>, server: string, err: unknown) =>
    errorResponse(err, {
      resourceMetadata: metadataOf(c, server),
      scope: d.scopes(server),
      log: c.get('log').child({ server }),
      metrics: d.metrics,
    })
  const endpointMetadataOf = (c: Context<Vars>, name: string) =>
    d.resources.endpointMetadata(name, c.req.header('host'), 'sse')
  const endpointFail = (c: Context<Vars>, name: string, err: unknown) => {
    const agg = d.aggregates?.get(name)
    const scope = agg ? d.scopes(agg.servers) : []
    return errorResponse(err, {
      resourceMetadata: endpointMetadataOf(c, name),
      scope,
      log: c.get('log').child({ endpoint: name }),
      metrics: d.metrics,
    })
  }
  // The stream opens its session: a limit that refused it is audited as this request, and so
  // is a session whose process could not start (its HTTP status: the client gets no initialize
  // to fail, so the stream is the one request of the attempt). An opened stream has no line of
  // its own: the session's initialize, next, has it.
  const streamRefused =
    (principal: Principal, server: string, access?: Decision, start?: number) =>
    (err: unknown): never => {
      auditRefused(d.audit, d.metrics, {
        principal,
        server,
        method: SSE_OPEN,
        err,
        ...(access ? { decided: { decision: access }, start, status: true } : {}),
      })
      throw err
    }
  return {
    /** `GET /sse/<endpoint>`: a legacy session on an aggregating endpoint. */
    async endpointStream(c: Context<Vars>, name: string): Promise<Response> {
      try {
        const agg = d.aggregates!.get(name)!
        const principal = await d.authenticator.authenticate(
          c.req.header('authorization'),
          d.resources.endpointAudiences(name),
        )
        const denied = refuseEndpointAccess(d, agg, principal, 'initialize', d.policy.current)
        if (denied)
          return decisionResponse(denied, {
            resourceMetadata: endpointMetadataOf(c, name),
            id: null,
          })
        const log = c.get('log').child({ endpoint: name, transport: 'sse' })
        let transport!: LegacySseTransport
        const session = await d
          .endpointSessions!.open(agg, principal, log, (s) => {
            const endpoint = `${d.basePath}/messages/${name}?sessionId=${encodeURIComponent(s.id)}`
            transport = new LegacySseTransport(
              endpoint,
              (onEnd) => s.openStream({ listening: true, exp: principal.exp, onEnd }),
              d.config.limits.sseKeepAlive,
            )
            return transport
          })
          .catch(streamRefused(principal, name))
        transport.onclosed = () => void session.close()
        return sendReply(c, streamReply(transport))
      } catch (err) {
        return endpointFail(c, name, err)
      }
    },

    /** `POST /messages/<endpoint>?sessionId=`: routed and decided like the Streamable HTTP endpoint's. */
    async endpointMessages(c: Context<Vars>, name: string): Promise<Response> {
      const trace = d.tracing.on
        ? d.tracing.begin(c.req.raw.headers, c.get('clientIp'))
        : NO_HTTP_TRACE
      try {
        const agg = d.aggregates!.get(name)!
        const principal = await authenticated(trace, () =>
          d.authenticator.authenticate(
            c.req.header('authorization'),
            d.resources.endpointAudiences(name),
          ),
        )
        const id = c.req.query('sessionId')
        if (!id)
          throw new BridgeError('session_required', 'the sessionId query parameter is required')
        const lease = trace.step('lease')
        const session = d.endpointSessions!.find(id, name, principal)
        lease.end(session === undefined ? 'session_not_found' : undefined)
        if (session === undefined)
          throw sessionNotFound(d, d.endpointSessions!, id, {
            principal,
            server: name,
            method: 'POST /messages',
          })
        const body = await readJsonBody(c.req.raw, d.config.limits, c.env?.incoming)
        const messages = (Array.isArray(body) ? body : [body]).map(envelope)
        const traced = traceBody(d.tracing, trace, messages, {
          server: name,
          principal,
          sessionId: session.id,
          protocolVersion: session.version,
          transport: 'sse',
        })
        const caller = {
          principal,
          bearer: bearerOf(c),
          log: c.get('log').child({ endpoint: name }),
          accepted: Date.now(),
        }
        const verdict = await routeBody(
          d,
          agg,
          body,
          messages,
          caller,
          d.policy.current,
          endpointMetadataOf(c, name),
          (m) => session.tell(m),
          traced,
          (uri) => session.subscribedAt(uri),
        )
        if ('refused' in verdict) {
          if (d.tracing.on) trace.done(statusOutcome(verdict.refused.status))
          return verdict.refused
        }
        const from = { principal, routed: verdict.routed, bearer: bearerOf(c) }
        const reply = await session.handle(requestOf(c), { body, envelopes: messages }, from)
        if (d.tracing.on) trace.done(statusOutcome(reply.status))
        return sendReply(c, reply)
      } catch (err) {
        if (d.tracing.on) trace.done(errorOutcome(err))
        return endpointFail(c, name, err)
      }
    },

    async stream(c: Context<Vars>): Promise<Response> {
      const server = c.req.param('server') ?? ''
      if (d.aggregates?.has(server)) return this.endpointStream(c, server)
      try {
        if (d.config.servers[server] === undefined)
          throw new BridgeError('unknown_server', `no MCP server named ${server}`)
        const principal = await authenticate(c, server)
        const access = decideAccess(d.policy.current, principal, server)
        if (access.effect !== 'allow') {
          recordRefusal(d, principal, server, SSE_OPEN, undefined, access)
          return decisionResponse(access, { resourceMetadata: metadataOf(c, server), id: null })
        }
        let transport!: LegacySseTransport
        const log = c.get('log').child({ server, transport: 'sse' })
        const start = performance.now()
        const session = await d.registry
          .open(
            server,
            principal,
            log,
            (s) => {
              const endpoint = `${d.basePath}/messages/${server}?sessionId=${encodeURIComponent(s.id)}`
              transport = new LegacySseTransport(
                endpoint,
                (onEnd) => s.openStream({ listening: true, exp: principal.exp, onEnd }),
                d.config.limits.sseKeepAlive,
              )
              return transport
            },
            bearerOf(c),
          )
          .catch(streamRefused(principal, server, access, start))
        transport.onclosed = (why) => {
          // This transport has no resumption: a stream closed on a slow client takes its session.
          if (why === 'slow_client')
            log.warn(
              { session: session.id.slice(-32, -24) },
              'HTTP+SSE stream closed on a client that is not reading it: session ended',
            )
          else log.info('legacy event stream closed by the client; its session ended')
          void session.close()
        }
        return sendReply(c, streamReply(transport))
      } catch (err) {
        return fail(c, server, err)
      }
    },

    async messages(c: Context<Vars>): Promise<Response> {
      const server = c.req.param('server') ?? ''
      if (d.aggregates?.has(server)) return this.endpointMessages(c, server)
      const trace = d.tracing.on
        ? d.tracing.begin(c.req.raw.headers, c.get('clientIp'))
        : NO_HTTP_TRACE
      try {
        if (d.config.servers[server] === undefined)
          throw new BridgeError('unknown_server', `no MCP server named ${server}`)
        const principal = await authenticated(trace, () => authenticate(c, server))
        const id = c.req.query('sessionId')
        if (!id)
          throw new BridgeError('session_required', 'the sessionId query parameter is required')
        const lease = trace.step('lease')
        const session = d.registry.find(id, server, principal)
        lease.end(session === undefined ? 'session_not_found' : undefined)
        if (session === undefined)
          throw sessionNotFound(d, d.registry, id, {
            principal,
            server,
            method: 'POST /messages',
          })
        const body = await readJsonBody(c.req.raw, d.config.limits, c.env?.incoming)
        const messages = (Array.isArray(body) ? body : [body]).map(envelope)
        const traced = traceBody(d.tracing, trace, messages, {
          server,
          principal,
          sessionId: session.id,
          protocolVersion: session.version,
          transport: 'sse',
        })
        const { refused, decided } = await admitBody(
          d,
          messages,
          principal,
          server,
          d.policy.current,
          traced,
          d.config.servers[server]?.mode === 'shared'
            ? undefined
            : (taskId) => session.taskTool(taskId),
        )
        if (refused) {
          const { message: m, decision } = refused
          const id = !Array.isArray(body) && m.kind === 'request' ? m.id : null
          // Replies travel on the event stream in this transport: a refused request with an id
          // to answer is answered there; a missing scope is the POST's own 403 challenge, and a
          // malformed envelope the POST's own 400.
          if (
            id !== null &&
            decision.effect !== 'challenge' &&
            !(decision.effect === 'invalid' && decision.code === -32600)
          ) {
            session.tell(refusalReply(decision, id))
            return new Response(null, { status: 202 })
          }
          return decisionResponse(decision, { resourceMetadata: metadataOf(c, server), id })
        }
        const caller = { principal, decided, bearer: bearerOf(c) }
        const reply = await session.handle(requestOf(c), { body, envelopes: messages }, caller)
        if (d.tracing.on) trace.done(statusOutcome(reply.status))
        return sendReply(c, reply)
      } catch (err) {
        if (d.tracing.on) trace.done(errorOutcome(err))
        return fail(c, server, err)
      }
    },
  }
}
