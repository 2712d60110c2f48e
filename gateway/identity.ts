import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { JWTVerifyGetKey } from 'jose'
import { createAuthenticator, type Authenticator } from './auth/authenticator.js'
import { byIssuer } from './auth/issuers.js'
import { createIdpHttp, type IdpHttp } from './auth/idp-http.js'
import { createKeySource } from './auth/keys.js'
import type { Principal } from './auth/principal.js'
import type { Revocations } from './auth/revocation.js'
import { ConfigError } from './config/errors.js'
import type { GatewayConfig } from './config/schema.js'
import type { DevIdp, DevIdpOptions, ScopesFor } from './devidp/provider.js'
import type { Metrics } from './observability/metrics.js'

/** Scopes the dev IdP issues; the example policies use these. */
export const DEV_SCOPES = ['mcp:read', 'mcp:write', 'mcp:admin']

/** The broker as an issuer the gateway trusts: its own tokens, verified with its own keys. */
export interface BrokerIssuer {
  issuer: string
  getKey: JWTVerifyGetKey
  alg: string
  /** Its revoked grants and tokens: each of its tokens must name its grant, and is refused once revoked. */
  revocations: Revocations
  /** The upstream the broker logs users in at, when it is the dev IdP (the embedded default). */
  upstream: {
    issuer?: string
    clientId: string
    clientSecret: string | undefined
    redirectUri: string
  }
}

/** How the gateway authenticates: the issuer, its verifier, and whether its keys are in. */
export interface Identity {
  /**
   * The authorization server the metadata names: the broker when it runs, else the configured
   * issuer or the dev IdP; undefined only under --insecure-no-auth.
   */
  issuer: string | undefined
  /** Under --insecure-no-auth, one that answers every request with the anonymous principal. */
  authenticator: Authenticator
  devIdp: DevIdp | undefined
  /** Why the gateway is not ready yet, if it is not. */
  problem(): string | undefined
  close(): Promise<void>
}

/**
 * Sets up authentication: the configured issuer; else the dev IdP when allowed (never with
 * NODE_ENV=production); else, only with --insecure-no-auth, none. Key fetching starts now
 * and retries in the background, so readiness follows an IdP that comes up later.
 * @throws ConfigError when no issuer is configured and neither alternative is allowed
 */
