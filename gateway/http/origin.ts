import type { Context, Next } from 'hono'
import { rpcErrorResponse } from './respond.js'

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i
const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i

/** Request headers a browser client may send to the MCP endpoint. */
export const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id'
/** Response headers a browser client must be able to read (checklist B17). */
export const CORS_EXPOSE_HEADERS = 'www-authenticate, mcp-session-id, mcp-protocol-version'

export interface OriginPolicy {
  /** Exact origins allowed (the public URL's, plus configured ones). */
  origins: readonly string[]
  /** Gateway on loopback: loopback origins are allowed, and Host must be a loopback name or the public host. */
  local: boolean
  publicHost: string
}

/** True when a request may proceed: no Origin, or an allowed one. */
export function originAllowed(origin: string | undefined, p: OriginPolicy): boolean {
  if (origin === undefined) return true
  const o = origin.toLowerCase()
  return p.origins.includes(o) || (p.local && LOOPBACK_ORIGIN.test(o))
}

/**
 * DNS-rebinding defence, before any auth work (MCP transports §Security Warning): a present
 * Origin that is not allowed, or in local mode a Host that is not ours, gets `403`. Allowed
 * origins get CORS headers; preflights are answered here without auth.
 */
export function originGuard(p: OriginPolicy) {
  return async function checkOrigin(c: Context, next: Next): Promise<Response | void> {
    const origin = c.req.header('origin')
    if (!originAllowed(origin, p)) return rpcErrorResponse(403, -32000, 'origin not allowed')
    if (p.local) {
      // The name matters for DNS rebinding, not the port (proxies often drop it from Host).
      const host = (c.req.header('host') ?? '').toLowerCase()
      if (!LOOPBACK_HOST.test(host) && hostname(host) !== hostname(p.publicHost)) return rpcErrorResponse(403, -32000, 'host not allowed')
    }
    if (origin !== undefined && c.req.method === 'OPTIONS') {
      return new Response(null, {
        status: 204,
        headers: {
          'access-control-allow-origin': origin,
          'access-control-allow-methods': 'GET, POST, DELETE',
          'access-control-allow-headers': CORS_ALLOW_HEADERS,
          'access-control-max-age': '600',
          vary: 'origin',
        },
      })
    }
    await next()
    if (origin !== undefined) {
      c.res.headers.set('access-control-allow-origin', origin)
      c.res.headers.set('access-control-expose-headers', CORS_EXPOSE_HEADERS)
      c.res.headers.append('vary', 'origin')
    }
  }
}

function hostname(host: string): string {
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!
}
