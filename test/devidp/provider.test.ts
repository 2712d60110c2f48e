import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type JWTPayload,
} from 'jose'
import { startDevIdp, type DevIdp } from '../../gateway/devidp/provider.js'
import { readDevIdpState } from '../../gateway/devidp/state.js'
import { requestDevToken } from '../../gateway/devidp/token-client.js'
import { DEMO_ROLES, scopesForRoles } from '../helpers/dev-roles.js'
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
const FILES = 'http://127.0.0.1:8080/mcp/files'
const REDIRECT = 'http://localhost:6274/oauth/callback'
const INSPECTOR = 'http://localhost:6274'
const scopesFor = scopesForRoles(DEMO_ROLES)
const CLIENTS = [
  { clientId: 'alice', clientSecret: 'alice-secret', roles: ['mcp-admin'], subject: 'alice@dev' },
  { clientId: 'bob', clientSecret: 'bob-secret', roles: ['mcp-user'] },
]

interface Claims extends JWTPayload {
  client_id?: string
  scope?: string
  realm_access?: { roles: string[] }
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

/** client_credentials for a test client; returns the token endpoint's parsed answer. */
async function clientCredentials(
  meta: Discovery,
  client: { clientId: string; clientSecret: string },
  form: Record<string, string>,
) {
  const res = await request(meta.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: basic(client.clientId, client.clientSecret),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString(),
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> }
}

describe('dev IdP with test keys, two resources and test clients', () => {
  let idp: DevIdp
  let meta: Discovery
  let publicJwk: Awaited<ReturnType<typeof exportJWK>>
  let jwks: ReturnType<typeof createRemoteJWKSet>

  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
    publicJwk = { ...(await exportJWK(publicKey)), kid: 'test-key' }
    const privateJwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256' }
    idp = await startDevIdp({
      resources: [ECHO, FILES],
      clients: CLIENTS,
      jwks: { keys: [privateJwk] },
      scopesFor,
      stateFile: false,
    })
    meta = await discover(idp.issuer)
    jwks = createRemoteJWKSet(new URL(meta.jwks_uri))
  }, SETUP)
  after(() => idp.close())

  const verify = (token: string, resource: string) =>
    jwtVerify<Claims>(token, jwks, { issuer: idp.issuer, audience: resource, typ: 'at+jwt' })

  it('serves discovery documents', async () => {
    assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
    const oauth = await request(`${idp.issuer}/.well-known/oauth-authorization-server`)
    const cases: [string, (d: Discovery) => boolean][] = [
      ['issuer is exact', (d) => d.issuer === idp.issuer],
      ['jwks_uri', (d) => d.jwks_uri === `${idp.issuer}/jwks`],
      ['registration_endpoint', (d) => d.registration_endpoint === `${idp.issuer}/reg`],
      ['S256', (d) => (d.code_challenge_methods_supported as string[]).includes('S256')],
      ['code only', (d) => JSON.stringify(d.response_types_supported) === '["code"]'],
      [
        'grant types',
        (d) =>
          ['authorization_code', 'client_credentials', 'refresh_token'].every((g) =>
            (d.grant_types_supported as string[]).includes(g),
          ),
      ],
      ['mcp scopes', (d) => (d.scopes_supported as string[]).includes('mcp:write')],
    ]
    const rfc8414 = (await oauth.body.json()) as Discovery
    for (const [name, check] of cases) {
      assert.ok(check(meta), `openid-configuration: ${name}`)
      assert.ok(check(rfc8414), `oauth-authorization-server: ${name}`)
    }
  })

