import { generateKeyPairSync, randomBytes } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import Provider, { type AccountClaims, type Configuration } from 'oidc-provider'

type KoaContext = Parameters<Parameters<Provider['use']>[0]>[0]
import { followToRedirectUri, type CookieJar } from './oauth-flow.js'
import { rsaSigningKey } from './rsa-keys.js'

/** The gateway's callback URL the fixtures' clients are registered with (nothing listens there). */
export const UPSTREAM_CALLBACK = 'http://127.0.0.1:9/oauth/upstream/callback'

/** Someone who can sign in at a fixture: `id` is the account id (`sub`), `claims` the rest. */
export interface IdpUser {
  id: string
  claims?: Record<string, unknown>
}

/** A client the gateway is pre-registered as, with what it authenticates with. */
export interface IdpClient {
  clientId: string
  method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'
  clientSecret?: string
  /** private_key_jwt: the gateway's private key (PKCS#8 PEM) and its key id. */
  privateKeyPem?: string
  kid?: string
}

/** Test-controlled misbehaviour. One-shot knobs clear themselves when used; reset() clears all. */
export interface Knobs {
  /** Every request is answered 503 (an outage; discovery included). */
  down?: boolean
  /** The next callback carries this `iss` instead of the issuer (one-shot). */
  wrongIss?: string
  /** The next sign-in is declined by the user: callback with error=access_denied (one-shot). */
  deny?: boolean
  /** Every token request waits this long first (ended early by close()). */
  tokenDelayMs?: number
  /** Every userinfo request waits this long first (ended early by close()). */
  userinfoDelayMs?: number
  /** The next token request is answered 307 to this URL (one-shot). */
  tokenRedirect?: string
  /** The next token response is a JSON body of this many bytes (one-shot); chunked: no Content-Length. */
  tokenOversize?: { bytes: number; chunked?: boolean }
  /** Rewrites the next successful token response body (one-shot). */
  tamperToken?: (
    body: Record<string, unknown>,
  ) => Record<string, unknown> | Promise<Record<string, unknown>>
  /** Rewrites the next successful userinfo body (one-shot). */
  tamperUserinfo?: (body: Record<string, unknown>) => Record<string, unknown>
}

/** A running upstream IdP fixture. */
export interface UpstreamIdp {
  /** OpenID Connect (discovery, ID tokens), or plain OAuth 2.0 (endpoints, userinfo only). */
  kind: 'oidc' | 'oauth2'
  issuer: string
  /** Where it listens (http(s)://127.0.0.1:<port>): the issuer's origin unless `publicOrigin` moved it. */
  listening: string
  /** Endpoint URLs, for a client configured without discovery. */
  endpoints: { authorization: string; token: string; userinfo: string }
  clients: Record<string, IdpClient>
  knobs: Knobs
  /** Requests seen: at the token endpoint, at userinfo, and carrying a `resource` parameter. */
  counts: { token: number; userinfo: number; resource: number }
  /** Who signs in next when the request has no matching login_hint (stays until changed). */
  nextUser(id: string): void
  /** Replaces a user's claims (their roles or groups changed upstream). */
  updateUser(id: string, claims: Record<string, unknown>): void
  /** The user can no longer sign in or refresh (an Entra "block sign-in"). */
  disable(id: string): void
  /** Revokes every grant the user gave (refresh → invalid_grant, userinfo → 401). */
  revoke(id: string): Promise<void>
  /** Re-signs an ID token after `edit`, with the fixture's key or (foreign) another key under the same kid. */
  forgeIdToken(
    idToken: string,
    edit?: (claims: Record<string, unknown>) => void,
    o?: { foreign?: boolean },
  ): Promise<string>
  /** A browser: follows `url` through the auto-login to the gateway's callback and returns that URL. */
  browse(url: string, jar?: CookieJar): Promise<URL>
  /** Clears knobs and counts, re-enables users, restores their claims and the default next user. */
  reset(): void
  close(): Promise<void>
}

