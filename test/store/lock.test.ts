// withLock on both stores: contenders wait their turn, a crashed holder's lock runs out, and a
// holder whose lock expired cannot release the next holder's. Ordering is driven by gates the
// test opens, never by how long something took.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { withLock } from '../../gateway/store/lock.js'
import type { Store } from '../../gateway/store/store.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { memoryHarness, redisHarness, rejectsWith, type Harness } from './harness.js'
import { waitFor } from '../helpers/wait-for.js'

const KEY = 'lock:grant:g1'

/** A gate a test opens. */
function gate() {
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { open, opened }
}

/** The store, counting attempts to take a lock (set ifAbsent) that failed. */
function counting(s: Store) {
  const counted = { refused: 0, store: { ...s } as Store }
  counted.store.set = async (key, value, o) => {
    const won = await s.set(key, value, o)
    if (o?.ifAbsent && !won) counted.refused++
    return won
  }
  return counted
}

const cases: { name: string; run(h: Harness): Promise<void> }[] = [
  {
    name: 'two contenders: the second waits until the first is done, then runs',
    async run({ s, long }) {
      const events: string[] = []
      const first = gate()
      const a = withLock(s, KEY, long, async () => {
        events.push('A in')
        await first.opened
        events.push('A out')
        return 'a'
      })
      await waitFor(() => events.includes('A in'), 'A holds the lock')
      const c = counting(s)
      const b = withLock(c.store, KEY, long, async () => {
        events.push('B in')
        return 'b'
      })
      await waitFor(() => c.refused >= 2, 'B was refused twice')
      assert.deepEqual(events, ['A in'], 'B has been refused and is still waiting')
      first.open()
      assert.deepEqual(await Promise.all([a, b]), ['a', 'b'])
      assert.deepEqual(events, ['A in', 'A out', 'B in'])
      assert.equal(await s.get(KEY), undefined, 'released')
    },
  },
  {
    name: "a crashed holder's lock expires and the waiting contender gets it",
    async run({ s, ttl, long, elapse }) {
      await s.set(KEY, 'token of a replica that died', { ttlMs: ttl })
      const c = counting(s)
      let entered = false
      const b = withLock(c.store, KEY, long, async () => {
        entered = true
      })
      await waitFor(() => c.refused >= 1, 'the contender was refused once')
      await elapse(async () => entered || (await s.get(KEY)) !== 'token of a replica that died')
      await b
      assert.equal(entered, true)
    },
  },
  {
    // A holder renews its lock while it works, so the lock is lost only when the renewals could
    // not reach the store (an outage, a stalled event loop) for its whole time to live: here it
    // is gone from under the holder, deleted through the other client.
    name: "a holder whose lock was lost does not release the next holder's lock",
    async run({ s, t, ttl, long }) {
      const second = gate()
      let bToken: string | undefined
      const b = { done: Promise.resolve() }
      await withLock(s, KEY, ttl, async () => {
        assert.notEqual(await s.get(KEY), undefined, 'A holds the lock')
        await t.del([KEY])
        b.done = withLock(s, KEY, long, async () => {
          bToken = await s.get(KEY)
          await second.opened
        })
        await waitFor(() => bToken !== undefined, 'B holds the lock')
      })
      assert.equal(await s.get(KEY), bToken, "A's release left B's lock in place")
      second.open()
      await b.done
      assert.equal(await s.get(KEY), undefined, 'B released its own')
    },
  },
  {
    name: 'gives up with lock_timeout after waitMs, without running fn',
    async run({ s, long }) {
      await s.set(KEY, 'held', { ttlMs: long })
      let ran = false
      await rejectsWith(
        withLock(s, KEY, long, async () => void (ran = true), { waitMs: 30 }),
        'lock_timeout',
      )
      assert.equal(ran, false)
      assert.equal(await s.get(KEY), 'held')
    },
  },
  {
    name: "fn's error reaches the caller and the lock is released",
    async run({ s, long }) {
      await assert.rejects(
        withLock(s, KEY, long, async () => {
          throw new Error('boom')
        }),
        /boom/,
      )
      assert.equal(await s.get(KEY), undefined)
      assert.equal(await withLock(s, KEY, long, async () => 42), 42)
    },
  },
]

function suite(make: () => Promise<Harness>): void {
  for (const c of cases) {
    it(c.name, async () => {
      const h = await make()
      try {
        await c.run(h)
      } finally {
        await h.close()
      }
    })
  }
}

describe('withLock: memory', () => {
  suite(async () => memoryHarness())
})

describe('withLock: Redis', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  before(async () => {
    redis = await startRedis()
  })
  after(() => redis?.close())
  suite(() => redisHarness(redis.url))
})
