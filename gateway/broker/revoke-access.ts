import { jwtVerify } from 'jose'
import type Provider from 'oidc-provider'
import type { KoaContextWithOIDC } from 'oidc-provider'
import type { AuditLog } from '../observability/audit.js'
import type { BrokerKeys } from './keys.js'
import type { RevocationList } from './revocations.js'

/**
 * RFC 7009 for the broker's JWT access tokens. oidc-provider refuses to revoke a structured
 * token (unsupported_token_type: it keeps none to delete), after it has authenticated the
 * client; here that refusal becomes the revocation: a token the broker signed, issued to this
 * client, is listed by its jti until it expires, on every replica. Anything else is answered
 * as RFC 7009 §2.2 says: 200 for a token that is not valid (expired, not ours), and for a
 * public client presenting another client's token (nothing revoked); a confidential client
 * presenting one is refused, as oidc-provider refuses it for its own tokens.
 */
export function revokeAccessTokens(
  provider: Provider,
  o: {
    issuer: string
    keys: Pick<BrokerKeys, 'getKey' | 'alg'>
    revocations: RevocationList
    /** The verifier's clock tolerance, in s. */
    clockTolerance: number
    /** Seconds a client refused for too many revocations is told to wait (the token lifetime). */
    retryAfter: number
    audit: AuditLog
  },
): void {
  provider.use(async (koa, next) => {
    await next()
    const ctx = koa as KoaContextWithOIDC
    const body = ctx.body as { error?: string } | undefined
    if (ctx.oidc?.route !== 'revocation' || body?.error !== 'unsupported_token_type') return
    const client = ctx.oidc.client
    const token = ctx.oidc.params?.token
    if (client === undefined || typeof token !== 'string') return
    let payload: { jti?: unknown; exp?: unknown; client_id?: unknown; sub?: unknown }
    try {
      ;({ payload } = await jwtVerify(token, o.keys.getKey, {
        issuer: o.issuer,
        algorithms: [o.keys.alg],
        typ: 'at+jwt',
        clockTolerance: o.clockTolerance,
        requiredClaims: ['jti', 'exp'],
      }))
    } catch {
      return answer(ctx)
    }
    if (payload.client_id !== client.clientId) {
      if (client.clientAuthMethod === 'none') return answer(ctx)
      ctx.body = {
        error: 'invalid_request',
        error_description: 'client is not authorized to revoke the presented token',
      }
      return
    }
    if (typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return answer(ctx)
    const sub = typeof payload.sub === 'string' ? payload.sub : ''
    const listed = await o.revocations.revokeToken(payload.jti, payload.exp, sub)
    o.audit.record({
      sub,
      iss: o.issuer,
      clientId: client.clientId,
      server: '',
      method: 'oauth/revoke',
      decision: 'deny',
      rule: 'authorization server',
      outcome: listed ? 'access token revoked' : 'access token not revoked: too many for this user',
    })
    if (listed) return answer(ctx)
    // RFC 7009 §2.2.1: 503, the token still exists; the client may retry later.
    ctx.status = 503
    ctx.set('retry-after', String(o.retryAfter))
    ctx.body = {
      error: 'temporarily_unavailable',
      error_description:
        'too many access tokens revoked for this user; this one stays valid until it expires',
    }
  })
}

/** RFC 7009 §2.2: 200, empty. */
function answer(ctx: KoaContextWithOIDC): void {
  ctx.status = 200
  ctx.body = ''
}
