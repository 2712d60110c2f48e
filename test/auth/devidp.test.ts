import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { request } from 'undici'
import { createAuthenticator, type Authenticator } from '../../gateway/auth/authenticator.js'
import { createIdpHttp, type IdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource, type KeySource } from '../../gateway/auth/keys.js'
import { validateConfig } from '../../gateway/config/load.js'
import { startDevIdp, type DevIdp } from '../../gateway/devidp/provider.js'
import { DEMO_ROLES, scopesForRoles } from '../helpers/dev-roles.js'
import { claims, makeKey, rejectsWith, signToken, type TestKey } from '../helpers/keys.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'
const NOTES = 'http://127.0.0.1:8080/mcp/notes'
const CLIENT = {
  clientId: 'svc',
  clientSecret: 'svc-secret',
  roles: ['mcp-developer'],
  subject: 'svc@dev',
}

let idp: DevIdp
let signing: TestKey
let http: IdpHttp
let keys: KeySource
let auth: Authenticator

/** A client_credentials access token from the dev IdP. */
async function token(resource: string, scope: string): Promise<string> {
  const discovery = await request(`${idp.issuer}/.well-known/openid-configuration`)
  const meta = (await discovery.body.json()) as { token_endpoint: string }
  const basic = Buffer.from(`${CLIENT.clientId}:${CLIENT.clientSecret}`).toString('base64')
  const res = await request(meta.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }).toString(),
  })
  const body = (await res.body.json()) as { access_token?: string }
  assert.equal(res.statusCode, 200, JSON.stringify(body))
  return body.access_token!
}

before(async () => {
  signing = await makeKey('ES256', 'dev-es256')
  idp = await startDevIdp({
    resources: [ECHO, NOTES],
    clients: [CLIENT],
    jwks: { keys: [signing.privateJwk] },
    scopesFor: scopesForRoles(DEMO_ROLES),
    stateFile: false,
  })
  const raw = {
    servers: { echo: { command: 'node' } },
    auth: { issuer: idp.issuer, requireJwtAccessTokenType: true },
  }
  const { auth: config } = validateConfig(raw, { file: 'test', baseDir: '/' })
  http = createIdpHttp(config.idpTimeout)
  keys = createKeySource({
    issuer: idp.issuer,
    http,
    timeoutMs: config.idpTimeout,
    cooldownMs: config.jwksCooldown,
    maxAgeMs: config.jwksMaxAge,
  })
  auth = createAuthenticator({ ...config, issuer: idp.issuer }, keys)
})
after(async () => {
  await http.close()
  await idp.close()
})

describe('authenticator against the dev IdP (discovery, JWKS, RFC 9068 tokens)', () => {
  test('a client_credentials token becomes the principal', async () => {
    const p = await auth.authenticate(`Bearer ${await token(ECHO, 'mcp:read mcp:write')}`, [ECHO])
    const { iss, sub, clientId } = p
    assert.deepEqual(
      { iss, sub, clientId, scopes: [...p.scopes].sort(), roles: [...p.roles] },
      {
        iss: idp.issuer,
        sub: 'svc@dev',
        clientId: 'svc',
        scopes: ['mcp:read', 'mcp:write'],
        roles: ['mcp-developer'],
      },
    )
    assert.equal(keys.jwksUri, `${idp.issuer}/jwks`)
  })

  const forged = async (key: TestKey, header = {}) =>
    `Bearer ${await signToken(key, claims(idp.issuer, { aud: ECHO }), header)}`
  const cases: {
    name: string
    header: () => Promise<string>
    audiences: string[]
    code: string
  }[] = [
    {
      name: 'token for another resource',
      header: async () => `Bearer ${await token(NOTES, 'mcp:read')}`,
      audiences: [ECHO],
      code: 'wrong_audience',
    },
    {
      name: 'forged with the IdP kid',
      header: async () => forged(await makeKey('ES256', signing.kid)),
      audiences: [ECHO],
      code: 'bad_signature',
    },
    {
      name: 'signed by an unknown key',
      header: async () => forged(await makeKey('ES256', 'other')),
      audiences: [ECHO],
      code: 'unknown_key',
    },
    {
      name: 'typ JWT while at+jwt is required',
      header: () => forged(signing, { typ: 'JWT' }),
      audiences: [ECHO],
      code: 'wrong_token_type',
    },
  ]
  for (const c of cases) {
    test(c.name, async () => {
      await rejectsWith(auth.authenticate(await c.header(), c.audiences), c.code)
    })
  }

  test('control: the test signing key is the IdP key', async () => {
    const token = await signToken(signing, claims(idp.issuer, { aud: ECHO, sub: 'self' }))
    const header = `Bearer ${token}`
    assert.equal((await auth.authenticate(header, [ECHO])).sub, 'self')
  })
})
