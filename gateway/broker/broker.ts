import { readFileSync } from 'node:fs'
import { Hono, type Context } from 'hono'
import type Provider from 'oidc-provider'
import type { Logger } from 'pino'
import type { Resources } from '../auth/resources.js'
import { ConfigError, type ConfigProblem } from '../config/errors.js'
import type { GatewayConfig } from '../config/schema.js'
import type { SecretRef } from '../config/secrets.js'
import type { AuditLog } from '../observability/audit.js'
import type { PolicyStore } from '../policy/store.js'
import { withLock } from '../store/lock.js'
import type { Sealer } from '../store/sealed.js'
import type { Store } from '../store/store.js'
import { Accounts } from './accounts.js'
import { pruneClients } from './adapter.js'
import { createCimdFetch, type CimdFetch } from './cimd-fetch.js'
import { clientPolicy } from './client-policy.js'
import { firstPartyClient, type FirstPartyClient } from './first-party.js'
import { mountInteractions, UPSTREAM_CALLBACK_PATH } from './interactions.js'
import type { BrokerKeys } from './keys.js'
import { mountProvider } from './mount.js'
import { loadOidcModule } from './oidc-module.js'
import { BROKER_ROUTES, brokerConfiguration, brokerSessionCookie } from './provider.js'
import { registrationGuard } from './registration-guard.js'
import { revocationPolicy, revokeAccessTokens } from './revoke-access.js'
import type { RevocationList } from './revocations.js'
import { signInGuard } from './sign-in-guard.js'
import { oneResourcePerCode } from './token-resource.js'
import { createUpstream, type Upstream } from './upstream.js'

/** A running broker: the authorization server the gateway is, federating to the upstream IdP. */
export interface Broker {
  issuer: string
  /** Its routes (authorization server endpoints, login and consent), for the gateway's app. */
  routes: Hono
  /** Users it logged in, with their upstream tokens (the `upstreamToken` credential source). */
  accounts: Accounts
  /** The gateway's own client, which the account page signs users in with. */
  firstParty: FirstPartyClient
  /**
   * Ends a browser's sign-in at the broker, found by its session cookie (`cookie` reads the
   * request's cookies): the next authorization in that browser goes to the upstream again (the
   * account page's sign-out).
   */
  endBrowserSession(cookie: (name: string) => string | undefined): Promise<void>
  /** Why it cannot serve yet (the upstream not discovered), if it cannot. */
  problem(): string | undefined
  close(): Promise<void>
}

/**
 * Starts the broker: the upstream client (discovery), the client policy and CIMD fetcher, the
 * accounts (upstream tokens sealed at rest), oidc-provider over the shared store, and the
 * routes. With a Redis store (several replicas) the signing and cookie keys and the sealing
 * keys must be configured: generated ones would differ between replicas.
 * @throws ConfigError
 */
