import { request } from 'undici'
import { devIdpStatePath, readDevIdpState } from './state.js'

/** Access token issued to the built-in CLI client. */
export interface DevToken {
  access_token: string
  expires_in: number
  scope?: string
}

/**
 * Gets an access token for a dev user from the running dev IdP (client_credentials as that
 * user's CLI client, client_secret_basic). Defaults: the first configured user, the first
 * allowed resource, and no scope (the user's roles decide through the policy). A scope the
 * user's roles do not grant is left out of the token, not refused.
 */
export async function requestDevToken(
  opts: {
    scope?: string
    /**
     * The servers' (or endpoints') URLs, each a `resource` parameter (RFC 8707). oidc-provider
     * issues a token for one resource only and refuses several (invalid_target); the error
     * then says how to get one token for several servers (an endpoint serving them).
     */
    resource?: string | readonly string[]
    /** The `sub` of a configured dev user. */
    user?: string
    statePath?: string
  } = {},
): Promise<DevToken> {
  const state = await readDevIdpState(opts.statePath ?? devIdpStatePath())
  const cli =
    opts.user === undefined ? state.users[0] : state.users.find((u) => u.sub === opts.user)
  if (!cli) {
    const known = state.users.map((u) => u.sub).join(', ')
    throw new Error(`no dev user ${JSON.stringify(opts.user)}; the dev IdP has: ${known}`)
  }
  // One resource named twice is one resource (oidc-provider counts distinct values too): sent
  // once, and never read as several when the IdP refuses it.
  const asked = opts.resource === undefined ? [] : [...new Set([opts.resource].flat())]
  const resources = asked.length > 0 ? asked : state.resources.slice(0, 1)
  if (resources.length === 0) throw new Error('the dev IdP state lists no resources')
  const meta = await getJson(`${state.issuer}/.well-known/openid-configuration`, state.issuer)
  if (typeof meta.body.token_endpoint !== 'string') {
    throw new Error(`dev IdP at ${state.issuer} has no token_endpoint in its discovery document`)
  }
  // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
  const basic = Buffer.from(
    `${encodeURIComponent(cli.clientId)}:${encodeURIComponent(cli.clientSecret)}`,
  ).toString('base64')
  const form = new URLSearchParams({ grant_type: 'client_credentials' })
  for (const resource of resources) form.append('resource', resource)
  form.append('scope', opts.scope ?? '')
  const res = await call(state.issuer, meta.body.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: form.toString(),
  })
  const { body } = res
  if (res.status !== 200 || typeof body.access_token !== 'string') {
    const error = typeof body.error === 'string' ? body.error : `HTTP ${res.status}`
    const detail = typeof body.error_description === 'string' ? `: ${body.error_description}` : ''
    const several =
      error === 'invalid_target' && resources.length > 1
        ? '; a token is for one server: for several, --resource the URL of an endpoint serving them'
        : ''
    throw new Error(`dev IdP refused the token request (${error}${detail})${several}`)
  }
  return {
    access_token: body.access_token,
    expires_in: Number(body.expires_in),
    ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
  }
}

type Json = Record<string, unknown>

function getJson(url: string, issuer: string): Promise<{ status: number; body: Json }> {
  return call(issuer, url, { method: 'GET', headers: { accept: 'application/json' } })
}

async function call(
  issuer: string,
  url: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<{ status: number; body: Json }> {
  let res: Awaited<ReturnType<typeof request>>
  try {
    res = await request(url, { ...init, headersTimeout: 10_000, bodyTimeout: 10_000 })
  } catch (err) {
    const reason = (err as { code?: string }).code ?? (err as Error).message
    throw new Error(`dev IdP at ${issuer} is not reachable (${reason}); is the gateway running?`)
  }
  const text = await res.body.text().catch(() => '')
  try {
    return { status: res.statusCode, body: JSON.parse(text) as Json }
  } catch {
    throw new Error(`dev IdP at ${issuer} answered ${url} with non-JSON (HTTP ${res.statusCode})`)
  }
}
