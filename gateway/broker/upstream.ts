import { decodeJwt } from 'jose'
import * as oidc from 'openid-client'
import type { Logger } from 'pino'
import type { AuthConfig } from '../config/schema.js'
import { DEFAULT_BROKER_LOGIN_TTL_S } from '../config/schema.js'
import type { SecretRef } from '../config/secrets.js'
import { UpstreamError } from './errors.js'
import {
  authorizationResponse,
  memoryTxClaims,
  verifyCallback,
  type UpstreamTx,
} from './upstream-callback.js'
import { clientSource } from './upstream-client.js'
import { upstreamFailure } from './upstream-failure.js'
import { createUpstreamHttp, type UpstreamFetch } from './upstream-http.js'
import { identityOf, type UpstreamClaims } from './upstream-identity.js'
import { readUserinfo } from './upstream-userinfo.js'
import { upstreamSetup } from './upstream-setup.js'

export type { UpstreamTx } from './upstream-callback.js'

/** The `auth.broker.upstream` section of the configuration, parsed. */
export type UpstreamConfig = NonNullable<AuthConfig['broker']>['upstream']

/** What the upstream issued, kept server-side (sealed) for re-checks; never shown to clients. */
export interface UpstreamTokens {
  accessToken: string
  refreshToken?: string
  idToken?: string
  /** Epoch seconds. */
  expiresAt?: number
  scope?: string
}

/** A signed-in user as the upstream vouches for them, with the tokens that prove it. */
export interface UpstreamIdentity extends UpstreamClaims {
  tokens: UpstreamTokens
}

/** The upstream IdP, as the broker's login and refresh use it. */
export interface Upstream {
  /** OIDC: the discovered issuer. Plain OAuth 2.0: undefined. */
  readonly issuer: string | undefined
  /**
   * Starts a login: the authorization URL to send the browser to, and the transaction to keep
   * server-side (single use) until the callback. `resource` goes upstream only with
   * sendResource. @throws UpstreamError upstream_unavailable (not discovered yet)
   */
  begin(o?: { resource?: string }): Promise<{ url: string; tx: UpstreamTx }>
  /**
   * Completes a login from the callback URL: checks iss, state and the transaction, exchanges
   * the code (PKCE), validates the ID token (signature, nonce), reads userinfo, and maps the
   * claims to an identity. Nothing is exchanged when a check before the exchange fails.
   * @throws UpstreamError (every code but upstream_revoked)
   */
  finish(callback: URL, tx: UpstreamTx): Promise<UpstreamIdentity>
  /**
   * Re-checks a user at the upstream: the refresh token grant (rotated tokens kept), else
   * userinfo with the access token; returns the identity as the upstream sees it now.
   * @throws UpstreamError upstream_revoked (the upstream says no), upstream_unavailable (it
   *   could not be asked: the caller decides), or a validation failure
   */
  refresh(tokens: UpstreamTokens): Promise<UpstreamIdentity>
  /** Why the upstream cannot be used yet (readiness), if it cannot. */
  problem(): string | undefined
  close(): Promise<void>
}

/** Options of {@link createUpstream}. */
export interface UpstreamOptions {
  /** The gateway's callback URL registered at the upstream (no query, no fragment). */
  redirectUri: string
  readSecret: (ref: SecretRef, path: string) => string
  log: Logger
  /** Replaces the agent-bound undici fetch (timeouts, size cap and no-redirect still apply). */
  fetch?: UpstreamFetch
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number
  /** How long a login transaction is good for, in s; default DEFAULT_BROKER_LOGIN_TTL_S. */
  txTtl?: number
  /** Largest upstream response read, in bytes; default `upstream.maxResponseBytes`. */
  maxResponseBytes?: number
  /**
   * Marks a transaction used; resolves false if it already was. Default: in this process. With
   * several replicas, pass the shared store's `set(key, '1', { ttlMs, ifAbsent: true })`.
   */
  claimTx?: (state: string, ttlMs: number) => Promise<boolean>
}

/**
 * Sets up the upstream: reads the secret or private key and checks the settings now (a bad
 * one is a ConfigError, all problems at once), then discovers an OIDC issuer. A discovery that
 * fails does not fail start-up: it is logged, `problem()` says why, and it is retried at the
 * next call after a cooldown (calls in between fail with upstream_unavailable).
 * @throws ConfigError
 */
