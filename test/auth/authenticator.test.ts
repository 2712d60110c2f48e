import assert from 'node:assert/strict'
import { after, before, describe, test, type TestContext } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { createAuthenticator, type Authenticator } from '../../gateway/auth/authenticator.js'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource } from '../../gateway/auth/keys.js'
import { validateConfig } from '../../gateway/config/load.js'
import type { AuthConfig } from '../../gateway/config/schema.js'
import { JWKS_PATH, startJwksServer, type JwksServer } from '../helpers/jwks-server.js'
import { claims, makeKey, rejectsWith, signToken, type TestKey } from '../helpers/keys.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'
const NOTES = 'http://127.0.0.1:8080/mcp/notes'

let server: JwksServer
let key: TestKey

before(async () => {
  key = await makeKey('ES256')
  server = await startJwksServer([key.publicJwk])
})
after(() => server.close())

/** The auth section with every default, as the config loader fills it. */
function authConfig(over: Partial<AuthConfig> = {}): AuthConfig & { issuer: string } {
  const raw = { servers: { echo: { command: 'node' } } }
  const { auth } = validateConfig(raw, { file: 'test', baseDir: '/' })
  return { ...auth, issuer: server.origin, ...over }
}

/**
 * An authenticator whose key source refetches the JWKS on every lookup (maxAge 0), so each
 * full verification shows up as one JWKS request and a cache hit as none.
 */
function authenticator(
  t: TestContext,
  over: Partial<AuthConfig> = {},
  now?: () => number,
): Authenticator {
  const http = createIdpHttp(2_000)
  t.after(() => http.close())
  const keys = createKeySource({
    issuer: server.origin,
    jwksUri: server.jwksUri,
    http,
    timeoutMs: 2_000,
    cooldownMs: 0,
    maxAgeMs: 0,
  })
  return createAuthenticator(authConfig(over), keys, now)
}

const bearer = async (over = {}, nowMs = Date.now()) =>
  `Bearer ${await signToken(key, claims(server.origin, over, nowMs))}`

/** Runs `fn` and returns how many JWKS requests it caused. */
async function fetchesOf(fn: () => Promise<unknown>): Promise<number> {
  const before = server.hits(JWKS_PATH)
  await fn()
  return server.hits(JWKS_PATH) - before
}

describe('createAuthenticator', () => {
  test('returns the principal of a valid token', async (t) => {
    const auth = authenticator(t)
    const p = await auth.authenticate(
      await bearer({
        sub: 'alice',
        azp: 'inspector',
        scope: 'mcp:read mcp:write',
        realm_access: { roles: ['mcp-user'] },
        resource_access: {
          'mcp-edge': { roles: ['mcp-developer'] },
          other: { roles: ['mcp-admin'] },
        },
      }),
      [ECHO],
    )
    assert.deepEqual(
      { iss: p.iss, sub: p.sub, clientId: p.clientId, scopes: [...p.scopes], roles: [...p.roles] },
      {
        iss: server.origin,
        sub: 'alice',
        clientId: 'inspector',
        scopes: ['mcp:read', 'mcp:write'],
        roles: ['mcp-user', 'mcp-developer'],
      },
      "another client's mcp-admin role does not count",
    )
  })

  const refusals: {
    name: string
    header: () => Promise<string | undefined>
    audiences?: string[]
    code: string
    status: number
  }[] = [
    { name: 'no header', header: async () => undefined, code: 'missing_token', status: 401 },
    { name: 'Basic', header: async () => 'Basic dTpw', code: 'missing_token', status: 401 },
    {
      name: 'two bearer headers',
      header: async () => `${await bearer()}, ${await bearer()}`,
      code: 'invalid_request',
      status: 400,
    },
    {
      name: 'expired',
      header: () => bearer({ exp: Math.floor(Date.now() / 1000) - 300 }),
      code: 'token_expired',
      status: 401,
    },
    {
      name: 'other resource',
      header: () => bearer(),
      audiences: [NOTES],
      code: 'wrong_audience',
      status: 401,
    },
    {
      name: 'no aud',
      header: () => bearer({ aud: undefined }),
      code: 'wrong_audience',
      status: 401,
    },
    {
      name: 'other issuer',
      header: () => bearer({ iss: 'http://127.0.0.1:1' }),
      code: 'wrong_issuer',
      status: 401,
    },
  ]
  for (const c of refusals) {
    test(`refuses: ${c.name}`, async (t) => {
      const run = authenticator(t).authenticate(await c.header(), c.audiences ?? [ECHO])
      await rejectsWith(run, c.code, c.status)
    })
  }
})

