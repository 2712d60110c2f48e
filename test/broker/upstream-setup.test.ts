import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { importClientKey } from '../../gateway/broker/upstream-key.js'
import { createUpstream, type UpstreamConfig } from '../../gateway/broker/upstream.js'
import { ConfigError } from '../../gateway/config/errors.js'
import { DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS } from '../../gateway/config/schema.js'
import { readSecret } from '../../gateway/config/secrets.js'
import {
  captureLog,
  configFor,
  connect,
  rejectsUpstream,
  secretsFor,
  signIn,
  UPSTREAM_LIMITS,
} from '../helpers/upstream-client.js'
import { startEntraLike, UPSTREAM_CALLBACK, type UpstreamIdp } from '../helpers/upstream-idp.js'

const SILENT = pino({ level: 'silent' })
const P = 'auth.broker.upstream'

describe('createUpstream refuses what cannot work, at start-up, every problem at once', () => {
  const base: UpstreamConfig = {
    issuer: 'https://login.example/tenant/v2.0',
    clientId: 'gw',
    clientSecret: { env: 'S' },
    authorizeParams: {},
    sendResource: false,
    subjectClaim: 'sub',
    roleClaims: ['roles'],
    roleMap: {},
    recheckInterval: 900,
    timeout: 5000,
    ...UPSTREAM_LIMITS,
  }
  const cases: {
    name: string
    config: Partial<UpstreamConfig>
    redirectUri?: string
    env?: Record<string, string>
    paths: string[]
  }[] = [
    {
      name: 'an http issuer that is not loopback',
      config: { issuer: 'http://login.example/t/v2.0' },
      paths: [`${P}.issuer`],
    },
    {
      name: 'http endpoints that are not loopback',
      config: {
        issuer: undefined,
        endpoints: {
          authorization: 'http://gh.example/a',
          token: 'https://gh.example/t',
          userinfo: 'http://gh.example/u',
        },
      },
      paths: [`${P}.endpoints.authorization`, `${P}.endpoints.userinfo`],
    },
    {
      name: 'plain OAuth 2.0 without userinfo',
      config: {
        issuer: undefined,
        endpoints: { authorization: 'https://gh.example/a', token: 'https://gh.example/t' },
      },
      paths: [`${P}.endpoints.userinfo`],
    },
    { name: 'OIDC scopes without openid', config: { scopes: ['profile'] }, paths: [`${P}.scopes`] },
    {
      name: 'authorizeParams that the login sets itself',
      config: { authorizeParams: { state: 'x', scope: 'y', prompt: 'consent' } },
      paths: [`${P}.authorizeParams.state`, `${P}.authorizeParams.scope`],
    },
    {
      name: 'a callback URL with a query',
      config: {},
      redirectUri: 'https://gw.example/cb?x=1',
      paths: [P],
    },
    { name: 'a missing secret', config: {}, env: {}, paths: [`${P}.clientSecret`] },
    {
      name: 'a private key that is not one',
      config: { clientSecret: undefined, privateKey: { env: 'K' } },
      env: { K: 'not a key' },
      paths: [`${P}.privateKey`],
    },
    {
      name: 'a public key given as the private key',
      config: { clientSecret: undefined, privateKey: { env: 'K' } },
      env: {
        K: generateKeyPairSync('ec', { namedCurve: 'P-256' })
          .publicKey.export({ format: 'pem', type: 'spki' })
          .toString(),
      },
      paths: [`${P}.privateKey`],
    },
    {
      name: 'several problems together',
      config: {
        issuer: 'http://login.example',
        scopes: ['email'],
        authorizeParams: { nonce: 'n' },
      },
      env: {},
      paths: [`${P}.issuer`, `${P}.scopes`, `${P}.authorizeParams.nonce`, `${P}.clientSecret`],
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const env = c.env ?? { S: 'secret-value-1234' }
      await assert.rejects(
        createUpstream(
          { ...base, ...c.config },
          {
            redirectUri: c.redirectUri ?? 'https://gw.example/oauth/upstream/callback',
            readSecret: (ref, path) => readSecret(ref, path, env),
            log: SILENT,
          },
        ),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err))
          assert.deepEqual(
            err.problems.map((p) => p.path),
            c.paths,
          )
          for (const value of Object.values(env))
            assert.ok(!err.message.includes(value), 'the secret is quoted')
          return true
        },
      )
    })
  }
})

