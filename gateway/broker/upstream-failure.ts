import {
  AuthorizationResponseError,
  ClientError,
  ResponseBodyError,
  WWWAuthenticateChallengeError,
} from 'openid-client'
import { oauthErrorCode, UpstreamError, type UpstreamErrorCode } from './errors.js'

/** Which upstream call failed: the same HTTP status means different things at each. */
export type UpstreamCall = 'discovery' | 'code exchange' | 'refresh' | 'userinfo'

// Error codes of undici, Node's sockets and DNS that mean "could not talk to the upstream".
const NETWORK = /^(UND_ERR_|ECONN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_|EPIPE)/
// openid-client's codes for a fetch that was aborted or ran out of time.
const ABORTED = new Set(['OAUTH_TIMEOUT', 'OAUTH_ABORT'])
// RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6 errors that say the user did not get through.
const DENIED = new Set([
  'access_denied',
  'login_required',
  'consent_required',
  'interaction_required',
  'account_selection_required',
])
// Errors that say the upstream is having trouble, not that it refuses.
const TROUBLE = new Set(['server_error', 'temporarily_unavailable'])

/**
 * Translates what openid-client, oauth4webapi or the network threw during `call` into an
 * UpstreamError, so callers switch on our codes and never learn openid-client exists. Order:
 * our own refusals (size, redirect) first; then "could not reach" (network, timeout, 5xx,
 * 429) as `upstream_unavailable`; then the upstream's OAuth errors (`invalid_grant` at a
 * refresh, 401 at userinfo → `upstream_revoked`); anything else failed validation.
 */
export function upstreamFailure(err: unknown, call: UpstreamCall): UpstreamError {
  const own = find(err, (e): e is UpstreamError => e instanceof UpstreamError)
  if (own) return own
  if (unreachable(err)) {
    return fail(
      'upstream_unavailable',
      `the upstream's ${call} did not answer in time or could not be reached`,
      err,
    )
  }
  if (err instanceof AuthorizationResponseError) return callbackError(err.error, err)
  if (err instanceof ResponseBodyError) return oauthError(err, call)
  if (err instanceof WWWAuthenticateChallengeError) return statusFailure(err.status, call, err)
  if (
    err instanceof ClientError &&
    err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' &&
    err.cause instanceof Response
  ) {
    return statusFailure(err.cause.status, call, err)
  }
  const reason = innermostMessage(err)
  return fail(
    'upstream_invalid_response',
    `the upstream's ${call} response failed validation${reason ? `: ${reason}` : ''}`,
    err,
  )
}

/** The error a callback (authorization response) carries, as a typed error. */
export function callbackError(error: unknown, cause?: unknown): UpstreamError {
  const code = oauthErrorCode(error)
  if (code !== undefined && DENIED.has(code)) {
    return fail(
      'upstream_denied',
      `the user did not sign in at the upstream (${code})`,
      cause,
      code,
    )
  }
  if (code !== undefined && TROUBLE.has(code)) {
    return fail(
      'upstream_unavailable',
      `the upstream could not sign the user in (${code})`,
      cause,
      code,
    )
  }
  return fail(
    'upstream_refused',
    `the upstream refused the sign-in request (${code ?? 'unreadable error'})`,
    cause,
    code,
  )
}

/** A bare HTTP status from `call`, as a typed error (5xx and 429: unavailable). */
export function statusFailure(status: number, call: UpstreamCall, cause: unknown): UpstreamError {
  if (status >= 500 || status === 429) {
    return fail('upstream_unavailable', `the upstream's ${call} failed with ${status}`, cause)
  }
  // RFC 6750 §3.1: 401 at a resource = the access token is not (or no longer) valid.
  if (call === 'userinfo' && status === 401) {
    return fail(
      'upstream_revoked',
      'the upstream no longer accepts the access token (userinfo 401)',
      cause,
    )
  }
  return fail('upstream_refused', `the upstream refused the ${call} with ${status}`, cause)
}

function oauthError(err: ResponseBodyError, call: UpstreamCall): UpstreamError {
  const code = oauthErrorCode(err.error)
  if (err.status >= 500 || err.status === 429 || (code !== undefined && TROUBLE.has(code))) {
    return fail(
      'upstream_unavailable',
      `the upstream's ${call} failed with ${err.status}`,
      err,
      code,
    )
  }
  // RFC 6749 §5.2: at a refresh, invalid_grant = the refresh token is no longer valid
  // (revoked, expired, user disabled): the upstream no longer vouches for this user.
  if (call === 'refresh' && code === 'invalid_grant') {
    return fail(
      'upstream_revoked',
      'the upstream no longer accepts the refresh token (invalid_grant)',
      err,
      code,
    )
  }
  return fail(
    'upstream_refused',
    `the upstream refused the ${call} (${code ?? err.status})`,
    err,
    code,
  )
}

function fail(code: UpstreamErrorCode, message: string, cause: unknown, upstreamError?: string) {
  return new UpstreamError(code, message, { cause, upstreamError })
}

function unreachable(err: unknown): boolean {
  if (err instanceof TypeError && err.message === 'fetch failed') return true // undici, any cause
  return (
    find(err, (e): e is Error => {
      if (e instanceof DOMException) return e.name === 'TimeoutError' || e.name === 'AbortError'
      const code = (e as { code?: unknown }).code
      if (e instanceof ClientError) return typeof code === 'string' && ABORTED.has(code)
      return typeof code === 'string' && NETWORK.test(code)
    }) !== undefined
  )
}

/** The first error in the `cause` chain (the error itself included) that `test` accepts. */
function find<T>(err: unknown, test: (e: unknown) => e is T): T | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (test(e)) return e
  }
  return undefined
}

/**
 * The message of the deepest openid-client or oauth4webapi error (code OAUTH_*) in the chain:
 * theirs are fixed texts naming claims, never values. Others (a JSON parse error quoting the
 * body) may quote what the upstream sent, tokens included, so they stay in `cause`.
 */
function innermostMessage(err: unknown): string | undefined {
  let message: string | undefined
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code.startsWith('OAUTH_')) message = e.message
  }
  return message
}
