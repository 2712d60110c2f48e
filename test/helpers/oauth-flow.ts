import { createHash, randomBytes } from 'node:crypto'
import { request as undiciRequest } from 'undici'

/**
 * Longest wait for one whole request, in ms: its answer's headers and its body. undici's own
 * waits are 300 s, node --test's file timeout in CI: a request nobody answers would fail the
 * whole file there with no message. Here it fails its test, naming the method and URL. A
 * bound, not a timing assertion: every answer these helpers wait for comes in milliseconds.
 */
export const HTTP_WAIT_MS = 30_000

/**
 * Options of a `before` that starts an IdP or a gateway: a set-up that hangs fails its suite
 * with the hook named, in a minute, instead of the whole file at node --test's timeout.
 */
export const SETUP = { timeout: 60_000 }

/**
 * How long after a test file loads these helpers it writes what it is waiting on to stderr
 * (which the runner shows with the file's result), below node --test's 300 s file timeout in CI.
 * A file once hung there with nothing reported (scopes.test.js, ci28c): the next one says which
 * connections and timers were open and how much CPU the file had used (near all of it: a busy
 * loop), or, if nothing is written, that its event loop never ran again.
 */
export const HANG_REPORT_MS = 240_000

setTimeout(() => {
  const report = process.report.getReport() as unknown as {
    resourceUsage: { userCpuSeconds: number; kernelCpuSeconds: number }
    libuv: { type: string; is_active: boolean; is_referenced: boolean }[]
  }
  const open = report.libuv.filter((h) => h.is_active && h.is_referenced)
  process.stderr.write(
    `still running after ${HANG_REPORT_MS} ms: ${JSON.stringify({ userCpuSeconds: report.resourceUsage.userCpuSeconds, kernelCpuSeconds: report.resourceUsage.kernelCpuSeconds, open })}\n`,
  )
}, HANG_REPORT_MS).unref()

type Init = NonNullable<Parameters<typeof undiciRequest>[1]>
type Response = Awaited<ReturnType<typeof undiciRequest>>

/** Whether `err` is the end of a bounded wait: undici's headers or body timeout, or the signal's. */
function timedOut(err: unknown): boolean {
  const { name, code } = err as { name?: string; code?: string }
  return (
    name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT'
  )
}

/** `err` as the error of a request that timed out, naming it; any other error as it is. */
function named(err: unknown, init: Init, url: string | URL, ms: number): unknown {
  if (!timedOut(err)) return err
  return new Error(`${init.method ?? 'GET'} ${String(url)}: no answer within ${ms} ms`, {
    cause: err,
  })
}

/**
 * undici's request, bounded: the answer's headers and its whole body within `wait` ms
 * ({@link HTTP_WAIT_MS}); a timeout, while waiting for the headers or reading the body, names
 * the method and URL. A caller's own `signal` or `headersTimeout` replaces the bound.
 */
export async function request(
  url: string | URL,
  init: Init = {},
  wait: number = HTTP_WAIT_MS,
): Promise<Response> {
  const ms = init.headersTimeout ?? wait
  let res: Response
  try {
    res = await undiciRequest(url, {
      headersTimeout: wait,
      bodyTimeout: wait,
      signal: AbortSignal.timeout(wait),
      ...init,
    })
  } catch (err) {
    throw named(err, init, url, ms)
  }
  // The body's reads throw as the request does: a stalled body names its request too.
  const body = res.body
  const read =
    <A extends unknown[], T>(f: (...args: A) => Promise<T>) =>
    async (...args: A): Promise<T> => {
      try {
        return await f(...args)
      } catch (err) {
        throw named(err, init, url, wait)
      }
    }
  body.text = read(body.text.bind(body))
  body.json = read(body.json.bind(body))
  body.arrayBuffer = read(body.arrayBuffer.bind(body))
  body.dump = read(body.dump.bind(body))
  return res
}

/** The authorization server metadata fields the helpers use. */
export interface Discovery {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  registration_endpoint: string
  jwks_uri: string
  [key: string]: unknown
}

/** Token endpoint response (RFC 6749 §5.1). */
export interface TokenResponse {
  access_token: string
  token_type: string
  expires_in: number
  scope?: string
  refresh_token?: string
}

/** Fetches `{issuer}/.well-known/openid-configuration`. */
export async function discover(issuer: string): Promise<Discovery> {
  const res = await request(`${issuer}/.well-known/openid-configuration`)
  if (res.statusCode !== 200) throw new Error(`discovery failed: ${res.statusCode}`)
  return (await res.body.json()) as Discovery
}

/**
 * RFC 7591 registration of a public client (PKCE, no secret); returns its client_id.
 * `extra` adds metadata, e.g. `{ application_type: 'native' }` as the MCP SDK sends.
 */
export async function registerPublicClient(
  issuer: string,
  redirectUri: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const { registration_endpoint: endpoint } = await discover(issuer)
  const res = await request(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'oauth-flow test client',
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...extra,
    }),
  })
  const body = (await res.body.json()) as { client_id?: string }
  if (res.statusCode !== 201 || !body.client_id) {
    throw new Error(`registration failed: ${res.statusCode} ${JSON.stringify(body)}`)
  }
  return body.client_id
}