export async function startBroker(o: {
  config: GatewayConfig
  issuer: string
  keys: BrokerKeys
  store: Store
  /** Seals upstream tokens at rest (the gateway's one sealer). */
  sealer: Sealer
  resources: Resources
  policy: PolicyStore
  audit: AuditLog
  /** The gateway's logger: the broker binds its own component names to it. */
  log: Logger
  readSecret: (ref: SecretRef, path: string) => string
  /** The address a registration or sign-in counts against (the direct peer, or X-Forwarded-For from a trusted proxy). */
  peer: (c: Context) => string | undefined
  /** The clock of the sign-in and registration counts' windows, epoch ms (tests hold it mid-window). */
  signInClock?: () => number
  /** Revoked grants and tokens (started before the gateway's verifier, which consults it). */
  revocations: RevocationList
}): Promise<Broker> {
  const { config, issuer } = o
  // Its parts log as components of their own: a child of this one would write `component` twice
  // in one line (pino repeats bindings), which a strict JSON reader refuses (the line is lost).
  const log = o.log.child({ component: 'broker' })
  const broker = config.auth.broker!
  const shared = config.store.kind !== 'memory'
  if (shared) requireSharedKeys(config)
  const sealer = o.sealer
  const callback = `${issuer.replace(/\/$/, '')}${UPSTREAM_CALLBACK_PATH}`
  const upstream: Upstream = await createUpstream(broker.upstream, {
    redirectUri: callback,
    readSecret: o.readSecret,
    log: o.log.child({ component: 'upstream' }),
    txTtl: broker.loginTtl,
    // A login transaction is single use on every replica.
    claimTx: (state, ttlMs) =>
      o.store.set(`broker:tx-used:${state}`, '1', { ifAbsent: true, ttlMs }),
  })
  const accounts = new Accounts({
    store: o.store,
    sealer,
    upstream,
    recheckInterval: broker.upstream.recheckInterval,
    ttl: broker.refreshTokenTtl,
    withLock: (key, fn) =>
      withLock(o.store, key, broker.upstream.recheckLock, fn, { waitMs: config.store.lockWait }),
    log,
    signedOut: async (sub, cause) => {
      await o.revocations.revokeSubject(sub)
      o.audit.record({
        sub,
        iss: issuer,
        clientId: undefined,
        server: '',
        method: 'oauth/refresh',
        decision: 'deny',
        rule:
          cause === 'recheck'
            ? 'the upstream refused the user at re-check'
            : "the upstream refused the user at a refresh of their upstream token (a server's credential)",
        outcome: 'signed out everywhere: every access token and grant issued until now is refused',
      })
    },
  })
  /** Grants whose listing is not counted against the user's share (ProviderDeps.uncounted). */
  const counted = new Set<string>()
  const firstParty = firstPartyClient(issuer, o.keys.cookieKeys)
  // Nobody else may register the gateway's own callbacks: codes meant for the gateway go there.
  const clients = clientPolicy(broker.registration, {
    ownCallbacks: [callback, firstParty.redirectUri],
  })
  const cimdFetch: CimdFetch = createCimdFetch({
    allowPrivate: broker.cimd.allowPrivate,
    allowHosts: broker.cimd.allowHosts,
    timeoutMs: broker.cimd.timeout,
    maxBytes: broker.cimd.maxBytes,
    maxConcurrent: broker.cimd.maxConcurrent,
    ca: broker.cimd.caFile ? readFileSync(broker.cimd.caFile, 'utf8') : undefined,
    log: o.log.child({ component: 'cimd' }),
  })
  const oidc = await loadOidcModule(log)
  const provider: Provider = new oidc.Provider(
    issuer,
    brokerConfiguration({
      oidc,
      issuer,
      config: broker,
      keys: o.keys,
      store: o.store,
      accounts,
      resources: o.resources,
      policy: o.policy,
      log,
      clients,
      cimdFetch: cimdFetch as never,
      cimdAllowed: () => true,
      onRevoked: (sub, reason) =>
        o.audit.record({
          sub,
          iss: issuer,
          clientId: undefined,
          server: '',
          method: 'oauth/refresh',
          decision: 'deny',
          rule: reason,
          outcome: 'grant revoked',
        }),
      firstParty,
      grantTag: (grantId) => o.revocations.grantTag(grantId),
      uncounted: counted,
      revocationAllowed: revocationPolicy(o.revocations, counted),
      grantRevoked: async ({ grantId, accountId, clientId }) => {
        // A reused code or refresh token counts against the user's share as /revoke does (it
        // counted there already): using one's own refresh token twice revokes a grant as
        // cheaply. Past the share the user's tokens until now are refused by their one entry
        // instead of one more per grant.
        const within =
          counted.delete(grantId) ||
          accountId === undefined ||
          (await o.revocations.spend(accountId))
        if (within) await o.revocations.revokeGrant(grantId)
        else await o.revocations.revokeSubject(accountId!)
        o.audit.record({
          sub: accountId ?? '',
          iss: issuer,
          clientId,
          server: '',
          method: 'oauth/revoke',
          decision: 'deny',
          rule: 'authorization server',
          outcome: within
            ? `grant ${grantId.slice(0, 8)} revoked; its access tokens are refused`
            : `grant ${grantId.slice(0, 8)} revoked past the user's share of revocations; every access token of theirs until now is refused`,
        })
      },
    }),
  )
  observe(provider, o.audit, issuer, log)
  provider.use(oneResourcePerCode(provider))
  revokeAccessTokens(provider, {
    issuer,
    keys: o.keys,
    revocations: o.revocations,
    clockTolerance: config.auth.clockTolerance,
    retryAfter: broker.accessTokenTtl,
    audit: o.audit,
    counted,
  })

  const routes = new Hono()
  // RFC 7591 from a browser page (MCP Inspector): registration needs no credentials, so any
  // origin may call it; the guard bounds size, rate and count before oidc-provider reads it.
  routes.use(BROKER_ROUTES.registration, async (c, next) => {
    if (c.req.method === 'OPTIONS')
      return new Response(null, {
        status: 204,
        headers: {
          'access-control-allow-origin': '*',
          'access-control-allow-methods': 'POST',
          'access-control-allow-headers': 'content-type',
          'access-control-max-age': '600',
        },
      })
    await next()
    c.res.headers.set('access-control-allow-origin', '*')
  })
  routes.post(
    BROKER_ROUTES.registration,
    registrationGuard({
      store: o.store,
      maxBodyBytes: broker.registration.maxBodyBytes,
      maxClients: broker.registration.maxClients,
      perAddressPerMinute: broker.registration.perAddressPerMinute,
      perNetworkPerMinute: broker.registration.perNetworkPerMinute,
      perMinute: broker.registration.perMinute,
      retryAfterWhenFull: broker.registration.retryAfterWhenFull,
      recount: () => pruneClients(o.store),
      peer: o.peer,
      now: o.signInClock,
    }),
  )
  // Authorization requests and trips upstream store state for anyone who asks: bounded per
  // address, per IPv6 /48 and in all, so no one fills the store (sign-in-guard.ts).
  const admitSignIn = signInGuard({
    store: o.store,
    perAddressPerMinute: broker.signIn.perAddressPerMinute,
    perNetworkPerMinute: broker.signIn.perNetworkPerMinute,
    perMinute: broker.signIn.perMinute,
    peer: o.peer,
    now: o.signInClock,
  })
  mountProvider(routes, provider, issuer, config.limits.bodyTimeout, admitSignIn)
  mountInteractions(routes, {
    provider,
    issuer,
    config,
    upstream,
    accounts,
    store: o.store,
    policy: o.policy,
    resources: o.resources,
    cookieKeys: o.keys.cookieKeys,
    audit: o.audit,
    log,
    firstPartyId: firstParty.clientId,
    admitSignIn,
  })
  log.info(
    {
      issuer,
      upstream: broker.upstream.issuer ?? broker.upstream.endpoints?.authorization,
      callback,
      registration: broker.registration.enabled,
      cimd: broker.cimd.enabled,
    },
    'OAuth broker ready',
  )
  // Readiness follows the shared store too: without it no login, token or refresh works. The
  // in-memory store is this process's own Map and cannot be down: nothing to ping.
  let storeDown = false
  const ping = shared
    ? setInterval(
        () =>
          void o.store.ping().then(
            (up) => (storeDown = !up),
            () => (storeDown = true),
          ),
        config.store.pingInterval,
      ).unref()
    : undefined
  return {
    issuer,
    routes,
    accounts,
    firstParty,
    async endBrowserSession(cookie) {
      const id = cookie(brokerSessionCookie(issuer))
      if (id) await (await provider.Session.find(id))?.destroy()
    },
    problem: () =>
      upstream.problem() ??
      (storeDown ? 'the shared store (Redis) cannot be reached' : undefined) ??
      o.revocations.problem(),
    async close() {
      clearInterval(ping)
      await o.revocations.close()
      await upstream.close()
      await cimdFetch.close()
    },
  }
}

