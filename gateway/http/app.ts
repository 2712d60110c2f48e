import { Hono, type Context } from 'hono'
import type { Logger } from 'pino'
import type { AuditFailure } from '../observability/audit-sink.js'
import { PRM_PREFIX } from '../auth/metadata.js'
import type { FailingServer } from '../bridge/start-failures.js'
import { legacyEndpoints } from './legacy.js'
import { mcpEndpoint, type McpEndpointDeps, type Target } from './mcp.js'
import { metricsEndpoint } from './metrics.js'
import { hostGuard, originGuard, type OriginPolicy } from './origin.js'
import { requestId, type Vars } from './request-id.js'
import { trustedPeer } from './trust.js'
import { type Audience, auditUnavailableResponse, rpcErrorResponse } from './respond.js'
import { wellKnown } from './well-known.js'
import { whoami } from './whoami.js'

export interface AppDeps extends McpEndpointDeps {
  log: Logger
  publicUrl: string
  issuer: () => string
  origin: OriginPolicy
  /** The OAuth broker's routes (authorization server, login, consent), when it runs. */
  broker?: Hono
  /**
   * While it returns a failure (`log.auditOnFailure: refuse` and the audit log cannot be
   * written), every request that may be audited is refused with 503.
   */
  auditFailing?: () => AuditFailure | undefined
  /** The account page and its API (`/account…`), when users have secrets to set or the broker runs. */
  account?: Hono<Vars>
  /**
   * Readiness: problems make it 503; warnings are reported on a 200, and so are tool changes
   * waiting for an operator (`pendingTools`) and servers failing to start (`failingServers`,
   * and only a count of users' own failing starts: readiness names no subject).
   */
  readiness: () => {
    problems: string[]
    warnings: string[]
    pendingTools?: { server: string; tool: string; since: string; hash: string }[]
    failingServers?: FailingServer[]
    failingUserStarts?: number
  }
}

/** Paths of the MCP endpoints of both transports, whose answered requests are audited. */
const MCP_PATH = /\/(mcp|sse|messages)\/[^/]+$/
/**
 * Paths that never produce an audit event, served while the audit log cannot be written:
 * health, metrics, who-am-I, metadata and public keys.
 */
const UNAUDITED = /^\/(healthz|readyz|metrics|whoami|jwks|\.well-known\/.*)$/
/**
 * Paths of the broker's OAuth endpoints that answer programs in JSON (token, registration and
 * its management, revocation), relative to the issuer (broker/provider.ts BROKER_ROUTES).
 */
const OAUTH_JSON = /^\/(token|register(\/.*)?|revoke)$/
/**
 * The broker's paths a person's browser opens: the authorization endpoint (a redirect flow,
 * and its resume after sign-in), the sign-in and consent pages, the upstream IdP's return.
 */
const BROKER_PAGES = /^\/(authorize(\/.*)?|interaction\/.*|oauth\/callback)$/
/** The account page's JSON API, for programs (account/api.ts). */
const ACCOUNT_API = /^\/account\/api(\/.*)?$/
/** The account page, its forms and its return from sign-in (account/routes.ts). */
const ACCOUNT_PAGES = /^\/account(\/.*)?$/

/**
 * Who answers at `path` (the public URL's path removed), of the routes this app serves: what a
 * refusal made before the route says. Anything else (MCP endpoints, unknown paths) is MCP's:
 * no endpoint may take one of these paths (config/schema.ts RESERVED_PATHS).
 */
function audienceOf(path: string, has: { broker: boolean; account: boolean }): Audience {
  if (has.broker && OAUTH_JSON.test(path)) return 'oauth'
  if (has.broker && BROKER_PAGES.test(path)) return 'browser'
  if (has.account && ACCOUNT_API.test(path)) return 'account-api'
  if (has.account && ACCOUNT_PAGES.test(path)) return 'browser'
  return 'mcp'
}
/** Paths where a HEAD (a GET without its body) changes nothing. */
const HEAD_PATHS = /^\/(healthz|readyz|metrics|whoami|\.well-known\/.*)$/

