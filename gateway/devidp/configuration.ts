import { randomBytes } from 'node:crypto'
import type Provider from 'oidc-provider'
import type { ClientMetadata, Configuration, KoaContextWithOIDC } from 'oidc-provider'
import { INTERACTION_PATH } from './interactions.js'
import type { DevIdpClient, DevIdpWebClient, ScopesFor } from './provider.js'
import type { DevUser } from './sign-in-page.js'

type OidcModule = typeof import('oidc-provider')
type KoaMiddleware = Parameters<Provider['use']>[0]
type SigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA'

/** Where dynamic client registration is served. */
export const REGISTRATION_PATH = '/reg'

/** What the dev IdP was started with, resolved. */
export interface Settings {
  resources: Set<string>
  defaultResource: string | undefined
  /** Every scope the IdP knows; a token gets those its subject's roles allow. */
  scopes: string[]
  scopesFor: ScopesFor
  /** By sub, in configured order. */
  users: Map<string, DevUser>
  clients: Map<string, DevIdpClient>
  /** Authorization-code clients registered up front (an upstream's registered app). */
  webClients: Map<string, DevIdpWebClient>
  registration: boolean
  jwks: { keys: object[] }
  ttl: number
  adapter: NonNullable<Configuration['adapter']>
}

/** oidc-provider's configuration for the dev IdP: every OAuth decision it makes is here. */
export function configuration(oidc: OidcModule, s: Settings): Configuration {
  const { errors, interactionPolicy } = oidc
  const alg = signingAlg(s.jwks)
  return {
    adapter: s.adapter,
    clients: [...s.clients.values()]
      .map(
        (c): ClientMetadata => ({
          client_id: c.clientId,
          client_secret: c.clientSecret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
        }),
      )
      .concat(
        [...s.webClients.values()].map(
          (c): ClientMetadata => ({
            client_id: c.clientId,
            client_secret: c.clientSecret,
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            redirect_uris: c.redirectUris,
            token_endpoint_auth_method: 'client_secret_basic',
          }),
        ),
      ),
    clientDefaults: { id_token_signed_response_alg: alg },
    // Browser clients (MCP Inspector on http://localhost:6274) call the token endpoint
    // directly. oidc-provider's default only allows public clients from their redirect_uri
    // origins; also allow any loopback origin, as everything here is loopback-only.
    clientBasedCORS: (_ctx, origin, client) =>
      isLoopbackOrigin(origin) ||
      client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) === true,
    claims: { openid: ['sub', 'roles'] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    enabledJWA: { idTokenSigningAlgValues: [alg] },
    extraTokenClaims: (_ctx, token) => ({ realm_access: { roles: rolesOf(token, s) } }),
    // MCP clients register with `scope` = the scopes of their first request, which
    // oidc-provider then enforces as a ceiling; step-up (MCP 2025-11-25) asks for more later.
    // The validator runs on every registration and may edit the metadata: drop the ceiling.
    extraClientMetadata: {
      properties: ['mcp_edge_dev_idp'],
      validator: (_ctx, _key, _value, metadata) => {
        delete (metadata as { scope?: string }).scope
      },
    },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false }, // the gateway validates Bearer tokens only
      rpInitiatedLogout: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: s.registration, initialAccessToken: false },
      resourceIndicators: {
        enabled: true,
        // RFC 8707 §2: without `resource`, default only when unambiguous (one MCP server);
        // otherwise fail loudly instead of issuing a token no MCP server accepts.
        defaultResource: (_ctx, client, oneOf) => {
          if (oneOf) return oneOf
          // An upstream's registered app logs users in; its access token is for userinfo.
          if (client && s.webClients.has(client.clientId)) return undefined as never
          if (s.defaultResource !== undefined) return s.defaultResource
          throw new errors.InvalidTarget(
            `resource parameter required (RFC 8707), one of: ${[...s.resources].join(' ')}`,
          )
        },
        // The token request may omit `resource`: use the one granted at authorization.
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator) => {
          if (!s.resources.has(indicator)) {
            throw new errors.InvalidTarget(`resource ${indicator} is not served by this gateway`)
          }
          // The one place scopes are decided, at consent and at every token (refreshes
          // included): what the subject's roles allow under the live policy. The rest of a
          // request is left out, not refused (RFC 6749 §3.3: the token's scope says what was
          // granted).
          const allowed = s.scopesFor(rolesInContext(ctx, s))
          return {
            scope: s.scopes.filter(allowed).join(' '),
            audience: indicator,
            accessTokenTTL: s.ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          }
        },
      },
    },
    findAccount: (_ctx, sub) => {
      const user = s.users.get(sub)
      return user && { accountId: sub, claims: () => ({ sub, roles: user.roles }) }
    },
    formats: {
      customizers: {
        // Client-credentials tokens act as the client's configured subject (default: client_id).
        jwt: (_ctx, token, parts) => {
          if (token.kind !== 'ClientCredentials') return
          const client = s.clients.get(token.clientId ?? '')
          if (client?.subject) parts.payload.sub = client.subject
        },
      },
    },
    interactions: {
      url: (_ctx, interaction) => `${INTERACTION_PATH}${interaction.uid}`,
      policy: loginPolicy(interactionPolicy, s.users.size > 1),
    },
    // Refresh tokens for every client registered with the refresh_token grant, not only
    // those asking for offline_access (MCP clients rarely request OIDC scopes), and not tied
    // to the browser session: a restart (sessions are not kept) or signing in as another
    // user in the same browser must not end another client's refresh token.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    jwks: s.jwks as Configuration['jwks'],
    pkce: { required: () => true }, // OAuth 2.1 §4.1.1: PKCE for every client
    renderError: (ctx, out) => {
      ctx.type = 'json'
      ctx.body = out
    },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', ...s.scopes],
    ttl: {
      AccessToken: s.ttl,
      AuthorizationCode: 60,
      ClientCredentials: s.ttl,
      Grant: 24 * 3600,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 24 * 3600,
      Session: 24 * 3600,
    },
  }
}

