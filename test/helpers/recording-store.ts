import { createMemoryStore } from '../../gateway/store/memory.js'
import type { Store } from '../../gateway/store/store.js'

/** The product's memory store, remembering every key it was asked to write, so tests can read it all. */
export interface RecordingStore extends Store {
  /** Every live value and set, by key (sets as their members joined by newlines). */
  dump(): Promise<Map<string, string>>
  /** Live keys starting with `prefix`. */
  keys(prefix: string): Promise<string[]>
  /** Moves the store's clock forward (what expires with time expires now). */
  advance(ms: number): void
}

/** A memory store (optionally with a clock ahead of the real one) that can list what it holds. */
export function recordingStore(o: { maxKeys?: number } = {}): RecordingStore {
  let skew = 0
  const inner = createMemoryStore({ now: () => Date.now() + skew, maxKeys: o.maxKeys })
  const written = new Set<string>()
  const sets = new Set<string>()
  const live = async (): Promise<Map<string, string>> => {
    const out = new Map<string, string>()
    for (const key of written) {
      const value = await inner.get(key)
      if (value !== undefined) out.set(key, value)
    }
    for (const key of sets) {
      const members = await inner.smembers(key)
      if (members.length > 0) out.set(key, members.join('\n'))
    }
    return out
  }
  return {
    ...inner,
    async set(key, value, o) {
      written.add(key)
      return inner.set(key, value, o)
    },
    async incr(key, windowMs) {
      written.add(key)
      return inner.incr(key, windowMs)
    },
    async sadd(set, member, ttlMs) {
      sets.add(set)
      return inner.sadd(set, member, ttlMs)
    },
    dump: live,
    async keys(prefix) {
      return [...(await live()).keys()].filter((k) => k.startsWith(prefix))
    },
    advance(ms) {
      skew += ms
    },
  }
}
