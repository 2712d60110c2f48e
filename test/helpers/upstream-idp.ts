import { randomUUID } from 'node:crypto'
import { decodeJwt } from 'jose'
import { errors } from 'oidc-provider'
import {
  clientKeyPair,
  startIdp,
  UPSTREAM_CALLBACK,
  type IdpUser,
  type UpstreamIdp,
} from './upstream-idp-base.js'

export {
  UPSTREAM_CALLBACK,
  type IdpUser,
  type Knobs,
  type UpstreamIdp,
} from './upstream-idp-base.js'

/** A registered app's redirect URI, grants and response types: `callback` is the broker's. */
const client = (callback = UPSTREAM_CALLBACK) => ({
  redirect_uris: [callback],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code' as const],
})
const TTL = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  Grant: 3600,
  IdToken: 3600,
  Interaction: 600,
  RefreshToken: 86400,
  Session: 3600,
}

/** Entra group object ids the default Entra users belong to. */
export const ENTRA_GROUPS = {
  developers: '5f0b6b0e-8c7a-4d7e-9a40-3f1f5d2b9c11',
  everyone: 'c3d2e1f0-1a2b-4c3d-8e9f-0a1b2c3d4e5f',
}

/**
 * Like Microsoft Entra ID (v2 endpoints of one tenant): issuer `http://127.0.0.1:P/<tenant>/v2.0`,
 * no registration; any `resource` parameter refused with invalid_target (AADSTS9010010: v2
 * takes scopes, not resources), at /authorize (redirected back as an error) and /token (400);
 * ID tokens carry `oid` (the stable user id; `sub` differs per app), `tid`, app `roles` and
 * `groups` (object ids); private_key_jwt assertions must be addressed to the token endpoint;
 * refresh tokens rotate on every use. Clients: `jwt` (private_key_jwt) and `basic`
 * (client_secret_basic). Users: alice (MCP.Developer; developers + everyone) and bob
 * (no app role; everyone).
 */
export async function startEntraLike(
  o: { tenant?: string; users?: IdpUser[]; callback?: string } = {},
): Promise<UpstreamIdp & { tenant: string }> {
  const tenant = o.tenant ?? randomUUID()
  const key = await clientKeyPair('gw-entra-1')
  const idp = await startIdp({
    callback: o.callback,
    kind: 'oidc',
    prefix: `/${tenant}/v2.0`,
    users: o.users ?? [
      {
        id: 'alice-pairwise-sub',
        claims: {
          oid: '00000000-0000-0000-0000-00000000a11c',
          name: 'Alice',
          preferred_username: 'alice@contoso.example',
          email: 'alice@contoso.example',
          roles: ['MCP.Developer'],
          groups: [ENTRA_GROUPS.developers, ENTRA_GROUPS.everyone],
        },
      },
      {
        id: 'bob-pairwise-sub',
        claims: {
          oid: '00000000-0000-0000-0000-000000000b0b',
          name: 'Bob',
          preferred_username: 'bob@contoso.example',
          email: 'bob@contoso.example',
          groups: [ENTRA_GROUPS.everyone],
        },
      },
    ],
    clients: {
      jwt: {
        clientId: 'mcp-edge-entra-jwt',
        method: 'private_key_jwt',
        privateKeyPem: key.pem,
        kid: 'gw-entra-1',
      },
      basic: {
        clientId: 'mcp-edge-entra-basic',
        method: 'client_secret_basic',
        clientSecret: 'entra-secret-0123456789',
      },
    },
    extraClaims: () => ({ tid: tenant, ver: '2.0' }),
    configuration: () => ({
      clients: [
        {
          client_id: 'mcp-edge-entra-jwt',
          token_endpoint_auth_method: 'private_key_jwt',
          jwks: { keys: [key.jwk] },
          ...client(o.callback),
        },
        {
          client_id: 'mcp-edge-entra-basic',
          client_secret: 'entra-secret-0123456789',
          token_endpoint_auth_method: 'client_secret_basic',
          ...client(o.callback),
        },
      ],
      // Entra puts roles and groups in the ID token whatever the scopes.
      claims: {
        openid: ['sub', 'oid', 'tid', 'ver', 'roles', 'groups'],
        profile: ['name', 'preferred_username'],
        email: ['email'],
      },
      conformIdTokenClaims: false,
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      features: {
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as unknown as string,
          useGrantedResource: () => false,
          getResourceServerInfo: () => {
            throw new errors.InvalidTarget(
              "AADSTS9010010: The resource parameter provided in the request doesn't match with the requested scopes.",
            )
          },
        },
      },
      issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: true,
      expiresWithSession: () => false,
      ttl: TTL,
    }),
    checkTokenRequest: (form, tokenEndpoint) => {
      const assertion = form.get('client_assertion')
      if (assertion === null) return undefined
      // Entra: "aud: the token endpoint" (learn.microsoft.com, certificate credentials).
      if (decodeJwt(assertion).aud !== tokenEndpoint) {
        return {
          status: '401',
          error: 'invalid_client',
          error_description: 'AADSTS700021: client assertion audience must be the token endpoint.',
        }
      }
      return undefined
    },
  })
  return Object.assign(idp, { tenant })
}

