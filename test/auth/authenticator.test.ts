import assert from 'node:assert/strict'
import { after, before, describe, test, type TestContext } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { createAuthenticator, type Authenticator } from '../../gateway/auth/authenticator.js'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource, type KeySourceOptions } from '../../gateway/auth/keys.js'
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

/** Full verifications so far: the key lookups of every authenticator made here. */
let verifications = 0

/**
 * An authenticator on a real key source, whose every full verification is counted (a cache hit
 * looks up no key).
 */
function authenticator(
  t: TestContext,
  over: Partial<AuthConfig> = {},
  now?: () => number,
  keyOver: Partial<KeySourceOptions> = {},
): Authenticator {
  const http = createIdpHttp(2_000)
  t.after(() => http.close())
  const keys = createKeySource({
    issuer: server.origin,
    jwksUri: server.jwksUri,
    http,
    timeoutMs: 2_000,
    cooldownMs: 0,
    maxAgeMs: 600_000,
    now,
    ...keyOver,
  })
  const getKey: typeof keys.getKey = (header, token) => {
    verifications++
    return keys.getKey(header, token)
  }
  return createAuthenticator(authConfig(over), { ...keys, getKey }, now)
}

const bearer = async (over = {}, nowMs = Date.now()) =>
  `Bearer ${await signToken(key, claims(server.origin, over, nowMs))}`