  it('issues client_credentials JWTs bound to the requested resource', async () => {
    const cases = [
      { client: CLIENTS[0]!, resource: ECHO, scope: 'mcp:read mcp:admin', sub: 'alice@dev' },
      { client: CLIENTS[1]!, resource: FILES, scope: 'mcp:read', sub: 'bob' },
      {
        client: CLIENTS[1]!,
        resource: ECHO,
        scope: 'mcp:read openid unknown',
        sub: 'bob',
        granted: 'mcp:read',
      },
      // mcp-user grants mcp:read only: the rest is left out, not refused.
      {
        client: CLIENTS[1]!,
        resource: ECHO,
        scope: 'mcp:read mcp:write mcp:admin',
        sub: 'bob',
        granted: 'mcp:read',
      },
      { client: CLIENTS[1]!, resource: ECHO, scope: 'mcp:admin', sub: 'bob', granted: undefined },
    ]
    for (const c of cases) {
      const { status, body } = await clientCredentials(meta, c.client, {
        resource: c.resource,
        scope: c.scope,
      })
      assert.equal(status, 200, JSON.stringify(body))
      const { payload, protectedHeader } = await verify(body.access_token!, c.resource)
      assert.equal(protectedHeader.alg, 'RS256')
      assert.equal(payload.aud, c.resource)
      assert.equal(payload.sub, c.sub)
      assert.equal(payload.client_id, c.client.clientId)
      const granted = 'granted' in c ? c.granted : c.scope
      assert.equal(payload.scope, granted, c.scope)
      assert.equal(body.scope, granted, `${c.scope}: the response says what was granted`)
      assert.deepEqual(payload.realm_access, { roles: c.client.roles })
      assert.ok(payload.jti && payload.iat && payload.exp! - payload.iat === 3600)
    }
  })

  it('rejects bad token requests', async () => {
    const cases: {
      name: string
      form: Record<string, string>
      extra?: string
      secret?: string
      error: string
    }[] = [
      {
        name: 'unknown resource',
        form: { resource: 'http://evil.example/mcp' },
        error: 'invalid_target',
      },
      {
        name: 'no resource, several allowed',
        form: { scope: 'mcp:read' },
        error: 'invalid_target',
      },
      {
        name: 'two resources',
        form: { resource: ECHO },
        extra: `&resource=${FILES}`,
        error: 'invalid_target',
      },
      { name: 'wrong secret', form: { resource: ECHO }, secret: 'nope', error: 'invalid_client' },
    ]
    for (const c of cases) {
      const res = await request(meta.token_endpoint, {
        method: 'POST',
        headers: {
          authorization: basic('bob', c.secret ?? 'bob-secret'),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body:
          new URLSearchParams({ grant_type: 'client_credentials', ...c.form }).toString() +
          (c.extra ?? ''),
      })
      const body = (await res.body.json()) as { error: string }
      assert.equal(body.error, c.error, c.name)
      assert.ok(res.statusCode >= 400, c.name)
    }
  })

  it('signs with the keys passed in `jwks` (public part verifies)', async () => {
    const { body } = await clientCredentials(meta, CLIENTS[0]!, { resource: ECHO })
    assert.equal(decodeProtectedHeader(body.access_token!).kid, 'test-key')
    const key = await importJWK(publicJwk, 'RS256')
    const { payload } = await jwtVerify<Claims>(body.access_token!, key, { audience: ECHO })
    assert.equal(payload.iss, idp.issuer)
  })

  it('runs authorization code + PKCE for the dev user, then refreshes', async () => {
    const cases: {
      name: string
      redirectUri: string
      metadata: Record<string, unknown>
      resource: string
      scope: string
      params: Record<string, string>
      granted: string
    }[] = [
      {
        name: 'browser client (MCP Inspector)',
        redirectUri: REDIRECT,
        metadata: {},
        resource: FILES,
        scope: 'openid mcp:read mcp:write',
        params: {},
        granted: 'mcp:read mcp:write',
      },
      {
        name: 'native client (MCP SDK)',
        redirectUri: 'http://127.0.0.1:33418/callback',
        metadata: { application_type: 'native', scope: 'mcp:read offline_access' },
        resource: ECHO,
        scope: 'mcp:read offline_access',
        params: { prompt: 'consent' },
        granted: 'mcp:read',
      },
    ]
    for (const c of cases) {
      const clientId = await registerPublicClient(idp.issuer, c.redirectUri, c.metadata)
      const tokens = await authorizationCodeFlow({
        issuer: idp.issuer,
        clientId,
        redirectUri: c.redirectUri,
        resource: c.resource,
        scope: c.scope,
        params: c.params,
      })
      const { payload } = await verify(tokens.access_token, c.resource)
      assert.equal(payload.sub, 'dev-user', c.name)
      assert.equal(payload.client_id, clientId, c.name)
      assert.equal(payload.scope, c.granted, c.name)
      assert.deepEqual(payload.realm_access, { roles: ['mcp-user', 'mcp-developer'] }, c.name)

      assert.ok(tokens.refresh_token, `${c.name}: refresh token`)
      const refreshed = await tokenRequest(meta.token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token,
        client_id: clientId,
      })
      const again = await verify(refreshed.access_token, c.resource)
      assert.equal(again.payload.sub, 'dev-user', c.name)
      assert.notEqual(refreshed.refresh_token, tokens.refresh_token, `${c.name}: rotated`)
    }
  })