describe('importClientKey: private_key_jwt keys as PEM or JWK, for WebCrypto on Node 20', () => {
  const pem = (type: 'rsa' | 'ec' | 'ed25519', format: 'pkcs8' | 'pkcs1' | 'sec1' = 'pkcs8') => {
    const { privateKey } =
      type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-384' })
        : type === 'rsa'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 })
          : generateKeyPairSync('ed25519')
    return privateKey.export({ format: 'pem', type: format as 'pkcs8' }).toString()
  }
  const jwk = () => ({
    ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
    kid: 'k-1',
  })
  const cases: { name: string; text: () => string; alg: string; kid?: string }[] = [
    { name: 'RSA PKCS#8 PEM', text: () => pem('rsa'), alg: 'RS256' },
    { name: 'RSA PKCS#1 PEM (openssl genrsa)', text: () => pem('rsa', 'pkcs1'), alg: 'RS256' },
    { name: 'EC P-384 SEC1 PEM', text: () => pem('ec', 'sec1'), alg: 'ES384' },
    { name: 'Ed25519 PEM', text: () => pem('ed25519'), alg: 'EdDSA' },
    { name: 'EC JWK with its kid', text: () => JSON.stringify(jwk()), alg: 'ES256', kid: 'k-1' },
    {
      name: 'RSA JWK that names PS256',
      text: () =>
        JSON.stringify({
          ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
            format: 'jwk',
          }),
          alg: 'PS256',
        }),
      alg: 'PS256',
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const key = await importClientKey(c.text())
      assert.deepEqual(
        [key.alg, key.kid, key.key.type, key.key.extractable],
        [c.alg, c.kid, 'private', false],
      )
    })
  }
})

describe('a custom transport (o.fetch)', () => {
  it('carries every upstream request, still under the redirect refusal', async (t) => {
    const idp = await startEntraLike()
    t.after(() => idp.close())
    const seen: string[] = []
    const fetch = async (url: string, init: Parameters<typeof globalThis.fetch>[1]) => {
      seen.push(`${init?.method ?? 'GET'} ${new URL(url).pathname.replace(/^\/[^/]+\/v2\.0/, '')}`)
      return globalThis.fetch(url, init)
    }
    const up = await connect(idp, 'jwt', {}, { fetch: fetch as never })
    t.after(() => up.close())
    await signIn(up, idp)
    assert.deepEqual(seen, [
      'GET /.well-known/openid-configuration',
      'POST /token',
      'GET /jwks',
      'GET /me',
    ])
    idp.knobs.tokenRedirect = idp.endpoints.token
    await rejectsUpstream(signIn(up, idp), 'upstream_invalid_response')
  })
})

describe('discovery', () => {
  let idp: UpstreamIdp
  before(async () => {
    idp = await startEntraLike()
  })
  after(() => idp.close())

  it('a down IdP does not fail start-up: problem() says why, calls fail fast, the next call after the cooldown discovers', async (t) => {
    let now = Date.now()
    idp.knobs.down = true
    const { log, lines } = captureLog()
    const up = await connect(idp, 'jwt', {}, { now: () => now, log })
    t.after(() => up.close())
    assert.match(up.problem() ?? '', /discovery failed with 503/)
    assert.ok(lines.some((l) => l.includes('upstream IdP discovery failed')))
    idp.knobs.down = false
    await rejectsUpstream(up.begin(), 'upstream_unavailable') // still cooling down: not asked again
    now += DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS
    assert.equal((await signIn(up, idp)).subject, 'alice-pairwise-sub')
    assert.equal(up.problem(), undefined)
  })

  const wrong: { name: string; issuer: (i: string) => string; problem: RegExp }[] = [
    {
      name: 'an issuer whose discovery document names another (a trailing slash)',
      issuer: (i) => `${i}/`,
      problem: /issuer does not match/,
    },
    {
      name: 'an issuer without a discovery document',
      issuer: (i) => `${i}/other`,
      problem: /discovery with 404/,
    },
  ]
  for (const w of wrong) {
    it(`${w.name}: not usable, problem() says why`, async (t) => {
      const up = await createUpstream(configFor(idp, 'basic', { issuer: w.issuer(idp.issuer) }), {
        redirectUri: UPSTREAM_CALLBACK,
        readSecret: secretsFor(idp, 'basic'),
        log: SILENT,
      })
      t.after(() => up.close())
      assert.match(up.problem() ?? '', w.problem)
      await rejectsUpstream(up.begin(), 'upstream_unavailable')
    })
  }
})
