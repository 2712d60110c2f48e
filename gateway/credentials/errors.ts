import { GatewayError } from '../errors.js'

/** Why a user's credential could not be supplied. */
export type CredentialErrorCode =
  | 'credential_missing' // the user has not set a secret the server needs
  | 'exchange_refused' // the IdP refused the token exchange (the user may not have access)
  | 'exchange_unavailable' // the IdP could not be reached, or answered nonsense
  | 'no_subject_token' // nothing to exchange or no upstream token kept: the user must log in again
  | 'upstream_token_unavailable' // the broker keeps no (fresh) upstream token for the user

const STATUS: Record<CredentialErrorCode, number> = {
  credential_missing: 403,
  exchange_refused: 403,
  exchange_unavailable: 502,
  no_subject_token: 401,
  upstream_token_unavailable: 401,
}

/** A credential that could not be supplied; its message is safe for the client (no value, no token). */
export class CredentialError extends GatewayError<CredentialErrorCode> {
  constructor(code: CredentialErrorCode, message: string, cause?: unknown) {
    super(code, message, { status: STATUS[code], expose: true, cause })
  }
}
