import { jwtVerify } from 'jose'
import type Provider from 'oidc-provider'
import type { Client, KoaContextWithOIDC, RefreshToken } from 'oidc-provider'
import type { AuditLog } from '../observability/audit.js'
import type { BrokerKeys } from './keys.js'
import type { RevocationList } from './revocations.js'

/** Where the policy leaves word that the user's share of revocations is spent (→ 503). */
const SPENT = Symbol('revocations spent')

/**
 * oidc-provider's `features.revocation.allowedPolicy` for the tokens it keeps (refresh tokens:
 * revoking one revokes its grant, a list entry). A token issued to another client revokes
 * nothing and is answered as an unknown token (200, empty), for public and confidential
 * clients alike: RFC 7009 §2.1 has the request refused, but an error for a valid foreign token
 * and 200 for an invalid one would tell a client which tokens are valid (§2.2 answers invalid
 * ones with 200 for that reason). A grant revocation counts against the user's share, as an
 * access token's does: past it nothing is revoked and {@link revokeAccessTokens} answers 503.
 * `counted`: grants counted here, which the broker's listing (grantRevoked) then counts no more.
 */
export function revocationPolicy(
  revocations: Pick<RevocationList, 'spend'>,
  counted: Set<string>,
): (ctx: KoaContextWithOIDC, client: Client, token: { clientId?: string }) => Promise<boolean> {
  return async (ctx, client, token) => {
    if (token.clientId !== client.clientId) return false
    const { kind, accountId, grantId } = token as Partial<RefreshToken>
    if (kind !== 'RefreshToken') return true
    if (await revocations.spend(accountId ?? '')) {
      // The grant is revoked next in this request: its listing must not count it again.
      if (grantId) counted.add(grantId)
      return true
    }
    ;(ctx.state as Record<symbol, unknown>)[SPENT] = accountId ?? ''
    return false
  }
}

/**
 * RFC 7009 for the broker's JWT access tokens. oidc-provider refuses to revoke a structured
 * token (unsupported_token_type: it keeps none to delete), after it has authenticated the
 * client; here that refusal becomes the revocation: a token the broker signed, issued to this
 * client, is listed by its jti until it expires, on every replica. Anything else is answered
 * as RFC 7009 §2.2 says for a token that is not valid: 200, empty, nothing revoked; that
 * includes a token of another client, whatever the client (as {@link revocationPolicy}).
 * Past the user's share of revocations (either kind): 503 with Retry-After.
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
    /** The grants {@link revocationPolicy} counted: forgotten once their request is answered. */
    counted?: Set<string>
  },
): void {
  const record = (sub: string, clientId: string, outcome: string) =>
    o.audit.record({
      sub,
      iss: o.issuer,
      clientId,
      server: '',
      method: 'oauth/revoke',
      decision: 'deny',
      rule: 'authorization server',
      outcome,
    })
  const spent = (ctx: KoaContextWithOIDC, what: string) => {
    // RFC 7009 §2.2.1: 503, the token still exists; the client may retry later.
    ctx.status = 503
    ctx.set('retry-after', String(o.retryAfter))
    ctx.body = {
      error: 'temporarily_unavailable',
      error_description: `too many tokens revoked for this user; this ${what} stays valid until it expires`,
    }
  }
  provider.use(async (koa, next) => {
    try {
      await next()
    } finally {
      // Listed by now, or not at all (its grant record gone): nothing will look for it again.
      const grantId = (koa as KoaContextWithOIDC).oidc?.entities?.RefreshToken?.grantId
      if (grantId) o.counted?.delete(grantId)
    }
    const ctx = koa as KoaContextWithOIDC
    if (ctx.oidc?.route !== 'revocation') return
    const client = ctx.oidc.client
    const refused = (ctx.state as Record<symbol, unknown> | undefined)?.[SPENT]
    if (typeof refused === 'string' && client !== undefined) {
      record(refused, client.clientId, 'grant not revoked: too many revocations for this user')
      return spent(ctx, 'refresh token')
    }
    const body = ctx.body as { error?: string } | undefined
    if (body?.error !== 'unsupported_token_type') return
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
    if (payload.client_id !== client.clientId) return answer(ctx)
    if (typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return answer(ctx)
    const sub = typeof payload.sub === 'string' ? payload.sub : ''
    const listed = await o.revocations.revokeToken(payload.jti, payload.exp, sub)
    record(
      sub,
      client.clientId,
      listed ? 'access token revoked' : 'access token not revoked: too many for this user',
    )
    if (listed) return answer(ctx)
    spent(ctx, 'one')
  })
}

/** RFC 7009 §2.2: 200, empty, headers and all as oidc-provider answers an unknown token. */
function answer(ctx: KoaContextWithOIDC): void {
  // The refusal's JSON type would set this answer apart from an unknown token's (text/plain).
  ctx.remove('content-type')
  ctx.status = 200
  ctx.body = ''
}
