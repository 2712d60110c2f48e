import { RateLimiterMemory } from 'rate-limiter-flexible'
import { DEFAULT_MEMORY_MAX_KEYS, DEFAULT_MEMORY_SWEEP_INTERVAL_MS } from '../config/schema.js'
import { checkTtl, StoreError } from './errors.js'
import type { Store } from './store.js'

type Entry =
  | { kind: 'value'; value: string; expiresAt: number | undefined }
  | { kind: 'set'; members: Set<string>; expiresAt: number | undefined }
  | {
      kind: 'expiring'
      members: Map<string, number>
      expiresAt: number | undefined
      /** Members after the last sweep of expired ones: the next comes once it has doubled. */
      swept: number
    }

/** The in-memory store, with its size for metrics. */
export interface MemoryStore extends Store {
  /** Keys held now, expired ones not yet swept included. */
  readonly size: number
}

/**
 * The store of a single replica: a Map in this process. Every operation runs to completion
 * without awaiting, so each is atomic by construction. Expired keys are invisible at once and
 * are deleted when touched and by a periodic (unref'd) sweep. Bounded: a write that would add a
 * key past `maxKeys` is refused with `full`, never by evicting someone's grant. Types behave as
 * in Redis, so code tested here behaves the same there (a set read as a value is `wrong_type`).
 * @throws StoreError invalid_argument when maxKeys is not a positive integer
 */