  it('refuses authorization requests without PKCE S256 or a valid resource', async () => {
    const clientId = await registerPublicClient(idp.issuer, REDIRECT)
    const base = {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'mcp:read',
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
    }
    const cases = [
      {
        name: 'no PKCE',
        params: { ...base, code_challenge: '', code_challenge_method: '', resource: ECHO },
        error: 'invalid_request',
        description: /PKCE/,
      },
      {
        name: 'plain PKCE',
        params: { ...base, code_challenge_method: 'plain', resource: ECHO },
        error: 'invalid_request',
        description: /code_challenge_method/,
      },
      {
        name: 'foreign resource',
        params: { ...base, resource: 'http://127.0.0.1:9/mcp/x' },
        error: 'invalid_target',
        description: /not served/,
      },
      {
        name: 'no resource, several allowed',
        params: base,
        error: 'invalid_target',
        description: /resource parameter required/,
      },
    ]
    for (const c of cases) {
      const params = Object.entries(c.params).filter(([, v]) => v)
      const url = `${meta.authorization_endpoint}?${new URLSearchParams(params)}`
      const res = await request(url)
      await res.body.dump()
      const location = new URL(String(res.headers.location))
      assert.equal(location.searchParams.get('error'), c.error, c.name)
      assert.match(location.searchParams.get('error_description') ?? '', c.description, c.name)
    }
  })

  it('lets a browser client on localhost register and get tokens (CORS)', async () => {
    const preflight = await request(meta.registration_endpoint, {
      method: 'OPTIONS',
      headers: {
        origin: INSPECTOR,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    })
    await preflight.body.dump()
    const cases = [
      ['registration preflight status', preflight.statusCode, 204],
      [
        'registration preflight origin',
        preflight.headers['access-control-allow-origin'],
        INSPECTOR,
      ],
      [
        'registration preflight headers',
        preflight.headers['access-control-allow-headers'],
        'content-type',
      ],
    ]
    const reg = await request(meta.registration_endpoint, {
      method: 'POST',
      headers: { origin: INSPECTOR, 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
    })
    const { client_id: clientId } = (await reg.body.json()) as { client_id: string }
    cases.push(
      ['registration status', reg.statusCode, 201],
      ['registration origin', reg.headers['access-control-allow-origin'], INSPECTOR],
    )

    const token = await request(meta.token_endpoint, {
      method: 'POST',
      headers: { origin: INSPECTOR, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: 'bogus',
        client_id: clientId,
        redirect_uri: REDIRECT,
        code_verifier: 'v'.repeat(43),
      }).toString(),
    })
    const tokenBody = (await token.body.json()) as { error: string }
    cases.push(
      ['token error is the grant, not CORS', tokenBody.error, 'invalid_grant'],
      ['token origin', token.headers['access-control-allow-origin'], INSPECTOR],
    )

    const evil = await request(meta.registration_endpoint, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    })
    await evil.body.dump()
    cases.push([
      'foreign origin gets no CORS',
      evil.headers['access-control-allow-origin'],
      undefined,
    ])
    for (const [name, actual, expected] of cases) assert.equal(actual, expected, String(name))
  })
})

