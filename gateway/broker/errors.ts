import { GatewayError } from '../errors.js'
import { messagePage, PAGE_HEADERS } from '../http/page.js'
import { StoreError } from '../store/errors.js'

type OidcModule = typeof import('oidc-provider')

/** Why a login or re-check at the upstream IdP failed. Switch on these, never on messages. */
export type UpstreamErrorCode =
  | 'upstream_denied' // the user declined or could not sign in (access_denied, login_required …)
  | 'upstream_refused' // the upstream refused the gateway's request (invalid_target, invalid_scope …)
  | 'upstream_invalid_response' // fails validation: signature, nonce, sub, shape, size, redirect
  | 'upstream_state_mismatch' // the callback's state is not the transaction's (RFC 6749 §10.12)
  | 'upstream_issuer_mismatch' // the callback's iss is not the upstream's (RFC 9207 mix-up defence)
  | 'upstream_replayed' // this transaction already went through finish once
  | 'upstream_expired' // the transaction outlived its time to live
  | 'upstream_revoked' // the upstream no longer vouches for the user: invalid_grant, userinfo 401
  | 'upstream_unavailable' // network failure, timeout, 5xx, discovery not done: not a verdict on the user
  | 'domain_not_allowed' // the user's email domain (or Google hd) is not in allowedDomains
  | 'no_subject' // the subject claim is absent, empty, or not a string or an integer

const STATUS: Record<UpstreamErrorCode, number> = {
  upstream_denied: 403,
  upstream_refused: 502,
  upstream_invalid_response: 502,
  upstream_state_mismatch: 400,
  upstream_issuer_mismatch: 400,
  upstream_replayed: 400,
  upstream_expired: 400,
  upstream_revoked: 401,
  upstream_unavailable: 503,
  domain_not_allowed: 403,
  no_subject: 403,
}

/**
 * A failure at the upstream IdP. `message` is safe to show: it never holds tokens, codes,
 * secrets, claims or email addresses. `upstreamError` is the OAuth `error` value the upstream
 * sent, when it sent a well-formed one (RFC 6749 §4.1.2.1, §5.2), for the log.
 */
export class UpstreamError extends GatewayError<UpstreamErrorCode> {
  readonly upstreamError: string | undefined

  constructor(
    code: UpstreamErrorCode,
    message: string,
    o: { cause?: unknown; upstreamError?: string } = {},
  ) {
    super(code, message, { status: STATUS[code], expose: true, cause: o.cause })
    this.upstreamError = o.upstreamError
  }
}

/**
 * An OAuth `error` value fit for messages and logs: a short token of letters, digits and
 * `_.:-` (every registered code is one); anything else an upstream sends is dropped.
 */
export function oauthErrorCode(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(value) ? value : undefined
}

/** What a client (or a person) is told while the broker's store is down. */
export const STORE_UNAVAILABLE = 'the authorization server cannot reach its storage; retry later'

/** A store failure that is an outage (Redis down or timing out, full, a lock held): HTTP 503. */
export function isStoreOutage(err: unknown): err is StoreError {
  return err instanceof StoreError && err.status === 503
}

/**
 * The one OAuth error the broker answers while its store is away: RFC 6749
 * `temporarily_unavailable` with status 503 (oidc-provider's class, whose default is 400), its
 * message safe to show. No `Retry-After`: when the store answers again is not known (a reconnect
 * attempt's time is no promise that Redis is back, and a command that timed out has none).
 */
export function storeUnavailable(errors: OidcModule['errors'], cause: StoreError): Error {
  const err = new errors.TemporarilyUnavailable(STORE_UNAVAILABLE, { cause })
  Object.assign(err, { status: 503, statusCode: 503 })
  return err
}

/** A store outage, as the store throws it or as {@link storeUnavailable} handed it to oidc-provider. */
export function isOutage(err: unknown): boolean {
  return (
    isStoreOutage(err) ||
    ((err as { statusCode?: unknown } | undefined)?.statusCode === 503 &&
      (err as { error?: unknown }).error === 'temporarily_unavailable')
  )
}

/** The same answer where oidc-provider is not in the way (Hono routes before it). */
export function storeUnavailableResponse(): Response {
  const body = JSON.stringify({
    error: 'temporarily_unavailable',
    error_description: STORE_UNAVAILABLE,
  })
  return new Response(body, {
    status: 503,
    headers: {
      'content-type': 'application/json',
      'cache-control': 'no-store',
    },
  })
}

/**
 * The same for a person's browser: the broker's page with 503 (no Retry-After, as above), never
 * "expired" (the person would start over for nothing) nor a 500.
 */
export function storeUnavailablePage(): Response {
  return new Response(messagePage('Sign-in unavailable', STORE_UNAVAILABLE), {
    status: 503,
    headers: PAGE_HEADERS,
  })
}
