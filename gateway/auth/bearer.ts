import { AuthError } from './errors.js'

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/**
 * Extracts the bearer token from an `Authorization` header value: exactly the `Bearer`
 * scheme (case-insensitive, RFC 9110 §11.1) and one token. Two headers arrive joined by a
 * comma, which is not b64token syntax, so they are refused here too.
 * @throws AuthError `missing_token` (no header, or another scheme), `invalid_request` (malformed)
 */
export function parseBearer(header: string | null | undefined): string {
  if (last !== undefined && header === last.header) return last.token
  if (header === null || header === undefined || header.trim() === '') {
    throw new AuthError('missing_token', 'no access token was sent')
  }
  const space = header.indexOf(' ')
  const scheme = space === -1 ? header : header.slice(0, space)
  // RFC 6750 §3.1: a request using another method counts as carrying no credentials.
  if (scheme.toLowerCase() !== 'bearer')
    throw new AuthError('missing_token', 'no bearer token was sent')
  const token = header.slice(space + 1).trim()
  if (space === -1 || !B64TOKEN.test(token)) {
    throw new AuthError(
      'invalid_request',
      'the Authorization header must be "Bearer <token>", sent once',
    )
  }
  last = { header, token }
  return token
}

/**
 * The last header that parsed, and its token: a client sends one header with many requests,
 * and each is read twice (to authenticate, and as the caller's bearer for credential exchange).
 */
let last: { header: string; token: string } | undefined