/**
 * Like Google: issuer = origin, no registration; opaque access tokens; ID tokens with `email`,
 * `email_verified` and, for Workspace accounts, `hd`; a refresh token only for
 * `access_type=offline` with `prompt=consent`, not rotated; no roles or groups. Clients: `basic`
 * and `post`. Users: ann@example.com (Workspace example.com), gus@gmail.com (no hd), and
 * eve@example.com (consumer account, email unverified).
 */
export async function startGoogleLike(
  o: { users?: IdpUser[]; callback?: string } = {},
): Promise<UpstreamIdp> {
  return startIdp({
    callback: o.callback,
    kind: 'oidc',
    prefix: '',
    users: o.users ?? [
      {
        id: '104857600000000000001',
        claims: { email: 'ann@example.com', email_verified: true, hd: 'example.com', name: 'Ann' },
      },
      {
        id: '104857600000000000002',
        claims: { email: 'gus@gmail.com', email_verified: true, name: 'Gus' },
      },
      {
        id: '104857600000000000003',
        claims: { email: 'eve@example.com', email_verified: false, name: 'Eve' },
      },
    ],
    clients: {
      basic: {
        clientId: '1234-basic.apps.googleusercontent.example',
        method: 'client_secret_basic',
        clientSecret: 'GOCSPX-basic-secret',
      },
      post: {
        clientId: '1234-post.apps.googleusercontent.example',
        method: 'client_secret_post',
        clientSecret: 'GOCSPX-post-secret',
      },
    },
    configuration: (s) => ({
      clients: [
        {
          client_id: '1234-basic.apps.googleusercontent.example',
          client_secret: 'GOCSPX-basic-secret',
          token_endpoint_auth_method: 'client_secret_basic',
          ...client(o.callback),
        },
        {
          client_id: '1234-post.apps.googleusercontent.example',
          client_secret: 'GOCSPX-post-secret',
          token_endpoint_auth_method: 'client_secret_post',
          ...client(o.callback),
        },
      ],
      claims: { openid: ['sub', 'hd'], email: ['email', 'email_verified'], profile: ['name'] },
      conformIdTokenClaims: false,
      extraParams: ['access_type', 'hd', 'include_granted_scopes'],
      scopes: ['openid', 'profile', 'email'],
      issueRefreshToken: (_ctx, _client, code) => s.offline.has(String(code.grantId)),
      rotateRefreshToken: false,
      expiresWithSession: () => false,
      ttl: TTL,
    }),
    consented: (grantId, params, s) => {
      const prompts = String(params.prompt ?? '').split(' ')
      if (params.access_type === 'offline' && prompts.includes('consent')) s.offline.add(grantId)
    },
  })
}

/**
 * Like GitHub's OAuth apps: plain OAuth 2.0, no OpenID Connect for the client (no `openid`
 * scope, no ID token, no `iss` on the callback); endpoints at /login/oauth/authorize and
 * /login/oauth/access_token; opaque access tokens; `GET /user` → `{ id: <number>, login,
 * email, name, teams }` (teams inlined as `org/team` slugs for role-like values; 401
 * `Bad credentials` otherwise); client `post` (client_secret_post). With `expiringTokens`
 * (GitHub Apps' user tokens), refresh tokens are issued and rotate. Users: octocat (id 123,
 * acme/mcp-admins) and hubot (id 456, no team).
 */
