import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { jwtVerify, type JWTVerifyGetKey } from 'jose'
import { request } from 'undici'
import type { FirstPartyClient } from '../broker/first-party.js'
import { AccountError } from './errors.js'
import type { LoginTx } from './session.js'

/**
 * Largest token response read from the broker's own token endpoint, in bytes (an ID token and an
 * opaque access token). Not a setting: the answer comes from this gateway's own broker, whose
 * tokens' size the gateway decides; the bound only guards against a misrouted endpoint.
 */
const MAX_TOKEN_RESPONSE_BYTES = 65_536

/** How the account page reaches its broker: as the gateway's own client, at its own listener. */
export interface BrokerClientDeps {
  /** The broker's issuer (the public URL): the authorization request goes there, the ID token comes from it. */
  issuer: string
  client: FirstPartyClient
  /**
   * The token endpoint as this process reaches it (its own listener, not the public URL, which
   * may lead back through a proxy this process cannot reach), and the Host to name there.
   */
  tokenEndpoint: string
  tokenHost: string
  /** The broker's public keys and signing algorithm (in memory: nothing is fetched). */
  getKey: JWTVerifyGetKey
  alg: string
  timeoutMs: number
}

/** The user the broker vouched for: the same (iss, sub) its MCP tokens carry. */
export interface SignedIn {
  iss: string
  sub: string
}

/**
 * The account page's sign-in: OAuth 2.1 authorization code with PKCE S256, `state` and
 * `nonce`, `openid` only, as the broker's first-party confidential client. The code is
 * exchanged at the broker's token endpoint directly, and the ID token is checked (signature,
 * issuer, audience, expiry, nonce) before its `sub` is believed.
 */
export function brokerSignIn(d: BrokerClientDeps) {
  const issuer = d.issuer.replace(/\/$/, '')
  return {
    /** A new sign-in: the URL to send the browser to, and what the browser must keep. */
    begin(): { url: string; tx: Pick<LoginTx, 'state' | 'nonce' | 'verifier'> } {
      const tx = { state: random(), nonce: random(), verifier: random() }
      const url = new URL(`${issuer}/authorize`)
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: d.client.clientId,
        redirect_uri: d.client.redirectUri,
        scope: 'openid',
        state: tx.state,
        nonce: tx.nonce,
        code_challenge: createHash('sha256').update(tx.verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }).toString()
      return { url: url.href, tx }
    },

    /**
     * Finishes a sign-in from the callback's query, for the sign-in this browser kept.
     * @throws AccountError sign_in_mismatch, sign_in_refused, sign_in_failed
     */
    async finish(query: URLSearchParams, tx: LoginTx): Promise<SignedIn> {
      // The state is this browser's, or the callback was someone else's (login CSRF).
      if (!same(query.get('state'), tx.state))
        throw new AccountError(
          'sign_in_mismatch',
          'this sign-in was started in another browser or tab',
        )
      // RFC 9207: the response names its issuer; one from another would be a mix-up.
      const iss = query.get('iss')
      if (iss !== null && iss !== issuer)
        throw new AccountError('sign_in_failed', 'the sign-in came back from another issuer')
      const error = query.get('error')
      if (error !== null)
        throw new AccountError(
          'sign_in_refused',
          `the sign-in did not complete (${error.slice(0, 64)})`,
        )
      const code = query.get('code')
      if (code === null || code === '')
        throw new AccountError('sign_in_failed', 'the sign-in came back without a code')
      const idToken = await exchange(d, code, tx.verifier)
      let sub: unknown
      try {
        const { payload } = await jwtVerify(idToken, d.getKey, {
          issuer,
          audience: d.client.clientId,
          algorithms: [d.alg],
        })
        if (!same(typeof payload.nonce === 'string' ? payload.nonce : null, tx.nonce))
          throw new Error('nonce mismatch')
        sub = payload.sub
      } catch (err) {
        throw new AccountError(
          'sign_in_failed',
          'the identity the sign-in returned did not verify',
          err,
        )
      }
      if (typeof sub !== 'string' || sub === '')
        throw new AccountError('sign_in_failed', 'the identity the sign-in returned names no user')
      return { iss: issuer, sub }
    },
  }
}

/** The code for tokens at the broker's token endpoint; resolves the ID token. */
async function exchange(d: BrokerClientDeps, code: string, verifier: string): Promise<string> {
  let status: number
  let text: string
  try {
    const res = await request(d.tokenEndpoint, {
      method: 'POST',
      headers: {
        host: d.tokenHost,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        // RFC 6749 §2.3.1: the id and secret form-encoded before Basic.
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(d.client.clientId)}:${encodeURIComponent(d.client.clientSecret)}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: d.client.redirectUri,
        code_verifier: verifier,
      }).toString(),
      // undici's request follows no redirect: an answer elsewhere is an answer, not a hop.
      signal: AbortSignal.timeout(d.timeoutMs),
    })
    status = res.statusCode
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > MAX_TOKEN_RESPONSE_BYTES) throw new Error('token response too large')
      chunks.push(chunk as Buffer)
    }
    text = Buffer.concat(chunks).toString('utf8')
  } catch (err) {
    throw new AccountError('sign_in_failed', 'the gateway could not finish the sign-in', err)
  }
  let body: { id_token?: unknown; error?: unknown }
  try {
    body = JSON.parse(text) as typeof body
  } catch (err) {
    throw new AccountError('sign_in_failed', 'the gateway could not finish the sign-in', err)
  }
  if (status !== 200 || typeof body.id_token !== 'string') {
    const why = typeof body.error === 'string' ? body.error.slice(0, 64) : `status ${status}`
    throw new AccountError('sign_in_failed', `the sign-in could not be finished (${why})`)
  }
  return body.id_token
}

function random(): string {
  return randomBytes(32).toString('base64url')
}

function same(a: string | null, b: string): boolean {
  if (a === null) return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