describe('dev IdP defaults, state file and requestDevToken', () => {
  let dir: string
  let statePath: string
  let idp: DevIdp

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'devidp-test-'))
    statePath = path.join(dir, 'state.json')
    idp = await startDevIdp({
      resources: [ECHO],
      scopesFor,
      stateFile: statePath,
      accessTokenTtl: 120,
    })
  }, SETUP)
  after(async () => {
    await idp.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('writes the CLI client to a 0600 state file', async () => {
    const state = await readDevIdpState(statePath)
    assert.equal(state.issuer, idp.issuer)
    assert.deepEqual(state.users, [
      {
        sub: 'dev-user',
        roles: ['mcp-user', 'mcp-developer'],
        clientId: 'mcp-edge-cli',
        clientSecret: idp.cliClient.clientSecret,
      },
    ])
    assert.deepEqual(state.resources, [ECHO])
    assert.equal((await stat(statePath)).mode & 0o777, 0o600)
  })

  it('requestDevToken gets dev-user tokens with defaults and explicit options', async () => {
    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`))
    const cases: { opts: { scope?: string; resource?: string }; scope: string | undefined }[] = [
      { opts: {}, scope: undefined }, // no scope asked: roles alone decide at the gateway
      { opts: { scope: 'mcp:read', resource: ECHO }, scope: 'mcp:read' },
    ]
    for (const c of cases) {
      const token = await requestDevToken({ ...c.opts, statePath })
      assert.equal(token.expires_in, 120)
      assert.equal(token.scope, c.scope)
      const { payload } = await jwtVerify<Claims>(token.access_token, jwks, {
        issuer: idp.issuer,
        audience: ECHO,
        typ: 'at+jwt',
      })
      assert.equal(payload.sub, 'dev-user')
      assert.equal(payload.client_id, 'mcp-edge-cli')
      assert.deepEqual(payload.realm_access, { roles: ['mcp-user', 'mcp-developer'] })
    }
  })

  it('defaults the resource when exactly one is allowed', async () => {
    const { cliClient } = idp
    const token = await tokenRequest(
      `${idp.issuer}/token`,
      { grant_type: 'client_credentials', scope: 'mcp:read' },
      { authorization: basic(cliClient.clientId, cliClient.clientSecret) },
    )
    const payload = JSON.parse(
      Buffer.from(token.access_token.split('.')[1]!, 'base64url').toString(),
    ) as Claims
    assert.equal(payload.aud, ECHO)
  })

  it('requestDevToken reports errors clearly', async () => {
    const closed = await startDevIdp({
      resources: [ECHO],
      scopesFor,
      stateFile: path.join(dir, 'c.json'),
    })
    await closed.close()
    const stale = path.join(dir, 'stale.json')
    const { writeDevIdpState } = await import('../../gateway/devidp/state.js')
    await writeDevIdpState(stale, {
      issuer: closed.issuer,
      users: [{ sub: 'dev-user', roles: [], clientId: 'mcp-edge-cli', clientSecret: 'x' }],
      resources: [ECHO],
      scopes: ['mcp:read'],
      pid: 1,
    })
    const cases = [
      { opts: { statePath: path.join(dir, 'missing.json') }, error: /no dev IdP is running/ },
      { opts: { statePath, resource: 'http://127.0.0.1:1/mcp/nope' }, error: /invalid_target/ },
      { opts: { statePath: stale }, error: /not reachable.*ECONNREFUSED/ },
      {
        opts: { statePath, user: 'nobody' },
        error: /no dev user "nobody"; the dev IdP has: dev-user/,
      },
    ]
    for (const c of cases) await assert.rejects(requestDevToken(c.opts), c.error)
  })

  it('requestDevToken: one resource named twice is one (no "several" hint), two distinct are several', async () => {
    const NOPE = 'http://127.0.0.1:1/mcp/nope'
    const HINT = /a token is for one server: for several/
    for (const resource of [
      [NOPE, NOPE],
      [NOPE, NOPE, NOPE],
    ]) {
      const err = await requestDevToken({ statePath, resource }).then(
        () => assert.fail('a token for a resource not allowed'),
        (e: Error) => e,
      )
      assert.match(err.message, /invalid_target/)
      assert.doesNotMatch(err.message, HINT, JSON.stringify(resource))
    }
    await assert.rejects(requestDevToken({ statePath, resource: [NOPE, ECHO] }), HINT)
    const twice = await requestDevToken({ statePath, resource: [ECHO, ECHO] })
    assert.equal(decodeJwt(twice.access_token).aud, ECHO)
  })

  it('close() removes only its own state file', async () => {
    const file = path.join(dir, 'own.json')
    const first = await startDevIdp({ resources: [ECHO], scopesFor, stateFile: file })
    const second = await startDevIdp({ resources: [ECHO], scopesFor, stateFile: file })
    await first.close()
    assert.equal((await readDevIdpState(file)).issuer, second.issuer)
    await second.close()
    await assert.rejects(readDevIdpState(file), /no dev IdP is running/)
  })

  it('refuses non-loopback hosts', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com', '128.0.0.1']) {
      await assert.rejects(
        startDevIdp({ host, resources: [ECHO], scopesFor, stateFile: false }),
        /loopback/,
        host,
      )
    }
  })
})
