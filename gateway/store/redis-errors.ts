import {
  AbortError,
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  ErrorReply,
  MultiErrorReply,
  ReconnectStrategyError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
} from '@redis/client'
import { StoreError } from './errors.js'

/** Client errors that mean the connection, not the command: try again later. */
const CONNECTION_ERRORS = [
  AbortError,
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  ReconnectStrategyError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
]

/** Socket error codes that mean Redis cannot be reached. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/** Server replies that mean "not now" (loading, a busy script, a replica or failover, auth). */
const UNAVAILABLE_REPLY =
  /^(LOADING|BUSY|MASTERDOWN|READONLY|NOAUTH|WRONGPASS|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/

/**
 * Translates whatever the Redis client threw into a StoreError, so no caller learns Redis
 * exists. The message names the operation only; the original error is the cause (log only).
 */
export function storeError(err: unknown, op: string): StoreError {
  if (err instanceof StoreError) return err
  // A failed MULTI carries one reply per failed command: the first says why.
  const reply =
    err instanceof MultiErrorReply ? (err.replies[err.errorIndexes[0] ?? 0] ?? err) : err
  if (reply instanceof ErrorReply) {
    const m = reply.message
    // Redis 7 passes a script's redis.call error through with its own prefix.
    if (m.includes('WRONGTYPE'))
      return new StoreError('wrong_type', `${op}: the key holds another type`, err)
    if (m.includes('not an integer'))
      return new StoreError('wrong_type', `${op}: the key does not hold an integer`, err)
    if (m.startsWith('OOM')) return new StoreError('full', `${op}: Redis is at its maxmemory`, err)
    if (UNAVAILABLE_REPLY.test(m))
      return new StoreError('unavailable', `${op}: Redis cannot serve now`, err)
    return new StoreError('failed', `${op}: Redis refused the command`, err)
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (
    CONNECTION_ERRORS.some((c) => err instanceof c) ||
    (code !== undefined && SOCKET_CODES.has(code))
  ) {
    return new StoreError('unavailable', `${op}: Redis is unreachable`, err)
  }
  return new StoreError('failed', `${op}: unexpected error`, err)
}
