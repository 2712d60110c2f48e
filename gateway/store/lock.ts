import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEFAULT_LOCK_WAIT_MS } from '../config/schema.js'
import { StoreError } from './errors.js'
import type { Store } from './store.js'

// The pace of retries while waiting for a lock, not settings: they bound nothing (the wait is
// `store.lockWait`), they only trade a little store traffic for how soon a freed lock is seen.
/** The first retry comes after this, in ms; each next one waits twice as long (plus jitter). */
const LOCK_RETRY_MS = 10
/** Retries are never further apart than this, in ms. */
const LOCK_RETRY_MAX_MS = 200

/** A held lock is renewed (to `ttlMs` again) this many times per `ttlMs`. */
const RENEWALS_PER_TTL = 3

/**
 * Runs `fn` while holding the lock `key` (per-grant serialisation across replicas): the lock is
 * `key` set to a random token, if absent, for `ttlMs`, and released afterwards only if it still
 * holds that token, so a holder whose lock expired never releases the next holder's. While `fn`
 * runs the lock is renewed (only while it still holds the token), so a holder slower than
 * `ttlMs` (several upstream calls each within their own timeout) keeps it; a holder that
 * crashes stops renewing and frees the lock when `ttlMs` runs out. Waiting retries with a
 * growing backoff for at most `waitMs`. A failed renewal or release is ignored (the lock then
 * expires on its own); `fn`'s result or error is what the caller gets.
 * @throws StoreError lock_timeout when the lock is still held after `waitMs`; the store's own
 *   errors (unavailable, …) while acquiring
 */
export async function withLock<T>(
  store: Store,
  key: string,
  ttlMs: number,
  fn: () => Promise<T>,
  o: { waitMs?: number } = {},
): Promise<T> {
  const waitMs = o.waitMs ?? DEFAULT_LOCK_WAIT_MS
  const token = randomBytes(16).toString('base64url')
  const start = performance.now()
  let delay = LOCK_RETRY_MS
  while (!(await store.set(key, token, { ttlMs, ifAbsent: true }))) {
    const left = waitMs - (performance.now() - start)
    if (left <= 0)
      throw new StoreError('lock_timeout', `the lock was still held after ${waitMs} ms`)
    // Jitter spreads contenders out so they do not retry in lockstep.
    await sleep(Math.min(delay + Math.random() * delay, left))
    delay = Math.min(delay * 2, LOCK_RETRY_MAX_MS)
  }
  const renewal = setInterval(() => {
    store.expireIf(key, token, ttlMs).then(
      (held) => held || clearInterval(renewal),
      () => {}, // the store is away: the next renewal tries again
    )
  }, ttlMs / RENEWALS_PER_TTL)
  renewal.unref()
  try {
    return await fn()
  } finally {
    clearInterval(renewal)
    await store.delIf(key, token).catch(() => {})
  }
}