export function createMemoryStore(
  o: {
    /** Clock in ms (tests); default Date.now. */
    now?: () => number
    maxKeys?: number
    sweepIntervalMs?: number
  } = {},
): MemoryStore {
  const now = o.now ?? Date.now
  const maxKeys = o.maxKeys ?? DEFAULT_MEMORY_MAX_KEYS
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
    throw new StoreError('invalid_argument', 'maxKeys must be a positive integer')
  }
  const entries = new Map<string, Entry>()
  let closed = false
  const timer = setInterval(sweep, o.sweepIntervalMs ?? DEFAULT_MEMORY_SWEEP_INTERVAL_MS)
  timer.unref()

  function sweep(): void {
    const t = now()
    for (const [key, e] of entries)
      if (e.expiresAt !== undefined && e.expiresAt <= t) entries.delete(key)
  }

  function open(op: string): void {
    if (closed) throw new StoreError('unavailable', `${op}: the store is closed`)
  }

  /** The entry at `key` unless expired (an expired one is deleted on the way). */
  function live(key: string): Entry | undefined {
    const e = entries.get(key)
    if (e?.expiresAt !== undefined && e.expiresAt <= now()) {
      entries.delete(key)
      return undefined
    }
    return e
  }

  function valueAt(key: string, op: string): Extract<Entry, { kind: 'value' }> | undefined {
    const e = live(key)
    if (e !== undefined && e.kind !== 'value')
      throw new StoreError('wrong_type', `${op}: the key holds a set`)
    return e
  }

  function setAt(key: string, op: string): Extract<Entry, { kind: 'set' }> | undefined {
    const e = live(key)
    if (e !== undefined && e.kind !== 'set')
      throw new StoreError('wrong_type', `${op}: the key holds a value`)
    return e
  }

  /** Refuses to add `key` past the bound; expired keys are swept first so they never count. */
  function makeRoom(key: string, op: string): void {
    if (live(key) !== undefined || entries.size < maxKeys) return
    sweep()
    if (entries.size >= maxKeys) {
      throw new StoreError(
        'full',
        `${op}: the in-memory store holds its maximum of ${maxKeys} keys`,
      )
    }
  }

  function expiringAt(key: string, op: string): Extract<Entry, { kind: 'expiring' }> | undefined {
    const e = live(key)
    if (e !== undefined && e.kind !== 'expiring')
      throw new StoreError('wrong_type', `${op}: the key holds a value or a set`)
    return e
  }

  const expiry = (ttlMs: number | undefined, what: string) =>
    ttlMs === undefined ? undefined : now() + checkTtl(ttlMs, what)

  return {
    get size() {
      return entries.size
    },

    async get(key) {
      open('get')
      return valueAt(key, 'get')?.value
    },

    async getMany(keys) {
      open('getMany')
      // As MGET: a key holding a set reads as absent rather than failing the whole batch.
      return keys.map((key) => {
        const e = live(key)
        return e?.kind === 'value' ? e.value : undefined
      })
    },

    async set(key, value, so = {}) {
      open('set')
      const expiresAt = expiry(so.ttlMs, 'set ttlMs')
      if (so.ifAbsent && live(key) !== undefined) return false
      makeRoom(key, 'set')
      // As SET: replaces whatever the key held, its time to live included.
      entries.set(key, { kind: 'value', value, expiresAt })
      return true
    },

    async take(key) {
      open('take')
      const e = valueAt(key, 'take')
      if (e !== undefined) entries.delete(key)
      return e?.value
    },

    async del(keys) {
      open('del')
      for (const key of keys) entries.delete(key)
    },

    async delIf(key, value) {
      open('delIf')
      if (valueAt(key, 'delIf')?.value !== value) return false
      entries.delete(key)
      return true
    },

    async expireIf(key, value, ttlMs) {
      open('expireIf')
      const expiresAt = expiry(ttlMs, 'expireIf ttlMs')
      const e = valueAt(key, 'expireIf')
      if (e?.value !== value) return false
      e.expiresAt = expiresAt
      return true
    },

    async expire(key, ttlMs) {
      open('expire')
      const expiresAt = expiry(ttlMs, 'expire ttlMs')
      const e = live(key)
      if (e === undefined) return false
      e.expiresAt = expiresAt
      return true
    },

    async timeToLive(key) {
      open('timeToLive')
      const e = live(key)
      if (e === undefined) return undefined
      return e.expiresAt === undefined ? null : e.expiresAt - now()
    },

    async persist(key) {
      open('persist')
      const e = live(key)
      if (e === undefined) return false
      e.expiresAt = undefined
      return true
    },

    async keysWithPrefix(prefix) {
      open('keysWithPrefix')
      return [...entries.keys()].filter((key) => key.startsWith(prefix) && live(key) !== undefined)
    },

    async sadd(set, member, ttlMs) {
      open('sadd')
      const expiresAt = expiry(ttlMs, 'sadd ttlMs')
      let e = setAt(set, 'sadd')
      if (e === undefined) {
        makeRoom(set, 'sadd')
        e = { kind: 'set', members: new Set(), expiresAt: undefined }
        entries.set(set, e)
      }
      e.members.add(member)
      // As SADD then PEXPIRE: without ttlMs the set keeps the time to live it had.
      if (expiresAt !== undefined) e.expiresAt = expiresAt
    },

    async srem(set, member) {
      open('srem')
      const e = setAt(set, 'srem')
      if (e === undefined) return
      e.members.delete(member)
      // As in Redis, an empty set does not exist.
      if (e.members.size === 0) entries.delete(set)
    },

    async smembers(set) {
      open('smembers')
      return [...(setAt(set, 'smembers')?.members ?? [])]
    },

    async scard(set) {
      open('scard')
      return setAt(set, 'scard')?.members.size ?? 0
    },

    async addExpiring(set, member, ttlMs) {
      open('addExpiring')
      const at = now() + checkTtl(ttlMs, 'addExpiring ttlMs')
      let e = expiringAt(set, 'addExpiring')
      if (e === undefined) {
        makeRoom(set, 'addExpiring')
        e = { kind: 'expiring', members: new Map(), expiresAt: at, swept: 0 }
        entries.set(set, e)
      }
      // Expired members go once the set has doubled since the last sweep (O(1) per add over
      // time; a sweep on every add made a large list's every write O(n)).
      if (e.members.size >= Math.max(64, 2 * e.swept)) {
        const t = now()
        for (const [m, end] of e.members) if (end <= t) e.members.delete(m)
        e.swept = e.members.size
      }
      e.members.set(member, Math.max(at, e.members.get(member) ?? 0))
      // The set ends with its last member: ends only grow, so no spread of every member (a
      // spread past ~125,000 arguments throws RangeError).
      e.expiresAt = Math.max(e.expiresAt ?? 0, at)
    },

    async liveMembers(set) {
      open('liveMembers')
      const t = now()
      const e = expiringAt(set, 'liveMembers')
      return [...(e?.members ?? [])].filter(([, end]) => end > t).map(([m, end]) => [m, end - t])
    },

    async incr(key, windowMs) {
      open('incr')
      checkTtl(windowMs, 'incr windowMs')
      const e = valueAt(key, 'incr')
      if (e === undefined) {
        makeRoom(key, 'incr')
        entries.set(key, { kind: 'value', value: '1', expiresAt: now() + windowMs })
        return 1
      }
      // INCR's syntax: no sign on 0, no leading zeros, no spaces.
      const n = /^(0|-?[1-9]\d*)$/.test(e.value) ? Number(e.value) + 1 : NaN
      if (!Number.isSafeInteger(n))
        throw new StoreError('wrong_type', 'incr: the key does not hold an integer')
      e.value = String(n)
      // A counter that lost its window (written by set) gets one, so it cannot count forever.
      e.expiresAt ??= now() + windowMs
      return n
    },

    counter: (prefix, points, duration) =>
      new RateLimiterMemory({ keyPrefix: prefix, points, duration }),

    async ping() {
      return !closed
    },

    async close() {
      closed = true
      clearInterval(timer)
      entries.clear()
    },
  }
}
