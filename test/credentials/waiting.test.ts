// CredentialWaits alone: the per-user bound on calls waiting for a secret, and the one look at
// the store their waits share. Each look is held by the test until it answers, so every step
// waits for an event (a look asked for), never for a time.
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { describe, it } from 'node:test'
import type { Principal } from '../../gateway/auth/principal.js'
import { CredentialWaits } from '../../gateway/credentials/waiting.js'
import { principal } from '../helpers/principal.js'

/** Looks the waits asked for, each answered by the test. */
function looks() {
  const asked: { server: string; sub: string; answer: (set: boolean | Error) => void }[] = []
  let next: (() => void) | undefined
  return {
    asked,
    look: (server: string, p: Principal) =>
      new Promise<boolean>((resolve, reject) => {
        asked.push({
          server,
          sub: p.sub,
          answer: (set) => (set instanceof Error ? reject(set) : resolve(set)),
        })
        next?.()
      }),
    /** Resolves once `n` looks have been asked for in all. */
    async until(n: number) {
      while (asked.length < n) await new Promise<void>((r) => (next = r))
    },
  }
}

const HOUR = 3600_000

describe('CredentialWaits: the bound per user', () => {
  it('perSubject places per iss+sub; the next is refused; a place given back (once) is free again', () => {
    const w = new CredentialWaits({ perSubject: 2, interval: 1, look: async () => false })
    const alice = principal('alice')
    const one = w.enter(alice)
    const two = w.enter(alice)
    assert.ok(one && two)
    assert.equal(w.enter(alice), undefined, 'a third call of alice is refused')
    assert.equal(w.enter(principal('alice')), undefined, 'whatever the token: same iss+sub')
    assert.ok(w.enter(principal('bob')), 'bob has his own places')
    assert.ok(w.enter(principal('alice', { iss: 'https://other.example' })), 'another issuer')
    one()
    one()
    const three = w.enter(alice)
    assert.ok(three, 'the place given back is free')
    assert.equal(w.enter(alice), undefined, 'given back twice, it counts once')
  })
})

describe('CredentialWaits: one look per (user, server)', () => {
  it('every wait of a user on a server shares each look; another server or user has its own; set → all resolve', async () => {
    const l = looks()
    const w = new CredentialWaits({ perSubject: 10, interval: 1, look: l.look })
    const alice = principal('alice')
    const waits = [1, 2, 3].map(() => w.until('vault', alice, { timeout: HOUR }))
    const other = w.until('vaultb', alice, { timeout: HOUR })
    const bob = w.until('vault', principal('bob'), { timeout: HOUR })
    await l.until(3)
    assert.deepEqual(
      l.asked.map((a) => `${a.sub}@${a.server}`),
      ['alice@vault', 'alice@vaultb', 'bob@vault'],
      'the first wait of each looks at once; the others share it',
    )
    // Not set yet: each watch looks once more (after the interval), however many wait on it.
    for (let n = 1; n <= 5; n++) {
      for (const a of l.asked.slice(-3)) a.answer(false)
      await l.until(3 * (n + 1))
      assert.equal(l.asked.length, 3 * (n + 1))
    }
    // Alice sets vault's secret: her three waits there resolve on one look.
    const before = l.asked.length
    for (const a of l.asked.slice(-3)) a.answer(a.server === 'vault' && a.sub === 'alice')
    assert.deepEqual(await Promise.all(waits), [true, true, true])
    await l.until(before + 2)
    for (const a of l.asked.slice(-2)) a.answer(true)
    assert.deepEqual(await Promise.all([other, bob]), [true, true])
  })

  it('the store fails: every wait sharing the look rejects with its error', async () => {
    const l = looks()
    const w = new CredentialWaits({ perSubject: 10, interval: 1, look: l.look })
    const waits = [1, 2].map(() => w.until('vault', principal('alice'), { timeout: HOUR }))
    await l.until(1)
    l.asked[0]!.answer(new Error('store unavailable'))
    for (const r of await Promise.allSettled(waits))
      assert.deepEqual(r, { status: 'rejected', reason: new Error('store unavailable') })
  })

  it('aborted or timed out: the wait ends false; the last one gone, no further look nor timer', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const baseline = timers()
    const l = looks()
    const w = new CredentialWaits({ perSubject: 10, interval: 1, look: l.look })
    const abort = new AbortController()
    const aborted = w.until('vault', principal('alice'), { timeout: HOUR, signal: abort.signal })
    const timed = w.until('vault', principal('alice'), { timeout: 1 })
    assert.equal(await timed, false)
    await l.until(1)
    abort.abort()
    assert.equal(await aborted, false)
    // The look under way when the last wait left answers; nothing is scheduled after it.
    l.asked[0]!.answer(false)
    await new Promise((r) => setImmediate(r))
    assert.equal(timers(), baseline, 'no look and no wait timer left behind')
    assert.equal(l.asked.length, 1)
    const later = w.until('vault', principal('alice'), { timeout: HOUR })
    await l.until(2)
    assert.equal(l.asked.length, 2, 'a new wait looks at once, on a watch of its own')
    l.asked[1]!.answer(true)
    assert.equal(await later, true)
    assert.equal(
      await w.until('vault', principal('alice'), { timeout: HOUR, signal: AbortSignal.abort() }),
      false,
      'already aborted: no wait, no look',
    )
    assert.equal(l.asked.length, 2)
  })

  it('set, failed or timed out: nothing is left listening on the signal of a wait', async () => {
    const listeners = (s: AbortSignal) => getEventListeners(s, 'abort').length
    const l = looks()
    const w = new CredentialWaits({ perSubject: 10, interval: 1, look: l.look })
    const signals = [1, 2, 3].map(() => new AbortController().signal)
    const set = w.until('vault', principal('alice'), { timeout: HOUR, signal: signals[0]! })
    assert.equal(listeners(signals[0]!), 1, 'a wait listens for its request ending')
    await l.until(1)
    l.asked[0]!.answer(true)
    assert.equal(await set, true)
    assert.equal(listeners(signals[0]!), 0, 'set: its listener is removed')
    const failed = w.until('vault', principal('alice'), { timeout: HOUR, signal: signals[1]! })
    await l.until(2)
    l.asked[1]!.answer(new Error('store unavailable'))
    await assert.rejects(failed)
    assert.equal(listeners(signals[1]!), 0, 'failed: removed')
    const timed = w.until('vault', principal('bob'), { timeout: 1, signal: signals[2]! })
    assert.equal(await timed, false)
    assert.equal(listeners(signals[2]!), 0, 'timed out: removed')
    await l.until(3)
    l.asked[2]!.answer(false)
  })
})
