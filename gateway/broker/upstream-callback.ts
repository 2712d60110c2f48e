import { timingSafeEqual } from 'node:crypto'
import { UpstreamError } from './errors.js'
import { callbackError } from './upstream-failure.js'

/**
 * What `begin` hands the caller to keep server-side until the callback: plain JSON, single
 * use. It holds the PKCE verifier, so it must never reach the browser.
 */
export interface UpstreamTx {
  state: string
  codeVerifier: string
  /** OIDC only. */
  nonce?: string
  /** The RFC 8707 resource sent upstream (sendResource), sent again at the code exchange. */
  resource?: string
  /** Epoch seconds after which the callback is refused. */
  expiresAt: number
}

// Parameters an authorization response may carry at most once (RFC 6749 §3.1: "Request and
// response parameters MUST NOT be included more than once").
const SINGLE = ['code', 'state', 'iss', 'error', 'error_description', 'error_uri']

/**
 * Checks a callback against its transaction before anything is exchanged, in the order that
 * defends best: repeated parameters; the transaction's age; `iss` (RFC 9207 §2.4: compared
 * first, so a mix-up never gets to use state); then `state` (RFC 6749 §10.12).
 * `issuer` undefined (plain OAuth 2.0, no issuer identifier) ignores `iss`.
 * @throws UpstreamError upstream_invalid_response, upstream_expired,
 *   upstream_issuer_mismatch, upstream_state_mismatch
 */
export function verifyCallback(
  params: URLSearchParams,
  tx: UpstreamTx,
  o: { issuer: string | undefined; issRequired: boolean; nowS: number },
): void {
  for (const name of SINGLE) {
    if (params.getAll(name).length > 1) {
      throw new UpstreamError(
        'upstream_invalid_response',
        `the callback repeats the ${name} parameter`,
      )
    }
  }
  if (!(tx.expiresAt > o.nowS)) {
    throw new UpstreamError('upstream_expired', 'the sign-in took too long; start again')
  }
  const iss = params.get('iss')
  if (o.issuer !== undefined) {
    if (iss === null && o.issRequired) {
      throw new UpstreamError(
        'upstream_issuer_mismatch',
        'the callback lacks the iss parameter the upstream promises (RFC 9207)',
      )
    }
    if (iss !== null && iss !== o.issuer) {
      throw new UpstreamError(
        'upstream_issuer_mismatch',
        'the callback comes from another issuer than the upstream (RFC 9207)',
      )
    }
  }
  if (!same(params.get('state') ?? '', tx.state)) {
    throw new UpstreamError(
      'upstream_state_mismatch',
      'the callback does not belong to this sign-in (state)',
    )
  }
}

/**
 * The authorization response to exchange, built on `redirectUri` (the URL the request named,
 * not the one the callback arrived on behind proxies) with only `code`, `state` and, for an
 * OIDC upstream, `iss`.
 * @throws UpstreamError for an `error` response (upstream_denied, upstream_refused,
 *   upstream_unavailable) or a missing code (upstream_invalid_response)
 */
export function authorizationResponse(
  params: URLSearchParams,
  redirectUri: string,
  issuer: string | undefined,
): URL {
  if (params.has('error')) throw callbackError(params.get('error'))
  const code = params.get('code')
  if (!code) {
    throw new UpstreamError(
      'upstream_invalid_response',
      'the callback carries neither a code nor an error',
    )
  }
  const url = new URL(redirectUri)
  url.search = ''
  url.searchParams.set('code', code)
  url.searchParams.set('state', params.get('state')!)
  const iss = params.get('iss')
  if (issuer !== undefined && iss !== null) url.searchParams.set('iss', iss)
  return url
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Used transactions remembered in memory at most (the oldest are forgotten first). Not a
 * setting: the gateway always passes the shared store's single-use claim (bounded by
 * `store.maxKeys`); this in-memory fallback serves library use and tests only.
 */
export const DEFAULT_UPSTREAM_USED_TX_MAX = 100_000

/**
 * The default single-use check, for one replica: remembers each finished transaction's state
 * until the transaction would have expired anyway (after that `verifyCallback` refuses it).
 */
export function memoryTxClaims(now: () => number, max = DEFAULT_UPSTREAM_USED_TX_MAX) {
  const used = new Map<string, number>() // state → forget after (ms); insertion ≈ expiry order
  return async (state: string, ttlMs: number): Promise<boolean> => {
    const t = now()
    for (const [key, until] of used) {
      if (until > t && used.size < max) break
      used.delete(key)
    }
    if (used.has(state)) return false
    used.set(state, t + ttlMs)
    return true
  }
}
