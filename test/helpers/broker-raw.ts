// Raw HTTP against the broker's endpoints (undici, no redirects followed), for refusal tests
// that must see each status, header and OAuth error code the SDK would hide.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { brokerLogin, type Choices, type Visit } from './broker-browser.js'
import type { BrokerStack } from './broker-stack.js'
import { type CookieJar, request } from './oauth-flow.js'

/** What a login and its code's exchange need of a broker (a replicas' stack has it too). */
export type BrokerFront = Pick<BrokerStack, 'url' | 'endpoint'>

/** One answer, read whole. */
export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  /** The body as JSON, when it is JSON. */
  json: Record<string, unknown>
  /** The Location header, when there is one. */
  location: string | undefined
}

/** One request, no redirect followed; cookies from and into `jar` when given. */
export async function send(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; jar?: CookieJar } = {},
): Promise<Answer> {
  const cookie =
    o.jar && o.jar.size > 0 ? [...o.jar].map(([k, v]) => `${k}=${v}`).join('; ') : undefined
  const res = await request(url, {
    method: (o.method ?? 'GET') as 'GET',
    headers: { ...(cookie ? { cookie } : {}), ...o.headers },
    ...(o.body !== undefined ? { body: o.body } : {}),
  })
  if (o.jar) {
    for (const line of [res.headers['set-cookie'] ?? []].flat()) {
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === '') o.jar.delete(name)
      else o.jar.set(name, value)
    }
  }
  const text = await res.body.text()
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON: an HTML page or empty
  }
  const location = res.headers.location
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json,
    location: typeof location === 'string' ? location : undefined,
  }
}

/**
 * The store key of a code or token record: the broker stores credentials under a SHA-256 of
 * them (base64url), never the credential itself.
 */
export function credentialKey(
  model: 'AuthorizationCode' | 'RefreshToken' | 'AccessToken',
  credential: string,
): string {
  return `oidc:${model}:${createHash('sha256').update(credential).digest('base64url')}`
}

/** A PKCE pair (RFC 7636, S256). */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

/** POSTs JSON metadata to /register. */
export function register(
  stack: BrokerFront,
  metadata: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return send(`${stack.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(metadata),
  })
}

/** What a test client registers: these redirect URIs, the code flow with refresh; `over` wins. */
export function clientMetadata(
  redirectUris: string[],
  over: Record<string, unknown>,
): Record<string, unknown> {
  return {
    client_name: 'refusal test client',
    redirect_uris: redirectUris,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...over,
  }
}

/** Registers a public client with these redirect URIs; returns its client_id. */
export async function newClient(
  stack: BrokerFront,
  redirectUris: string[],
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await register(stack, clientMetadata(redirectUris, extra))
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${res.text}`)
  return String(res.json.client_id)
}

/** A confidential client's credentials. */
export interface ClientSecret {
  id: string
  secret: string
}

