// Where the token endpoint of an issuer is found (OpenID Connect Discovery, else RFC 8414), for
// the token exchange: RFC 8414 §3.1 puts the well-known string between the host and the issuer's
// path, so an issuer with a path (a tenant, a realm) is asked at the host's well-known folder,
// never under its own path. The JWKS discovery (auth/keys.ts) asks the same two addresses.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { discoveryUrls } from '../../gateway/auth/discovery-urls.js'
import { createIdpHttp, type IdpHttp } from '../../gateway/auth/idp-http.js'
import { CredentialError } from '../../gateway/credentials/errors.js'
import { discoveredTokenEndpoint } from '../../gateway/credentials/exchange-discovery.js'
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js'

describe('discoveryUrls', () => {
  for (const [issuer, oidc, oauth] of [
    [
      'https://idp.example',
      'https://idp.example/.well-known/openid-configuration',
      'https://idp.example/.well-known/oauth-authorization-server',
    ],
    [
      'https://idp.example/',
      'https://idp.example/.well-known/openid-configuration',
      'https://idp.example/.well-known/oauth-authorization-server',
    ],
    [
      'https://idp.example/tenant1',
      'https://idp.example/tenant1/.well-known/openid-configuration',
      'https://idp.example/.well-known/oauth-authorization-server/tenant1',
    ],
    [
      'https://idp.example:8443/realms/acme/',
      'https://idp.example:8443/realms/acme/.well-known/openid-configuration',
      'https://idp.example:8443/.well-known/oauth-authorization-server/realms/acme',
    ],
  ] as const) {
    test(issuer, () => assert.deepEqual(discoveryUrls(issuer), [oidc, oauth]))
  }
})

describe('discoveredTokenEndpoint', () => {
  let idp: JwksServer
  let http: IdpHttp
  before(async () => {
    idp = await startJwksServer()
    http = createIdpHttp(5000)
  })
  after(async () => {
    await http.close()
    await idp.close()
  })
  beforeEach(() => {
    idp.routes.clear()
    idp.requests.length = 0
  })

  test('an issuer with a path: found at RFC 8414 §3.1 address, after the OIDC one', async () => {
    const issuer = `${idp.origin}/tenant1`
    const token = `${idp.origin}/tenant1/token`
    idp.routes.set('/.well-known/oauth-authorization-server/tenant1', () => ({
      body: { issuer, token_endpoint: token },
    }))
    // The address an issuer-relative join would ask, answering as a planted document would.
    idp.routes.set('/tenant1/.well-known/oauth-authorization-server', () => ({
      body: { issuer, token_endpoint: `${idp.origin}/planted` },
    }))
    assert.equal(await discoveredTokenEndpoint(issuer, http)(), token)
    assert.deepEqual(idp.requests, [
      '/tenant1/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server/tenant1',
    ])
  })

  test('an issuer with a path whose OIDC document answers: that one, nothing else asked', async () => {
    const issuer = `${idp.origin}/realms/acme`
    idp.routes.set('/realms/acme/.well-known/openid-configuration', () => ({
      body: { issuer, token_endpoint: `${issuer}/protocol/openid-connect/token` },
    }))
    assert.equal(
      await discoveredTokenEndpoint(issuer, http)(),
      `${issuer}/protocol/openid-connect/token`,
    )
    assert.deepEqual(idp.requests, ['/realms/acme/.well-known/openid-configuration'])
  })

  for (const [name, body] of [
    ['another issuer', (o: string) => ({ issuer: `${o}/tenant2`, token_endpoint: `${o}/t` })],
    [
      'the issuer with a trailing slash',
      (o: string) => ({ issuer: `${o}/tenant1/`, token_endpoint: `${o}/t` }),
    ],
    ['no token_endpoint', (o: string) => ({ issuer: `${o}/tenant1` })],
    [
      'a token_endpoint that is not a string',
      (o: string) => ({ issuer: `${o}/tenant1`, token_endpoint: ['x'] }),
    ],
  ] as const) {
    test(`refused at the RFC 8414 address: ${name}`, async () => {
      idp.routes.set('/.well-known/oauth-authorization-server/tenant1', () => ({
        body: body(idp.origin),
      }))
      await assert.rejects(discoveredTokenEndpoint(`${idp.origin}/tenant1`, http)(), (err) => {
        assert.ok(err instanceof CredentialError)
        assert.equal(err.code, 'exchange_unavailable')
        return true
      })
    })
  }
})