/** What makes one fixture like one IdP. */
export interface Profile {
  /** The redirect URI of the registered apps (default UPSTREAM_CALLBACK): the broker's own callback. */
  callback?: string
  kind: 'oidc' | 'oauth2'
  /** Issuer path below the origin ('' or e.g. '/<tenant>/v2.0'). */
  prefix: string
  /**
   * Where clients reach the fixture, given the port it listens on: a proxy's origin, or a name
   * only the gateway's `connectTo` resolves (default http(s)://127.0.0.1:<port>). oidc-provider
   * then believes X-Forwarded-Proto and -Host, as behind a proxy.
   */
  publicOrigin?(port: number): string
  /** Serve https with this certificate and key (PEM) instead of plain http. */
  tls?: { cert: string; key: string }
  /** Where userinfo is served below the prefix, when a profile route serves it (GitHub's /user). */
  userinfoPath?: string
  users: IdpUser[]
  clients: Record<string, IdpClient>
  /** The provider configuration: the common parts are filled in by startIdp. */
  configuration(s: ProfileState): Configuration
  /** Claims a user's tokens carry beyond `sub` and their own. */
  extraClaims?(user: IdpUser, issuer: string): Record<string, unknown>
  /** A token request body to refuse before oidc-provider sees it: the error body, or undefined. */
  checkTokenRequest?(
    form: URLSearchParams,
    tokenEndpoint: string,
  ): Record<string, string> | undefined
  /** Extra routes (GitHub's /user); resolve true when answered. */
  route?(ctx: KoaContext, s: ProfileState): Promise<boolean>
  /** An authorization request's URL, editable before oidc-provider reads it. */
  editAuthorize?(url: URL): void
  /** A callback redirect's URL, editable (GitHub sends no `iss`). */
  editCallback?(url: URL): void
  /** Consent was given on grant `grantId` with these authorization parameters. */
  consented?(grantId: string, params: Record<string, unknown>, s: ProfileState): void
}

/** Fixture state profiles read. */
export interface ProfileState {
  provider: () => Provider
  users: Map<string, IdpUser>
  disabled: Set<string>
  /** Grants allowed refresh tokens (Google: access_type=offline with consent). */
  offline: Set<string>
  account(id: string): { accountId: string; claims: () => AccountClaims } | undefined
}

/** The gateway's client key pair for private_key_jwt: its PEM and the public JWK the IdP keeps. */
export async function clientKeyPair(kid: string): Promise<{ pem: string; jwk: JWK }> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return {
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } as JWK,
  }
}

/**
 * Starts a real oidc-provider on 127.0.0.1:0 shaped by `profile`, with automatic sign-in (no
 * pages: the user is the request's login_hint, else nextUser, else the first) and consent to
 * everything asked, and the knobs of {@link Knobs} on its token, userinfo and callback paths.
 */
