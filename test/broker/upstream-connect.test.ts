// upstream.connectTo and upstream.caFile: an IdP whose public name does not lead to it from
// where the gateway runs (a container network behind the proxy that serves it publicly), on
// https with a private CA. The fixture's name, idp.invalid, resolves nowhere (RFC 6761 §6.4):
// only the override reaches it, and TLS still checks that name.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { setGlobalDispatcher } from 'undici'
import { createUpstream, type UpstreamConfig } from '../../gateway/broker/upstream.js'
import { ConfigError } from '../../gateway/config/errors.js'
import { DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS } from '../../gateway/config/schema.js'
import { connect, rejectsUpstream, signIn, UPSTREAM_LIMITS } from '../helpers/upstream-client.js'
import { startKeycloakLike, UPSTREAM_CALLBACK, type UpstreamIdp } from '../helpers/upstream-idp.js'
import { loopbackAgent, makeTestCa } from '../helpers/test-ca.js'

const P = 'auth.broker.upstream'
let dir: string
let caFile: string
let idp: UpstreamIdp

before(async () => {
  const ca = makeTestCa(['DNS:idp.invalid'])
  dir = mkdtempSync(join(tmpdir(), 'mcp-edge-connect-'))
  caFile = join(dir, 'ca.crt')
  writeFileSync(caFile, ca.ca)
  idp = await startKeycloakLike({
    realm: 'mcp',
    client: {
      clientId: 'mcp-edge-broker',
      secret: 'kc-secret-0123456789',
      redirectUri: UPSTREAM_CALLBACK,
      scopes: ['basic', 'profile'],
    },
    users: [
      {
        id: 'demo-id',
        claims: {
          preferred_username: 'demo',
          realm_access: { roles: ['mcp-user', 'default-roles-mcp'] },
        },
      },
    ],
    tls: { cert: ca.cert, key: ca.key },
    publicOrigin: (port) => `https://idp.invalid:${port}`,
  })
  // The test's browser reaches idp.invalid too; the gateway's upstream client has its own agent.
  setGlobalDispatcher(loopbackAgent(ca.ca))
})

after(async () => {
  await idp?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The first `code` in an error's cause chain (a DNS or TLS failure under undici's). */
function causeCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && !code.startsWith('upstream_') && code !== 'UND_ERR_CONNECT')
      return code
  }
  return undefined
}

const kc = (over: Partial<UpstreamConfig>) => ({
  roleClaims: ['realm_access.roles'],
  scopes: ['openid', 'profile'],
  ...over,
})

describe('upstream.connectTo with upstream.caFile', () => {
  it('discovers, signs in and reads roles through the override, TLS checked against the URL name', async () => {
    const up = await connect(idp, 'broker', kc({ connectTo: '127.0.0.1', caFile }))
    try {
      assert.equal(up.problem(), undefined)
      assert.match(up.issuer ?? '', /^https:\/\/idp\.invalid:\d+\/realms\/mcp$/)
      const before = idp.counts.token
      const who = await signIn(up, idp)
      assert.equal(who.subject, 'demo-id')
      assert.deepEqual(who.roles, ['default-roles-mcp', 'mcp-user'])
      assert.equal(who.claims.preferred_username, 'demo')
      assert.equal(idp.counts.token, before + 1, 'the code was exchanged through the override')
    } finally {
      await up.close()
    }
  })

  const unreachable = [
    {
      name: 'without connectTo the public name resolves nowhere',
      over: () => ({ caFile }),
      cause: /^(ENOTFOUND|EAI_AGAIN)$/,
    },
    {
      name: 'without caFile the private CA is not trusted',
      over: () => ({ connectTo: '127.0.0.1' }),
      cause: /^UNABLE_TO_(GET_ISSUER_CERT_LOCALLY|VERIFY_LEAF_SIGNATURE)$/,
    },
    {
      name: 'a URL naming another host fails TLS, although the connection reaches the fixture',
      over: () => ({
        connectTo: '127.0.0.1',
        caFile,
        issuer: `https://other.invalid:${new URL(idp.issuer).port}/realms/mcp`,
      }),
      cause: /^ERR_TLS_CERT_ALTNAME_INVALID$/,
    },
  ]
  for (const c of unreachable) {
    it(`refuses the upstream: ${c.name}`, async () => {
      const before = idp.counts.token
      let now = Date.now()
      const up = await connect(idp, 'broker', kc(c.over()), { now: () => now })
      try {
        assert.match(up.problem() ?? '', /^upstream IdP: /)
        // Past the cooldown, begin() discovers again and says why in its cause chain.
        now += DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS
        const err = await rejectsUpstream(up.begin(), 'upstream_unavailable')
        assert.match(causeCode(err) ?? '', c.cause)
        assert.equal(idp.counts.token, before)
      } finally {
        await up.close()
      }
    })
  }
})

describe('upstream.connectTo and caFile are checked at start-up', () => {
  const base: UpstreamConfig = {
    issuer: 'https://login.example/realms/mcp',
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
  const cases = [
    {
      name: 'a caFile that does not exist',
      over: { caFile: '/nonexistent/ca.crt' },
      paths: [`${P}.caFile`],
      says: /ENOENT/,
    },
    {
      name: 'a caFile without a certificate',
      over: { caFile: 'NOT-PEM' },
      paths: [`${P}.caFile`],
      says: /no PEM certificate/,
    },
    {
      name: 'a loopback http issuer connected to another host (the secret would leave in clear)',
      over: { issuer: 'http://127.0.0.1:8090/realms/mcp', connectTo: 'keycloak' },
      paths: [`${P}.connectTo`],
      says: /loopback/,
    },
  ]
  for (const c of cases) {
    it(`refuses ${c.name}`, async () => {
      const over =
        c.over.caFile === 'NOT-PEM' ? { ...c.over, caFile: join(dir, 'not.pem') } : c.over
      writeFileSync(join(dir, 'not.pem'), 'hello\n')
      await assert.rejects(
        createUpstream(
          { ...base, ...over },
          {
            redirectUri: 'https://gw.example/oauth/callback',
            readSecret: () => 'secret-value-1234',
            log: pino({ level: 'silent' }),
          },
        ),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err))
          assert.deepEqual(
            err.problems.map((p) => p.path),
            c.paths,
          )
          assert.match(err.message, c.says)
          return true
        },
      )
    })
  }
})
