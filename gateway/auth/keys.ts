import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose'
import { DEFAULT_DISCOVERY_RETRY_MS } from '../config/schema.js'
import { AuthError } from './errors.js'
import { discoveryUrls } from './discovery-urls.js'
import type { IdpHttp } from './idp-http.js'
import { createKeyVersions } from './key-versions.js'

export interface KeySourceOptions {
  issuer: string
  jwksUri?: string
  http: IdpHttp
  timeoutMs: number
  cooldownMs: number
  maxAgeMs: number
  /** After a failed discovery or JWKS fetch, wait this long before the next (`auth.discoveryRetry`). */
  retryMs?: number
  now?: () => number
  /** Told of every JWKS fetch and its result. */
  onJwksFetch?: (result: 'ok' | 'failed') => void
}

/** The issuer's signing keys: discovery once, then jose's remote JWKS with its own cache. */
export interface KeySource {
  /**
   * jose key resolver; refetches the JWKS on an unknown `kid`, at most once per cooldown, and
   * after a failed fetch not before `retryMs`.
   */
  getKey: JWTVerifyGetKey
  /** Resolves once the JWKS URI is known and the keys were fetched once; rejects on failure. */
  warm(): Promise<void>
  /** The JWKS URI in use, once known. */
  readonly jwksUri: string | undefined
  /**
   * The identity of the key material a token naming `kid` is verified with now (key-versions.ts):
   * a cached token verified under another is verified again.
   */
  version(kid: unknown): object | undefined
  /** How many fetched key sets were taken in so far (key-versions.ts). */
  generation(): number
  /**
   * When the keys were fetched `maxAgeMs` ago or more (by `now`), refetches them (failures
   * swallowed: they open the retry window as any); undefined when they are fresh, not fetched
   * yet, or inside a retry window, and when the last fetch failed (the retry runs, unwaited for).
   * A cache hit waits for it, so a key removed from the JWKS stops verifying cached tokens within
   * `maxAgeMs` too, or at the first fetch the IdP answers.
   */
  refreshIfStale(): Promise<void> | undefined
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
  const retryMs = opts.retryMs ?? DEFAULT_DISCOVERY_RETRY_MS
  // jose refetches the JWKS on every request while it holds no keys (or stale ones), and on an
  // unknown `kid` past the cooldown; a failed fetch starts no cooldown. So while the JWKS fails,
  // each request (any token naming our issuer, signed or not) was a fetch at the IdP: a flood at
  // the gateway became one at an IdP already in trouble. After a failure none for `retryMs`.
  let jwksFailedAt = -Infinity
  let jwksFetchedAt = -Infinity
  const versions = createKeyVersions()
  // The client is told when to come back: what is left of the window (RFC 9110 §10.2.3 counts
  // whole seconds; at least 1, so a client never retries at once).
  const unavailable = (failed: number, cause?: unknown) =>
    new AuthError(
      'idp_unavailable',
      'the authorization server is unreachable',
      cause,
      Math.max(1, Math.ceil((retryMs - (now() - failed)) / 1000)),
    )
  // Every failure is thrown from here as our own error (jose passes a fetch's error through),
  // so the window it opens reaches the response.
  const fetchJwks = async (url: string, init: Parameters<IdpHttp['fetch']>[1]) => {
    const n = versions.started()
    if (now() - jwksFailedAt < retryMs) throw unavailable(jwksFailedAt)
    const failed = (cause: unknown) => {
      jwksFailedAt = now()
      opts.onJwksFetch?.('failed')
      return unavailable(jwksFailedAt, cause)
    }
    let res: Response
    try {
      res = await opts.http.fetch(url, init)
    } catch (err) {
      throw failed(err)
    }
    if (res.status !== 200) {
      // The connection is not held for an unread body.
      await res.body?.cancel().catch(() => {})
      throw failed(new Error(`${url} answered ${res.status}`))
    }
    // A body that is no key set (or too large, or too slow) fails the fetch as a status does.
    let doc: unknown
    try {
      doc = await res.json()
    } catch (err) {
      throw failed(err)
    }
    if (!isKeySet(doc)) throw failed(new Error(`${url} holds no key set`))
    jwksFetchedAt = now()
    versions.fetched(n, (doc as { keys: unknown[] }).keys)
    opts.onJwksFetch?.('ok')
    return { status: 200, json: async () => doc }
  }
  const build = (uri: string) =>
    createRemoteJWKSet(new URL(uri), {
      timeoutDuration: opts.timeoutMs,
      cooldownDuration: opts.cooldownMs,
      cacheMaxAge: opts.maxAgeMs,
      [customFetch]: fetchJwks as never,
    })

