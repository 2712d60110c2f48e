import { createLocalJWKSet, jwtVerify, type JWK } from 'jose'
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider'
import { ACCESS_TOKEN_TYPE } from '../../gateway/credentials/exchange.js'

/** The audience of the tokens users present to the gateway: the only subject tokens exchanged. */
export const GATEWAY_AUDIENCE = 'https://gateway.test/mcp'

/** The RFC 8693 §2.1 request parameters oidc-provider must pass to the grant. */
export const EXCHANGE_PARAMS = [
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'actor_token',
  'actor_token_type',
  'audience',
  'resource',
  'scope',
]

/** What the grant needs from the fixture. */
export interface GrantState {
  provider: Provider
  issuer: string
  publicJwk: JWK
  allow: Record<string, string[]>
  targets: Record<string, string[]>
  clientTargets?: Record<string, string[]> | undefined
  expiresIn: () => number
}

type GrantContext = KoaContextWithOIDC & { oidc: { params: Record<string, unknown> } }

/**
 * The token-exchange grant, run by oidc-provider after it authenticated the client. Checks, in
 * order, each an OAuth error a real IdP gives: the request's token types (invalid_request); the
 * subject token, verified for real against this IdP's key, issuer, the gateway's audience and
 * expiry, and its user known (invalid_grant); each target (audience, resource) known
 * (invalid_target), allowed to the user (access_denied) and to the client (unauthorized_client);
 * the scope within the targets' scopes (invalid_scope). Then it issues a JWT access token for
 * the target through oidc-provider (whose extraTokenClaims adds `act`, RFC 8693 §4.1).
 */
export async function exchangeGrant(ctx: GrantContext, s: GrantState): Promise<void> {
  const p = ctx.oidc.params as Record<string, string | undefined>
  const client = ctx.oidc.client!
  if (!p.subject_token) throw new errors.InvalidRequest('subject_token is missing')
  if (p.subject_token_type !== ACCESS_TOKEN_TYPE)
    throw new errors.InvalidRequest('unsupported subject_token_type')
  if (p.requested_token_type !== undefined && p.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('unsupported requested_token_type')
  }
  if (p.actor_token !== undefined) throw new errors.InvalidRequest('actor tokens are not accepted')
  const sub = await verifySubject(p.subject_token, s)
  const targets = [p.audience, p.resource].filter((t): t is string => t !== undefined)
  if (targets.length === 0) throw new errors.InvalidTarget('name an audience or a resource')
  if (p.resource !== undefined && !URL.canParse(p.resource))
    throw new errors.InvalidTarget('resource must be an absolute URI')
  for (const target of targets) {
    if (!(target in s.targets)) throw new errors.InvalidTarget(`unknown target ${target}`)
    if (!s.allow[sub]!.includes(target))
      throw new errors.AccessDenied(`${sub} may not have ${target}`)
    const forClient = s.clientTargets?.[client.clientId]
    if (forClient && !forClient.includes(target))
      throw new errors.UnauthorizedClient(`client may not exchange for ${target}`)
  }
  const offered = new Set(targets.flatMap((t) => s.targets[t]!))
  const scope = p.scope?.split(' ').filter(Boolean) ?? []
  const beyond = scope.filter((x) => !offered.has(x))
  if (beyond.length > 0)
    throw new errors.InvalidScope(`not offered: ${beyond.join(' ')}`, beyond.join(' '))

  const audience = targets[0]!
  const resourceServer = new (
    s.provider as unknown as { ResourceServer: new (id: string, d: object) => unknown }
  ).ResourceServer(audience, { audience, scope: [...offered].join(' '), accessTokenFormat: 'jwt' })
  const token = new s.provider.AccessToken({
    accountId: sub,
    client,
    gty: 'token-exchange',
    scope: scope.join(' ') || undefined,
    expiresIn: s.expiresIn(),
    resourceServer,
  } as never)
  ctx.oidc.entity('AccessToken', token)
  const value = await token.save()
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(scope.length > 0 ? { scope: scope.join(' ') } : {}),
  }
}

/** The subject token's user, after verifying it was issued here, for the gateway, and is current. */
async function verifySubject(token: string, s: GrantState): Promise<string> {
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: [s.publicJwk] }), {
      issuer: s.issuer,
      audience: GATEWAY_AUDIENCE,
      algorithms: ['RS256'],
      typ: 'at+jwt',
      requiredClaims: ['sub', 'exp'],
    })
    if (typeof payload.sub === 'string' && payload.sub in s.allow) return payload.sub
  } catch {
    // fall through: any failure is the same refusal
  }
  throw new errors.InvalidGrant()
}
