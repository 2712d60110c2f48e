import { GatewayError } from '../errors.js'

/** Why the account page or its API refused a request. The page and the API answer the same code. */
export type AccountErrorCode =
  | 'not_signed_in' // the page: no session, or it expired (sign in again)
  | 'csrf_mismatch' // the page: a form without this session's token
  | 'origin_not_allowed' // a request from another site's page
  | 'secret_not_allowed' // no server the user may use takes a secret of that name
  | 'token_not_for_server' // the API: a set or delete with a token for no server taking that secret
  | 'secret_refused' // the secret store refused the name or value (its message says why)
  | 'invalid_body' // not the form or JSON expected
  | 'unsupported_media_type'
  | 'method_not_allowed'
  | 'no_sign_in' // the page cannot sign in: no broker (use the API with a bearer token)
  | 'sign_in_expired' // the callback found no sign-in of this browser in progress, or it was too old
  | 'sign_in_mismatch' // the callback's state is not this browser's sign-in
  | 'sign_in_refused' // the broker answered with an error (the user denied, or was refused)
  | 'sign_in_failed' // the code exchange or the ID token failed its checks

const STATUS: Record<AccountErrorCode, number> = {
  not_signed_in: 403,
  csrf_mismatch: 403,
  origin_not_allowed: 403,
  secret_not_allowed: 403,
  token_not_for_server: 403,
  secret_refused: 400,
  invalid_body: 400,
  unsupported_media_type: 415,
  method_not_allowed: 405,
  no_sign_in: 404,
  sign_in_expired: 400,
  sign_in_mismatch: 403,
  sign_in_refused: 403,
  sign_in_failed: 502,
}

/** A refusal of the account page or API; its message is safe for the user (never a value or token). */
export class AccountError extends GatewayError<AccountErrorCode> {
  constructor(code: AccountErrorCode, message: string, cause?: unknown) {
    super(code, message, { status: STATUS[code], expose: true, cause })
  }
}
