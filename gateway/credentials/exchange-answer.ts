import type { Answer } from './exchange-http.js'
import { ACCESS_TOKEN_TYPE } from './exchange-form.js'

/** What an answer means: a usable token, or why not and how loudly to say so. */
export type Reading =
  | { ok: true; token: string; expiresIn: number | undefined }
  | {
      ok: false
      /** `refused`: the IdP decided against this user; `unavailable`: it could not or made no sense. */
      kind: 'refused' | 'unavailable'
      /** `error`: the gateway's own setup is wrong (bad client credentials, grant not enabled). */
      level: 'warn' | 'error'
      reason: string
      /** The OAuth `error` code, when the answer carried a well-formed one. */
      error?: string
      /** The IdP's `error_description`, when printable (for the log only, never the client; see logSafe). */
      description?: string
    }

// RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2: the IdP refuses this user, this target or this
// scope. `access_denied` and `invalid_token` are not in §5.2 but Keycloak answers them (403
// "Client is not within the token audience", 400 "Invalid token" for a subject token it no
// longer accepts): both are about the user's token, not the gateway.
const REFUSALS = new Set([
  'invalid_grant',
  'access_denied',
  'unauthorized_client',
  'invalid_target',
  'invalid_scope',
  'invalid_request',
  'invalid_token',
])
// The gateway itself is not accepted or the grant is not enabled: nothing the user can change.
const MISCONFIGURED = new Set(['invalid_client', 'unsupported_grant_type'])
// RFC 6749 §5.2: error = 1*NQSCHAR; error_description = 1*NQSCHAR (%x20-21 / %x23-5B / %x5D-7E).
const NQSCHARS = /^[\x20\x21\x23-\x5B\x5D-\x7E]+$/
// RFC 6749 App. A.12: access-token = 1*VSCHAR. Also all that can safely become an env value.
const VSCHARS = /^[\x20-\x7E]+$/
// An error_description is logged up to this many characters.
const DESCRIPTION_MAX = 200
// Values worth naming in a message: RFC 8693 §3 token types, token_type values, media types.
const KNOWN = new Set(
  ['refresh_token', 'id_token', 'saml1', 'saml2', 'jwt']
    .map((t) => `urn:ietf:params:oauth:token-type:${t}`)
    .concat([
      'Bearer',
      'bearer',
      'DPoP',
      'N_A',
      'MAC',
      'text/html',
      'text/plain',
      'application/x-www-form-urlencoded',
    ]),
)

/**
 * Reads a token endpoint's answer to an exchange, strictly:
 * - 200 (RFC 6749 §5.1, RFC 8693 §2.2.1) must be `application/json`, a JSON object with
 *   `access_token` (non-empty, printable ASCII), `issued_token_type` exactly the access-token
 *   type (REQUIRED by RFC 8693; a refresh, ID or N_A token is not what was asked for),
 *   `token_type` Bearer, case-insensitively (REQUIRED; a DPoP-bound token is useless without
 *   its key), `expires_in` absent or a positive number, `scope` absent or a string;
 * - 400 or 403 with a refusal code → refused (Keycloak uses 403 for access_denied);
 *   `invalid_client`, `unsupported_grant_type` or any 401 → unavailable, at error level;
 * - anything else (5xx, 429, a redirect, other codes, an unreadable body) → unavailable.
 * Unknown members of a success are ignored (RFC 6749 §5.1); a `refresh_token` is not kept.
 */
export function readAnswer(answer: Answer): Reading {
  if (answer.status === 200) return readSuccess(answer)
  if (answer.status === 400 || answer.status === 401 || answer.status === 403)
    return readError(answer)
  if (answer.status >= 300 && answer.status < 400) {
    return nonsense(`the IdP answered ${answer.status}, a redirect, which is not followed`)
  }
  return {
    ok: false,
    kind: 'unavailable',
    level: 'warn',
    reason: `the IdP answered ${answer.status}`,
  }
}