/** The gateway's HTTP surface: MCP endpoints, metadata, health. Every route is listed here. */
export function createApp(d: AppDeps): Hono<Vars> {
  const app = new Hono<Vars>()
  const meta = wellKnown(d)
  // A publicUrl with a path (https://host/base) is served both with the path (a proxy that
  // passes it through) and without it (a proxy that strips it); RFC 9728 §3.1 puts the
  // well-known segment before the path.
  const base = new URL(d.publicUrl).pathname.replace(/\/$/, '')
  const prefixes = new Set(['', base])
  // Endpoint paths, and `/mcp` of routed hosts: MCP endpoints whatever their form (`/mcp`, `/`).
  const paths = new Set([
    ...Object.entries(d.config.endpoints).map(([name, e]) => e.path ?? `/mcp/${name}`),
    ...(Object.keys(d.config.hosts).length > 0 ? ['/mcp'] : []),
  ])
  const unprefixed = (path: string) =>
    base !== '' && path.startsWith(`${base}/`) ? path.slice(base.length) : path
  const mcpPaths = new Set(
    [...prefixes].flatMap((prefix) => [...paths].map((path) => `${prefix}${path}`)),
  )
  app.use('*', requestId(d.log, trustedPeer(d.config.trustProxy)))
  app.use('*', async (c, next) => {
    const start = performance.now()
    await next()
    // A response written straight to the socket (the broker's authorization server) has its
    // status there, not on the Hono response.
    const outgoing = c.env?.outgoing
    const status = outgoing?.headersSent ? outgoing.statusCode : c.res.status
    // Answered MCP requests (either transport) already have their audit event: their HTTP line is debug.
    const answered = status < 400 && (MCP_PATH.test(c.req.path) || mcpPaths.has(c.req.path))
    const level = answered ? 'debug' : 'info'
    const log = c.get('log')
    // Most answered requests log nothing: the line is not even built then.
    if (!log.isLevelEnabled(level)) return
    log[level](
      {
        method: c.req.method,
        path: c.req.path,
        status,
        ms: +(performance.now() - start).toFixed(2),
      },
      'request',
    )
  })
  app.use('*', hostGuard(d.origin))
  // The framework answers HEAD with a route's GET handler: only where GET changes nothing (a
  // HEAD of /sse/<server> opened a session and a process that nothing ever ended).
  app.use('*', async (c, next) => {
    if (c.req.method === 'HEAD' && !HEAD_PATHS.test(c.req.path))
      return rpcErrorResponse(405, -32000, 'method not allowed', { headers: { allow: 'GET' } })
    await next()
  })
  // log.auditOnFailure: refuse. What cannot be audited is not done; the rest (health, metrics,
  // metadata) is served so that probes and clients see why. Each is told in its own protocol.
  const auditFailing = d.auditFailing
  const has = { broker: d.broker !== undefined, account: d.account !== undefined }
  if (auditFailing)
    app.use('*', async (c, next) => {
      const failure = auditFailing()
      if (failure === undefined) return next()
      const path = unprefixed(c.req.path)
      if (UNAUDITED.test(path)) return next()
      const seconds = Math.max(1, Math.ceil((failure.retryAt - Date.now()) / 1000))
      return auditUnavailableResponse(audienceOf(path, has), seconds)
    })
  // Metadata is public: any origin may read it, preflights included (browser clients send
  // MCP-Protocol-Version with discovery requests), and misses too, so probing is quiet.
  app.use('/.well-known/*', async (c, next) => {
    if (c.req.method === 'OPTIONS') {
      return new Response(null, {
        status: 204,
        headers: {
          'access-control-allow-origin': '*',
          'access-control-allow-methods': 'GET',
          'access-control-allow-headers': '*',
          'access-control-max-age': '600',
        },
      })
    }
    // Metadata is only read: any other method is 405 naming what is allowed (checklist A19),
    // not a 404 that reads as "no such resource".
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && c.req.path.startsWith(PRM_PREFIX))
      return rpcErrorResponse(405, -32000, 'method not allowed', {
        headers: { allow: 'GET, HEAD', 'access-control-allow-origin': '*' },
      })
    await next()
    c.res.headers.set('access-control-allow-origin', '*')
  })
  app.get('/healthz', () => Response.json({ status: 'ok' }))
  app.get('/readyz', () => {
    const { problems, warnings, pendingTools, failingServers, failingUserStarts } = d.readiness()
    const ready = problems.length === 0
    return Response.json(
      {
        status: ready ? 'ready' : 'not ready',
        problems,
        warnings,
        ...(pendingTools ? { pendingTools } : {}),
        ...(failingServers?.length ? { failingServers } : {}),
        ...(failingUserStarts ? { failingUserStarts } : {}),
      },
      { status: ready ? 200 : 503 },
    )
  })
  app.get('/metrics', metricsEndpoint(d.metrics, d.config.metrics))
  const servers = Object.keys(d.config.servers)
  const endpoints = Object.fromEntries(
    Object.entries(d.config.endpoints).map(([name, e]) => [
      name,
      { prefix: e.prefix, servers: e.servers === '*' ? servers : e.servers },
    ]),
  )
  app.get('/whoami', whoami({ ...d, servers, endpoints }))
  const mcp = mcpEndpoint(d)
  const guard = originGuard(d.origin)
  const legacy = legacyEndpoints({ ...d, basePath: base })
  for (const prefix of prefixes) {
    // Host routing and endpoints first: `/mcp` of a routed host, and endpoint paths, before `/mcp/:server`.
    const targetOf = (c: Context<Vars>, path: string): Target | undefined => {
      const route = path === '/mcp' ? d.resources.routeOf(c.req.header('host')) : undefined
      if (route !== undefined) return { ...route, routed: true }
      const endpoint = Object.entries(d.config.endpoints).find(
        ([name, e]) => (e.path ?? `/mcp/${name}`) === path,
      )
      return endpoint && { endpoint: endpoint[0] }
    }
    for (const path of paths) {
      app.get(`${PRM_PREFIX}${prefix}${path}`, (c) => {
        const target = targetOf(c, path)
        return target === undefined
          ? rpcErrorResponse(404, -32001, 'no such protected resource')
          : meta.target(c, target)
      })
      app.use(`${prefix}${path}`, guard)
      app.all(`${prefix}${path}`, (c) => {
        const target = targetOf(c, path)
        return target === undefined ? rpcErrorResponse(404, -32601, 'not found') : mcp(c, target)
      })
    }
    app.get(`${PRM_PREFIX}${prefix}/mcp/:server`, (c) => meta.server(c, 'mcp'))
    app.get(`${PRM_PREFIX}${prefix}/sse/:server`, (c) => meta.server(c, 'sse'))
    app.use(`${prefix}/mcp/:server`, guard)
    app.all(`${prefix}/mcp/:server`, (c) => mcp(c))
    // HTTP+SSE (2024-11-05), deprecated: the same resource, token, policy and audit.
    app.use(`${prefix}/sse/:server`, guard)
    app.get(`${prefix}/sse/:server`, (c) => legacy.stream(c))
    app.use(`${prefix}/messages/:server`, guard)
    app.post(`${prefix}/messages/:server`, (c) => legacy.messages(c))
  }
  app.get(PRM_PREFIX, () => meta.root())
  // The account page, with and without the public URL's path like the MCP endpoints (its
  // links and cookies name the public path; its API guards Origin itself, without CORS).
  if (d.account) for (const prefix of new Set(['', base])) app.route(prefix || '/', d.account)
  if (d.broker) app.route('/', d.broker)
  app.notFound(() => rpcErrorResponse(404, -32601, 'not found'))
  app.onError((err, c) => {
    c.get('log')?.error({ err }, 'unhandled error')
    return rpcErrorResponse(500, -32603, 'internal error')
  })
  return app
}
