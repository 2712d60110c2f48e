// The dev IdP grants what the subject's roles allow under the policy as it is at that moment;
// whatever else a client asks for is left out of the grant, never an error.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { startDevIdp, type DevIdp, type ScopesFor } from '../../gateway/devidp/provider.js'
import { scopesOfRoles } from '../../gateway/policy/role-scopes.js'
import {
  authorizationCodeFlow,
  discover,
  registerPublicClient,
  tokenRequest,
  type Discovery,
  SETUP,
  request,
} from '../helpers/oauth-flow.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'
const REDIRECT = 'http://127.0.0.1:33418/callback'
const SHIPPED = {
  'mcp-admin': ['*'],
  'mcp-developer': ['mcp:read', 'mcp:write'],
  'mcp-user': ['mcp:read'],
}
const BOB = { clientId: 'bob', clientSecret: 'bob-secret', roles: ['mcp-user'] }

/** The role map as the live policy holds it now; tests replace it as a reload would. */
let roleMap: Record<string, string[]> = SHIPPED
const scopesFor: ScopesFor = (roles) => scopesOfRoles(new Map(Object.entries(roleMap)), roles).has

const scopeOf = (token: string) => decodeJwt(token).scope as string | undefined
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

describe('dev IdP: scopes follow the roles of the live policy', () => {
  let idp: DevIdp
  let meta: Discovery
  before(async () => {
    idp = await startDevIdp({ resources: [ECHO], clients: [BOB], scopesFor, stateFile: false })
    meta = await discover(idp.issuer)
  }, SETUP)
  after(() => idp.close())

  const codeFlow = async (scope: string) => {
    const clientId = await registerPublicClient(idp.issuer, REDIRECT)
    return {
      clientId,
      ...(await authorizationCodeFlow({
        issuer: idp.issuer,
        clientId,
        redirectUri: REDIRECT,
        resource: ECHO,
        scope,
      })),
    }
  }
  const clientCredentials = async (
    client: { clientId: string; clientSecret: string },
    scope: string,
  ) =>
    tokenRequest(
      meta.token_endpoint,
      { grant_type: 'client_credentials', resource: ECHO, scope },
      { authorization: basic(client.clientId, client.clientSecret) },
    )

  it('authorization code: the non-admin dev user asking for mcp:admin gets a token without it', async () => {
    const cases = [
      { ask: 'mcp:read mcp:admin', granted: 'mcp:read' },
      { ask: 'mcp:read mcp:write mcp:admin offline_access', granted: 'mcp:read mcp:write' },
      // A scope the IdP does not know is dropped like one the roles do not grant.
      { ask: 'mcp:read no-such:scope', granted: 'mcp:read' },
    ]
    for (const c of cases) {
      const tokens = await codeFlow(c.ask)
      assert.equal(scopeOf(tokens.access_token), c.granted, c.ask)
      assert.equal(tokens.scope, c.granted, `${c.ask}: the response says what was granted`)
    }
  })

  it('authorization code asking only for what the roles refuse: a token with no scope', async () => {
    // Some clients step up with the challenged scope alone. They get a token whose scope is
    // empty (the roles still count at the gateway), the same on a second try in one session.
    const clientId = await registerPublicClient(idp.issuer, REDIRECT)
    const jar = new Map<string, string>()
    for (const attempt of ['first', 'second, same session']) {
      const tokens = await authorizationCodeFlow({
        issuer: idp.issuer,
        clientId,
        redirectUri: REDIRECT,
        resource: ECHO,
        scope: 'mcp:admin',
        jar,
      })
      assert.equal(scopeOf(tokens.access_token), undefined, attempt)
      assert.equal(tokens.scope, '', attempt)
      assert.deepEqual(
        decodeJwt(tokens.access_token).realm_access,
        { roles: ['mcp-user', 'mcp-developer'] },
        attempt,
      )
    }
  })

  it('authorization code asking only for scopes the IdP does not know: access_denied', async () => {
    // oidc-provider will not issue a code granting nothing it knows of what was asked.
    await assert.rejects(codeFlow('no-such:scope'), /authorization failed: access_denied/)
  })

  it('client_credentials: scopes outside the client roles are left out', async () => {
    const cases = [
      { ask: '', granted: undefined }, // `mcp-edge token` asks for none: none, roles decide later
      { ask: 'mcp:read', granted: 'mcp:read' },
      { ask: 'mcp:read mcp:write mcp:admin', granted: 'mcp:read' },
      { ask: 'mcp:admin', granted: undefined },
    ]
    for (const c of cases) {
      const token = await clientCredentials(BOB, c.ask)
      assert.equal(scopeOf(token.access_token), c.granted, c.ask)
      assert.equal(token.scope, c.granted, c.ask)
    }
  })

  it('a self-registered client_credentials client has no roles, so no scope', async () => {
    const reg = await request(meta.registration_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      }),
    })
    const client = (await reg.body.json()) as { client_id: string; client_secret: string }
    assert.equal(reg.statusCode, 201, JSON.stringify(client))
    const token = await clientCredentials(
      { clientId: client.client_id, clientSecret: client.client_secret },
      'mcp:read mcp:admin',
    )
    assert.equal(scopeOf(token.access_token), undefined)
    assert.deepEqual(decodeJwt(token.access_token).realm_access, { roles: [] })
  })

  it('roles changed between two token requests: the policy in force decides each', async () => {
    try {
      const before = await clientCredentials(BOB, 'mcp:read mcp:write')
      const code = await codeFlow('mcp:read mcp:write offline_access')
      assert.equal(scopeOf(before.access_token), 'mcp:read')
      assert.equal(scopeOf(code.access_token), 'mcp:read mcp:write')

      // Reload: mcp-user may now write.
      roleMap = { ...SHIPPED, 'mcp-user': ['mcp:read', 'mcp:write'] }
      const widened = await clientCredentials(BOB, 'mcp:read mcp:write')
      assert.equal(scopeOf(widened.access_token), 'mcp:read mcp:write')

      // Reload: dev-user's roles (mcp-user, mcp-developer) may only read.
      roleMap = { ...SHIPPED, 'mcp-developer': ['mcp:read'] }
      const refreshed = await tokenRequest(meta.token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: code.refresh_token!,
        client_id: code.clientId,
      })
      assert.equal(
        scopeOf(refreshed.access_token),
        'mcp:read',
        'a refresh after the reload loses what the roles no longer grant',
      )

      // Reload: dev-user's mcp-developer becomes admin. A new authorization gets mcp:admin,
      // even though this client asked for it before and was refused.
      roleMap = { ...SHIPPED, 'mcp-developer': ['*'] }
      const again = await authorizationCodeFlow({
        issuer: idp.issuer,
        clientId: code.clientId,
        redirectUri: REDIRECT,
        resource: ECHO,
        scope: 'mcp:read mcp:admin',
      })
      assert.equal(scopeOf(again.access_token), 'mcp:read mcp:admin')
    } finally {
      roleMap = SHIPPED
    }
  })
})
