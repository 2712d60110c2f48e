import type { Context } from 'hono'
import type { Authenticator } from '../auth/authenticator.js'
import type { Resources } from '../auth/resources.js'
import { decideAccess, grantsOf, ruleVerdicts } from '../policy/evaluate.js'
import type { Feature } from '../policy/policy.js'
import type { PolicyStore } from '../policy/store.js'
import type { Metrics } from '../observability/metrics.js'
import type { Vars } from './request-id.js'
import { errorResponse } from './respond.js'

const FEATURES: Feature[] = ['tools', 'prompts', 'resources']

/**
 * `GET /whoami`: what the gateway sees of the caller's token (subject, client, scopes, roles,
 * the scopes they expand to) and, per server, its access and every rule as it applies to this
 * caller. Takes a token for any of the gateway's servers. Never echoes the token or its claims.
 */
export function whoami(d: {
  servers: readonly string[]
  resources: Resources
  authenticator: Authenticator
  policy: PolicyStore
  metrics: Metrics
}) {
  const everyAudience = [...new Set(d.servers.flatMap((s) => d.resources.audiences(s)))]
  return async function handleWhoami(c: Context<Vars>): Promise<Response> {
    const resourceMetadata = d.resources.metadata(d.servers[0] ?? '', 'mcp', c.req.header('host'))
    try {
      const p = await d.authenticator.authenticate(c.req.header('authorization'), everyAudience)
      const policy = d.policy.current
      const servers: Record<string, unknown> = {}
      for (const server of d.servers) {
        const access = decideAccess(policy, p, server)
        const entry: Record<string, unknown> = { access: access.effect, ...(access.effect === 'challenge' ? { missing: access.missing } : {}) }
        for (const f of FEATURES) entry[f] = ruleVerdicts(policy, p, server, f)
        servers[server] = entry
      }
      return Response.json({
        sub: p.sub,
        iss: p.iss,
        clientId: p.clientId ?? null,
        scopes: [...p.scopes].sort(),
        roles: [...p.roles].sort(),
        // The scopes that count (README "Scopes and roles"), and how they were formed.
        grantedScopes: [...grantsOf(policy, p).scopes].sort(),
        scopeBasis: grantsOf(policy, p).basis,
        servers,
      }, { headers: { 'cache-control': 'no-store' } })
    } catch (err) {
      return errorResponse(err, { resourceMetadata, log: c.get('log'), metrics: d.metrics })
    }
  }
}
