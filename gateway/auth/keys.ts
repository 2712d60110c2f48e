import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose'
import { DEFAULT_DISCOVERY_RETRY_MS } from '../config/schema.js'
import { AuthError } from './errors.js'
import type { IdpHttp } from './idp-http.js'

export interface KeySourceOptions {
  issuer: string
  jwksUri?: string
  http: IdpHttp
  timeoutMs: number
  cooldownMs: number
  maxAgeMs: number
  /** After a failed discovery, wait this long before the next attempt (`auth.discoveryRetry`). */
  retryMs?: number
  now?: () => number
  /** Told of every JWKS fetch and its result. */
  onJwksFetch?: (result: 'ok' | 'failed') => void
}

/** The issuer's signing keys: discovery once, then jose's remote JWKS with its own cache. */
export interface KeySource {
  /** jose key resolver; refetches the JWKS on an unknown `kid`, at most once per cooldown. */
  getKey: JWTVerifyGetKey
  /** Resolves once the JWKS URI is known and the keys were fetched once; rejects on failure. */
  warm(): Promise<void>
  /** The JWKS URI in use, once known. */
  readonly jwksUri: string | undefined
}

/**
 * Creates the key source. With `jwksUri` unset, the URI comes from
 * `{issuer}/.well-known/openid-configuration`, whose `issuer` must equal ours exactly
 * (RFC 8414 §3.3), else from `/.well-known/oauth-authorization-server` (RFC 8414 §3).
 * Failures surface as AuthError `idp_unavailable`.
 */
export function createKeySource(opts: KeySourceOptions): KeySource {
  const now = opts.now ?? Date.now
  let jwks: JWTVerifyGetKey | undefined
  let jwksUri = opts.jwksUri
  let pending: Promise<JWTVerifyGetKey> | undefined
  let failedAt = -Infinity

  const build = (uri: string) =>
    createRemoteJWKSet(new URL(uri), {
      timeoutDuration: opts.timeoutMs,
      cooldownDuration: opts.cooldownMs,
      cacheMaxAge: opts.maxAgeMs,
      [customFetch]: (async (url: string, init: Parameters<IdpHttp['fetch']>[1]) => {
        try {
          const res = await opts.http.fetch(url, init)
          opts.onJwksFetch?.(res.status === 200 ? 'ok' : 'failed')
          return res
        } catch (err) {
          opts.onJwksFetch?.('failed')
          throw err
        }
      }) as never,
    })

  async function resolveJwks(): Promise<JWTVerifyGetKey> {
    if (jwks) return jwks
    if (now() - failedAt < (opts.retryMs ?? DEFAULT_DISCOVERY_RETRY_MS)) {
      throw new AuthError('idp_unavailable', 'the authorization server is unreachable')
    }
    pending ??= (async () => {
      try {
        jwksUri ??= await discoverJwksUri(opts.issuer, opts.http)
        jwks = build(jwksUri)
        return jwks
      } catch (err) {
        failedAt = now()
        throw err instanceof AuthError
          ? err
          : new AuthError('idp_unavailable', 'the authorization server is unreachable', err)
      } finally {
        pending = undefined
      }
    })()
    return pending
  }

  return {
    get jwksUri() {
      return jwksUri
    },
    getKey: async (header, token) => (await resolveJwks())(header, token),
    async warm() {
      const get = await resolveJwks()
      const reload = (get as unknown as { reload?: () => Promise<void> }).reload
      await reload?.call(get)
    },
  }
}

async function discoverJwksUri(issuer: string, http: IdpHttp): Promise<string> {
  const base = issuer.replace(/\/$/, '')
  const issuerUrl = new URL(issuer)
  const path = issuerUrl.pathname === '/' ? '' : issuerUrl.pathname.replace(/\/$/, '')
  const candidates = [
    `${base}/.well-known/openid-configuration`,
    `${issuerUrl.origin}/.well-known/oauth-authorization-server${path}`,
  ]
  let lastError: unknown
  for (const url of candidates) {
    try {
      const res = await http.fetch(url, { headers: new Headers({ accept: 'application/json' }) })
      if (res.status !== 200) {
        lastError = new Error(`${url} answered ${res.status}`)
        continue
      }
      const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown }
      if (doc.issuer !== issuer) {
        lastError = new Error(
          `${url} names issuer ${JSON.stringify(doc.issuer)}, expected ${issuer}`,
        )
        continue
      }
      if (typeof doc.jwks_uri !== 'string') {
        lastError = new Error(`${url} has no jwks_uri`)
        continue
      }
      return doc.jwks_uri
    } catch (err) {
      lastError = err
    }
  }
  throw new AuthError('idp_unavailable', 'the authorization server is unreachable', lastError)
}
