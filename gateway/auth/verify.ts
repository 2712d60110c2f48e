import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose'
import { AuthError } from './errors.js'

export interface VerifyOptions {
  issuer: string
  algorithms: readonly string[]
  clockTolerance: number
  requireJwtAccessTokenType: boolean
  getKey: JWTVerifyGetKey
  /** Clock, ms since the epoch; default Date.now. */
  now?: () => number
}

/**
 * Verifies a JWT access token's signature, algorithm, type, issuer, `exp` and `nbf`, and
 * returns its payload. The audience is checked separately ({@link checkAudience}) because it
 * depends on which server the request is for.
 * @throws AuthError with a code naming the first check that failed
 */
export async function verifyAccessToken(token: string, o: VerifyOptions): Promise<JWTPayload> {
  let alg: string | undefined
  let typ: string | undefined
  let iss: unknown
  try {
    ;({ alg, typ } = decodeProtectedHeader(token))
    iss = decodeJwt(token).iss
  } catch (err) {
    throw new AuthError('malformed_token', 'the access token is not a signed JWT', err)
  }
  // RFC 8725 §3.1: an allow-list, so `none` and HS* (key confusion) never reach a key.
  if (alg === undefined || !o.algorithms.includes(alg)) {
    throw new AuthError('alg_not_allowed', `the signing algorithm ${safe(alg)} is not accepted`)
  }
  // RFC 9068 §4: at+jwt when the deployment asks for it.
  // RFC 7515 §4.1.9: media types compare case-insensitively, `application/` may be omitted.
  if (
    o.requireJwtAccessTokenType &&
    typ?.toLowerCase().replace(/^application\//, '') !== 'at+jwt'
  ) {
    throw new AuthError('wrong_token_type', 'the token is not a JWT access token (typ at+jwt)')
  }
  // Checked before any key lookup, so tokens of other issuers never trigger a JWKS refetch.
  if (iss !== o.issuer)
    throw new AuthError('wrong_issuer', 'the token was issued by another issuer')
  try {
    const { payload } = await jwtVerify(token, o.getKey, {
      algorithms: [...o.algorithms],
      issuer: o.issuer,
      clockTolerance: o.clockTolerance,
      requiredClaims: ['exp', 'sub'],
      currentDate: o.now ? new Date(o.now()) : undefined,
    })
    // RFC 7519 §4.1.2 (a StringOrURI) and RFC 9068 §2.2: `sub` names the user. A number, list,
    // object or empty string would make identities collide (`["x"]` acting as `"x"`).
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new AuthError(
        'malformed_token',
        "the access token's sub claim must be a non-empty string",
      )
    }
    return payload
  } catch (err) {
    throw translate(err)
  }
}

/**
 * True when `aud` names one of `expected`. Scheme and host compare case-insensitively
 * (MCP canonical URI: servers SHOULD accept upper case there); the path exactly.
 */
export function checkAudience(aud: JWTPayload['aud'], expected: readonly string[]): void {
  const got = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : []
  if (got.length === 0) throw new AuthError('wrong_audience', 'the token has no audience')
  let want = canonicalSets.get(expected)
  if (want === undefined) canonicalSets.set(expected, (want = new Set(expected.map(canonical))))
  // An audience already in canonical form (the usual case) is found without rewriting it.
  if (!got.some((a) => typeof a === 'string' && (want.has(a) || want.has(canonical(a))))) {
    throw new AuthError('wrong_audience', 'the token was issued for another resource')
  }
}

/** Canonical forms of each (long-lived) list of expected audiences, computed once. */
const canonicalSets = new WeakMap<readonly string[], Set<string>>()

/** An audience URI as compared: its scheme and host in lower case (the rest as it is). */
export function canonical(uri: string): string {
  return uri.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, (origin) => origin.toLowerCase())
}

/** jose's errors → ours, at this boundary only. */
function translate(err: unknown): AuthError {
  if (err instanceof AuthError) return err
  if (err instanceof errors.JWTExpired)
    return new AuthError('token_expired', 'the access token has expired', err)
  if (err instanceof errors.JWTClaimValidationFailed) {
    // Only a failed time check means "not yet": an nbf that is no number is malformed (a client
    // told "not yet" would wait for a token that never becomes valid).
    if (err.claim === 'nbf' && err.reason === 'check_failed')
      return new AuthError('token_not_yet_valid', 'the access token is not valid yet', err)
    if (err.claim === 'iss')
      return new AuthError('wrong_issuer', 'the token was issued by another issuer', err)
    if (err.reason === 'missing')
      return new AuthError('missing_claim', `the access token has no ${safe(err.claim)} claim`, err)
    return new AuthError(
      'malformed_token',
      `the access token's ${safe(err.claim)} claim is invalid`,
      err,
    )
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return new AuthError('unknown_key', 'the token was signed with an unknown key', err)
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new AuthError('bad_signature', 'the token signature is invalid', err)
  if (err instanceof errors.JOSEAlgNotAllowed)
    return new AuthError('alg_not_allowed', 'the signing algorithm is not accepted', err)
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) {
    return new AuthError('idp_unavailable', 'the authorization server is unreachable', err)
  }
  if (
    err instanceof errors.JWSInvalid ||
    err instanceof errors.JWTInvalid ||
    err instanceof errors.JOSENotSupported
  ) {
    return new AuthError('malformed_token', 'the access token is malformed', err)
  }
  if (err instanceof errors.JWKSMultipleMatchingKeys)
    return new AuthError('unknown_key', 'the token names an ambiguous key', err)
  // jose refuses a key the IdP serves but it will not use (RSA under 2048 bits) with a TypeError.
  // The token is no good here; the IdP is reachable (a 503 had clients retry the same token).
  if (err instanceof TypeError)
    return new AuthError('unknown_key', 'the token was signed with a key the gateway refuses', err)
  // Anything else is a failure inside the key resolver (its fetches throw AuthError already).
  return new AuthError('idp_unavailable', 'the authorization server is unreachable', err)
}

/** A claim or header value shown to a client: short and printable only. */
function safe(v: unknown): string {
  return String(v)
    .replace(/[^\x20-\x7E]/g, '')
    .replace(/["\\]/g, '')
    .slice(0, 40)
}
