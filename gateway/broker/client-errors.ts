import { GatewayError } from '../errors.js'

/**
 * Why a client's metadata or a redirect pattern was refused. The first two are RFC 7591 §3.2.2
 * error codes. The broker maps both to oidc-provider's `errors.InvalidClientMetadata(message)`,
 * which answers `invalid_redirect_uri` for descriptions starting with "redirect_uris" (as every
 * `invalid_redirect_uri` message here does). Not `errors.InvalidRedirectUri`: that is the
 * authorization request's error, with a fixed description.
 */
export type ClientPolicyErrorCode =
  | 'invalid_redirect_uri' // a redirect URI outside the allow-list or of a dangerous kind
  | 'invalid_client_metadata' // any other field the broker does not accept
  | 'bad_redirect_pattern' // a `registration.redirectUris` pattern that cannot work (start-up)

/** A refused registration or client document; `message` is safe to show the registrant. */
export class ClientPolicyError extends GatewayError<ClientPolicyErrorCode> {
  constructor(code: ClientPolicyErrorCode, message: string) {
    const startUp = code === 'bad_redirect_pattern'
    super(code, message, { status: startUp ? 500 : 400, expose: !startUp })
  }
}

/** Why `POST /register` was refused before oidc-provider saw it. */
export type RegistrationGuardErrorCode =
  | 'length_required' // no Content-Length (a chunked body): 411
  | 'bad_content_length' // a Content-Length that is not one decimal number: 400
  | 'body_too_large' // Content-Length above `maxBodyBytes`: 413
  | 'slow_down' // this address, its IPv6 /48 or everyone registered too often this minute: 429
  | 'too_many_clients' // the broker holds `maxClients` registrations: 429

const GUARD_STATUS: Record<RegistrationGuardErrorCode, number> = {
  length_required: 411,
  bad_content_length: 400,
  body_too_large: 413,
  slow_down: 429,
  too_many_clients: 429,
}

/** A refused registration request; `retryAfterS` goes out as `Retry-After` when set. */
export class RegistrationGuardError extends GatewayError<RegistrationGuardErrorCode> {
  readonly retryAfterS: number | undefined

  constructor(code: RegistrationGuardErrorCode, message: string, retryAfterS?: number) {
    super(code, message, { status: GUARD_STATUS[code], expose: true })
    this.retryAfterS = retryAfterS
  }
}

/** Why a Client ID Metadata Document was not fetched. */
export type CimdFetchErrorCode =
  | 'bad_options' // an allowPrivate CIDR or allowHosts entry that cannot work (start-up)
  | 'bad_url' // not an absolute URL, or with credentials in it
  | 'not_https' // CIMD documents are served over https only
  | 'host_not_allowed' // outside `allowHosts`
  | 'address_refused' // the host is, or resolves to, a loopback/private/special-use address
  | 'redirect_refused' // a 3xx: documents are fetched without following redirects
  | 'too_large' // the body is larger than `maxBytes`
  | 'timeout' // the whole fetch, body included, took longer than allowed
  | 'aborted' // the caller's signal aborted the fetch
  | 'busy' // `maxConcurrent` documents are being fetched already
  | 'fetch_failed' // DNS, TCP, TLS or HTTP failure

/** A refused or failed document fetch; `message` names the URL's host, never its body. */
export class CimdFetchError extends GatewayError<CimdFetchErrorCode> {
  constructor(code: CimdFetchErrorCode, message: string, cause?: unknown) {
    super(code, message, { status: code === 'bad_options' ? 500 : 400, expose: false, cause })
  }
}