  async function resolveJwks(): Promise<JWTVerifyGetKey> {
    if (jwks) return jwks
    if (now() - failedAt < retryMs) throw unavailable(failedAt)
    pending ??= (async () => {
      try {
        jwksUri ??= await discoverJwksUri(opts.issuer, opts.http)
        jwks = build(jwksUri)
        return jwks
      } catch (err) {
        failedAt = now()
        throw unavailable(failedAt, err instanceof AuthError ? (err.cause ?? err) : err)
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
    // A fetch jose made to find a key (an unknown kid, a stale set) is settled once it holds it.
    getKey: async (header, token) => {
      const get = await resolveJwks()
      try {
        return await get(header, token)
      } finally {
        settle()
      }
    },
    async warm() {
      await reload(await resolveJwks())
    },
    version(kid) {
      settle()
      return versions.version(kid)
    },
    generation() {
      settle()
      return versions.generation
    },
    refreshIfStale() {
      const t = now()
      if (jwks === undefined || t - jwksFetchedAt < opts.maxAgeMs || t - jwksFailedAt < retryMs)
        return undefined
      // While the IdP fails, its retries run beside the hits: each would otherwise wait for one
      // (up to idpTimeout when it hangs, once per retry window) for keys it cannot give.
      const failing = jwksFailedAt > jwksFetchedAt
      const refresh = reload(jwks).catch(() => {})
      return failing ? undefined : refresh
    },
  }

  function settle(): void {
    versions.settle((jwks as unknown as RemoteSet | undefined)?.reloading === true)
  }

  async function reload(get: JWTVerifyGetKey): Promise<void> {
    try {
      await (get as unknown as RemoteSet).reload?.()
    } finally {
      settle()
    }
  }
}

/** The members of jose's remote key set used here besides the resolver itself. */
interface RemoteSet {
  reload?: () => Promise<void>
  readonly reloading?: boolean
}

/** What jose takes for a key set: an object whose `keys` are all objects. */
function isKeySet(doc: unknown): boolean {
  const keys = (doc as { keys?: unknown } | null)?.keys
  return (
    Array.isArray(keys) &&
    keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))
  )
}

async function discoverJwksUri(issuer: string, http: IdpHttp): Promise<string> {
  const issuerUrl = new URL(issuer)
  const candidates = discoveryUrls(issuer)
  let lastError: unknown
  for (const url of candidates) {
    try {
      const res = await http.fetch(url, { headers: new Headers({ accept: 'application/json' }) })
      if (res.status !== 200) {
        // The other document's refusal says more than this one's absence.
        if (res.status !== 404 || lastError === undefined)
          lastError = new Error(`${url} answered ${res.status}`)
        continue
      }
      const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown }
      if (doc.issuer !== issuer) {
        // The IdP's value is cut: an answer may be as long as idpMaxResponseBytes.
        const named = JSON.stringify(doc.issuer) ?? 'none'
        lastError = new Error(
          `${url} names issuer ${named.length > 200 ? `${named.slice(0, 200)}…` : named}, expected ${issuer}`,
        )
        continue
      }
      if (typeof doc.jwks_uri !== 'string') {
        lastError = new Error(`${url} has no jwks_uri`)
        continue
      }
      // The keys decide which tokens are genuine: fetched no less safely than the issuer's own
      // documents (an https issuer's over https), and only over http(s) (never a `data:` URL).
      const scheme = URL.parse(doc.jwks_uri)?.protocol
      if (scheme !== 'https:' && (scheme !== 'http:' || issuerUrl.protocol === 'https:')) {
        const allowed = issuerUrl.protocol === 'https:' ? 'https' : 'http(s)'
        lastError = new Error(`${url} names a jwks_uri that is not an ${allowed} URL`)
        continue
      }
      return doc.jwks_uri
    } catch (err) {
      lastError = err
    }
  }
  throw new AuthError('idp_unavailable', 'the authorization server is unreachable', lastError)
}