/**
 * Authorization code + PKCE (S256) through the dev IdP's automatic login/consent: follows
 * redirects by hand with a cookie jar until the redirect to `redirectUri`, then exchanges
 * the code at the token endpoint.
 */
export async function authorizationCodeFlow(o: {
  issuer: string
  clientId: string
  redirectUri: string
  resource: string
  scope: string
  /** Extra authorization request parameters, e.g. `{ prompt: 'consent' }`. */
  params?: Record<string, string>
  /** Whom to pick on the dev IdP's "Sign in as" page (several users). */
  user?: string
  /** Cookies carried across flows, as one browser would. */
  jar?: CookieJar
}): Promise<TokenResponse> {
  const meta = await discover(o.issuer)
  const verifier = randomBytes(32).toString('base64url')
  const state = randomBytes(16).toString('base64url')
  const authorize = new URL(meta.authorization_endpoint)
  authorize.search = new URLSearchParams({
    response_type: 'code',
    client_id: o.clientId,
    redirect_uri: o.redirectUri,
    scope: o.scope,
    resource: o.resource,
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ...o.params,
  }).toString()

  const callback = await followToRedirectUri(authorize.href, o.redirectUri, {
    user: o.user,
    jar: o.jar,
  })
  const error = callback.searchParams.get('error')
  if (error) {
    const description = callback.searchParams.get('error_description')
    throw new Error(`authorization failed: ${error} ${description}`)
  }
  if (callback.searchParams.get('state') !== state) throw new Error('state mismatch')
  const code = callback.searchParams.get('code')
  if (!code) throw new Error(`no code in ${callback.href}`)

  return tokenRequest(meta.token_endpoint, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: o.redirectUri,
    client_id: o.clientId,
    code_verifier: verifier,
    resource: o.resource,
  })
}

/** POSTs a form to the token endpoint; throws with the OAuth error on non-200. */
export async function tokenRequest(
  endpoint: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<TokenResponse> {
  const res = await request(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  })
  const body = (await res.body.json()) as TokenResponse & { error?: string }
  if (res.statusCode !== 200) {
    throw new Error(`token request failed: ${res.statusCode} ${JSON.stringify(body)}`)
  }
  return body
}

/** Cookies by name, shared by the requests of one (simulated) browser. */
export type CookieJar = Map<string, string>

/** What the dev IdP's "Sign in as" form holds: where it posts, its token, its users. */
export interface SignInForm {
  action: string
  csrf: string
  users: string[]
}

/** Reads the sign-in form out of the dev IdP's page, or undefined if `html` has none. */
export function signInForm(html: string): SignInForm | undefined {
  const action = /<form method="post" action="([^"]+)">/.exec(html)?.[1]
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1]
  if (!action || !csrf) return undefined
  const users = [...html.matchAll(/name="sub" value="([^"]+)"/g)].map((m) => m[1]!)
  return { action, csrf, users }
}

/**
 * Follows 3xx responses, carrying cookies, until a Location starts with `redirectUri`. On
 * the dev IdP's "Sign in as" page, posts the button of `o.user` as a browser would.
 */
export async function followToRedirectUri(
  start: string,
  redirectUri: string,
  o: { user?: string; jar?: CookieJar } = {},
): Promise<URL> {
  const jar = o.jar ?? new Map<string, string>()
  let url = start
  let form: Record<string, string> | undefined
  for (let hop = 0; hop < 12; hop++) {
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
    const res = await request(
      url,
      form
        ? {
            method: 'POST',
            body: new URLSearchParams(form).toString(),
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              ...(cookie ? { cookie } : {}),
            },
          }
        : { headers: cookie ? { cookie } : {} },
    )
    form = undefined
    storeCookies(jar, res.headers['set-cookie'])
    const text = await res.body.text()
    const page = res.statusCode === 200 ? signInForm(text) : undefined
    if (page && o.user !== undefined) {
      form = { csrf: page.csrf, sub: o.user }
      url = new URL(page.action, url).href
      continue
    }
    const location = res.headers.location
    if (res.statusCode < 300 || res.statusCode >= 400 || typeof location !== 'string') {
      throw new Error(`authorization stopped at ${url}: ${res.statusCode} ${text}`)
    }
    const next = new URL(location, url)
    if (next.href.startsWith(redirectUri)) return next
    url = next.href
  }
  throw new Error('too many redirects')
}

// Cookie paths are ignored: names are unique per step and the newest value wins.
export function storeCookies(jar: CookieJar, header: string | string[] | undefined): void {
  for (const line of [header ?? []].flat()) {
    const [pair = '', ...attributes] = line.split(';')
    const eq = pair.indexOf('=')
    const name = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    const expires = attributes.find((a) => a.trim().toLowerCase().startsWith('expires='))
    const expired = expires && Date.parse(expires.split('=')[1] ?? '') <= Date.now()
    if (!value || expired) jar.delete(name)
    else jar.set(name, value)
  }
}
