// What the store tests run against: one fresh namespace per case, in memory (a hand-moved
// clock) or on a real Redis (short real times to live, waited for, never timed).
import assert from 'node:assert/strict'
import { pino } from 'pino'
import { StoreError, type StoreErrorCode } from '../../gateway/store/errors.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { createRedisStore, type RedisStoreOptions } from '../../gateway/store/redis.js'
import type { Store } from '../../gateway/store/store.js'
import { waitFor } from '../helpers/wait-for.js'

export const SILENT = pino({ level: 'silent' })

/** One case's view of a store implementation. */
export interface Harness {
  /** The store under test. */
  s: Store
  /** A second client on the same data (Redis: another connection), for races between replicas. */
  t: Store
  /** The same backend under another namespace (Redis: another key prefix). */
  foreign: Store
  /** A short time to live, in ms. */
  ttl: number
  /** A time to live no case outlives, in ms. */
  long: number
  /** Lets `ttl` pass: memory moves its clock, then `gone` must hold; Redis waits until it does. */
  elapse(gone: () => Promise<boolean>): Promise<void>
  /** A fresh store of this kind on the same data, closed by the case. */
  open(): Promise<Store>
  close(): Promise<void>
}

/** A harness over fresh in-memory stores sharing one clock. */
export function memoryHarness(): Harness {
  const clock = { now: 1_000_000 }
  const s = createMemoryStore({ now: () => clock.now })
  const foreign = createMemoryStore({ now: () => clock.now })
  const ttl = 60_000
  return {
    s,
    t: s,
    foreign,
    ttl,
    long: 100 * ttl,
    async elapse(gone) {
      clock.now += ttl
      assert.ok(await gone(), 'gone once its time to live has passed')
    },
    async open() {
      return createMemoryStore({ now: () => clock.now })
    },
    async close() {
      await Promise.all([s.close(), foreign.close()])
    },
  }
}

let namespaces = 0

/** A harness over Redis clients under a key prefix no other case uses. */
export async function redisHarness(
  url: string,
  o: Partial<RedisStoreOptions> = {},
): Promise<Harness> {
  const prefix = `case${++namespaces}:`
  const open = () => createRedisStore({ url, keyPrefix: prefix, log: SILENT, ...o })
  const [s, t, foreign] = await Promise.all([
    open(),
    open(),
    createRedisStore({ url, keyPrefix: `other${namespaces}:`, log: SILENT, ...o }),
  ])
  return {
    s,
    t,
    foreign,
    ttl: 100,
    long: 600_000,
    async elapse(gone) {
      await waitFor(gone, 'the keys expired')
    },
    open,
    async close() {
      await Promise.all([s.close(), t.close(), foreign.close()])
    },
  }
}

/** Asserts that `p` rejects with a StoreError of this code (and that code's status). */
export async function rejectsWith(
  p: Promise<unknown>,
  code: StoreErrorCode,
  message?: string,
): Promise<void> {
  await assert.rejects(
    p,
    (err: unknown) => {
      assert.ok(err instanceof StoreError, `a StoreError, got ${String(err)}`)
      assert.equal(err.code, code, message)
      assert.equal(err.expose, false)
      return true
    },
    message,
  )
}
