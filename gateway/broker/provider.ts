import type { Configuration, KoaContextWithOIDC } from 'oidc-provider'
import type Provider from 'oidc-provider'
import type { Logger } from 'pino'
import type { Resources } from '../auth/resources.js'
import type { GatewayConfig } from '../config/schema.js'
import type { PolicyStore } from '../policy/store.js'
import { GRANT_CLAIM } from '../auth/revocation.js'
import type { Store } from '../store/store.js'
import type { Accounts } from './accounts.js'
import { storeAdapter, type AdapterOptions } from './adapter.js'
import { heldFor } from './approval.js'
import { ClientPolicyError } from './client-errors.js'
import { storeUnavailable } from './errors.js'
import { CLIENT_POLICY_PROPERTY, type ClientPolicy } from './client-policy.js'
import { messagePage, PAGE_HEADERS } from './consent-page.js'
import { firstPartyMetadata, type FirstPartyClient } from './first-party.js'
import type { BrokerKeys } from './keys.js'
import { redirectKind } from './redirects.js'
import { grantableScopes, serverScopes } from './scopes.js'

type OidcModule = typeof import('oidc-provider')
type BrokerConfig = NonNullable<GatewayConfig['auth']['broker']>

/**
 * The cookie of a browser's sign-in at the broker (its value is the session's id), for an
 * issuer: on https a `__Host-` cookie (Secure, Path=/, no Domain), which no other host can set,
 * so a page on a sibling subdomain cannot plant one (Domain=example.com) that the browser sends
 * with, or before, the broker's own; on http (loopback only) the plain name.
 */
export function brokerSessionCookie(issuer: string): string {
  return new URL(issuer).protocol === 'https:' ? '__Host-mcp_edge_session' : '_mcp_edge_session'
}

/** oidc-provider's least cache time of a client metadata document (one saying less, or nothing), in s. */
const CIMD_MIN_CACHE_AGE_S = 30

/** Paths the authorization server answers at, relative to the issuer. */
export const BROKER_ROUTES = {
  authorization: '/authorize',
  token: '/token',
  registration: '/register',
  revocation: '/revoke',
  jwks: '/jwks',
} as const

/** Where oidc-provider sends the browser for login and consent (ours, see interactions.ts). */
export const INTERACTION_PREFIX = '/interaction/'

/** What the configuration needs from the rest of the broker. */
export interface ProviderDeps {
  oidc: OidcModule
  issuer: string
  config: BrokerConfig
  keys: BrokerKeys
  store: Store
  accounts: Accounts
  resources: Resources
  policy: PolicyStore
  log: Logger
  /** Checks (and marks native) a client's metadata, DCR or CIMD; see client-policy.ts. */
  clients: ClientPolicy
  /** The fetch used for Client ID Metadata Documents (address checks at connect time). */
  cimdFetch?: Configuration['fetch']
  /** Whether a CIMD client_id URL may be fetched at all (host allow-list). */
  cimdAllowed: (clientId: string) => boolean
  /** Told when a user's access ends because the upstream refused them (audit). */
  onRevoked?: (sub: string, reason: string) => void
  /** The gateway's own client (the account page): static, no consent page, no resource. */
  firstParty?: FirstPartyClient
  /** The tag a grant's access tokens carry (GRANT_CLAIM), so revoking it ends them. */
  grantTag: (grantId: string) => string
  /** Told of every grant revoked, by any path (see AdapterOptions.grantRevoked). */
  grantRevoked: AdapterOptions['grantRevoked']
  /**
   * Grants whose revocation is not counted against the user's share when listed: counted at
   * /revoke already, or refused at a re-check (the broker's own doing; the user is signed out).
   */
  uncounted?: Set<string>
  /** Who may revoke a refresh token at /revoke (revoke-access.ts revocationPolicy). */
  revocationAllowed?: NonNullable<RevocationFeature['allowedPolicy']>
}

type RevocationFeature = NonNullable<NonNullable<Configuration['features']>['revocation']>