export async function startPlainOAuth(
  o: { users?: IdpUser[]; expiringTokens?: boolean; callback?: string } = {},
): Promise<UpstreamIdp> {
  return startIdp({
    callback: o.callback,
    kind: 'oauth2',
    prefix: '',
    userinfoPath: '/user',
    users: o.users ?? [
      {
        id: 'octocat',
        claims: {
          id: 123,
          login: 'octocat',
          email: 'octocat@github.example',
          name: 'The Octocat',
          teams: ['acme/mcp-admins'],
        },
      },
      { id: 'hubot', claims: { id: 456, login: 'hubot', email: null, name: 'Hubot', teams: [] } },
    ],
    clients: {
      post: {
        clientId: 'Iv1.0123456789abcdef',
        method: 'client_secret_post',
        clientSecret: 'gh-secret-0123456789abcdef',
      },
    },
    configuration: () => ({
      clients: [
        {
          client_id: 'Iv1.0123456789abcdef',
          client_secret: 'gh-secret-0123456789abcdef',
          token_endpoint_auth_method: 'client_secret_post',
          ...client(o.callback),
        },
      ],
      routes: { authorization: '/login/oauth/authorize', token: '/login/oauth/access_token' },
      scopes: ['public', 'read:user', 'user:email', 'read:org'],
      issueRefreshToken: () => o.expiringTokens === true,
      rotateRefreshToken: true,
      expiresWithSession: () => false,
      ttl: TTL,
    }),
    // GitHub gives public read access to a request without scope; oidc-provider grants nothing
    // without one, so such a request gets the stand-in scope `public`.
    editAuthorize: (url) => {
      if (!url.searchParams.has('scope')) url.searchParams.set('scope', 'public')
    },
    editCallback: (url) => url.searchParams.delete('iss'),
    route: async (ctx, s) => {
      if (ctx.path !== '/user' || ctx.method !== 'GET') return false
      const [scheme, value] = (ctx.get('authorization') || ' ').split(' ')
      const token =
        /^(bearer|token)$/i.test(scheme ?? '') && value
          ? await s.provider().AccessToken.find(value)
          : undefined
      const account = token && !token.isExpired ? s.account(String(token.accountId)) : undefined
      ctx.type = 'json'
      if (!account) {
        ctx.status = 401
        ctx.body = { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' }
        return true
      }
      const { sub: _sub, ...user } = account.claims()
      ctx.body = user
      return true
    },
  })
}

/** The client a Keycloak realm knows the gateway's broker as (a realm file's confidential client). */
export interface KeycloakClient {
  clientId: string
  secret: string
  redirectUri: string
  /** Its default and optional client scopes: what it may ask for besides `openid`. */
  scopes: string[]
}

/**
 * Like a Keycloak realm: issuer `<origin>/realms/<realm>`, no registration; one confidential
 * client (client_secret_basic, PKCE S256, its redirect URI exact); an authorization request
 * naming a scope the client does not have is sent back with invalid_scope (Keycloak's "Invalid
 * scopes"), where oidc-provider alone would drop the scope; ID tokens and userinfo carry
 * `realm_access.roles` (a realm role mapper on the client) and, with `profile`,
 * `preferred_username`; refresh tokens are issued at every login and rotate.
 */
export async function startKeycloakLike(o: {
  realm: string
  client: KeycloakClient
  users: IdpUser[]
  publicOrigin?: (port: number) => string
  tls?: { cert: string; key: string }
}): Promise<UpstreamIdp> {
  const { client: c } = o
  const allowed = new Set(['openid', ...c.scopes])
  return startIdp({
    callback: c.redirectUri,
    kind: 'oidc',
    prefix: `/realms/${o.realm}`,
    ...(o.publicOrigin ? { publicOrigin: o.publicOrigin } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    users: o.users,
    clients: {
      broker: { clientId: c.clientId, method: 'client_secret_basic', clientSecret: c.secret },
    },
    configuration: () => ({
      clients: [
        {
          client_id: c.clientId,
          client_secret: c.secret,
          token_endpoint_auth_method: 'client_secret_basic',
          ...client(c.redirectUri),
        },
      ],
      claims: {
        openid: ['sub', 'realm_access'],
        profile: ['name', 'given_name', 'family_name', 'preferred_username'],
        email: ['email', 'email_verified'],
      },
      conformIdTokenClaims: false,
      scopes: [...allowed],
      issueRefreshToken: () => true,
      rotateRefreshToken: true,
      expiresWithSession: () => false,
      ttl: TTL,
    }),
    route: async (ctx, s) => {
      if (ctx.path !== '/auth' || ctx.query.redirect_uri !== c.redirectUri) return false
      const asked = String(ctx.query.scope ?? '')
        .split(' ')
        .filter((s) => s !== '')
      if (asked.every((s) => allowed.has(s))) return false
      const back = new URL(c.redirectUri)
      back.searchParams.set('error', 'invalid_scope')
      back.searchParams.set('error_description', `Invalid scopes: ${asked.join(' ')}`)
      if (typeof ctx.query.state === 'string') back.searchParams.set('state', ctx.query.state)
      back.searchParams.set('iss', s.provider().issuer)
      ctx.redirect(back.href)
      return true
    },
  })
}
