// The revocation list on its own, over the product's memory store with a hand-moved clock:
// what is listed is refused until its time has passed and not after; grants are tagged under
// the first cookie key and listed under every one (a rotation); a full list fails closed
// (tokens issued until then are refused) and opens again once that would have expired; what
// the store holds is loaded at start; a malformed message from another replica is ignored.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { RevocationMarks } from '../../gateway/auth/revocation.js'
import { RevocationList, type RevocationEvent } from '../../gateway/broker/revocations.js'
import { createMemoryStore } from '../../gateway/store/memory.js'

const SILENT = pino({ level: 'silent' })
const KEY_1 = 'k'.repeat(32)
const KEY_2 = 'l'.repeat(32)
const TTL = 330_000

async function list(
  o: {
    max?: number
    keys?: string[]
    store?: ReturnType<typeof createMemoryStore>
    perUser?: number
  } = {},
) {
  const clock = { now: 1_700_000_000_000 }
  const store = o.store ?? createMemoryStore({ now: () => clock.now })
  const events: RevocationEvent[] = []
  const l = await RevocationList.start({
    store,
    ttlMs: TTL,
    toleranceMs: 30_000,
    maxEntries: o.max ?? 100,
    tokensPerUser: o.perUser ?? 100,
    cookieKeys: o.keys ?? [KEY_1],
    log: SILENT,
    onEvent: (e) => events.push(e),
    now: () => clock.now,
  })
  const marks = (grantId: string, more: Partial<RevocationMarks> = {}): RevocationMarks => ({
    grant: l.grantTag(grantId),
    jti: undefined,
    iat: Math.floor(clock.now / 1000),
    ...more,
  })
  return { l, clock, store, events, marks }
}

describe('revocation list', () => {
  it('a revoked grant is refused until its tokens have expired (TTL), then forgotten', async () => {
    const { l, clock, marks } = await list()
    const before = marks('grant-1')
    assert.equal(l.refusal(before), undefined)
    await l.revokeGrant('grant-1')
    assert.equal(l.refusal(before), "the token's grant was revoked")
    assert.equal(l.refusal(marks('grant-2')), undefined, 'another grant is untouched')
    clock.now += TTL - 1
    assert.equal(l.refusal(before), "the token's grant was revoked", 'still within the TTL')
    clock.now += 1
    assert.equal(l.refusal(before), undefined, 'past the TTL every such token has expired')
    assert.equal(l.size, 0)
  })

  it('a revoked access token (jti) is refused until its exp plus the tolerance', async () => {
    const { l, clock, marks } = await list()
    const exp = Math.floor(clock.now / 1000) + 100
    assert.equal(await l.revokeToken('jti-1', exp, 'alice'), true)
    assert.equal(l.refusal(marks('g', { jti: 'jti-1' })), 'the token was revoked')
    assert.equal(l.refusal(marks('g', { jti: 'jti-2' })), undefined)
    clock.now += 130_000 - 1
    assert.equal(l.refusal(marks('g', { jti: 'jti-1' })), 'the token was revoked')
    clock.now += 1
    assert.equal(l.refusal(marks('g', { jti: 'jti-1' })), undefined)
    await l.revokeToken('jti-old', Math.floor(clock.now / 1000) - 31, 'alice')
    assert.equal(l.size, 0, 'a token already past exp and tolerance is not listed')
  })

  it('one user lists at most tokensPerUser access tokens per token lifetime; others are untouched', async () => {
    const { l, clock, marks } = await list({ perUser: 3 })
    const exp = () => Math.floor(clock.now / 1000) + 300
    for (const jti of ['a1', 'a2', 'a3'])
      assert.equal(await l.revokeToken(jti, exp(), 'alice'), true)
    // The fourth is not listed (the caller answers 503): the token stays valid until it expires.
    assert.equal(await l.revokeToken('a4', exp(), 'alice'), false)
    assert.equal(l.refusal(marks('g', { jti: 'a4' })), undefined)
    assert.equal(l.refusal(marks('g', { jti: 'a3' })), 'the token was revoked')
    // Another user has a budget of their own; so does a subject that differs only by a byte.
    assert.equal(await l.revokeToken('b1', exp(), 'bob'), true)
    assert.equal(await l.revokeToken('c1', exp(), 'alice\u0000'), true)
    assert.equal(await l.revokeToken('c2', exp(), 'Alice'), true)
    // A token lifetime later the budget is whole again.
    clock.now += TTL
    assert.equal(await l.revokeToken('a5', exp(), 'alice'), true)
  })

  it('tags are keyed: another key tags differently, and a grant is listed under every key', async () => {
    const one = await list({ keys: [KEY_1] })
    const two = await list({ keys: [KEY_2, KEY_1] })
    assert.notEqual(one.l.grantTag('grant-1'), two.l.grantTag('grant-1'))
    assert.doesNotMatch(one.l.grantTag('grant-1'), /grant/)
    // Tokens tagged before the rotation (under KEY_1) are refused once the grant is revoked.
    await two.l.revokeGrant('grant-1')
    assert.equal(two.l.refusal(one.marks('grant-1')), "the token's grant was revoked")
    assert.equal(two.l.refusal(two.marks('grant-1')), "the token's grant was revoked")
  })

  it('full: nothing is forgotten; every token issued until then is refused until that expires', async () => {
    const { l, clock, marks, events } = await list({ max: 2 })
    const old = marks('untouched')
    await l.revokeGrant('g1')
    await l.revokeGrant('g2')
    clock.now += 5_000
    await l.revokeGrant('g3')
    assert.ok(events.includes('overflow'))
    assert.equal(l.refusal(marks('g1')), "the token's grant was revoked")
    assert.equal(l.refusal(marks('g3')), 'the token may have been revoked; get a new one')
    assert.equal(l.refusal(old), 'the token may have been revoked; get a new one')
    clock.now += 1_000
    assert.equal(l.refusal(marks('fresh')), undefined, 'a token issued after the overflow works')
    clock.now += TTL
    assert.equal(l.refusal(old), undefined, 'once the overflowed entry would have expired')
    await l.revokeGrant('g4')
    assert.equal(
      l.refusal(marks('g4')),
      "the token's grant was revoked",
      'expired entries made room',
    )
  })

  it('a replica starting later loads what the store holds; a malformed entry is skipped', async () => {
    const first = await list()
    await first.l.revokeGrant('grant-1')
    await first.store.addExpiring('broker:revoked', 'x.not-an-entry', 1000)
    const later = await RevocationList.start({
      store: first.store,
      ttlMs: TTL,
      toleranceMs: 30_000,
      maxEntries: 100,
      tokensPerUser: 100,
      cookieKeys: [KEY_1],
      log: SILENT,
      now: () => first.clock.now,
    })
    assert.equal(later.refusal(first.marks('grant-1')), "the token's grant was revoked")
    assert.equal(later.size, 1)
    assert.equal(later.problem(), undefined, 'one replica: no subscription to lose')
  })
})
