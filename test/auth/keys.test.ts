import assert from 'node:assert/strict'
import { after, before, describe, test, type TestContext } from 'node:test'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource, type KeySource, type KeySourceOptions } from '../../gateway/auth/keys.js'
import { verifyAccessToken } from '../../gateway/auth/verify.js'
import {
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_DISCOVERY_RETRY_MS,
  DEFAULT_IDP_MAX_RESPONSE_BYTES as MAX_BYTES,
} from '../../gateway/config/schema.js'
import {
  closedPortUrl,
  JWKS_PATH,
  OAUTH_PATH,
  OIDC_PATH,
  startJwksServer,
  type JwksServer,
  type Reply,
} from '../helpers/jwks-server.js'
import { claims, makeKey, rejectsWith, signToken, type TestKey } from '../helpers/keys.js'

let server: JwksServer
let k1: TestKey
let k2: TestKey

before(async () => {
  ;[k1, k2] = await Promise.all([makeKey('RS256', 'k1'), makeKey('ES256', 'k2')])
  server = await startJwksServer()
})
after(() => server.close())

/** A fresh server state for one test: k1 served, default routes, empty request log. */
function reset(): void {
  server.keys = [k1.publicJwk]
  server.routes.clear()
  server.requests.length = 0
}

/** A key source on a fresh IdP client, closed after the test. */
function source(t: TestContext, o: Partial<KeySourceOptions> = {}): KeySource {
  const http = createIdpHttp(o.timeoutMs ?? 2_000)
  t.after(() => http.close())
  return createKeySource({
    issuer: server.origin,
    http,
    timeoutMs: 2_000,
    cooldownMs: 30_000,
    maxAgeMs: 600_000,
    ...o,
  })
}

/** Verifies a token of `key` for the server's issuer through `keys`; returns its subject. */
async function verify(keys: KeySource, key: TestKey, issuer = server.origin): Promise<unknown> {
  const token = await signToken(key, claims(issuer))
  const payload = await verifyAccessToken(token, {
    issuer,
    algorithms: [...ASYMMETRIC_ALGORITHMS],
    clockTolerance: 30,
    requireJwtAccessTokenType: false,
    getKey: keys.getKey,
  })
  return payload.sub
}

