import { hash } from 'node:crypto'
import { decodeProtectedHeader } from 'jose'
import { LRUCache } from 'lru-cache'
import type { AuthConfig } from '../config/schema.js'
import { parseBearer } from './bearer.js'
import { AuthError } from './errors.js'
import type { KeySource } from './keys.js'
import { toPrincipal, type Principal } from './principal.js'
import { revocationMarks, type RevocationMarks, type Revocations } from './revocation.js'
import { checkAudience, verifyAccessToken } from './verify.js'

interface Verified {
  principal: Principal
  aud: string | string[] | undefined
  /** With revocations: what the token is refused by once revoked. */
  marks?: RevocationMarks
  /** The token's `kid`, and the identity of the key material it named when verified. */
  kid: unknown
  /** Undefined: verified again on every request (its key unknown to the tracker when cached). */
  version: object | undefined
}

/** Turns an `Authorization` header into a Principal for one resource. */
export interface Authenticator {
  /**
   * @param authorization the raw header value
   * @param audiences values of `aud` accepted for this resource
   * @throws AuthError
   */
  authenticate(
    authorization: string | null | undefined,
    audiences: readonly string[],
  ): Promise<Principal>
  /** Verified tokens held in the cache now (undefined without one). */
  readonly cached?: number
}

/**
 * Creates the authenticator: bearer parse, a cache of verified tokens (LRU keyed by the
 * token's SHA-256, an entry never outliving the token's `exp`, nor the key material it was
 * verified with when the keys are fetched), full verification on a miss, and on every request
 * the revocation check (when the issuer revokes: the broker) and the audience check.
 */
export function createAuthenticator(
  auth: AuthConfig & { issuer: string },
  // The broker's keys are fixed for the life of the process (none refetched, none to follow).
  keys: Pick<KeySource, 'getKey'> &
    Partial<Pick<KeySource, 'version' | 'generation' | 'refreshIfStale'>>,
  now: () => number = Date.now,
  o: {
    /**
     * The issuer always states the delegation (the broker: a token without a scope claim was
     * granted no scope), so a missing claim never lets the roles decide alone.
     */
    scopesAlwaysDelegated?: boolean
    /**
     * The issuer's revocations (the broker's list): every token must name its grant, and one
     * revoked is refused even from the cache.
     */
    revocations?: Revocations
  } = {},
): Authenticator {
  const cache =
    auth.tokenCacheMax > 0
      ? new LRUCache<string, Verified>({
          max: auth.tokenCacheMax,
          ttlAutopurge: false,
          // The clock is read on each lookup: lru-cache would otherwise keep a reading for 1 ms
          // with a timer to forget it, armed by nearly every request of a lightly loaded gateway
          // (a timer each, and a wake-up a millisecond later, while its process works).
          ttlResolution: 0,
          perf: { now },
        })
      : undefined
  const options = {
    issuer: auth.issuer,
    algorithms: auth.algorithms,
    clockTolerance: auth.clockTolerance,
    requireJwtAccessTokenType: auth.requireJwtAccessTokenType,
    getKey: keys.getKey,
    now,
  }
  // lru-cache drops an expired entry only when it is read or pushed out: tokens of users who
  // have moved on to new ones would otherwise fill it to tokenCacheMax and hold it there. At
  // most once per tokenCacheTtl, a miss sweeps out every expired entry first (no timer).
  let sweptAt = now()
  // A client sends one token with many requests: its key is hashed once, not per request
  // (the hash was most of a cache hit's cost). Only the last token's is kept. Requests of many
  // principals interleave and miss it, each hashing its own token: the one-shot hash, no Hash
  // object per request (about 2 µs instead of 3.5 for a 1 KB JWT).
  let last = { token: '', key: '' }
  const keyOf = (token: string) => {
    if (token !== last.token) last = { token, key: hash('sha256', token, 'base64url') }
    return last.key
  }
  return {
    get cached() {
      return cache?.size
    },
    async authenticate(authorization, audiences) {
      const token = parseBearer(authorization)
      const key = cache ? keyOf(token) : ''
      // Keys older than jwksMaxAge are fetched again first, for a cache hit too (jose would
      // only on a miss); then a hit whose key is no longer the one it was verified with (the
      // IdP removed it, or put other material under its kid) is verified afresh, and fails.
      const refresh = keys.refreshIfStale?.()
      if (refresh !== undefined) await refresh
      let verified = cache?.get(key)
      if (verified !== undefined && keys.version !== undefined) {
        const current = keys.version(verified.kid)
        if (current === undefined || current !== verified.version) {
          cache?.delete(key)
          verified = undefined
        }
      }
      if (verified === undefined) {
        const kid = keys.version && kidOf(token)
        const before = keys.version?.(kid)
        const generation = keys.generation?.()
        const payload = await verifyAccessToken(token, options)
        // The key's identity as read before its lookup: a set taken in meanwhile makes it stale
        // (one more verification, never an entry kept past its key). A kid unknown then was
        // found in the one set taken in since (a first fetch, a rotation), if just one was.
        const version =
          before ??
          (generation !== undefined && keys.generation?.() === generation + 1
            ? keys.version?.(kid)
            : undefined)
        const principal = toPrincipal(payload, auth.roleClaims)
        verified = {
          principal: o.scopesAlwaysDelegated ? { ...principal, hasScopeClaim: true } : principal,
          aud: payload.aud,
          marks: o.revocations && revocationMarks(payload, token),
          kid,
          version,
        }
        const ttl = Math.min(auth.tokenCacheTtl * 1000, (payload.exp ?? 0) * 1000 - now())
        if (cache && now() - sweptAt >= auth.tokenCacheTtl * 1000) {
          sweptAt = now()
          cache.purgeStale()
        }
        if (cache && ttl > 0) cache.set(key, verified, { ttl })
      } else if (
        verified.principal.exp !== undefined &&
        (verified.principal.exp + auth.clockTolerance) * 1000 <= now()
      ) {
        cache?.delete(key)
        throw new AuthError('token_expired', 'the access token has expired')
      }
      const refusal = verified.marks && o.revocations?.refusal(verified.marks)
      if (refusal !== undefined) throw new AuthError('token_revoked', refusal)
      checkAudience(verified.aud, audiences)
      return verified.principal
    },
  }
}

/** The `kid` of a token's protected header; undefined when it has none or is unreadable. */
function kidOf(token: string): unknown {
  try {
    return decodeProtectedHeader(token).kid
  } catch {
    return undefined
  }
}