export async function setUpIdentity(o: {
  config: GatewayConfig
  log: Logger
  metrics: Metrics
  resources: string[]
  /** The resource a token request without one gets (a gateway with one server). */
  defaultResource?: string
  insecureNoAuth?: boolean
  allowDevIdp?: boolean
  /** What roles allow under the live policy: the dev IdP grants no other scope. */
  scopesFor: ScopesFor
  devIdp?: Partial<DevIdpOptions>
  /** The broker, when `auth.broker` is configured: its tokens are accepted, and it is advertised. */
  broker?: BrokerIssuer
}): Promise<Identity> {
  const { config, log, broker } = o
  let issuer = config.auth.issuer
  if (issuer === undefined && broker === undefined && o.insecureNoAuth) {
    log.warn(
      'AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach this port acts with every scope',
    )
    const authenticator: Authenticator = { authenticate: async () => ANONYMOUS }
    return {
      issuer: undefined,
      authenticator,
      devIdp: undefined,
      problem: () => undefined,
      close: async () => {},
    }
  }
  let devIdp: DevIdp | undefined
  const devIdpUrl = `http://127.0.0.1:${config.devIdp.port}`
  // The dev IdP runs when nothing else issues tokens, or as the broker's upstream (the
  // embedded default), where it knows the broker as a registered app and has no DCR, like Entra.
  const devUpstream = broker !== undefined && broker.upstream.issuer === devIdpUrl
  if (devUpstream && config.devIdp.port === 0)
    // The broker names its upstream before the dev IdP listens: a port picked at start would
    // leave it asking http://127.0.0.1:0 for discovery every few seconds, never signing anyone in.
    throw new ConfigError([
      {
        file: 'configuration',
        path: 'devIdp.port',
        message:
          "the dev IdP is the broker's upstream here, so its port must be fixed: set MCP_EDGE_DEV_IDP_PORT (devIdp.port) to a free port, not 0",
      },
    ])
  if (issuer === undefined && (broker === undefined || devUpstream)) {
    if (!o.allowDevIdp || process.env.NODE_ENV === 'production') {
      throw new ConfigError([
        {
          file: 'configuration',
          path: 'auth.issuer',
          message:
            'no issuer configured: set auth.issuer (or MCP_EDGE_ISSUER) or auth.broker, or pass --insecure-no-auth for a loopback-only test',
        },
      ])
    }
    const webClients = devUpstream
      ? [
          {
            clientId: broker.upstream.clientId,
            clientSecret: broker.upstream.clientSecret ?? '',
            redirectUris: [broker.upstream.redirectUri],
          },
        ]
      : []
    // Imported here: the dev IdP (oidc-provider and its dependencies) is never loaded otherwise.
    const { startDevIdp } = await import('./devidp/provider.js')
    devIdp = await startDevIdp({
      port: config.devIdp.port,
      resources: o.resources,
      defaultResource: o.defaultResource,
      scopes: DEV_SCOPES,
      scopesFor: o.scopesFor,
      users: config.devIdp.users,
      webClients,
      registration: !devUpstream,
      logger: log.child({ component: 'dev-idp' }),
      ...o.devIdp,
    })
    issuer = devIdp.issuer
    log.warn(
      { issuer, users: config.devIdp.users.map((u) => u.sub), stateDir: devIdp.stateDir ?? null },
      'DEVELOPMENT IdP running: passwordless users sign in and consent automatically. Never use it in production; configure auth.issuer instead',
    )
  }
  const brokerAuthenticator =
    broker &&
    createAuthenticator(
      {
        ...config.auth,
        issuer: broker.issuer,
        algorithms: [broker.alg] as never,
        roleClaims: ['roles'],
        requireJwtAccessTokenType: true,
      },
      { getKey: broker.getKey },
      Date.now,
      { scopesAlwaysDelegated: true, revocations: broker.revocations },
    )
  if (issuer === undefined) {
    // The broker alone: its keys are in memory, nothing to fetch.
    return {
      issuer: broker!.issuer,
      authenticator: brokerAuthenticator!,
      devIdp,
      problem: () => undefined,
      close: async () => await devIdp?.close(),
    }
  }
  const { auth } = config
  const http: IdpHttp = createIdpHttp(
    auth.idpTimeout,
    auth.caFile ? readFileSync(auth.caFile, 'utf8') : undefined,
    {
      connections: auth.idpConnections,
      maxResponseBytes: auth.idpMaxResponseBytes,
      keepAliveMs: auth.idpKeepAlive,
    },
  )
  let ready = false
  let problem = 'signing keys not fetched yet'
  let stopped = false
  let retry: NodeJS.Timeout | undefined
  const keys = createKeySource({
    issuer,
    jwksUri: config.auth.jwksUri,
    http,
    timeoutMs: config.auth.idpTimeout,
    cooldownMs: config.auth.jwksCooldown,
    maxAgeMs: config.auth.jwksMaxAge,
    retryMs: auth.discoveryRetry,
    onJwksFetch: (result) => {
      o.metrics.jwksRefreshes.inc({ result })
      if (result === 'ok') ready = true
    },
  })
  const warm = (): void => {
    keys.warm().then(
      () => {
        ready = true
        log.info({ jwksUri: keys.jwksUri }, 'issuer signing keys loaded')
      },
      (err: Error) => {
        // Closed: the fetch was aborted, nothing to report or retry.
        if (stopped) return
        problem = `issuer signing keys unavailable: ${err.message}`
        log.warn(
          { issuer, cause: (err.cause as Error | undefined)?.message },
          'issuer signing keys could not be fetched; retrying',
        )
        // Just past the discovery retry, so the next warm-up is not refused by its cool-down.
        retry = setTimeout(warm, auth.discoveryRetry + 500).unref()
      },
    )
  }
  warm()
  const external = createAuthenticator({ ...config.auth, issuer }, keys)
  return {
    issuer: broker?.issuer ?? issuer,
    authenticator: broker
      ? byIssuer([
          { issuer: broker.issuer, authenticator: brokerAuthenticator! },
          { issuer, authenticator: external },
        ])
      : external,
    devIdp,
    problem: () => (ready ? undefined : problem),
    async close() {
      stopped = true
      clearTimeout(retry)
      await devIdp?.close()
      await http.close()
    },
  }
}

/** Everyone's identity under --insecure-no-auth: every scope; explicit deny rules still apply. */
const ANONYMOUS: Principal = {
  iss: 'urn:mcp-edge:insecure-no-auth',
  sub: 'anonymous',
  clientId: undefined,
  scopes: new Set(),
  hasScopeClaim: false,
  allScopes: true,
  claims: {},
  roles: new Set(),
  exp: undefined,
}
