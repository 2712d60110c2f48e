// The in-memory store's own promises: bounded without evicting, expired keys freed.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StoreError } from '../../gateway/store/errors.js'
import { DEFAULT_MEMORY_MAX_KEYS } from '../../gateway/config/schema.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { rejectsWith } from './harness.js'
import { waitFor } from '../helpers/wait-for.js'

/** A store of 3 keys, full: a value `a`, a set `s`, a counter `n`; and its clock. */
async function full() {
  const clock = { now: 1_000_000 }
  const s = createMemoryStore({ now: () => clock.now, maxKeys: 3 })
  await s.set('a', '1')
  await s.sadd('s', 'm')
  await s.incr('n', 60_000)
  return { s, clock }
}

const TOKEN_KEY = 'broker:finish:secret-token-value'

describe('memory store bound', () => {
  it('has a named default bound', () => {
    assert.equal(DEFAULT_MEMORY_MAX_KEYS, 100_000)
  })

  const refused: {
    name: string
    write(s: ReturnType<typeof createMemoryStore>): Promise<unknown>
  }[] = [
    { name: 'set of a new key', write: (s) => s.set(TOKEN_KEY, 'v') },
    { name: 'set(ifAbsent) of a new key', write: (s) => s.set(TOKEN_KEY, 'v', { ifAbsent: true }) },
    { name: 'sadd to a new set', write: (s) => s.sadd(TOKEN_KEY, 'm', 1000) },
    { name: 'incr of a new counter', write: (s) => s.incr(TOKEN_KEY, 1000) },
  ]
  for (const c of refused) {
    it(`past maxKeys, ${c.name} is refused with full, evicting nothing`, async () => {
      const { s } = await full()
      await rejectsWith(c.write(s), 'full')
      await c.write(s).catch((err: StoreError) => {
        assert.equal(err.status, 503)
        assert.ok(!err.message.includes(TOKEN_KEY), 'the key is not in the message')
      })
      assert.deepEqual(await s.getMany(['a', 'n', TOKEN_KEY]), ['1', '1', undefined])
      assert.deepEqual(await s.smembers('s'), ['m'])
      assert.equal(s.size, 3)
    })
  }

  const allowed: {
    name: string
    write(s: ReturnType<typeof createMemoryStore>): Promise<unknown>
    expect: unknown
  }[] = [
    { name: 'overwriting a value', write: (s) => s.set('a', '2'), expect: true },
    {
      name: 'set(ifAbsent) of an existing key (false, not full)',
      write: (s) => s.set('a', '2', { ifAbsent: true }),
      expect: false,
    },
    { name: 'adding to an existing set', write: (s) => s.sadd('s', 'm2', 1000), expect: undefined },
    { name: 'counting an existing counter', write: (s) => s.incr('n', 1000), expect: 2 },
    { name: 'replacing a set with a value', write: (s) => s.set('s', 'v'), expect: true },
  ]
  for (const c of allowed) {
    it(`at maxKeys, ${c.name} still works`, async () => {
      const { s } = await full()
      assert.equal(await c.write(s), c.expect)
      assert.equal(s.size, 3)
    })
  }

  it('a deleted, taken or emptied key makes room', async () => {
    const { s } = await full()
    await s.del(['a'])
    assert.equal(await s.set('b', '1'), true)
    await s.take('b')
    assert.equal(await s.set('c', '1'), true)
    await s.srem('s', 'm')
    assert.equal(await s.set('d', '1'), true)
  })

  it('expired keys never count against the bound', async () => {
    const clock = { now: 0 }
    const s = createMemoryStore({ now: () => clock.now, maxKeys: 2 })
    await s.set('short', '1', { ttlMs: 1000 })
    await s.sadd('set', 'm', 1000)
    clock.now += 1000
    assert.equal(s.size, 2, 'not yet swept')
    assert.equal(await s.set('new', '1'), true, 'swept to make room')
    assert.equal(await s.set('new2', '1'), true)
    assert.equal(s.size, 2)
  })

  it('maxKeys must be a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => createMemoryStore({ maxKeys: bad }),
        (err: unknown) => err instanceof StoreError && err.code === 'invalid_argument',
      )
    }
  })
})

describe('memory store sweep', () => {
  it('the periodic sweep frees expired keys nobody touches', async () => {
    const clock = { now: 0 }
    const s = createMemoryStore({ now: () => clock.now, sweepIntervalMs: 5 })
    await s.set('short', '1', { ttlMs: 1000 })
    await s.set('forever', '1')
    clock.now += 1000
    // Waits for the timer's work: a count of looks, no bound on time.
    await waitFor(() => s.size <= 1, 'the sweep freed the expired key')
    assert.equal(await s.get('forever'), '1')
    await s.close()
  })

  it('close empties the store', async () => {
    const s = createMemoryStore()
    await s.set('k', 'v')
    await s.close()
    assert.equal(s.size, 0)
  })
})
