import { RateLimiterMemory } from 'rate-limiter-flexible'
import type { Store } from '../../gateway/store/store.js'

/**
 * A minimal in-memory `Store` for tests of code that uses one: values, sets and fixed-window
 * counters, expiry by an injected clock. Not the product's memory store (no bounds, no timers).
 */
export function testStore(now: () => number = Date.now): Store & {
  values: Map<string, { value: string; expires: number }>
  sets: Map<string, Set<string>>
} {
  const values = new Map<string, { value: string; expires: number }>()
  const sets = new Map<string, Set<string>>()
  const live = (key: string) => {
    const v = values.get(key)
    if (v !== undefined && v.expires <= now()) values.delete(key)
    return values.get(key)
  }
  return {
    values,
    sets,
    get: async (key) => live(key)?.value,
    getMany: async (keys) => keys.map((k) => live(k)?.value),
    set: async (key, value, o = {}) => {
      if (o.ifAbsent && live(key) !== undefined) return false
      values.set(key, { value, expires: o.ttlMs === undefined ? Infinity : now() + o.ttlMs })
      return true
    },
    take: async (key) => {
      const v = live(key)
      values.delete(key)
      return v?.value
    },
    del: async (keys) => {
      for (const k of keys) values.delete(k)
    },
    delIf: async (key, value) => live(key)?.value === value && values.delete(key),
    expireIf: async (key, value, ttlMs) => {
      const v = live(key)
      if (v?.value !== value) return false
      v.expires = now() + ttlMs
      return true
    },
    expire: async (key, ttlMs) => {
      const v = live(key)
      if (v === undefined) return false
      v.expires = now() + ttlMs
      return true
    },
    timeToLive: async (key) => {
      const v = live(key)
      if (v === undefined) return sets.has(key) ? null : undefined
      return v.expires === Infinity ? null : v.expires - now()
    },
    persist: async (key) => {
      const v = live(key)
      if (v !== undefined) v.expires = Infinity
      return v !== undefined || sets.has(key)
    },
    keysWithPrefix: async (prefix) =>
      [...values.keys(), ...sets.keys()].filter(
        (key) => key.startsWith(prefix) && (sets.has(key) || live(key) !== undefined),
      ),
    sadd: async (set, member) => {
      sets.set(set, (sets.get(set) ?? new Set()).add(member))
    },
    srem: async (set, member) => {
      sets.get(set)?.delete(member)
    },
    smembers: async (set) => [...(sets.get(set) ?? [])],
    scard: async (set) => sets.get(set)?.size ?? 0,
    incr: async (key, windowMs) => {
      const v = live(key)
      const n = Number(v?.value ?? 0) + 1
      values.set(key, { value: String(n), expires: v?.expires ?? now() + windowMs })
      return n
    },
    // Expiring sets are the revocation list's, which these tests do not reach.
    addExpiring: async () => {
      throw new Error('testStore: expiring sets are not implemented')
    },
    liveMembers: async () => [],
    counter: (prefix, points, duration) =>
      new RateLimiterMemory({ keyPrefix: prefix, points, duration }),
    ping: async () => true,
    close: async () => {},
  }
}
