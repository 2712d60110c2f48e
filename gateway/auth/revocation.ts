import type { JWTPayload } from 'jose'
import { AuthError } from './errors.js'

/**
 * The claim of the broker's access tokens that names their grant: a keyed hash of the grant id
 * (never the id, which keys the grant's records in the store), so a revoked grant's tokens can
 * be refused without a lookup.
 */
export const GRANT_CLAIM = 'grant_tag'

/** What a token is refused by when revoked: its grant's tag, its own id, its user, when it was issued. */
export interface RevocationMarks {
  grant: string
  jti: string | undefined
  /** The subject: a user signed out everywhere has every token issued until then refused. */
  sub?: string
  /** Issued at, epoch s. */
  iat: number | undefined
}

/** The revocations an issuer's verifier consults on every request, cached tokens included. */
export interface Revocations {
  /** Why the token with these marks is refused now (the client-facing description), if it is. */
  refusal(marks: RevocationMarks): string | undefined
}

/** A tag as the broker writes it: base64url of a truncated HMAC. */
const TAG = /^[A-Za-z0-9_-]{16,64}$/

/**
 * The marks of a verified broker token. The grant claim must be there exactly once, as a tag:
 * a broker token without it could never be revoked, so once revocation exists it is refused.
 * A claim written twice is refused too, as JSON parsers disagree on which one counts (the
 * compact JSON the broker signs can hold `"grant_tag":` only as that key).
 * @throws AuthError missing_claim, malformed_token
 */
export function revocationMarks(payload: JWTPayload, token: string): RevocationMarks {
  const grant = payload[GRANT_CLAIM]
  if (grant === undefined)
    throw new AuthError('missing_claim', `the access token has no ${GRANT_CLAIM} claim`)
  if (typeof grant !== 'string' || !TAG.test(grant))
    throw new AuthError('malformed_token', `the access token's ${GRANT_CLAIM} claim is invalid`)
  const json = Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')
  if (json.split(`"${GRANT_CLAIM}":`).length !== 2)
    throw new AuthError('malformed_token', `the access token holds ${GRANT_CLAIM} more than once`)
  return {
    grant,
    jti: typeof payload.jti === 'string' ? payload.jti : undefined,
    sub: typeof payload.sub === 'string' ? payload.sub : undefined,
    iat: typeof payload.iat === 'number' ? payload.iat : undefined,
  }
}
