// Stop 31b (brief review32): an outsider's attack on keys31, the verified-token cache following
// the IdP's key set (auth/key-versions.ts, keys.ts, authenticator.ts: a cached token is verified
// again once its key is removed or replaced; a hit past jwksMaxAge refetches first). Real JWKS
// servers over HTTP, real signed tokens; a real gateway where no clock is needed, else a real
// key source and authenticator with an injected clock. And the session.unknown audit budget
// (http/session-probe.ts) against a spray. Every wait is for an event, never a time.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type http from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it, type TestContext } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { createAuthenticator, type Authenticator } from '../../gateway/auth/authenticator.js'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { byIssuer } from '../../gateway/auth/issuers.js'
import { createKeySource } from '../../gateway/auth/keys.js'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import type { AuthConfig } from '../../gateway/config/schema.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { SESSION_OWNER_RULE, SESSION_UNKNOWN_RULE } from '../../gateway/http/session-probe.js'
import { openSession } from '../checklist/open-session.js'
import { JWKS_PATH, startJwksServer, type JwksServer } from '../helpers/jwks-server.js'
import { claims, makeKey, rejectsWith, signToken, type TestKey } from '../helpers/keys.js'
import { freePort } from '../helpers/ports.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'

let a: TestKey
let b: TestKey
before(async () => {
  ;[a, b] = await Promise.all([makeKey('ES256', 'a'), makeKey('RS256', 'b')])
})

/** A gateway on `jwks` (its issuer) with the echo server and `auth` over the defaults. */
async function gatewayOn(jwks: JwksServer, auth: Record<string, unknown>): Promise<Gateway> {
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: await freePort() },
      auth: { issuer: jwks.origin, ...auth },
      servers: { echo: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] } },
    },
    { file: 'test', baseDir: '/' },
  )
  return startGateway(config, { log: pino({ level: 'silent' }) })
}

/** GET /whoami with `token`: status, Retry-After and the challenge. */
async function whoami(g: Gateway, token: string) {
  const res = await request(`${g.url}/whoami`, { headers: { authorization: `Bearer ${token}` } })
  await res.body.text()
  return {
    status: res.statusCode,
    retryAfter: res.headers['retry-after'] as string | undefined,
    challenge: res.headers['www-authenticate'] as string | undefined,
  }
}

/** The gateway's JWKS fetches that failed so far (mcp_edge_jwks_fetches_total). */
async function failedFetches(g: Gateway): Promise<number> {
  const { values } = await g.metrics.jwksRefreshes.get()
  return values.find((v) => v.labels.result === 'failed')?.value ?? 0
}

