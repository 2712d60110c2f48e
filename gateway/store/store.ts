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
  /**
   * The ms `key` has left (Redis PTTL): null when it has no time to live (it lives until
   * deleted), undefined when absent.
   */
  timeToLive(key: string): Promise<number | null | undefined>
  /** Takes an existing key's time to live away: it lives until deleted. Resolves false when absent. */
  persist(key: string): Promise<boolean>
  /**
   * Every live key that begins with `prefix` (any kind). Not one atomic read (Redis SCAN): a
   * key written or deleted meanwhile may be missing or still there.
   */
  keysWithPrefix(prefix: string): Promise<string[]>
  /**
   * Gives `key` a new time to live only if it still holds `value` (renewing a lock). Resolves
   * whether it did.
   */
  expireIf(key: string, value: string, ttlMs: number): Promise<boolean>
  /** Adds a member to a set (an index); `ttlMs` renews the set's time to live. */
  sadd(set: string, member: string, ttlMs?: number): Promise<void>
  /** Removes a member from a set. */
  srem(set: string, member: string): Promise<void>
  /** The members of a set (empty when absent). */
  smembers(set: string): Promise<string[]>
  /** How many members a set has. */
  scard(set: string): Promise<number>
  /**
   * Adds a member to an expiring set (a sorted set in Redis) that ends on its own `ttlMs` from
   * now; a member already there keeps the later end. Expired members are dropped on the way, and
   * the set itself expires with its last member.
   */
  addExpiring(set: string, member: string, ttlMs: number): Promise<void>
  /** The live members of an expiring set, each with the ms it has left (the store's clock). */
  liveMembers(set: string): Promise<[member: string, leftMs: number][]>
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
  /**
   * Messages to every replica sharing this store (Redis pub/sub); undefined in memory, where
   * there is one replica and nothing to tell.
   */
  readonly broadcast?: Broadcast
  /** Whether the store can be reached now (readiness). */
  ping(): Promise<boolean>
  close(): Promise<void>
}

/** What a subscriber is told: each message, and when its subscription is up or lost. */
export interface BroadcastHandlers {
  message(message: string): void
  /**
   * The subscription is in place again after a loss: anything published while it was down was
   * missed, so the caller reloads what it keeps from the store now.
   */
  ready(): void
  /** The subscription was lost (the client reconnects by itself, then `ready` again). */
  down(cause: unknown): void
}

/** Messages to every replica: at most once, to those subscribed when it is sent. */
export interface Broadcast {
  /** Sends `message` on `channel` (this replica's own subscribers receive it too). */
  publish(channel: string, message: string): Promise<void>
  /**
   * Listens on `channel` on a connection of its own; resolves once subscribed, with a function
   * that stops listening.
   */
  subscribe(channel: string, handlers: BroadcastHandlers): Promise<() => Promise<void>>
}