/**
 * oidc-provider's configuration for the broker: every OAuth decision of the authorization
 * server is made here. Access tokens are JWTs for exactly one resource (a server's URL), with
 * the scopes the user's roles grant under the live policy (at consent, at every token and
 * refresh), and the user's roles as a claim so the gateway applies the same ceiling again.
 * PKCE S256 is required, codes are single use, refresh tokens rotate and a reused one
 * revokes the grant (atomically across replicas, see adapter.ts), and every redirect carries
 * `iss` (RFC 9207).
 */
export function brokerConfiguration(d: ProviderDeps): Configuration {
  const { oidc, config } = d
  const { errors } = oidc
  const resources = new Set(d.resources.all())
  const serversOf = (indicator: string) => d.resources.serversOf(indicator)
  const secureIssuer = new URL(d.issuer).protocol === 'https:'
  const ttl = {
    AccessToken: config.accessTokenTtl,
    AuthorizationCode: config.codeTtl,
    RefreshToken: config.refreshTokenTtl,
    Grant: config.refreshTokenTtl,
    Interaction: config.loginTtl,
    Session: config.refreshTokenTtl,
    IdToken: config.accessTokenTtl,
  }
  return {
    adapter: storeAdapter({
      store: d.store,
      clientTtl: config.registration.unusedTtl,
      consumedTtl: config.refreshTokenTtl,
      reused: () => new errors.InvalidGrant('grant request is invalid'),
      unavailable: (cause) => storeUnavailable(errors, cause),
      log: d.log,
      grantRevoked: d.grantRevoked,
      onReuse: async (model, grantId, accountId) => {
        d.log.warn(
          { model, grantId },
          'a code or refresh token was used twice; its grant is revoked',
        )
        d.onRevoked?.(
          accountId ?? '',
          `a ${model === 'RefreshToken' ? 'refresh token' : 'code'} was used twice`,
        )
      },
    }),
    clients: d.firstParty ? [firstPartyMetadata(d.firstParty) as never] : [],
    clientBasedCORS: (_ctx, origin, client) => corsAllowed(origin, client),
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    conformIdTokenClaims: true,
    cookies: {
      keys: d.keys.cookieKeys,
      // The interaction and resume cookies keep plain names: oidc-provider sets them on the
      // path of one authorization (/interaction/<uid>, /authorize/<uid>; the resume cookie's
      // path cannot be changed), and `__Host-` needs Path=/. A copy planted from a sibling
      // subdomain on a shorter path is sent after the broker's own (RFC 6265 §5.4) and the first
      // is read; on its own it names another uid than the page's (interactions.ts refuses it),
      // or an interaction begun in another browser session, which oidc-provider refuses at
      // resume now that the session cookie cannot be planted.
      names: {
        session: brokerSessionCookie(d.issuer),
        interaction: '_mcp_edge_interaction',
        resume: '_mcp_edge_resume',
      },
      long: {
        httpOnly: true,
        sameSite: 'lax',
        signed: true,
        // What `__Host-` needs on https, said here rather than left to defaults.
        path: '/',
        ...(secureIssuer ? { secure: true } : {}),
      },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    enabledJWA: { idTokenSigningAlgValues: [d.keys.alg] as never },
    clientDefaults: {
      id_token_signed_response_alg: d.keys.alg as never,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    extraClientMetadata: {
      properties: [CLIENT_POLICY_PROPERTY],
      validator: (ctx, key, value, metadata) => {
        // The gateway's own client is configured here, not registered: the registration
        // policy (redirect URI allow-list, the gateway's own callbacks) is not for it.
        if (
          d.firstParty &&
          (metadata as { client_id?: unknown }).client_id === d.firstParty.clientId
        ) {
          delete (metadata as Record<string, unknown>)[key]
          return
        }
        try {
          d.clients.validator(ctx, key, value, metadata as Record<string, unknown>)
        } catch (err) {
          // "redirect_uris…" descriptions become invalid_redirect_uri, others invalid_client_metadata.
          if (err instanceof ClientPolicyError) throw new errors.InvalidClientMetadata(err.message)
          throw err
        }
        // MCP clients register `scope` as their first request's scopes, which oidc-provider
        // would keep as a ceiling; a step-up asks for more later, and the roles cap it anyway.
        delete (metadata as { scope?: string }).scope
      },
    },
    extraTokenClaims: async (_ctx, token) => {
      if (token.kind !== 'AccessToken') return undefined
      const { accountId, grantId } = token as { accountId?: string; grantId?: string }
      const account = await d.accounts.find(accountId ?? '')
      // The user's roles: the gateway caps the token's scopes by them again, under the policy
      // in force when the token is used (a role mapping removed later takes effect at once).
      // The grant's tag: a revoked grant's tokens are refused before they expire.
      return {
        roles: account?.roles ?? [],
        ...(grantId ? { [GRANT_CLAIM]: d.grantTag(grantId) } : {}),
      }
    },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      introspection: { enabled: false },
      // Not mounted (BROKER_ROUTES): oidc-provider advertised it at /request, which answered 404.
      // MCP clients do not use PAR; a feature not served is not advertised.
      pushedAuthorizationRequests: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      userinfo: { enabled: false },
      revocation: {
        enabled: true,
        ...(d.revocationAllowed ? { allowedPolicy: d.revocationAllowed } : {}),
      },
      registration: {
        enabled: config.registration.enabled,
        initialAccessToken: false,
        issueRegistrationAccessToken: false,
      },
      clientIdMetadataDocument: {
        enabled: config.cimd.enabled,
        ack: 'draft-02',
        // A document's own max-age (or Expires), within oidc-provider's floor and the operator's
        // ceiling: 0 fetches it at every request, so the floor gives way to a lower ceiling.
        cacheDuration: {
          min: Math.min(CIMD_MIN_CACHE_AGE_S, config.cimd.maxCacheAge),
          max: config.cimd.maxCacheAge,
        },
        allowFetch: (
          ctx: { state?: { cimdTried?: Set<string> } } | undefined,
          clientId: string,
        ) => {
          // One fetch per document per request: after a failed lookup, oidc-provider's
          // authorization error handler looks the client up again, which would fetch a
          // failing (or stalling) document twice. The first failure is the answer.
          const tried = ctx?.state ? (ctx.state.cimdTried ??= new Set()) : undefined
          if (tried?.has(clientId)) return false
          tried?.add(clientId)
          return d.cimdAllowed(clientId)
        },
      } as never,
      resourceIndicators: {
        enabled: true,
        // RFC 8707 §2: without `resource`, default only when unambiguous (a gateway of one server).
        defaultResource: (_ctx, client, oneOf) => {
          if (oneOf) return oneOf
          // The account page asks for an ID token only: no resource.
          if (d.firstParty && client?.clientId === d.firstParty.clientId)
            return undefined as unknown as string
          const all = d.resources.all()
          const servers = [...new Set(all.flatMap(serversOf))]
          // One server behind every resource (none routed elsewhere): that server's.
          if (servers.length === 1 && all.every((r) => serversOf(r).length === 1))
            return d.resources.resource(servers[0]!, 'mcp')
          throw new errors.InvalidTarget(
            'resource parameter required (RFC 8707): the URL of the MCP server',
          )
        },
        useGrantedResource: () => true,
        getResourceServerInfo: async (ctx, indicator) => {
          const server = resources.has(indicator) ? serversOf(indicator) : []
          if (server.length === 0)
            throw new errors.InvalidTarget('this gateway serves no such resource')
          const roles = await rolesInContext(ctx, d.accounts)
          const scopes =
            roles === undefined
              ? serverScopes(d.policy.current, server)
              : grantableScopes(d.policy.current, server, roles)
          return {
            scope: scopes.join(' '),
            audience: indicator,
            accessTokenTTL: config.accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: d.keys.alg as never } },
          }
        },
      },
    },
    fetch: d.cimdFetch,
    findAccount: async (ctx, sub) => {
      const refreshing =
        ctx.oidc.route === 'token' && ctx.oidc.params?.grant_type === 'refresh_token'
      if (!refreshing) {
        const account = await d.accounts.find(sub)
        return account && { accountId: sub, roles: account.roles, claims: () => claimsOf(account) }
      }
      const { account, outcome } = await d.accounts.forRefresh(
        sub,
        ctx.oidc.entities.RefreshToken?.iiat,
      )
      // The upstream could not say: this refresh fails and the client retries; nothing is revoked.
      if (outcome === 'unavailable')
        throw new errors.TemporarilyUnavailable(
          'the identity provider cannot be reached; retry later',
        )
      if (account === undefined) {
        // The upstream no longer vouches for the user: the grant being refreshed ends with it.
        const grantId = ctx.oidc.entities.RefreshToken?.grantId
        if (grantId) {
          d.uncounted?.add(grantId)
          await revokeGrant(ctx, grantId)
        }
        d.onRevoked?.(sub, 'the upstream refused the user at re-check')
        return undefined
      }
      return { accountId: sub, roles: account.roles, claims: () => claimsOf(account) }
    },
    interactions: {
      url: (_ctx, interaction) => `${INTERACTION_PREFIX}${interaction.uid}`,
      policy: interactionPolicy(oidc, config, d.firstParty?.clientId),
    },
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    jwks: d.keys.jwks as Configuration['jwks'],
    pkce: { required: () => true },
    // What cannot go back to the client (unknown client, unregistered redirect URI): the
    // broker's own page, with the headers of every page it shows a person.
    renderError: (ctx, out) => {
      ctx.set(PAGE_HEADERS)
      ctx.body = errorPage(String(out.error ?? 'error'), String(out.error_description ?? ''))
    },
    responseTypes: ['code'],
    // Called just before the old refresh token is consumed, and oidc-provider resolves
    // `resource` only after that: a refused resource would spend the token the client holds
    // (and mint one nobody receives), so its retry would look like a replay and revoke the
    // grant. Refuse such a request here, before anything is spent.
    rotateRefreshToken: (ctx) => {
      const held = ctx.oidc.entities.RefreshToken as { resource?: string | string[] } | undefined
      const granted = new Set([held?.resource ?? []].flat())
      const asked = ctx.oidc.params?.resource as unknown
      if (
        asked === undefined
          ? granted.size > 1
          : typeof asked !== 'string' || !granted.has(asked) || !resources.has(asked)
      ) {
        throw new errors.InvalidTarget()
      }
      return true
    },
    routes: BROKER_ROUTES,
    // OIDC scopes only: a server's scopes are the resource server's (resourceIndicators).
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    ttl,
    loadExistingGrant: async (ctx) => {
      // The consent just given is this authorization's grant.
      const given = ctx.oidc.result?.consent?.grantId
      if (given) return ctx.oidc.provider.Grant.find(given)
      // Remembered consent: the grant this browser's user gave this client before, for at
      // most consent.rememberFor; else the consent page is shown again.
      if (!config.consent.remember) return undefined
      const grantId = ctx.oidc.session?.grantIdFor(ctx.oidc.client!.clientId)
      const grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined
      const issuedAt = (grant as { iat?: number } | undefined)?.iat
      if (
        grant === undefined ||
        issuedAt === undefined ||
        Math.floor(Date.now() / 1000) - issuedAt > config.consent.rememberFor
      )
        return undefined
      return grant
    },
  }
}