function rolesOf(token: { kind: string; clientId?: string; accountId?: string }, s: Settings) {
  if (token.kind === 'ClientCredentials') return s.clients.get(token.clientId ?? '')?.roles ?? []
  return s.users.get(token.accountId ?? '')?.roles ?? []
}

/**
 * Roles of whoever is being granted scopes now: the confidential client itself for
 * client_credentials (a registered client unknown here has none); else the user of the grant
 * being redeemed or refreshed, or the one signed in at the authorization endpoint.
 */
function rolesInContext(ctx: KoaContextWithOIDC, s: Settings): readonly string[] {
  const { oidc } = ctx
  if (oidc.params?.grant_type === 'client_credentials') {
    return s.clients.get(oidc.client?.clientId ?? '')?.roles ?? []
  }
  const accountId = oidc.entities.Grant?.accountId ?? oidc.session?.accountId
  return s.users.get(accountId ?? '')?.roles ?? []
}

/**
 * oidc-provider's default prompts; with several users, every authorization request shows
 * the sign-in page, so the next login (a step-up, say) can pick another user.
 */
function loginPolicy(policies: OidcModule['interactionPolicy'], choose: boolean) {
  const policy = policies.base()
  if (!choose) return policy
  const { Check } = policies
  policy
    .get('login')!
    .checks.add(
      new Check('dev_user_choice', 'choose a dev user', (ctx) =>
        ctx.oidc.result?.login ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT,
      ),
    )
  return policy
}

/** RFC 7591 registration has no CORS in oidc-provider; allow loopback browser origins. */
export function registrationCors(): KoaMiddleware {
  return async (ctx, next) => {
    const origin = ctx.get('Origin')
    const onPath = ctx.path === REGISTRATION_PATH || ctx.path.startsWith(`${REGISTRATION_PATH}/`)
    if (!onPath || !origin || !isLoopbackOrigin(origin)) return next()
    ctx.vary('Origin')
    ctx.set('Access-Control-Allow-Origin', origin)
    if (ctx.method !== 'OPTIONS' || !ctx.get('Access-Control-Request-Method')) return next()
    ctx.set('Access-Control-Allow-Methods', 'GET,POST')
    const headers = ctx.get('Access-Control-Request-Headers')
    if (headers) ctx.set('Access-Control-Allow-Headers', headers)
    ctx.set('Access-Control-Max-Age', '3600')
    ctx.status = 204
  }
}

function signingAlg(jwks: { keys: object[] }): SigningAlg {
  const key = jwks.keys[0] as { alg?: string; kty?: string } | undefined
  if (key?.alg) return key.alg as SigningAlg
  if (key?.kty === 'EC') return 'ES256'
  if (key?.kty === 'OKP') return 'EdDSA'
  return 'RS256'
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

function isLoopbackOrigin(origin: string): boolean {
  const url = URL.parse(origin)
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return false
  return url.hostname === '[::1]' || isLoopbackHost(url.hostname)
}
