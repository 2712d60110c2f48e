import type { Logger } from 'pino'
import * as oidc from 'openid-client'
import { loopbackUrl } from '../config/loopback.js'
import type { UpstreamConfig } from './upstream.js'
import { UpstreamError } from './errors.js'
import { upstreamFailure } from './upstream-failure.js'
import type { UpstreamFetch } from './upstream-http.js'

/** The upstream as openid-client sees it, once its metadata is known. */
export interface UpstreamClient {
  config: oidc.Configuration
  /** OIDC: the issuer discovery confirmed. Plain OAuth 2.0: undefined (no ID token, no `iss`). */
  issuer: string | undefined
  /** RFC 9207 §3: the upstream says every authorization response carries `iss`. */
  issRequired: boolean
  userinfo: URL | undefined
}

/** Hands out the client, discovering the upstream first when it is an OIDC issuer. */
export interface ClientSource {
  /** @throws UpstreamError upstream_unavailable while discovery has not succeeded */
  get(): Promise<UpstreamClient>
  /** Why the upstream is not usable yet (readiness), if it is not. */
  problem(): string | undefined
  /** Stops retrying discovery in the background. */
  close(): void
}

/**
 * Builds the openid-client Configuration. OIDC (`issuer`): discovery at
 * `{issuer}/.well-known/openid-configuration` with the issuer checked exactly, then ID token
 * signatures checked too (`enableNonRepudiationChecks`: openid-client otherwise trusts TLS for
 * token-endpoint ID tokens). Discovery runs at the first `get()` and again, after a failure,
 * at the first `get()` once `retryMs` has passed; in between, calls fail fast. Plain OAuth 2.0
 * (`endpoints`): no discovery; the authorization endpoint's origin stands in for the issuer
 * openid-client requires, and nothing is checked against it. Plain http is allowed for
 * loopback hosts only (tests, a local IdP).
 */
export function clientSource(o: {
  config: UpstreamConfig
  auth: oidc.ClientAuth
  fetch: UpstreamFetch
  log: Logger
  now: () => number
  retryMs?: number
}): ClientSource {
  const { config } = o
  const retryMs = o.retryMs ?? config.discoveryRetry
  const timeout = Math.ceil(config.timeout / 1000) // openid-client counts seconds
  let client: UpstreamClient | undefined
  let pending: Promise<UpstreamClient> | undefined
  let failure: { at: number; message: string } | undefined
  let retry: NodeJS.Timeout | undefined
  let closed = false

  if (config.endpoints) {
    const { authorization, token, userinfo } = config.endpoints
    const c = new oidc.Configuration(
      {
        issuer: new URL(authorization).origin,
        authorization_endpoint: authorization,
        token_endpoint: token,
        ...(userinfo ? { userinfo_endpoint: userinfo } : {}),
      },
      config.clientId,
      {},
      o.auth,
    )
    c[oidc.customFetch] = o.fetch as never
    c.timeout = timeout
    if ([authorization, token, userinfo].some((u) => u !== undefined && insecureAllowed(u))) {
      oidc.allowInsecureRequests(c)
    }
    const info = userinfo ? new URL(userinfo) : undefined
    client = { config: c, issuer: undefined, issRequired: false, userinfo: info }
  }

  async function discover(issuer: string): Promise<UpstreamClient> {
    const c = await oidc.discovery(new URL(issuer), config.clientId, {}, o.auth, {
      [oidc.customFetch]: o.fetch as never,
      timeout,
      execute: insecureAllowed(issuer) ? [oidc.allowInsecureRequests] : [],
    })
    oidc.enableNonRepudiationChecks(c)
    const meta = c.serverMetadata()
    return {
      config: c,
      issuer: meta.issuer,
      issRequired: meta.authorization_response_iss_parameter_supported === true,
      userinfo: meta.userinfo_endpoint ? new URL(meta.userinfo_endpoint) : undefined,
    }
  }

  const source: ClientSource = {
    get: async () => {
      if (client) return client
      if (pending) return pending
      if (failure && o.now() - failure.at < retryMs) {
        throw new UpstreamError(
          'upstream_unavailable',
          'the upstream IdP has not been discovered yet',
        )
      }
      pending = discover(config.issuer!)
        .then(
          (c) => {
            client = c
            failure = undefined
            o.log.info({ issuer: c.issuer }, 'upstream IdP discovered')
            return c
          },
          (err: unknown) => {
            const e = upstreamFailure(err, 'discovery')
            failure = { at: o.now(), message: e.message }
            // Tried again in the background too, so readiness follows an IdP (or the proxy in
            // front of it) that comes up after the gateway, without waiting for a first login.
            if (!closed)
              retry = setTimeout(() => void source.get().catch(() => {}), retryMs).unref()
            o.log.warn(
              { issuer: config.issuer, code: e.code, reason: e.message },
              'upstream IdP discovery failed',
            )
            throw new UpstreamError(
              'upstream_unavailable',
              'the upstream IdP has not been discovered yet',
              { cause: e },
            )
          },
        )
        .finally(() => {
          pending = undefined
        })
      return pending
    },
    problem: () => {
      if (client) return undefined
      return failure ? `upstream IdP: ${failure.message}` : 'upstream IdP: discovery pending'
    },
    close: () => {
      closed = true
      clearTimeout(retry)
    },
  }
  return source
}

/** http:// is acceptable only to a loopback host: elsewhere it would carry secrets in clear. */
export function insecureAllowed(url: string): boolean {
  return new URL(url).protocol === 'http:' && loopbackUrl(url)
}