describe('createKeySource: discovery', () => {
  const doc = (issuer: string, jwks = true): Reply => ({
    body: { issuer, ...(jwks ? { jwks_uri: server.jwksUri } : {}) },
  })

  const cases: {
    name: string
    issuerPath?: string
    routes?: Record<string, () => Reply>
    expect: 'ok' | 'idp_unavailable'
    /** Request paths, in order. */
    requests: string[]
  }[] = [
    { name: 'openid-configuration', expect: 'ok', requests: [OIDC_PATH, JWKS_PATH] },
    {
      name: 'RFC 8414 fallback when openid-configuration is missing',
      routes: { [OIDC_PATH]: () => ({ status: 404 }), [OAUTH_PATH]: () => doc(server.origin) },
      expect: 'ok',
      requests: [OIDC_PATH, OAUTH_PATH, JWKS_PATH],
    },
    {
      name: 'issuer with a path: both well-known forms',
      issuerPath: '/realms/mcp',
      routes: {
        [`/realms/mcp${OIDC_PATH}`]: () => ({ status: 500 }),
        [`${OAUTH_PATH}/realms/mcp`]: () => doc(`${server.origin}/realms/mcp`),
      },
      expect: 'ok',
      requests: [`/realms/mcp${OIDC_PATH}`, `${OAUTH_PATH}/realms/mcp`, JWKS_PATH],
    },
    {
      name: 'issuer mismatch in the discovery document',
      routes: {
        [OIDC_PATH]: () => doc('http://evil.example'),
        [OAUTH_PATH]: () => doc(`${server.origin}/`),
      },
      expect: 'idp_unavailable',
      requests: [OIDC_PATH, OAUTH_PATH],
    },
    {
      name: 'no jwks_uri',
      routes: { [OIDC_PATH]: () => doc(server.origin, false) },
      expect: 'idp_unavailable',
      requests: [OIDC_PATH, OAUTH_PATH],
    },
    {
      name: 'not JSON',
      routes: { [OIDC_PATH]: () => ({ status: 200, body: undefined }) },
      expect: 'idp_unavailable',
      requests: [OIDC_PATH, OAUTH_PATH],
    },
    {
      name: 'a redirect is not followed (RFC 8414 §3.3)',
      routes: {
        [OIDC_PATH]: () => ({ status: 302, headers: { location: `${server.origin}/elsewhere` } }),
        '/elsewhere': () => doc(server.origin),
      },
      expect: 'idp_unavailable',
      requests: [OIDC_PATH, OAUTH_PATH],
    },
  ]

  for (const c of cases) {
    test(c.name, async (t) => {
      reset()
      for (const [path, reply] of Object.entries(c.routes ?? {})) server.routes.set(path, reply)
      const keys = source(t, { issuer: `${server.origin}${c.issuerPath ?? ''}` })
      if (c.expect === 'ok') {
        await keys.warm()
        assert.equal(keys.jwksUri, server.jwksUri)
        assert.equal(await verify(keys, k1, `${server.origin}${c.issuerPath ?? ''}`), 'user-1')
      } else {
        await rejectsWith(keys.warm(), c.expect, 503)
        assert.equal(keys.jwksUri, undefined)
      }
      assert.deepEqual(server.requests, c.requests)
    })
  }

  test("a mismatched issuer is named in the cause cut to 200 characters (the IdP's answer may be 256 KB)", async (t) => {
    reset()
    const named = `http://evil.example/${'\u202e<x>'.repeat(30_000)}`
    server.routes.set(OIDC_PATH, () => doc(named))
    server.routes.set(OAUTH_PATH, () => ({ status: 404 }))
    const keys = source(t)
    const err = await keys.warm().then(
      () => assert.fail('discovery should fail'),
      (e: unknown) => e as Error,
    )
    const cause = (err.cause as Error).message
    const quoted = JSON.stringify(named)
    assert.ok(
      cause.includes(`names issuer ${quoted.slice(0, 200)}…, expected ${server.origin}`),
      cause,
    )
    assert.ok(cause.length < 400, `${cause.length} characters`)
  })

  test('a configured jwksUri skips discovery', async (t) => {
    reset()
    const keys = source(t, { jwksUri: server.jwksUri })
    assert.equal(await verify(keys, k1), 'user-1')
    assert.deepEqual(server.requests, [JWKS_PATH])
  })

  test('concurrent first requests share one discovery and one JWKS fetch', async (t) => {
    reset()
    const keys = source(t)
    const subs = await Promise.all(Array.from({ length: 5 }, () => verify(keys, k1)))
    assert.deepEqual(subs, Array(5).fill('user-1'))
    assert.deepEqual(server.requests, [OIDC_PATH, JWKS_PATH])
  })

  test('after a failed discovery, no retry before the delay (injected clock)', async (t) => {
    reset()
    let clock = 1_000_000
    server.routes.set(OIDC_PATH, () => ({ status: 503 }))
    const keys = source(t, { now: () => clock })
    const steps = [
      { at: 0, expect: 'idp_unavailable', requests: 2 },
      { at: DEFAULT_DISCOVERY_RETRY_MS - 1, expect: 'idp_unavailable', requests: 2, heal: true },
      { at: DEFAULT_DISCOVERY_RETRY_MS, expect: 'ok', requests: 4 },
    ]
    for (const step of steps) {
      clock = 1_000_000 + step.at
      if (step.expect === 'ok') await keys.warm()
      else await rejectsWith(keys.warm(), step.expect, 503)
      assert.equal(server.requests.length, step.requests, `at +${step.at} ms`)
      if (step.heal) server.routes.delete(OIDC_PATH)
    }
    assert.deepEqual(server.requests.slice(2), [OIDC_PATH, JWKS_PATH])
  })
})

describe('createKeySource: JWKS failures are idp_unavailable (503)', () => {
  const cases: {
    name: string
    jwksUri?: () => Promise<string>
    route?: () => Reply
    timeoutMs?: number
  }[] = [
    {
      name: 'JWKS server down (connection refused)',
      jwksUri: async () => `${await closedPortUrl()}${JWKS_PATH}`,
    },
    { name: 'JWKS answers 500', route: () => ({ status: 500, body: { error: 'boom' } }) },
    { name: 'JWKS answers 404', route: () => ({ status: 404 }) },
    { name: 'JWKS not JSON', route: () => ({ status: 200, body: undefined }) },
    { name: 'JWKS without keys', route: () => ({ body: { nope: [] } }) },
    {
      name: 'JWKS larger than the response cap',
      route: () => ({ body: { keys: [k1.publicJwk], pad: 'x'.repeat(MAX_BYTES) } }),
    },
    { name: 'JWKS never answers (timeout)', route: () => 'hang', timeoutMs: 200 },
  ]
  for (const c of cases) {
    test(c.name, async (t) => {
      reset()
      if (c.route) server.routes.set(JWKS_PATH, c.route)
      const jwksUri = c.jwksUri ? await c.jwksUri() : server.jwksUri
      const keys = source(t, { jwksUri, ...(c.timeoutMs ? { timeoutMs: c.timeoutMs } : {}) })
      await rejectsWith(verify(keys, k1), 'idp_unavailable', 503)
    })
  }
})