describe('an IdP that hangs while the keys are stale', () => {
  let jwks: JwksServer
  let gateway: Gateway
  /** JWKS requests the IdP holds unanswered (until the test answers them on their socket). */
  const held: http.IncomingMessage[] = []
  before(async () => {
    jwks = await startJwksServer([a.publicJwk, b.publicJwk])
    // Keys stale 1 s after each fetch (the least), then each request past the retry window
    // refreshes them; a fetch is given up after 20 s (the held one is pending when a hit answers).
    gateway = await gatewayOn(jwks, { jwksMaxAge: 1000, discoveryRetry: 100, idpTimeout: 20_000 })
  })
  after(async () => {
    for (const req of held) req.socket.destroy()
    await gateway?.close()
    await jwks?.close()
  })

  // Finding (medium, availability): while the IdP failed, every retry of the refresh (one per
  // discoveryRetry) was awaited by the cache hit that started it and by every hit meanwhile:
  // with an IdP that hangs, the hits stalled up to idpTimeout, again and again, for keys the IdP
  // could not give. Before keys31 a hit never waited for the IdP. Now a hit waits for the first
  // refresh past jwksMaxAge (a removed key still fails at once with a healthy IdP); while the IdP
  // fails, the retries run beside the hits, which the cache serves as before.
  it('a cache hit does not wait for a retry at a failing IdP; a miss is 503 with Retry-After; the key set it finally gives applies', async () => {
    const t = await signToken(a, claims(jwks.origin, { aud: `${gateway.url}/mcp/echo` }))
    assert.equal((await whoami(gateway, t)).status, 200, 'verified')
    // The IdP fails fast first (500): the hit is served from the cache.
    jwks.routes.set(JWKS_PATH, () => ({ status: 500 }))
    await waitFor(async () => {
      assert.equal((await whoami(gateway, t)).status, 200, 'a hit while the IdP fails')
      return (await failedFetches(gateway)) > 0
    }, 'a refresh to fail')
    // held: a miss (a new token) while the IdP fails: 503 idp_unavailable, a counted Retry-After.
    const miss = await whoami(
      gateway,
      await signToken(a, claims(jwks.origin, { aud: `${gateway.url}/mcp/echo`, jti: 'new' })),
    )
    assert.deepEqual(
      { status: miss.status, retryAfter: miss.retryAfter },
      {
        status: 503,
        retryAfter: '1',
      },
    )
    // Now it hangs: its next retry is held unanswered.
    jwks.routes.set(JWKS_PATH, (req) => {
      held.push(req)
      return 'hang'
    })
    const failed = await failedFetches(gateway)
    await waitFor(async () => {
      assert.equal((await whoami(gateway, t)).status, 200, 'a hit while a retry hangs')
      return held.length > 0
    }, 'a retry to reach the IdP')
    assert.equal((await whoami(gateway, t)).status, 200, 'a hit beside the held retry')
    assert.equal(
      await failedFetches(gateway),
      failed,
      'the hits answered while the retry was still held at the IdP (none waited for it)',
    )
    // The IdP answers the held retry at last, with the key removed: the token fails from then.
    const set = JSON.stringify({ keys: [b.publicJwk] })
    const answer = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(set)}\r\n\r\n${set}`
    for (const req of held.splice(0)) req.socket.end(answer)
    jwks.routes.delete(JWKS_PATH)
    jwks.keys = [b.publicJwk]
    const refused = await waitFor(async () => {
      const r = await whoami(gateway, t)
      return r.status === 401 && r
    }, 'the removed key to fail its cached token')
    assert.match(refused.challenge ?? '', /error="invalid_token"/)
  })
})

/**
 * A real key source on `jwks` (jwksMaxAge 60 s by `clock`, unknown kids refetched once a
 * minute) and an authenticator on it, with every default of the auth section.
 */
function authOn(
  t: TestContext,
  jwks: JwksServer,
  clock: () => number,
  over: Partial<AuthConfig> = {},
): Authenticator {
  const http = createIdpHttp(5_000)
  t.after(() => http.close())
  const keys = createKeySource({
    issuer: jwks.origin,
    jwksUri: jwks.jwksUri,
    http,
    timeoutMs: 5_000,
    cooldownMs: 60_000,
    maxAgeMs: 60_000,
    now: clock,
  })
  const raw = { servers: { echo: { command: 'node' } } }
  const { auth } = validateConfig(raw, { file: 'test', baseDir: '/' })
  return createAuthenticator({ ...auth, issuer: jwks.origin, ...over }, keys, clock)
}

describe('held: the cache follows the key set under attack', () => {
  let now = Date.now()
  const clock = () => now
  /** Past jwksMaxAge: the next request refetches the keys first. */
  const age = () => {
    now += 60_001
  }
  const token = (k: TestKey, iss: string, header: Record<string, unknown> = {}, over = {}) =>
    signToken(k, claims(iss, over, now), header).then((s) => `Bearer ${s}`)

  async function rig(t: TestContext, keys: object[], over: Partial<AuthConfig> = {}) {
    const jwks = await startJwksServer(keys)
    t.after(() => jwks.close())
    const auth = authOn(t, jwks, clock, over)
    return { jwks, auth }
  }

  it('held: 20 concurrent hits of a removed key past jwksMaxAge: each 401, one fetch', async (t) => {
    const { jwks, auth } = await rig(t, [a.publicJwk, b.publicJwk])
    const ta = await token(a, jwks.origin)
    assert.equal((await auth.authenticate(ta, [ECHO])).sub, 'user-1')
    jwks.keys = [b.publicJwk]
    age()
    const fetched = jwks.hits(JWKS_PATH)
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => auth.authenticate(ta, [ECHO])),
    )
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      await rejectsWith(Promise.reject(r.reason), 'unknown_key', 401)
    }
    assert.equal(jwks.hits(JWKS_PATH), fetched + 1, 'the refresh is shared')
  })

  it('held: a flood of hostile tokens past jwksMaxAge (random kids, no kid, kid types, other issuers, alg none): one fetch, all 401', async (t) => {
    const { jwks, auth } = await rig(t, [a.publicJwk, b.publicJwk])
    const ta = await token(a, jwks.origin)
    await auth.authenticate(ta, [ECHO])
    age()
    const fetched = jwks.hits(JWKS_PATH)
    const evil = await makeKey('ES256')
    const hostile: string[] = []
    for (let i = 0; i < 20; i++) {
      hostile.push(await token(evil, jwks.origin, { kid: `k${i}-${Math.random()}` }))
      hostile.push(await token(evil, jwks.origin, { kid: undefined }, { jti: `${i}` }))
      hostile.push(await token(evil, `https://other${i}.example`, { kid: 'a' }))
      hostile.push(await token(evil, jwks.origin, { kid: 'a' }, { jti: `a${i}` }))
    }
    for (const kid of [1, null, { a: 1 }, ['a'], '', 'a ', 'A', '\u0061\u200b'])
      hostile.push(await token(evil, jwks.origin, { kid }))
    const none = (h: object) => Buffer.from(JSON.stringify(h)).toString('base64url')
    hostile.push(`Bearer ${none({ alg: 'none', kid: 'a' })}.${none(claims(jwks.origin))}.`)
    const results = await Promise.allSettled(hostile.map((h) => auth.authenticate(h, [ECHO])))
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 'rejected', `hostile token ${i} refused`)
      assert.equal((r as PromiseRejectedResult).reason.status, 401, `hostile token ${i}: 401`)
    }
    // Sequentially too: no fetch per request, kid or none.
    for (const h of hostile.slice(0, 40))
      await assert.rejects(auth.authenticate(h, [ECHO]), { status: 401 })
    assert.equal(jwks.hits(JWKS_PATH), fetched + 1, 'one refresh for its age, none per token')
    assert.equal((await auth.authenticate(ta, [ECHO])).sub, 'user-1', 'the real token still passes')
  })

  it('held: a JWKS that flaps (key out, in, broken, out): 401, 200, 503, 401 at each refetch', async (t) => {
    const { jwks, auth } = await rig(t, [a.publicJwk, b.publicJwk])
    const ta = await token(a, jwks.origin)
    await auth.authenticate(ta, [ECHO])
    jwks.keys = [b.publicJwk]
    age()
    await rejectsWith(auth.authenticate(ta, [ECHO]), 'unknown_key', 401)
    jwks.keys = [b.publicJwk, a.publicJwk]
    age()
    assert.equal((await auth.authenticate(ta, [ECHO])).sub, 'user-1')
    // Its kid back with broken material (an EC key with an RSA modulus for x): refused, as the
    // IdP's failure (a key set jose cannot use), never from the cache.
    jwks.keys = [b.publicJwk, { ...a.publicJwk, x: b.publicJwk.n }]
    age()
    await rejectsWith(auth.authenticate(ta, [ECHO]), 'idp_unavailable', 503)
    jwks.keys = [b.publicJwk]
    age()
    await rejectsWith(auth.authenticate(ta, [ECHO]), 'unknown_key', 401)
  })

  it('held: memory: verified tokens stay within tokenCacheMax whatever their kids; a kid the set lacks (4 KB) is never held', async (t) => {
    const { jwks, auth } = await rig(t, [a.publicJwk, b.publicJwk], { tokenCacheMax: 3 })
    for (let i = 0; i < 12; i++) {
      const k = i % 2 ? a : b
      const header = i % 3 === 0 ? { kid: undefined } : {}
      await auth.authenticate(await token(k, jwks.origin, header, { jti: `t${i}` }), [ECHO])
      assert.ok((auth.cached ?? 0) <= 3, `${auth.cached} held`)
    }
    const before = auth.cached
    for (let i = 0; i < 5; i++)
      await rejectsWith(
        auth.authenticate(await token(a, jwks.origin, { kid: `${i}${'k'.repeat(4096)}` }), [ECHO]),
        'unknown_key',
      )
    assert.equal(auth.cached, before, 'no entry for a kid the set lacks')
  })

  it('held: two issuers sharing a kid: each follows its own set; a token of one signed by the other fails', async (t) => {
    const [k1, k2] = await Promise.all([makeKey('ES256', 'k'), makeKey('ES256', 'k')])
    const one = await rig(t, [k1.publicJwk])
    const two = await rig(t, [k2.publicJwk])
    const auth = byIssuer([
      { issuer: one.jwks.origin, authenticator: one.auth },
      { issuer: two.jwks.origin, authenticator: two.auth },
    ])
    const t1 = await token(k1, one.jwks.origin)
    const t2 = await token(k2, two.jwks.origin)
    await auth.authenticate(t1, [ECHO])
    await auth.authenticate(t2, [ECHO])
    await rejectsWith(auth.authenticate(await token(k2, one.jwks.origin), [ECHO]), 'bad_signature')
    // Issuer two puts other material under k: its token fails, issuer one's does not.
    two.jwks.keys = [(await makeKey('ES256', 'k')).publicJwk]
    age()
    await rejectsWith(auth.authenticate(t2, [ECHO]), 'bad_signature', 401)
    assert.equal((await auth.authenticate(t1, [ECHO])).sub, 'user-1')
    // Issuer one serves issuer two's old key under k: issuer one's token fails.
    one.jwks.keys = [k2.publicJwk]
    age()
    await rejectsWith(auth.authenticate(t1, [ECHO]), 'bad_signature', 401)
  })
})

