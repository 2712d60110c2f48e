// The key tracker (auth/key-versions.ts) sees every fetched key set, in the order its fetch
// began, even when a second fetch begins before the first's set was taken in. Real JWKS server
// whose answers the test holds and releases in the order it chooses, real key source and
// authenticator, real signed tokens; the clock that ages the keys is injected.
//
// In Node, jose 6 runs one JWKS fetch at a time, and the fetch's own caller takes its set in
// before another can begin; it overlaps fetches where it runs on Cloudflare Workers or Vercel
// Edge (a reload drops the pending one), which these tests switch on through the global it
// looks for, so that two fetches are in flight at once.
import assert from 'node:assert/strict'
import type http from 'node:http'
import { before, describe, it, type TestContext } from 'node:test'
import { createAuthenticator } from '../../gateway/auth/authenticator.js'
import { createIdpHttp } from '../../gateway/auth/idp-http.js'
import { createKeySource } from '../../gateway/auth/keys.js'
import { validateConfig } from '../../gateway/config/load.js'
import { JWKS_PATH, startJwksServer } from '../helpers/jwks-server.js'
import { claims, makeKey, rejectsWith, signToken, type TestKey } from '../helpers/keys.js'
import { waitFor } from '../helpers/wait-for.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'

let a: TestKey
let k0: TestKey
let k1: TestKey
before(async () => {
  ;[a, k0, k1] = await Promise.all([
    makeKey('ES256', 'a'),
    makeKey('ES256', 'k'),
    makeKey('ES256', 'k'),
  ])
})

/** jose overlaps its fetches (its Workers mode) for the length of the test. */
function overlappingFetches(t: TestContext): void {
  const g = globalThis as { WebSocketPair?: unknown }
  g.WebSocketPair = class {}
  t.after(() => {
    delete g.WebSocketPair
  })
}

/** A JWKS answer written on the held request's socket. */
function answer(req: http.IncomingMessage, keys: object[]): void {
  const set = JSON.stringify({ keys })
  req.socket.end(
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(set)}\r\n\r\n${set}`,
  )
}

/**
 * A key source (jwksMaxAge 60 s by the test's clock) and an authenticator on it, the keys
 * fetched once (`first`); then every JWKS request is held until the test answers it.
 */
async function rig(t: TestContext, first: object[]) {
  let now = Date.now()
  const clock = () => now
  const jwks = await startJwksServer(first)
  const held: http.IncomingMessage[] = []
  const http = createIdpHttp(20_000)
  t.after(async () => {
    for (const req of held) req.socket.destroy()
    await http.close()
    await jwks.close()
  })
  const keys = createKeySource({
    issuer: jwks.origin,
    jwksUri: jwks.jwksUri,
    http,
    timeoutMs: 20_000,
    cooldownMs: 60_000,
    maxAgeMs: 60_000,
    now: clock,
  })
  const { auth } = validateConfig(
    { servers: { echo: { command: 'node' } } },
    { file: 'test', baseDir: '/' },
  )
  const authn = createAuthenticator({ ...auth, issuer: jwks.origin }, keys, clock)
  const token = (k: TestKey) =>
    signToken(k, claims(jwks.origin, {}, now)).then((s) => `Bearer ${s}`)
  await keys.warm()
  jwks.routes.set(JWKS_PATH, (req) => {
    held.push(req)
    return 'hang'
  })
  /**
   * The keys past jwksMaxAge: a refresh (a fetch, held) begins; resolves once it reached the IdP,
   * with the refresh's end.
   */
  const refresh = async () => {
    now += 60_001
    const count = held.length
    const done = keys.refreshIfStale()
    assert.ok(done !== undefined, 'the keys are stale: a refresh begins')
    await waitFor(() => held.length > count, 'the refresh to reach the IdP')
    return { done }
  }
  return { keys, authn, token, held, refresh }
}

describe('the key tracker sees every fetched set', () => {
  // Finding (medium, a token kept past its key): the tracker kept one fetched set at a time
  // until jose had taken it in. A second fetch begun meanwhile replaced it, so that set was
  // skipped: here the IdP put other material under kid k (fetch 1) and then the old material
  // back (fetch 2). A token signed with the material of fetch 1 was verified while jose held
  // it, and cached under the version of kid k the tracker still named (the first set's); the
  // tracker then went from the first set to the third, equal for k, and the token stayed good
  // from the cache though its key was gone. Each fetch is now numbered and every set applied.
  it('a token verified under a set a second fetch overtook fails once its key is gone', async (t) => {
    overlappingFetches(t)
    const r = await rig(t, [a.publicJwk, k0.publicJwk])
    const t1 = await r.token(k1)
    const first = await r.refresh()
    const second = await r.refresh()
    assert.equal(r.held.length, 2, 'two fetches in flight')
    // Fetch 1 answers: other material under kid k.
    answer(r.held[0]!, [a.publicJwk, k1.publicJwk])
    await first.done
    assert.equal((await r.authn.authenticate(t1, [ECHO])).sub, 'user-1', 'verified under fetch 1')
    // Fetch 2 answers: the old material back under k; the token's key is gone.
    answer(r.held[1]!, [a.publicJwk, k0.publicJwk])
    await second.done
    await rejectsWith(r.authn.authenticate(t1, [ECHO]), 'bad_signature', 401)
    assert.equal(r.keys.generation(), 3, 'every set taken in: the first, then fetch 1, fetch 2')
  })

  it('fetches answered out of order: the later set stands and the earlier is dropped, as jose drops it (the tracker took the earlier in last)', async (t) => {
    overlappingFetches(t)
    const r = await rig(t, [a.publicJwk, k0.publicJwk])
    const t0 = await r.token(k0)
    const t1 = await r.token(k1)
    assert.equal((await r.authn.authenticate(t0, [ECHO])).sub, 'user-1')
    const first = await r.refresh()
    const second = await r.refresh()
    answer(r.held[1]!, [a.publicJwk, k1.publicJwk])
    await second.done
    answer(r.held[0]!, [a.publicJwk, k0.publicJwk])
    await first.done
    assert.equal(r.keys.generation(), 2, 'the overtaken set is not taken in')
    assert.equal((await r.authn.authenticate(t1, [ECHO])).sub, 'user-1', "the later set's key")
    await rejectsWith(r.authn.authenticate(t0, [ECHO]), 'bad_signature', 401)
  })

  it('held: without overlap (Node), a refresh while one is held joins it: one fetch, its set taken in', async (t) => {
    const r = await rig(t, [a.publicJwk, k0.publicJwk])
    const t0 = await r.token(k0)
    assert.equal((await r.authn.authenticate(t0, [ECHO])).sub, 'user-1')
    const first = await r.refresh()
    const joined = r.keys.refreshIfStale()
    assert.equal(r.held.length, 1, 'one fetch')
    answer(r.held[0]!, [a.publicJwk, k1.publicJwk])
    await Promise.all([first.done, joined])
    assert.equal(r.keys.generation(), 2)
    await rejectsWith(r.authn.authenticate(t0, [ECHO]), 'bad_signature', 401)
  })
})