/** Runs `fn` and returns how many full verifications it caused. */
async function verificationsOf(fn: () => Promise<unknown>): Promise<number> {
  const before = verifications
  await fn()
  return verifications - before
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
    assert.equal(await verificationsOf(call), 1)
    assert.equal(await verificationsOf(call), 0)
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
    assert.equal(await verificationsOf(() => auth.authenticate(header, [ECHO])), 1)
    assert.equal(await verificationsOf(() => auth.authenticate(header, [ECHO])), 1)
  })

  test('another token is another entry', async (t) => {
    const auth = authenticator(t)
    const [a, b] = [await bearer({ sub: 'a' }), await bearer({ sub: 'b' })]
    assert.equal(await verificationsOf(() => auth.authenticate(a, [ECHO])), 1)
    assert.equal(await verificationsOf(() => auth.authenticate(b, [ECHO])), 1)
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
        await verificationsOf(async () => (principal = await auth.authenticate(header, [ECHO]))),
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
    const fetched = await verificationsOf(async () => {
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
      const fetched = await verificationsOf(async () => {
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
      assert.equal(await verificationsOf(() => auth.authenticate(header, [ECHO])), c.fetches)
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
    assert.equal(await verificationsOf(() => auth.authenticate(header, [ECHO])), 1)
    assert.equal(await verificationsOf(() => auth.authenticate(header, [ECHO])), 1)
  })

  test('failures are not cached', async (t) => {
    // Keys fetched again for every request, so the JWKS served next is the one that counts.
    const auth = authenticator(t, {}, undefined, { maxAgeMs: 0 })
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

describe('createAuthenticator: a key removed from the JWKS fails its cached tokens', () => {
  /**
   * A JWKS server of its own serving `keys`, and an authenticator on it with an injected clock
   * (jwksMaxAge 60 s, unknown kids refetched at once, tokenCacheTtl 300 s).
   */
  async function rig(t: TestContext, keys: object[]) {
    const jwks = await startJwksServer(keys)
    t.after(() => jwks.close())
    let clock = Date.now()
    const auth = authenticator(t, { issuer: jwks.origin, tokenCacheTtl: 300 }, () => clock, {
      issuer: jwks.origin,
      jwksUri: jwks.jwksUri,
      maxAgeMs: 60_000,
    })
    return {
      jwks,
      auth,
      /** Moves the clock past jwksMaxAge: the next request refetches the keys first. */
      age: () => {
        clock += 60_001
      },
      token: async (k: TestKey, header: Record<string, unknown> = {}) =>
        `Bearer ${await signToken(k, claims(jwks.origin, {}, clock), header)}`,
    }
  }

  /** Accepted: `verified` says whether it took a full verification (a miss) or was a hit. */
  async function accepted(auth: Authenticator, header: string, verified: boolean, why: string) {
    let sub: string | undefined
    const n = await verificationsOf(async () => {
      sub = (await auth.authenticate(header, [ECHO])).sub
    })
    assert.equal(sub, 'user-1', why)
    assert.equal(n, verified ? 1 : 0, `${why}: ${verified ? 'a full verification' : 'a cache hit'}`)
  }

  let a: TestKey
  let b: TestKey
  before(async () => {
    ;[a, b] = await Promise.all([makeKey('ES256', 'a'), makeKey('RS256', 'b')])
  })

  test('the key removed and its refetch past jwksMaxAge: 401, no longer from the cache; a kept key still hits', async (t) => {
    const r = await rig(t, [a.publicJwk, b.publicJwk])
    const [ta, tb] = [await r.token(a), await r.token(b)]
    await accepted(r.auth, ta, true, 'first use')
    await accepted(r.auth, tb, true, 'first use')
    await accepted(r.auth, ta, false, 'cached')
    r.jwks.keys = [b.publicJwk]
    const fetched = r.jwks.hits(JWKS_PATH)
    await accepted(r.auth, ta, false, 'removed, not refetched yet: the cache still holds it')
    r.age()
    await rejectsWith(r.auth.authenticate(ta, [ECHO]), 'unknown_key', 401)
    // Refetched first for its age; its kid then unknown, once more (no cooldown here).
    assert.ok(r.jwks.hits(JWKS_PATH) > fetched, 'refetched at the first request past jwksMaxAge')
    await accepted(r.auth, tb, false, 'its key kept: still a hit')
    await rejectsWith(r.auth.authenticate(ta, [ECHO]), 'unknown_key', 401)
  })

  test('a rotation (new kid in, old kid out) refetched for the new kid fails the old cached tokens at once', async (t) => {
    const c = await makeKey('ES256', 'c')
    const r = await rig(t, [a.publicJwk, b.publicJwk])
    const ta = await r.token(a)
    await accepted(r.auth, ta, true, 'first use')
    r.jwks.keys = [b.publicJwk, c.publicJwk]
    await accepted(r.auth, await r.token(c), true, 'a token of the new kid: refetched')
    await rejectsWith(r.auth.authenticate(ta, [ECHO]), 'unknown_key', 401)
  })

  // Each: what the JWKS serves after the refetch, and how the token cached under `a` fares.
  const hostile: [string, () => Promise<object[]>, string | undefined][] = [
    [
      'same kid, new key material',
      async () => [(await makeKey('ES256', 'a')).publicJwk],
      'bad_signature',
    ],
    [
      'kid reused with another kty and alg',
      async () => [(await makeKey('RS256', 'a')).publicJwk],
      'unknown_key',
    ],
    [
      'kid reused with another alg, same kty',
      async () => [(await makeKey('ES384', 'a')).publicJwk],
      'unknown_key',
    ],
    [
      'the kid now twice (its key and another)',
      async () => [a.publicJwk, (await makeKey('ES256', 'a')).publicJwk],
      'unknown_key',
    ],
    ['the kid now twice, the same key', async () => [a.publicJwk, a.publicJwk], 'unknown_key'],
    ['the key without its kid', async () => [{ ...a.publicJwk, kid: undefined }], 'unknown_key'],
    ['the key under another kid', async () => [{ ...a.publicJwk, kid: 'A' }], 'unknown_key'],
    ['no keys at all', async () => [], 'unknown_key'],
    ['control: the same set', async () => [a.publicJwk, b.publicJwk], undefined],
    ['control: its key kept, members reordered', async () => [b.publicJwk, a.publicJwk], undefined],
  ]
  for (const [name, served, code] of hostile) {
    test(`${name}: ${code ?? 'still a hit'}`, async (t) => {
      const r = await rig(t, [a.publicJwk, b.publicJwk])
      const ta = await r.token(a)
      await accepted(r.auth, ta, true, 'first use')
      r.jwks.keys = JSON.parse(JSON.stringify(await served()))
      r.age()
      if (code === undefined) await accepted(r.auth, ta, false, 'its key unchanged')
      else await rejectsWith(r.auth.authenticate(ta, [ECHO]), code, 401)
    })
  }

  test('a token naming no kid is verified again after any change of the set, and fails once its key is gone', async (t) => {
    const r = await rig(t, [a.publicJwk])
    const t0 = await r.token(a, { kid: undefined })
    await accepted(r.auth, t0, true, 'first use')
    r.jwks.keys = [a.publicJwk, b.publicJwk]
    r.age()
    await accepted(r.auth, t0, true, 'another key added: verified again, still good')
    await accepted(r.auth, t0, false, 'then cached again')
    r.jwks.keys = [b.publicJwk]
    r.age()
    await rejectsWith(r.auth.authenticate(t0, [ECHO]), 'unknown_key', 401)
  })

  test('a failed refetch keeps the cached tokens (until their ttl) and is not retried inside the retry window', async (t) => {
    const r = await rig(t, [a.publicJwk])
    const ta = await r.token(a)
    await accepted(r.auth, ta, true, 'first use')
    r.jwks.routes.set(JWKS_PATH, () => ({ status: 500 }))
    r.age()
    const fetched = r.jwks.hits(JWKS_PATH)
    await accepted(r.auth, ta, false, 'the IdP down: the cache serves')
    await accepted(r.auth, ta, false, 'again')
    assert.equal(
      r.jwks.hits(JWKS_PATH),
      fetched + 1,
      'one failed refetch, then none inside the window',
    )
  })
})
