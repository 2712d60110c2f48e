import { GatewayError } from '../errors.js'

/** Why a request failed authentication. Each code has its own client-facing description. */
export type AuthErrorCode =
  | 'missing_token' // no credentials: 401 without error= (RFC 6750 §3.1)
  | 'invalid_request' // malformed Authorization, two headers, two methods: 400
  | 'malformed_token' // not a compact JWS
  | 'alg_not_allowed' // none, HS*, or anything outside the allow-list
  | 'wrong_token_type' // typ is not at+jwt when required
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'unknown_key' // kid not in the issuer's JWKS, even after a refetch
  | 'bad_signature'
  | 'missing_claim'
  | 'token_revoked' // the broker's own token, its grant (or itself) revoked since it was issued
  | 'idp_unavailable' // discovery or JWKS unreachable: 503, so clients do not re-authorize in a storm

const STATUS: Record<AuthErrorCode, number> = {
  missing_token: 401,
  invalid_request: 400,
  malformed_token: 401,
  alg_not_allowed: 401,
  wrong_token_type: 401,
  wrong_issuer: 401,
  wrong_audience: 401,
  token_expired: 401,
  token_not_yet_valid: 401,
  unknown_key: 401,
  bad_signature: 401,
  missing_claim: 401,
  token_revoked: 401,
  idp_unavailable: 503,
}

/**
 * An authentication failure. `message` is safe for the client: it never holds keys or claims.
 * `retryAfter` (s): when an `idp_unavailable` IdP will be tried again.
 */
export class AuthError extends GatewayError<AuthErrorCode> {
  constructor(code: AuthErrorCode, message: string, cause?: unknown, retryAfter?: number) {
    super(code, message, { status: STATUS[code], expose: true, cause, retryAfter })
  }
}