/** Registers a confidential client (client_secret_basic) with these redirect URIs. */
export async function newConfidentialClient(
  stack: BrokerStack,
  redirectUris: string[],
): Promise<ClientSecret> {
  const res = await register(
    stack,
    clientMetadata(redirectUris, {
      client_name: 'confidential',
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  )
  assert.equal(res.status, 201, res.text)
  return { id: String(res.json.client_id), secret: String(res.json.client_secret) }
}

/** An authorization request URL; parameters set to undefined are left out. */
export function authorizeUrl(
  stack: BrokerFront,
  params: Record<string, string | undefined>,
): string {
  const url = new URL(`${stack.url}/authorize`)
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.append(k, v)
  return url.href
}

/** What an ordinary authorization request carries, for `clientId` and `redirectUri`. */
export function authParams(
  stack: BrokerFront,
  o: {
    clientId: string
    redirectUri: string
    server?: string
    scope?: string
    state?: string
    challenge: string
  },
): Record<string, string | undefined> {
  return {
    response_type: 'code',
    client_id: o.clientId,
    redirect_uri: o.redirectUri,
    scope: o.scope ?? 'mcp:read',
    resource: stack.endpoint(o.server ?? 'notes'),
    state: o.state ?? randomBytes(8).toString('base64url'),
    code_challenge: o.challenge,
    code_challenge_method: 'S256',
  }
}

/** A whole login through the consent page and the upstream, to the client's redirect URI. */
export interface Login {
  callback: URL
  visits: Visit[]
  verifier: string
  state: string
  jar: CookieJar
}

/**
 * Logs the fixture's next user in for `clientId` (consent allowed unless told otherwise) and
 * returns where the browser was sent; `params` changes or removes request parameters.
 */
export async function login(
  stack: BrokerFront,
  o: {
    clientId: string
    redirectUri: string
    server?: string
    scope?: string
    state?: string
    params?: Record<string, string | undefined>
    choices?: Choices
    jar?: CookieJar
    expectRedirect?: string
  },
): Promise<Login> {
  const { verifier, challenge } = pkce()
  const params = { ...authParams(stack, { ...o, challenge }), ...o.params }
  const jar = o.jar ?? new Map<string, string>()
  const { callback, visits } = await brokerLogin(authorizeUrl(stack, params), {
    redirectUri: o.expectRedirect ?? o.redirectUri,
    choices: o.choices,
    jar,
  })
  return { callback, visits, verifier, state: String(params.state), jar }
}

/** POSTs a form to /token. */
export function token(
  stack: BrokerFront,
  form: Record<string, string | undefined>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const body = new URLSearchParams()
  for (const [k, v] of Object.entries(form)) if (v !== undefined) body.append(k, v)
  return send(`${stack.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: body.toString(),
  })
}

/** Exchanges a login's code as its client would. */
export function exchange(
  stack: BrokerFront,
  l: Login,
  o: { clientId: string; redirectUri: string; server?: string },
  over: Record<string, string | undefined> = {},
): Promise<Answer> {
  return token(stack, {
    grant_type: 'authorization_code',
    code: l.callback.searchParams.get('code') ?? '',
    redirect_uri: o.redirectUri,
    client_id: o.clientId,
    code_verifier: l.verifier,
    resource: stack.endpoint(o.server ?? 'notes'),
    ...over,
  })
}

/** A refresh as `clientId` would send it. */
export function refresh(
  stack: BrokerStack,
  refreshToken: string,
  clientId: string,
  over: Record<string, string | undefined> = {},
): Promise<Answer> {
  return token(stack, {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
    client_id: clientId,
    ...over,
  })
}

/** The status an MCP `initialize` with this bearer token gets at `server`. */
export async function useAt(
  stack: BrokerStack,
  server: string,
  accessToken: string,
): Promise<number> {
  const res = await request(stack.endpoint(server), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'refusals', version: '0' },
      },
    }),
  })
  await res.body.dump()
  if (res.statusCode === 200) {
    const session = res.headers['mcp-session-id']
    if (typeof session === 'string') {
      const end = await request(stack.endpoint(server), {
        method: 'DELETE',
        headers: {
          authorization: `Bearer ${accessToken}`,
          'mcp-session-id': session,
          'mcp-protocol-version': '2025-06-18',
        },
      })
      await end.body.dump()
    }
  }
  return res.statusCode
}

/** The codes, refresh tokens and grants the broker holds (consumed ones included), by store key. */
export interface Issued {
  codes: string[]
  refreshTokens: string[]
  grants: string[]
}

/** Nothing at all: what `issuedSince` answers when a refusal issued nothing. */
export const NOTHING_ISSUED: Issued = { codes: [], refreshTokens: [], grants: [] }

/** What the broker holds now: a snapshot to hand to `issuedSince`. */
export async function issued(stack: BrokerStack): Promise<Issued> {
  const held = async (model: string) =>
    (await stack.store.keys(`oidc:${model}:`))
      .filter((k) => /^oidc:[A-Za-z]+:[^:]+$/.test(k))
      .sort()
  return {
    codes: await held('AuthorizationCode'),
    refreshTokens: await held('RefreshToken'),
    grants: await held('Grant'),
  }
}

/**
 * What the broker holds now that it did not hold at `before`: records issued since, by key.
 * Not a count: codes of earlier tests expire in real time (codeTtl), so a count read twice can
 * drop under a slow machine; the set of new keys cannot, and still shows any record issued.
 */
export async function issuedSince(stack: BrokerStack, before: Issued): Promise<Issued> {
  const now = await issued(stack)
  const fresh = (was: string[], is: string[]) => is.filter((k) => !was.includes(k))
  return {
    codes: fresh(before.codes, now.codes),
    refreshTokens: fresh(before.refreshTokens, now.refreshTokens),
    grants: fresh(before.grants, now.grants),
  }
}

/** The HTML page of the gateway a refused request must end on: no redirect, no framing. */
export function assertGatewayPage(
  assert: typeof import('node:assert/strict'),
  res: Answer,
  status: number,
  what: string,
): void {
  assert.equal(res.status, status, `${what}: status (${res.text.slice(0, 200)})`)
  assert.equal(res.location, undefined, `${what}: no redirect`)
  assert.match(String(res.headers['content-type']), /^text\/html/, `${what}: an HTML page`)
  assert.match(
    String(res.headers['content-security-policy']),
    /frame-ancestors 'none'/,
    `${what}: not framable`,
  )
}

/**
 * Resolves once the clock is in a later second than when called. A user signed out everywhere
 * has every token issued until then refused, that second included (JWT `iat` is in seconds):
 * a test that logs the user in again after a sign-out waits for the next second first.
 */
export async function nextSecond(): Promise<void> {
  const now = Math.floor(Date.now() / 1000)
  while (Math.floor(Date.now() / 1000) <= now)
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 1))
}