/**
 * Login and consent prompts: oidc-provider's, plus a login whenever the browser's session is
 * older than the upstream re-check interval, so a user is confirmed at the company IdP at least
 * that often, and a consent every time unless remembering it is on.
 */
function interactionPolicy(oidc: OidcModule, config: BrokerConfig, firstPartyId?: string) {
  const {
    interactionPolicy: { base, Check },
  } = oidc
  const policy = base()
  const recheck = config.upstream.recheckInterval
  policy.get('login')!.checks.add(
    new Check(
      'mcp_edge_stale_login',
      'the upstream login is older than the re-check interval',
      (ctx) => {
        // This authorization has just been through the upstream: it is as fresh as it gets.
        if (ctx.oidc.result?.login) return Check.NO_NEED_TO_PROMPT
        const at = ctx.oidc.session?.authTime as number | undefined
        // 0 re-checks every time, here as at refresh: a user disabled upstream gets no new code.
        const stale =
          at !== undefined && (recheck === 0 || Math.floor(Date.now() / 1000) - at > recheck)
        return stale ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT
      },
    ),
  )
  // oidc-provider asks consent again only for resource scopes asked and not yet granted: a
  // client remembered for one server that asks another for no scope of its (scope=openid) got
  // a token for it with no page shown, good at every server whose policy needs no scope. A
  // resource the user has not approved for this grant is asked for (approval.ts: a server of
  // no scope is remembered too).
  policy.get('consent')!.checks.add(
    new Check(
      'mcp_edge_resource_not_granted',
      'a resource this grant was not approved for',
      (ctx) => {
        if (ctx.oidc.result?.consent) return Check.NO_NEED_TO_PROMPT
        const grant = ctx.oidc.grant
        return Object.keys(ctx.oidc.resourceServers ?? {}).some((r) => !heldFor(grant, r).approved)
          ? Check.REQUEST_PROMPT
          : Check.NO_NEED_TO_PROMPT
      },
    ),
  )
  // A code sent to this device (a loopback port or an app scheme) can be claimed by any program
  // on it (RFC 8252 §8.6), and the upstream's single sign-on asks nobody: such a request is
  // asked every time, whatever the client, as oidc-provider asks a native client's (a client of
  // https and loopback redirect URIs, as VS Code registers, is not native, and was remembered).
  policy
    .get('consent')!
    .checks.add(
      new Check(
        'mcp_edge_device_redirect',
        'a redirect to this device is asked every time',
        (ctx) =>
          ctx.oidc.result?.consent ||
          ctx.oidc.client?.clientId === firstPartyId ||
          !askedEveryTime(ctx.oidc.params?.redirect_uri)
            ? Check.NO_NEED_TO_PROMPT
            : Check.REQUEST_PROMPT,
      ),
    )
  if (!config.consent.remember) {
    policy
      .get('consent')!
      .checks.add(
        new Check('mcp_edge_always_consent', 'consent is asked every time', (ctx) =>
          ctx.oidc.result?.consent ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT,
        ),
      )
  }
  return policy
}