function readSuccess(answer: Answer): Reading {
  const json = parseJson(answer)
  if (typeof json === 'string') return nonsense(json)
  const {
    access_token: token,
    issued_token_type: issued,
    token_type: type,
    expires_in: expiresIn,
    scope,
  } = json
  if (typeof token !== 'string' || token === '')
    return nonsense('access_token is missing or not a non-empty string')
  if (!VSCHARS.test(token))
    return nonsense('access_token has characters outside printable ASCII (RFC 6749 App. A.12)')
  if (typeof issued !== 'string')
    return nonsense('issued_token_type is missing (RFC 8693 §2.2.1 requires it)')
  if (issued !== ACCESS_TOKEN_TYPE)
    return nonsense(`issued_token_type is ${quote(issued)}, not an access token`)
  if (typeof type !== 'string')
    return nonsense('token_type is missing (RFC 8693 §2.2.1 requires it)')
  if (type.toLowerCase() !== 'bearer') return nonsense(`token_type is ${quote(type)}, not Bearer`)
  if (
    expiresIn !== undefined &&
    (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0)
  ) {
    return nonsense('expires_in is not a positive number of seconds')
  }
  if (scope !== undefined && typeof scope !== 'string') return nonsense('scope is not a string')
  return { ok: true, token, expiresIn }
}

function readError(answer: Answer): Reading {
  const json = parseJson(answer)
  const fields = typeof json === 'object' ? json : {}
  const error = printable(fields.error, 64)
  const description = printable(fields.error_description, Infinity)
  const said = {
    ...(error === undefined ? {} : { error }),
    ...(description === undefined ? {} : { description }),
  }
  const what = error ?? 'no readable error'
  if (answer.status === 401 || (error !== undefined && MISCONFIGURED.has(error))) {
    const reason =
      `the IdP does not accept the gateway's token exchange client (${answer.status} ${what}): ` +
      'check auth.tokenExchange'
    return { ok: false, kind: 'unavailable', level: 'error', ...said, reason }
  }
  if (error !== undefined && REFUSALS.has(error)) {
    return {
      ok: false,
      kind: 'refused',
      level: 'warn',
      ...said,
      reason: `the IdP refused the token exchange (${error})`,
    }
  }
  return {
    ok: false,
    kind: 'unavailable',
    level: 'warn',
    ...said,
    reason: `the IdP answered ${answer.status} (${what})`,
  }
}

/** `value` when it is a string of 1 to `max` NQSCHARs (RFC 6749 §5.2), else undefined. */
function printable(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value.length <= max && NQSCHARS.test(value)
    ? value
    : undefined
}

/**
 * An IdP's error_description made fit for the log: the user's token replaced wherever it is
 * echoed, then any long token-like run (a part of it, or another token) too, then cut short.
 * Redaction comes before the cut, so a cut can never leave a token's prefix behind.
 */
export function logSafe(description: string, subjectToken: string): string {
  return description
    .replaceAll(subjectToken, '[subject token]')
    .replace(/[A-Za-z0-9\-._~+/=]{32,}/g, '[redacted]')
    .slice(0, DESCRIPTION_MAX)
}

/** The body as a JSON object, or why it is not one. */
function parseJson(answer: Answer): Record<string, unknown> | string {
  const media = answer.contentType?.split(';')[0]?.trim().toLowerCase()
  if (media !== 'application/json') {
    return `the answer is ${answer.contentType === null ? 'untyped' : quote(media ?? '')}, not application/json`
  }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(answer.body))
  } catch {
    return 'the answer is not valid UTF-8 JSON'
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'the answer is not a JSON object'
  return value as Record<string, unknown>
}

function nonsense(why: string): Reading {
  return {
    ok: false,
    kind: 'unavailable',
    level: 'warn',
    reason: `the IdP's token exchange answer is unusable: ${why}`,
  }
}

/**
 * An IdP-chosen value, quoted only when it is one of the well-known ones: the message may reach
 * the client, and a hostile IdP could echo anything (a token, too) in any member.
 */
function quote(value: string): string {
  return KNOWN.has(value) ? JSON.stringify(value) : 'an unexpected value'
}