export async function startIdp(profile: Profile): Promise<UpstreamIdp> {
  const callback = profile.callback ?? UPSTREAM_CALLBACK
  const server = (
    profile.tls ? https.createServer(profile.tls) : http.createServer()
  ) as http.Server
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const listening = `${profile.tls ? 'https' : 'http'}://127.0.0.1:${port}`
  const origin = profile.publicOrigin?.(port) ?? listening
  const issuer = `${origin}${profile.prefix}`
  const signing = { privateKey: await rsaSigningKey() }
  const kid = `idp-${randomBytes(4).toString('hex')}`
  const signingJwk = { ...(await exportJWK(signing.privateKey)), kid, alg: 'RS256', use: 'sig' }
  const users = new Map(profile.users.map((u) => [u.id, u]))
  const grantsOf = new Map<string, Set<string>>()
  const timers = new Set<() => void>()
  let chosen = profile.users[0]!.id
  let provider!: Provider

  const state: ProfileState = {
    provider: () => provider,
    users,
    disabled: new Set(),
    offline: new Set(),
    account(id) {
      const user = users.get(id)
      if (!user || state.disabled.has(id)) return undefined
      return {
        accountId: id,
        claims: () => ({ ...user.claims, ...profile.extraClaims?.(user, issuer), sub: id }),
      }
    },
  }
  const base = profile.configuration(state)
  provider = new Provider(issuer, {
    ...base,
    findAccount: (_ctx, id) => state.account(id),
    jwks: { keys: [signingJwk] } as Configuration['jwks'],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    pkce: { required: () => true },
    responseTypes: ['code'],
    interactions: { url: (_ctx, i) => `${profile.prefix}/interaction/${i.uid}` },
    renderError: (ctx, out) => {
      ctx.type = 'json'
      ctx.body = out
    },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: false },
      ...base.features,
    },
  })
  if (profile.publicOrigin) provider.proxy = true
  const path = (name: 'token' | 'userinfo' | 'authorization') =>
    (name === 'userinfo' ? profile.userinfoPath : undefined) ??
    base.routes?.[name] ??
    { token: '/token', userinfo: '/me', authorization: '/auth' }[name]
  const endpoints = {
    authorization: `${issuer}${path('authorization')}`,
    token: `${issuer}${path('token')}`,
    userinfo: `${issuer}${path('userinfo')}`,
  }
  const idp: UpstreamIdp = {
    kind: profile.kind,
    issuer,
    listening,
    endpoints,
    clients: profile.clients,
    knobs: {},
    counts: { token: 0, userinfo: 0, resource: 0 },
    nextUser: (id) => void (chosen = id),
    updateUser: (id, claims) => void users.set(id, { id, claims }),
    disable: (id) => void state.disabled.add(id),
    async revoke(id) {
      for (const grantId of grantsOf.get(id) ?? []) {
        await provider.RefreshToken.revokeByGrantId(grantId)
        await (await provider.Grant.find(grantId))?.destroy()
      }
    },
    async forgeIdToken(idToken, edit, o = {}) {
      const claims = { ...decodeJwt(idToken) } as Record<string, unknown>
      edit?.(claims)
      const key = o.foreign ? (await generateKeyPair('RS256')).privateKey : signing.privateKey
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key)
    },
    browse: (url, jar) => followToRedirectUri(url, callback, { jar }),
    reset() {
      for (const key of Object.keys(idp.knobs)) delete idp.knobs[key as keyof Knobs]
      idp.counts = { token: 0, userinfo: 0, resource: 0 }
      state.disabled.clear()
      chosen = profile.users[0]!.id
      for (const u of profile.users) users.set(u.id, u)
    },
    async close() {
      for (const stop of timers) stop()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }

  // Sign-in and consent without pages; knobs on the way out of oidc-provider.
  provider.use(async (ctx, next) => {
    if (ctx.path.startsWith('/interaction/')) return interact(ctx)
    if (ctx.path === path('userinfo')) {
      idp.counts.userinfo++
      if (idp.knobs.userinfoDelayMs !== undefined) await wait(idp.knobs.userinfoDelayMs)
    }
    if (!(profile.route && (await profile.route(ctx, state)))) await next()
    if (ctx.path === path('token') && ctx.status === 200 && idp.knobs.tamperToken) {
      const tamper = idp.knobs.tamperToken
      delete idp.knobs.tamperToken
      ctx.body = await tamper(ctx.body as Record<string, unknown>)
    }
    if (ctx.path === path('userinfo') && ctx.status === 200 && idp.knobs.tamperUserinfo) {
      const tamper = idp.knobs.tamperUserinfo
      delete idp.knobs.tamperUserinfo
      ctx.body = tamper(ctx.body as Record<string, unknown>)
    }
    const location = String(ctx.response.get('location') ?? '')
    if (location.startsWith(callback)) {
      const url = new URL(location)
      profile.editCallback?.(url)
      if (idp.knobs.wrongIss !== undefined) {
        url.searchParams.set('iss', idp.knobs.wrongIss)
        delete idp.knobs.wrongIss
      }
      ctx.redirect(url.href)
    }
  })

  async function interact(ctx: KoaContext): Promise<void> {
    const details = await provider.interactionDetails(ctx.req, ctx.res)
    const { prompt, params } = details
    let result: Parameters<Provider['interactionResult']>[2]
    if (idp.knobs.deny) {
      delete idp.knobs.deny
      result = { error: 'access_denied', error_description: 'The user declined to sign in.' }
    } else if (prompt.name === 'login') {
      const hint = typeof params.login_hint === 'string' ? params.login_hint : undefined
      const user = [...users.values()].find(
        (u) => hint !== undefined && (u.id === hint || u.claims?.email === hint),
      )
      result = { login: { accountId: user?.id ?? chosen } }
    } else {
      const accountId = details.session!.accountId
      const grant = details.grantId
        ? (await provider.Grant.find(details.grantId))!
        : new provider.Grant({ accountId, clientId: String(params.client_id) })
      const missing = prompt.details as {
        missingOIDCScope?: string[]
        missingOIDCClaims?: string[]
      }
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims)
      result = { consent: { grantId: await remember(accountId, grant, params) } }
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: true,
    })
    ctx.status = 303
    ctx.redirect(to)
  }

  async function remember(
    accountId: string,
    grant: InstanceType<Provider['Grant']>,
    params: Record<string, unknown>,
  ): Promise<string> {
    const grantId = await grant.save()
    grantsOf.set(accountId, (grantsOf.get(accountId) ?? new Set()).add(grantId))
    profile.consented?.(grantId, params, state)
    return grantId
  }

  // Request-side knobs and checks, before oidc-provider reads the request.
  const handle = provider.callback()
  server.on('request', (req: http.IncomingMessage & { body?: string }, res) => {
    void (async () => {
      if (idp.knobs.down)
        return void res.writeHead(503, { 'content-type': 'text/plain' }).end('down for maintenance')
      if (!req.url!.startsWith(`${profile.prefix}/`)) return void res.writeHead(404).end()
      const url = new URL(req.url!, origin)
      if (url.searchParams.has('resource')) idp.counts.resource++
      if (url.pathname === new URL(endpoints.authorization).pathname && profile.editAuthorize) {
        profile.editAuthorize(url)
        req.url = `${url.pathname}${url.search}`
      }
      // oidc-provider finds its mount path in originalUrl, as behind express's app.use(prefix, …).
      ;(req as { originalUrl?: string }).originalUrl = req.url
      req.url = req.url!.slice(profile.prefix.length)
      if (req.method === 'POST' && url.pathname === new URL(endpoints.token).pathname) {
        if (!(await tokenKnobs(req, res))) return
      }
      handle(req, res)
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err))
    })
  })

  /** Resolves false when the request was answered here. */
  async function tokenKnobs(
    req: http.IncomingMessage & { body?: string },
    res: http.ServerResponse,
  ): Promise<boolean> {
    idp.counts.token++
    const k = idp.knobs
    if (k.tokenDelayMs !== undefined) await wait(k.tokenDelayMs)
    if (k.tokenRedirect !== undefined) {
      const to = k.tokenRedirect
      delete k.tokenRedirect
      res.writeHead(307, { location: to }).end()
      return false
    }
    if (k.tokenOversize !== undefined) {
      const { bytes, chunked } = k.tokenOversize
      delete k.tokenOversize
      const empty = JSON.stringify({ access_token: 'x', token_type: 'Bearer', padding: '' })
      const body = JSON.stringify({
        access_token: 'x',
        token_type: 'Bearer',
        padding: 'p'.repeat(Math.max(0, bytes - empty.length)),
      })
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(chunked ? {} : { 'content-length': Buffer.byteLength(body) }),
      })
      if (chunked) for (let i = 0; i < body.length; i += 16384) res.write(body.slice(i, i + 16384))
      res.end(chunked ? undefined : body)
      return false
    }
    // oidc-provider reads an already-read body from req.body (its documented fallback).
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    req.body = Buffer.concat(chunks).toString('utf8')
    const form = new URLSearchParams(req.body)
    if (form.has('resource')) idp.counts.resource++
    const refusal = profile.checkTokenRequest?.(form, endpoints.token)
    if (refusal) {
      res.writeHead(refusal.status === '401' ? 401 : 400, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({ error: refusal.error, error_description: refusal.error_description }),
      )
      return false
    }
    return true
  }

  function wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const stop = () => {
        clearTimeout(timer)
        timers.delete(stop)
        resolve()
      }
      const timer = setTimeout(stop, ms)
      timers.add(stop)
    })
  }

  return idp
}
