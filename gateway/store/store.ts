import type { RateLimiterAbstract } from 'rate-limiter-flexible'

/** A rate-limit counter: consume a point for a key, or be refused with the time to wait. */
export type RateCounter = Pick<RateLimiterAbstract, 'consume'>

/**
 * State that must outlive a request or be shared by replicas: broker clients, grants, codes and
 * refresh tokens, consents, users' secrets, rate-limit counters. One interface, two
 * implementations: in memory (one replica, the default) and Redis (several replicas). Keys are
 * plain strings the caller namespaces (`oidc:Grant:<id>`, `broker:tx:<state>`); values are
 * strings (JSON, or sealed ciphertext). Every operation that decides between concurrent callers
 * is atomic in both implementations, so one replica's answer is every replica's.
 */
export interface Store {
  /** The value, or undefined when absent or expired. */
  get(key: string): Promise<string | undefined>
  /** Several values at once, in order. */
  getMany(keys: readonly string[]): Promise<(string | undefined)[]>
  /**
   * Writes a value. With `ifAbsent`, only when the key does not exist: exactly one of
   * concurrent callers wins (SET NX). Resolves whether the value was written.
   */
  set(key: string, value: string, o?: { ttlMs?: number; ifAbsent?: boolean }): Promise<boolean>
  /** Reads and deletes at once: a single-use value goes to exactly one caller. */
  take(key: string): Promise<string | undefined>
  /** Deletes keys (absent ones are ignored). */
  del(keys: readonly string[]): Promise<void>
  /** Deletes `key` only if it still holds `value` (releasing a lock). Resolves whether it did. */
  delIf(key: string, value: string): Promise<boolean>
  /** Gives an existing key a new time to live. Resolves false when it does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>
  /** Adds a member to a set (an index); `ttlMs` renews the set's time to live. */
  sadd(set: string, member: string, ttlMs?: number): Promise<void>
  /** Removes a member from a set. */
  srem(set: string, member: string): Promise<void>
  /** The members of a set (empty when absent). */
  smembers(set: string): Promise<string[]>
  /** How many members a set has. */
  scard(set: string): Promise<number>
  /**
   * Increments a counter; a new counter lives `windowMs` from its first increment (a fixed
   * window). Resolves the new value.
   */
  incr(key: string, windowMs: number): Promise<number>
  /**
   * A rate-limit counter in this store (rate-limiter-flexible): `points` per fixed window of
   * `durationSec` per key, keys under `prefix`. In memory it counts for this process; in Redis
   * every replica shares the counts. A store that cannot be reached rejects with an Error (a
   * refusal for lack of points rejects with the library's result instead).
   */
  counter(prefix: string, points: number, durationSec: number): RateCounter
  /** Whether the store can be reached now (readiness). */
  ping(): Promise<boolean>
  close(): Promise<void>
}