/**
 * Whether an authorization to `redirectUri` needs the consent page every time: anything but a
 * hosted https URI (a loopback port or an app scheme is this device's, any program's on it).
 */
export function askedEveryTime(redirectUri: unknown): boolean {
  return redirectKind(redirectUri) !== 'https'
}

/** The roles of whoever is being granted scopes now, if known (undefined before login). */
async function rolesInContext(
  ctx: KoaContextWithOIDC,
  accounts: Accounts,
): Promise<string[] | undefined> {
  const entity = ctx.oidc.entities.Account as { roles?: string[] } | undefined
  if (entity?.roles) return entity.roles
  const accountId = ctx.oidc.entities.Grant?.accountId ?? ctx.oidc.session?.accountId
  if (accountId === undefined) return undefined
  return (await accounts.find(accountId))?.roles ?? []
}

/** Revokes every token of a grant, and the grant (oidc-provider's own revocation path). */
async function revokeGrant(ctx: KoaContextWithOIDC, grantId: string): Promise<void> {
  const { provider } = ctx.oidc
  const models = [
    provider.AccessToken,
    provider.AuthorizationCode,
    provider.RefreshToken,
  ] as unknown as { adapter: { revokeByGrantId(id: string): Promise<void> } }[]
  await Promise.all(models.map((m) => m.adapter.revokeByGrantId(grantId)))
  await (
    provider.Grant as unknown as { adapter: { destroy(id: string): Promise<void> } }
  ).adapter.destroy(grantId)
}

function claimsOf(account: { sub: string; email?: string; name?: string }): {
  sub: string
  [key: string]: unknown
} {
  return {
    sub: account.sub,
    ...(account.email ? { email: account.email } : {}),
    ...(account.name ? { name: account.name } : {}),
  }
}

/**
 * Whether a browser page at `origin` may read the answers to `client`'s requests (oidc-provider's
 * clientBasedCORS): an origin of one of its redirect URIs, or a loopback one.
 */
export function corsAllowed(origin: string, client: { redirectUris?: readonly string[] }): boolean {
  return (
    client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) === true ||
    isLoopbackOrigin(origin)
  )
}

function isLoopbackOrigin(origin: string): boolean {
  const url = URL.parse(origin)
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return false
  return ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)
}

/** The page shown when a request cannot go back to the client (unknown client, bad redirect URI). */
export function errorPage(error: string, description: string): string {
  return messagePage('This sign-in cannot continue', description, error)
}

export type { Provider }