export async function createUpstream(
  config: UpstreamConfig,
  o: UpstreamOptions,
): Promise<Upstream> {
  const now = o.now ?? Date.now
  const nowS = () => Math.floor(now() / 1000)
  const txTtl = o.txTtl ?? DEFAULT_BROKER_LOGIN_TTL_S
  const { auth, scopes, isOidc, ca } = await upstreamSetup(config, o.redirectUri, o.readSecret)
  const http = createUpstreamHttp({
    timeoutMs: config.timeout,
    maxResponseBytes: o.maxResponseBytes ?? config.maxResponseBytes,
    transport: o.fetch,
    connections: config.connections,
    keepAliveMs: config.keepAlive,
    connectTo: config.connectTo,
    ca,
  })
  const source = clientSource({ config, auth, fetch: http.fetch, log: o.log, now })
  const claimTx = o.claimTx ?? memoryTxClaims(now)
  await source.get().catch(() => {}) // logged by the source; retried on use

  /** Identity from fresh claims; `previous` (the login's ID token) only fills gaps. */
  function identity(
    fresh: Fresh,
    previous: Claims | undefined,
    tokens: UpstreamTokens,
  ): UpstreamIdentity {
    const stale = fresh.idToken === undefined && fresh.userinfo === undefined
    return {
      ...identityOf(stale ? previous : fresh.idToken, fresh.userinfo, config, previous),
      tokens,
    }
  }

  return {
    get issuer() {
      return config.issuer
    },

    async begin(b = {}) {
      const client = await source.get()
      const codeVerifier = oidc.randomPKCECodeVerifier()
      const state = oidc.randomState()
      const nonce = isOidc ? oidc.randomNonce() : undefined
      const resource = config.sendResource ? b.resource : undefined
      const url = oidc.buildAuthorizationUrl(client.config, {
        ...config.authorizeParams,
        redirect_uri: o.redirectUri,
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        ...(scopes.length > 0 ? { scope: scopes.join(' ') } : {}),
        ...(nonce !== undefined ? { nonce } : {}),
        ...(resource !== undefined ? { resource } : {}),
      })
      const tx: UpstreamTx = {
        state,
        codeVerifier,
        ...(nonce !== undefined ? { nonce } : {}),
        ...(resource !== undefined ? { resource } : {}),
        expiresAt: nowS() + txTtl,
      }
      return { url: url.href, tx }
    },

    async finish(callback, tx) {
      const client = await source.get()
      const params = callback.searchParams
      verifyCallback(params, tx, {
        issuer: client.issuer,
        issRequired: client.issRequired,
        nowS: nowS(),
      })
      // Single use before anything else happens: a replayed callback never reaches the token
      // endpoint (where a reused code would also revoke the first login's tokens).
      if (!(await claimTx(tx.state, Math.max(0, tx.expiresAt * 1000 - now())))) {
        throw new UpstreamError(
          'upstream_replayed',
          'this sign-in was already completed; start again',
        )
      }
      const response = authorizationResponse(params, o.redirectUri, client.issuer)
      let r: TokenResponse
      try {
        r = await oidc.authorizationCodeGrant(
          client.config,
          response,
          {
            pkceCodeVerifier: tx.codeVerifier,
            expectedState: tx.state,
            ...(isOidc ? { expectedNonce: tx.nonce ?? '', idTokenExpected: true } : {}),
          },
          tx.resource !== undefined ? { resource: tx.resource } : undefined,
        )
      } catch (err) {
        throw upstreamFailure(err, 'code exchange')
      }
      const idToken = r.claims() as Claims | undefined
      const tokens = tokensOf(r, nowS())
      const userinfo = await readUserinfo(client, tokens.accessToken, {
        expectedSub: str(idToken?.sub),
        proven: idToken !== undefined,
        signIn: true,
        log: o.log,
      })
      return identity({ idToken, userinfo }, undefined, tokens)
    },

    async refresh(tokens) {
      const client = await source.get()
      const previous = claimsOf(tokens.idToken)
      const previousSub = str(previous?.sub)
      if (tokens.refreshToken === undefined) {
        if (client.userinfo === undefined) {
          throw new UpstreamError(
            'upstream_revoked',
            'the user cannot be re-checked: no refresh token and no userinfo endpoint',
          )
        }
        const userinfo = await readUserinfo(client, tokens.accessToken, {
          expectedSub: previousSub,
          proven: false,
          signIn: false,
          log: o.log,
        })
        return identity({ userinfo }, previous, tokens)
      }
      let r: TokenResponse
      try {
        r = await oidc.refreshTokenGrant(client.config, tokens.refreshToken)
      } catch (err) {
        throw upstreamFailure(err, 'refresh')
      }
      const idToken = r.claims() as Claims | undefined
      // OIDC Core §12.2: a refreshed ID token names the same user as the first one.
      if (idToken !== undefined && previousSub !== undefined && idToken.sub !== previousSub) {
        throw new UpstreamError(
          'upstream_invalid_response',
          'the refreshed ID token names another user than the login did',
        )
      }
      const fresh = tokensOf(r, nowS(), tokens)
      const userinfo = await readUserinfo(client, fresh.accessToken, {
        expectedSub: str(idToken?.sub) ?? previousSub,
        proven: idToken !== undefined,
        signIn: false,
        log: o.log,
      })
      return identity({ idToken, userinfo }, previous, fresh)
    },

    problem: () => source.problem(),
    close: () => {
      source.close()
      return http.close()
    },
  }
}

type Claims = Record<string, unknown>
type Fresh = { idToken?: Claims; userinfo?: Claims }
type TokenResponse = oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers

/** The tokens to keep: a refresh response's, with what it did not renew kept from `old`. */
function tokensOf(r: TokenResponse, nowS: number, old?: UpstreamTokens): UpstreamTokens {
  const expiresIn = r.expiresIn()
  const refreshToken = r.refresh_token ?? old?.refreshToken // not rotated (Google): keep it
  const idToken = r.id_token ?? old?.idToken
  const scope = r.scope ?? old?.scope
  return {
    accessToken: r.access_token,
    ...(refreshToken !== undefined ? { refreshToken } : {}),
    ...(idToken !== undefined ? { idToken } : {}),
    ...(expiresIn !== undefined ? { expiresAt: nowS + expiresIn } : {}),
    ...(scope !== undefined ? { scope } : {}),
  }
}

/**
 * The claims of the login's ID token, verified when it was issued and kept sealed since: read
 * only for the subject's continuity and to fill gaps in fresh claims. Unreadable: none.
 */
function claimsOf(idToken: string | undefined): Claims | undefined {
  if (idToken === undefined) return undefined
  try {
    return decodeJwt(idToken) as Claims
  } catch {
    return undefined
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}