// Finding (low, IdP flood by configuration): jwksMaxAge took any value from 0. Since keys31 every
// request past it refreshes the keys before its token is even read (a cache hit too, and a
// made-up bearer needing no credentials), so at 0 or a few ms each request was a JWKS fetch at
// the IdP, one after another, and each hit waited for one: the flood jwksCooldown's floor of
// 1000 ms closed for made-up kids. It now has the same floor.
it('jwksMaxAge below 1000 ms is refused at load, like jwksCooldown (each request would be a JWKS fetch)', () => {
  const at = (jwksMaxAge: number) => () =>
    validateConfig(
      {
        auth: { issuer: 'https://idp.example', jwksMaxAge },
        servers: { echo: { command: 'node' } },
      },
      { file: 'test', baseDir: '/' },
    )
  for (const bad of [0, 1, 999])
    assert.throws(at(bad), (err: unknown) => {
      assert.ok(err instanceof ConfigError, `${bad}: a ConfigError`)
      assert.match(String(err.message), /jwksMaxAge/)
      assert.match(String(err.message), />=1000/)
      return true
    })
  assert.equal(at(1000)().auth.jwksMaxAge, 1000)
})

describe('held: the session.unknown budget against a spray', () => {
  const fixture = { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] }
  const POLICY = `${TEST_POLICY}  probed:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`
  const LIST = { jsonrpc: '2.0', id: 7, method: 'tools/list' }
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: { probed: fixture },
      policy: POLICY,
      config: {
        endpoints: { duo: { servers: ['probed'] } },
        log: { unknownSessionAudit: { linesPerWindow: 2, window: 3_600_000 } },
      },
    })
  })
  after(() => stack?.close())

  const suppressed = async () => {
    const text = await (await request(`${stack.url}/metrics`)).body.text()
    return text
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('mcp_edge_log_lines_suppressed_total{') &&
          l.includes('unknown_session_audit'),
      )
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0)
  }
  const bearerOf = async (sub: string, where: string) =>
    `Bearer ${await stack.forge({ sub, aud: stack.endpoint(where), realm_access: { roles: ['mcp-user'] } })}`

  /** Every transport naming a session id, at `where`, with `authorization` (or none). */
  async function probe(where: string, id: string, authorization: string | undefined) {
    const auth: Record<string, string> = authorization ? { authorization } : {}
    const modern = { ...auth, 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' }
    const statuses = [(await postMcp(stack.local(where), LIST, modern)).status]
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await request(stack.local(where), {
        method,
        headers: { ...modern, accept: 'text/event-stream' },
      })
      await res.body.text()
      statuses.push(res.statusCode)
    }
    const legacy = await request(
      `${stack.url}/messages/${where}?sessionId=${encodeURIComponent(id)}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify(LIST),
      },
    )
    await legacy.body.text()
    statuses.push(legacy.statusCode)
    return statuses
  }

  it('held: unauthenticated sprays (none, garbage, another audience, a bad signature) write no line and spend no budget; an authenticated spray writes 2, counts the rest, names no id; a hijack probe past the budget is still audited', async () => {
    const ids = () => [randomBytes(16).toString('hex'), `${randomBytes(8).toString('hex')}-x`]
    const good = await bearerOf('sprayer', 'probed')
    const [h, p] = good.slice(7).split('.')
    const strangers = [
      undefined,
      'Bearer x.y.z',
      `Bearer ${await stack.forge({ sub: 'sprayer', aud: 'https://elsewhere.example/mcp' })}`,
      `Bearer ${h}.${p}.${'A'.repeat(86)}`,
    ]
    const before0 = await suppressed()
    const mark0 = stack.audit().length
    for (const where of ['probed', 'duo'])
      for (const authorization of strangers)
        for (const id of ids())
          for (const s of await probe(where, id, authorization))
            assert.equal(s, 401, `${where} ${authorization?.slice(0, 12)}: 401`)
    assert.deepEqual(stack.audit().slice(mark0), [], 'no audit line without a verified token')
    assert.equal(await suppressed(), before0, 'nothing counted: the budget untouched')

    const sprayed: string[] = []
    let answered = 0
    for (const where of ['probed', 'duo'])
      for (const id of ids()) {
        sprayed.push(id)
        for (const s of await probe(where, id, await bearerOf('sprayer', where))) {
          assert.ok(s === 404 || s === 400, `${where}: ${s}`)
          if (s === 404) answered++
        }
      }
    const lines = stack.audit().slice(mark0)
    assert.equal(
      lines.filter((l) => l.rule === SESSION_UNKNOWN_RULE).length,
      2,
      JSON.stringify(lines),
    )
    assert.equal(lines.length, 2)
    assert.equal((await suppressed()) - before0, answered - 2, 'the rest counted')
    for (const id of sprayed)
      assert.ok(!JSON.stringify(lines).includes(id), 'no sprayed id in a line')

    // The budget spent, a probe of another subject's live session is still audited, naming
    // neither the session nor its owner.
    const victim = await bearerOf('victim', 'probed')
    const live = await openSession(stack, 'probed', victim.slice(7))
    const mark1 = stack.audit().length
    const res = await postMcp(stack.local('probed'), LIST, {
      authorization: good,
      'mcp-session-id': live,
      'mcp-protocol-version': '2025-11-25',
    })
    assert.equal(res.status, 404)
    const owner = stack.audit().slice(mark1)
    assert.equal(owner.length, 1, JSON.stringify(owner))
    assert.equal(owner[0]!.rule, SESSION_OWNER_RULE)
    assert.equal(owner[0]!.sub, 'sprayer')
    assert.ok(!JSON.stringify(owner).includes(live) && !JSON.stringify(owner).includes('victim'))
  })
})
