import { GatewayError } from '../errors.js'

/**
 * Why the store refused or failed an operation. Callers switch on these and never see a Redis
 * error: the implementations translate theirs at the boundary.
 */
export type StoreErrorCode =
  | 'unavailable' // 503: cannot be reached now (down, timed out, closed); retrying later may work
  | 'full' // 503: at its bound (memory maxKeys, Redis maxmemory); nothing was evicted to make room
  | 'wrong_type' // 500: a set used as a value, a value as a set, a counter that is not an integer
  | 'invalid_argument' // 500: a caller's bug, e.g. a time to live that is not a positive integer
  | 'failed' // 500: anything else the backend refused
  | 'lock_timeout' // 503: withLock waited its bound and the lock was still held
  | 'seal_malformed' // 500: not a sealed value (shape, encoding, nonce or tag length)
  | 'seal_unknown_key' // 500: sealed with a key id that is not configured (any more)
  | 'seal_forged' // 500: tampered with, or opened under another record's key (wrong aad)

const STATUS: Record<StoreErrorCode, number> = {
  unavailable: 503,
  full: 503,
  wrong_type: 500,
  invalid_argument: 500,
  failed: 500,
  lock_timeout: 503,
  seal_malformed: 500,
  seal_unknown_key: 500,
  seal_forged: 500,
}

/**
 * A store failure. Its message names the operation and the reason, never a key (keys may hold
 * tokens), a value or a secret; the backend's own error, if any, is the `cause` (log only).
 */
export class StoreError extends GatewayError<StoreErrorCode> {
  constructor(code: StoreErrorCode, message: string, cause?: unknown) {
    super(code, message, { status: STATUS[code], expose: false, cause })
  }
}

/**
 * Checks a time to live or window, in ms: Redis takes only positive integers (PX), so both
 * implementations refuse anything else alike.
 * @throws StoreError invalid_argument
 */
export function checkTtl(ms: number, what: string): number {
  if (!Number.isSafeInteger(ms) || ms < 1) {
    throw new StoreError('invalid_argument', `${what} must be a positive integer of ms`)
  }
  return ms
}
