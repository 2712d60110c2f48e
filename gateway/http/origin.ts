import { isIP } from 'node:net'
import type { Context, Next } from 'hono'
import { alreadySent } from './reply.js'
import type { Vars } from './request-id.js'
import { rpcErrorResponse } from './respond.js'

const LOOPBACK_NAME = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/
/** RFC 9110 §7.2 `uri-host [":" port]`: a bracketed IPv6 address or a name, one decimal port. */
const PLAIN_HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::([0-9]{1,5}))?$/
const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i

/** Request headers a browser client may send to the MCP endpoint (plus any `Mcp-Param-*`). */
export const CORS_ALLOW_HEADERS = [
  'authorization',
  'content-type',
  'accept',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
  'mcp-method',
  'mcp-name',
]
/** Response headers a browser client must be able to read (checklist B17). */
export const CORS_EXPOSE_HEADERS = 'www-authenticate, mcp-session-id, mcp-protocol-version'

export interface OriginPolicy {
  /** Exact origins allowed (the public URL's, plus configured ones). */
  origins: readonly string[]
  /** Gateway on loopback: loopback origins are allowed too. */
  local: boolean
  /** Host names allowed besides the loopback names: the public URL's, plus configured ones. */
  hosts: readonly string[]
}

/** True when a request may proceed: no Origin, or an allowed one. */
export function originAllowed(origin: string | undefined, p: OriginPolicy): boolean {
  if (origin === undefined) return true
  const o = origin.toLowerCase()
  return p.origins.includes(o) || (p.local && LOOPBACK_ORIGIN.test(o))
}

/**
 * True when a request's Host names us: a loopback name, the public URL's host, or a configured
 * one; with `ipLiterals`, any IP address too (a DNS-rebinding page always sends a name, and
 * probes such as Kubernetes' send the pod's address).
 */
export function hostAllowed(
  host: string | undefined,
  p: OriginPolicy,
  ipLiterals = false,
): boolean {
  const name = plainName((host ?? '').toLowerCase())
  if (name === undefined) return false
  // The name matters for DNS rebinding, not the port (proxies often drop it from Host).
  if (LOOPBACK_NAME.test(name) || p.hosts.includes(name)) return true
  return ipLiterals && isIP(name.replace(/^\[|\]$/g, '')) !== 0
}

/**
 * The name of a lower-cased Host that is a plain `host[:port]` with a port of 1 to 65535, else
 * undefined: user-info (`localhost:1@evil.example`), a path, a query, several colons outside
 * brackets, an empty port, a list are no Host a browser sends. The name was read up to the first
 * colon, so an allowed name followed by anything after a colon passed (Node refuses most such
 * Hosts when it builds a request's URL from them, but not with an absolute-form target).
 */
function plainName(host: string): string | undefined {
  const m = PLAIN_HOST.exec(host)
  if (m === null) return undefined
  const port = m[2] === undefined ? 1 : Number(m[2])
  return port >= 1 && port <= 65_535 ? m[1] : undefined
}

/** What probes and scrapers ask: health, readiness and metrics. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics'])

/**
 * Whether a request target is a probe's or scraper's (a query allowed): they may reach these by
 * IP address, and they are no load to the idle collector.
 */
export function isProbe(target: string | undefined): boolean {
  if (target === undefined) return false
  const q = target.indexOf('?')
  return PROBE_PATHS.has(q === -1 ? target : target.slice(0, q))
}

/**
 * DNS-rebinding defence for every route, before anything else (MCP transports §Security
 * Warning): a Host that is not ours gets `403`, so a rebinding page cannot read metrics,
 * metadata, whoami or anything else of a gateway on loopback or an internal address.
 */
export function hostGuard(p: OriginPolicy) {
  return async function checkHost(c: Context, next: Next): Promise<Response | void> {
    if (!requestHostAllowed(c.req.header('host'), c.env, p, isProbe(c.req.path)))
      return rpcErrorResponse(403, -32000, 'host not allowed')
    await next()
  }
}

/**
 * Whether a request's Host (`host`) and, with an absolute-form target, the target's authority
 * (RFC 9112 §3.2.2: it replaces Host, so it must name us too) are allowed. `env` is the Node
 * adaptor's (its `incoming` request holds the target as the client wrote it). Every listener's
 * guard, the metrics listener's too.
 */
export function requestHostAllowed(
  host: string | undefined,
  env: unknown,
  p: OriginPolicy,
  ipLiterals: boolean,
): boolean {
  if (!hostAllowed(host, p, ipLiterals)) return false
  const target: unknown = (env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url
  return (
    typeof target !== 'string' ||
    target.startsWith('/') ||
    hostAllowed(URL.parse(target)?.host, p, ipLiterals)
  )
}

/**
 * Cross-origin requests to the MCP endpoints, before any auth work: a present Origin that is
 * not allowed gets `403`; allowed origins get CORS headers; preflights are answered here
 * without auth. (The Host was checked for every route by {@link hostGuard}.)
 */
export function originGuard(p: OriginPolicy) {
  return async function checkOrigin(c: Context<Vars>, next: Next): Promise<Response | void> {
    const origin = c.req.header('origin')
    if (!originAllowed(origin, p)) return rpcErrorResponse(403, -32000, 'origin not allowed')
    if (origin !== undefined && c.req.method === 'OPTIONS') {
      return new Response(null, {
        status: 204,
        headers: {
          'access-control-allow-origin': origin,
          'access-control-allow-methods': 'GET, POST, DELETE',
          'access-control-allow-headers': allowHeaders(
            c.req.header('access-control-request-headers'),
          ),
          'access-control-max-age': '600',
          vary: 'origin',
        },
      })
    }
    if (origin !== undefined) {
      // For a handler that writes its response itself (reply.ts).
      const cors = {
        'access-control-allow-origin': origin,
        'access-control-expose-headers': CORS_EXPOSE_HEADERS,
        vary: 'origin',
      }
      c.set('replyHeaders', { ...c.get('replyHeaders'), ...cors })
    }
    await next()
    if (origin !== undefined && !alreadySent(c.res)) {
      c.res.headers.set('access-control-allow-origin', origin)
      c.res.headers.set('access-control-expose-headers', CORS_EXPOSE_HEADERS)
      c.res.headers.append('vary', 'origin')
    }
  }
}

/** The preflight's requested headers that may be sent: the fixed list and any Mcp-Param-*. */
function allowHeaders(requested: string | undefined): string {
  const extra = (requested ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => /^mcp-param-[a-z0-9-]+$/.test(h))
  return [...CORS_ALLOW_HEADERS, ...new Set(extra)].join(', ')
}

/** The name of a Host value, without its port. */
export function hostname(host: string): string {
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!
}