/**
 * With a shared store every replica must sign and verify tokens, cookies and sealed values
 * alike: keys generated at start would differ between replicas. Names every missing one at once.
 * @throws ConfigError
 */
export function requireSharedKeys(config: GatewayConfig): void {
  const broker = config.auth.broker!
  const missing = (path: string, why: string): ConfigProblem => ({
    file: 'configuration',
    path,
    message: `required with a shared store: ${why}`,
  })
  const problems = [
    broker.signingKeys === undefined &&
      missing(
        'auth.broker.signingKeys',
        "every replica signs and verifies the broker's tokens with these keys (a private JWKS)",
      ),
    broker.cookieKeys === undefined &&
      missing(
        'auth.broker.cookieKeys',
        'every replica verifies the browser cookies the others signed (a JSON list of strings of 32 characters or more)',
      ),
    config.secrets === undefined &&
      missing(
        'secrets',
        'upstream tokens are sealed at rest with these keys, and every replica opens them',
      ),
  ].filter((p): p is ConfigProblem => p !== false)
  if (problems.length > 0) throw new ConfigError(problems)
}

/** Audit lines for what the authorization server decides on its own (grants revoked, refusals). */
function observe(provider: Provider, audit: AuditLog, issuer: string, log: Logger): void {
  const record = (
    method: string,
    decision: 'allow' | 'deny',
    outcome: string,
    clientId?: string,
    sub = '',
  ) =>
    audit.record({
      sub,
      iss: issuer,
      clientId,
      server: '',
      method,
      decision,
      rule: 'authorization server',
      outcome,
    })
  // A revoked grant is audited where it is listed (startBroker's grantRevoked), on every path.
  provider.on('grant.error', (ctx, err: { error?: string; error_description?: string }) =>
    record(
      'oauth/token',
      'deny',
      `${err.error}: ${err.error_description ?? ''}`,
      ctx.oidc?.client?.clientId,
    ),
  )
  provider.on('authorization.error', (ctx, err: { error?: string; error_description?: string }) =>
    record(
      'oauth/authorize',
      'deny',
      `${err.error}: ${err.error_description ?? ''}`,
      ctx.oidc?.client?.clientId,
    ),
  )
  provider.on(
    'registration_create.success',
    (_ctx, client: { clientId: string; clientName?: string }) =>
      record(
        'oauth/register',
        'allow',
        `registered ${client.clientName ?? ''}`.trim(),
        client.clientId,
      ),
  )
  provider.on(
    'registration_create.error',
    (_ctx, err: { error?: string; error_description?: string }) =>
      record('oauth/register', 'deny', `${err.error}: ${err.error_description ?? ''}`),
  )
  provider.on('revocation.error', (ctx, err: { error?: string }) => {
    // A JWT access token: revoked by revoke-access.ts, which audits it.
    if (err.error !== 'unsupported_token_type')
      record('oauth/revoke', 'deny', String(err.error), ctx.oidc?.client?.clientId)
  })
  provider.on('server_error', (_ctx, err: Error) =>
    log.error({ err }, 'authorization server error'),
  )
  const koa = provider as unknown as import('node:events').EventEmitter
  koa.on('error', (err: Error) => log.error({ err }, 'authorization server request failed'))
}