describe('createKeySource: key rotation', () => {
  test('a new kid is fetched after the cooldown, by the same key source', async (t) => {
    reset()
    const keys = source(t, { cooldownMs: 0 })
    assert.equal(await verify(keys, k1), 'user-1')
    server.keys = [k2.publicJwk]
    const fetched = server.hits(JWKS_PATH)
    assert.equal(await verify(keys, k2), 'user-1')
    assert.equal(server.hits(JWKS_PATH), fetched + 1)
    // The old key left the set: its tokens now fail.
    await rejectsWith(verify(keys, k1), 'unknown_key')
    assert.equal(server.hits(OIDC_PATH), 1)
  })

  test('within the cooldown an unknown kid does not refetch', async (t) => {
    reset()
    const keys = source(t, { cooldownMs: 60_000 })
    assert.equal(await verify(keys, k1), 'user-1')
    server.keys = [k1.publicJwk, k2.publicJwk]
    const fetched = server.hits(JWKS_PATH)
    for (let i = 0; i < 3; i++) await rejectsWith(verify(keys, k2), 'unknown_key')
    assert.equal(server.hits(JWKS_PATH), fetched)
  })

  test('a JWKS just under the response cap is accepted', async (t) => {
    reset()
    const pad = 'x'.repeat(MAX_BYTES - 8 * 1024)
    server.routes.set(JWKS_PATH, () => ({ body: { keys: [k1.publicJwk], pad } }))
    assert.equal(await verify(source(t, { jwksUri: server.jwksUri }), k1), 'user-1')
  })

  test('warm() fetches the keys once', async (t) => {
    reset()
    const keys = source(t, { jwksUri: server.jwksUri })
    await keys.warm()
    assert.deepEqual(server.requests, [JWKS_PATH])
    assert.equal(await verify(keys, k1), 'user-1')
    assert.deepEqual(server.requests, [JWKS_PATH])
  })
})

describe('createKeySource: an unreachable IdP says when it is tried again (Retry-After)', () => {
  // Retry-After was a fixed 5 s whatever auth.discoveryRetry said: a client told 5 while the
  // window ran 60 s came back eleven times for nothing; one told 5 with a 1 s window waited
  // longer than needed. Now the error carries what is left of the window, at least 1 s.
  const RETRY = 30_000
  /** The retryAfter of the idp_unavailable a call is refused with. */
  async function retryAfter(p: Promise<unknown>): Promise<number | undefined> {
    let seen: number | undefined
    await assert.rejects(p, (err: { code?: string; status?: number; retryAfter?: number }) => {
      assert.equal(err.code, 'idp_unavailable')
      assert.equal(err.status, 503)
      seen = err.retryAfter
      return true
    })
    return seen
  }
  const steps = [
    { at: 0, want: 30, fetches: 1 }, // the failing fetch itself: the whole window
    { at: 1, want: 30, fetches: 1 }, // 29.999 s left: whole seconds, rounded up
    { at: 12_300, want: 18, fetches: 1 },
    { at: RETRY - 1_000, want: 1, fetches: 1 },
    { at: RETRY - 1, want: 1, fetches: 1 }, // never 0: a client would retry at once
    { at: RETRY, want: 30, fetches: 2 }, // tried again, failed again: a new window
  ]
  for (const what of ['JWKS', 'discovery'] as const) {
    test(`${what} failing: Retry-After counts down the window (injected clock)`, async (t) => {
      reset()
      const path = what === 'JWKS' ? JWKS_PATH : OIDC_PATH
      server.routes.set(path, () => ({ status: 503 }))
      if (what === 'discovery') server.routes.set(OAUTH_PATH, () => ({ status: 503 }))
      let clock = 1_000_000
      const keys = source(t, {
        retryMs: RETRY,
        now: () => clock,
        ...(what === 'JWKS' ? { jwksUri: server.jwksUri } : {}),
      })
      for (const s of steps) {
        clock = 1_000_000 + s.at
        assert.equal(await retryAfter(verify(keys, k1)), s.want, `at +${s.at} ms`)
        assert.equal(server.hits(path), s.fetches, `fetches at +${s.at} ms`)
      }
    })
  }

  test('a window of 100 ms (the least auth.discoveryRetry takes) says 1 s', async (t) => {
    reset()
    server.routes.set(JWKS_PATH, () => ({ status: 500 }))
    const keys = source(t, { retryMs: 100, now: () => 5_000, jwksUri: server.jwksUri })
    assert.equal(await retryAfter(verify(keys, k1)), 1)
    assert.equal(await retryAfter(verify(keys, k1)), 1)
  })
})