describe('createAuthenticator: the verified-token cache', () => {
  test('a second call does not hit the JWKS server', async (t) => {
    const auth = authenticator(t)
    const header = await bearer()
    const principals: unknown[] = []
    const call = async () => principals.push(await auth.authenticate(header, [ECHO]))
    assert.equal(await fetchesOf(call), 1)
    assert.equal(await fetchesOf(call), 0)
    assert.equal(principals[1], principals[0])
  })

  test('a cache hit arms no timer (each lone request armed one, to forget a clock reading)', async (t) => {
    const auth = authenticator(t)
    const header = await bearer()
    await auth.authenticate(header, [ECHO])
    const timers = t.mock.method(globalThis, 'setTimeout')
    for (let i = 0; i < 3; i++) await auth.authenticate(header, [ECHO])
    assert.equal(timers.mock.callCount(), 0)
  })

  test('control: without a cache every call verifies', async (t) => {
    const auth = authenticator(t, { tokenCacheMax: 0 })
    const header = await bearer()
    assert.equal(await fetchesOf(() => auth.authenticate(header, [ECHO])), 1)
    assert.equal(await fetchesOf(() => auth.authenticate(header, [ECHO])), 1)
  })

  test('another token is another entry', async (t) => {
    const auth = authenticator(t)
    const [a, b] = [await bearer({ sub: 'a' }), await bearer({ sub: 'b' })]
    assert.equal(await fetchesOf(() => auth.authenticate(a, [ECHO])), 1)
    assert.equal(await fetchesOf(() => auth.authenticate(b, [ECHO])), 1)
  })

  test('alternating tokens each hit their own entry (many principals interleaved)', async (t) => {
    const auth = authenticator(t)
    const [a, b] = [await bearer({ sub: 'a' }), await bearer({ sub: 'b' })]
    const first = { a: await auth.authenticate(a, [ECHO]), b: await auth.authenticate(b, [ECHO]) }
    for (const [header, sub] of [
      [a, 'a'],
      [b, 'b'],
      [a, 'a'],
      [b, 'b'],
    ] as const) {
      let principal: unknown
      assert.equal(
        await fetchesOf(async () => (principal = await auth.authenticate(header, [ECHO]))),
        0,
      )
      // The very object cached for this token: a hit on its own entry, not a new verification.
      assert.equal(principal, first[sub])
    }
  })

  test('the last header read is never taken for another (alternating, malformed, missing)', async (t) => {
    const auth = authenticator(t)
    const [a, b] = [await bearer({ sub: 'a' }), await bearer({ sub: 'b' })]
    const steps: { header: string | undefined; sub?: string; code?: string }[] = [
      { header: a, sub: 'a' },
      { header: a, sub: 'a' },
      { header: b, sub: 'b' },
      { header: a, sub: 'a' },
      { header: `${a}x`, code: 'bad_signature' },
      { header: a.replace('Bearer ', 'Basic '), code: 'missing_token' },
      { header: '', code: 'missing_token' },
      { header: undefined, code: 'missing_token' },
      { header: a, sub: 'a' },
      { header: `Bearer ${a.slice(7)} `, sub: 'a' },
      { header: b, sub: 'b' },
    ]
    for (const s of steps) {
      const run = auth.authenticate(s.header, [ECHO])
      if (s.code) await rejectsWith(run, s.code)
      else assert.equal((await run).sub, s.sub)
    }
  })

  test('the audience is checked on a cache hit', async (t) => {
    const auth = authenticator(t)
    const header = await bearer()
    const steps = [
      { audiences: [ECHO], code: undefined },
      { audiences: [NOTES], code: 'wrong_audience' },
      { audiences: [NOTES, ECHO], code: undefined },
      { audiences: [], code: 'wrong_audience' },
    ]
    const fetched = await fetchesOf(async () => {
      for (const s of steps) {
        const run = auth.authenticate(header, s.audiences)
        if (s.code) await rejectsWith(run, s.code)
        else assert.equal((await run).sub, 'user-1')
      }
    })
    assert.equal(fetched, 1)
  })

  test('an entry never outlives exp (injected clock)', async (t) => {
    const t0 = Date.now()
    const exp = Math.floor(t0 / 1000) + 60
    let clock = t0
    const auth = authenticator(t, { tokenCacheTtl: 300 }, () => clock)
    const header = await bearer({ exp }, t0)
    const steps: {
      at: number
      fetches: number | undefined
      code: string | undefined
      why: string
    }[] = [
      { at: t0, fetches: 1, code: undefined, why: 'first use verifies' },
      { at: t0 + 30_000, fetches: 0, code: undefined, why: 'cache hit before exp' },
      {
        at: exp * 1000,
        fetches: undefined,
        code: undefined,
        why: 'at exp the entry is gone; within the clock tolerance the token is still good',
      },
      {
        at: (exp + 30) * 1000 + 1,
        fetches: undefined,
        code: 'token_expired',
        why: 'past exp plus tolerance: refused',
      },
      { at: t0 + 30_000, fetches: 1, code: undefined, why: 'the expired entry was dropped' },
    ]
    for (const s of steps) {
      clock = s.at
      const fetched = await fetchesOf(async () => {
        const run = auth.authenticate(header, [ECHO])
        if (s.code) await rejectsWith(run, s.code)
        else await run
      })
      if (s.fetches !== undefined) assert.equal(fetched, s.fetches, s.why)
    }
  })

  // Separate authenticators: lru-cache debounces its clock reads for 1 ms of real time.
  const ttlCases = [
    { name: 'within tokenCacheTtl: cache hit', after: 9_999, fetches: 0 },
    { name: 'past tokenCacheTtl: verified again', after: 10_001, fetches: 1 },
  ]
  for (const c of ttlCases) {
    test(c.name, async (t) => {
      const t0 = Date.now()
      let clock = t0
      const auth = authenticator(t, { tokenCacheTtl: 10 }, () => clock)
      const header = await bearer({}, t0)
      await auth.authenticate(header, [ECHO])
      clock = t0 + c.after
      assert.equal(await fetchesOf(() => auth.authenticate(header, [ECHO])), c.fetches)
    })
  }

  test('expired entries are swept out by a miss, at most once per tokenCacheTtl (injected clock)', async (t) => {
    const t0 = Date.now()
    let clock = t0
    const auth = authenticator(t, { tokenCacheTtl: 60 }, () => clock)
    // Each step: a new user's token (valid 20 s from `at`) is verified at `at`, then the cache
    // holds `cached` entries.
    const steps = [
      ...['a', 'b', 'c', 'd', 'e'].map((sub, i) => ({
        at: t0,
        sub,
        cached: i + 1,
        why: 'one entry per token',
      })),
      { at: t0 + 30_000, sub: 'f', cached: 6, why: 'expired, but swept at most once per ttl' },
      { at: t0 + 61_000, sub: 'g', cached: 1, why: 'the miss swept every expired entry' },
      { at: t0 + 62_000, sub: 'h', cached: 2, why: 'live entries stay' },
    ]
    for (const s of steps) {
      clock = s.at
      await delay(3) // lru-cache reads its clock at most once per ms of real time
      const header = await bearer({ sub: s.sub, exp: Math.floor(s.at / 1000) + 20 }, s.at)
      assert.equal((await auth.authenticate(header, [ECHO])).sub, s.sub)
      assert.equal(auth.cached, s.cached, s.why)
    }
  })

  test('a token past exp but within clock tolerance is not cached', async (t) => {
    const auth = authenticator(t)
    const header = await bearer({ exp: Math.floor(Date.now() / 1000) - 5 })
    assert.equal(await fetchesOf(() => auth.authenticate(header, [ECHO])), 1)
    assert.equal(await fetchesOf(() => auth.authenticate(header, [ECHO])), 1)
  })

  test('failures are not cached', async (t) => {
    const auth = authenticator(t)
    const header = await bearer()
    const saved = server.keys
    server.keys = []
    t.after(() => {
      server.keys = saved
    })
    await rejectsWith(auth.authenticate(header, [ECHO]), 'unknown_key')
    server.keys = saved
    assert.equal((await auth.authenticate(header, [ECHO])).sub, 'user-1')
  })

  test('the injected clock also governs exp during verification', async (t) => {
    const twoHours = 2 * 3600 * 1000
    const auth = authenticator(t, {}, () => Date.now() + twoHours)
    await rejectsWith(auth.authenticate(await bearer(), [ECHO]), 'token_expired')
  })
})
