import type { IncomingMessage, ServerResponse } from 'node:http'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import type { Context, Hono } from 'hono'
import type Provider from 'oidc-provider'
import { BROKER_ROUTES } from './provider.js'
import { startsSignIn } from './sign-in-guard.js'
import { TOKEN_EXPOSED_HEADERS } from './token-resource.js'

/** Every path oidc-provider answers, relative to the issuer. */
export const PROVIDER_PATHS = [
  ...Object.values(BROKER_ROUTES),
  `${BROKER_ROUTES.authorization}/*`, // oidc-provider resumes an authorization here after login and consent
  `${BROKER_ROUTES.registration}/*`,
  '/.well-known/oauth-authorization-server',
  '/.well-known/openid-configuration',
]

/**
 * Serves oidc-provider inside the gateway's Hono app, on the same port, behind the same Host
 * check: its Node handler gets the raw request (nothing before it reads the body). Its URLs
 * (issuer, endpoints, redirects) come from the configured issuer only: the forwarded headers it
 * reads are set from the issuer, never taken from the client (a spoofed Host cannot change
 * the metadata). An issuer with a path (`https://host/base`) is served with or without the
 * path, like the MCP endpoints. A body still arriving after `bodyTimeout` ms gets 408 and the
 * connection is closed, as at the MCP endpoints: oidc-provider (and the code exchange guard,
 * token-resource.ts) wait for a body with no bound of their own but Node's requestTimeout (300 s),
 * so a client that declared a /token, /register or /revoke body and stalled held the socket.
 * An authorization request (it stores an Interaction) goes through `admitSignIn` first, matched
 * as oidc-provider's router matches it, so no spelling of the path escapes the count; oidc-provider
 * gets the target as parsed (no fragment, origin-form), the one that was matched.
 */
export function mountProvider(
  app: Hono,
  provider: Provider,
  issuer: string,
  bodyTimeout: number,
  admitSignIn?: (c: Context) => Promise<Response | undefined>,
): void {
  const url = new URL(issuer)
  const base = url.pathname.replace(/\/$/, '')
  provider.proxy = true
  const handler = provider.callback()
  const serve = async (c: Context): Promise<Response> => {
    const { incoming, outgoing } = c.env as {
      incoming: IncomingMessage & { originalUrl?: string }
      outgoing: ServerResponse
    }
    // The target as parsed (Hono's URL): a fragment or an absolute-form target is read as its
    // path by koa's parser, so the raw one escaped the authorization request's match.
    const parsed = new URL(c.req.url)
    const path = `${parsed.pathname}${parsed.search}`
    const stripped = base !== '' && path.startsWith(`${base}/`) ? path.slice(base.length) : path
    if (
      admitSignIn !== undefined &&
      startsSignIn(incoming.method ?? 'GET', stripped, BROKER_ROUTES.authorization)
    ) {
      const refused = await admitSignIn(c)
      if (refused !== undefined) return refused
    }
    incoming.url = stripped
    incoming.originalUrl = `${base}${stripped}`
    incoming.headers['x-forwarded-proto'] = url.protocol.slice(0, -1)
    incoming.headers['x-forwarded-host'] = url.host
    delete incoming.headers['x-forwarded-port']
    delete incoming.headers.forwarded
    const done = new Promise<void>((resolve) => outgoing.once('close', resolve))
    // `complete`: Node's parser has the whole message (read or not); a request of no body has.
    const stalled = incoming.complete
      ? undefined
      : setTimeout(() => {
          if (incoming.complete) return
          // /token's body is read by the code exchange guard, before oidc-provider's route (and
          // its CORS) runs: the CORS headers its /token answers carry before it knows the client.
          if (!outgoing.headersSent && stripped.split('?')[0] === BROKER_ROUTES.token)
            tokenCors(incoming.headers.origin, outgoing)
          if (!outgoing.headersSent)
            outgoing.writeHead(408, {
              'content-type': 'application/json; charset=utf-8',
              'cache-control': 'no-store',
              connection: 'close',
            })
          outgoing.end(
            JSON.stringify({
              error: 'invalid_request',
              error_description: `the request body did not arrive within ${bodyTimeout} ms`,
            }),
          )
          // What is still to come of the body is not waited for.
          outgoing.once('finish', () => incoming.socket?.destroy())
        }, bodyTimeout)
    handler(incoming, outgoing)
    await done
    clearTimeout(stalled)
    return RESPONSE_ALREADY_SENT
  }
  for (const prefix of new Set(['', base])) {
    for (const path of PROVIDER_PATHS) app.all(`${prefix}${path}`, serve)
  }
}

/** oidc-provider's /token CORS headers before it knows the client (lib/shared/cors.js). */
function tokenCors(origin: string | undefined, outgoing: ServerResponse): void {
  if (outgoing.hasHeader('access-control-allow-origin')) return
  outgoing.setHeader('vary', 'Origin')
  outgoing.setHeader('access-control-allow-origin', origin || '*')
  outgoing.setHeader('access-control-expose-headers', TOKEN_EXPOSED_HEADERS)
}
