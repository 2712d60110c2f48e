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
 * the scopes they expand to); per server, its access and every rule as it applies to this
 * caller; per endpoint, its resource and which of its backends this caller reaches (the others
 * are left out of its lists and never started for them). Takes a token for any of the gateway's
 * servers or endpoints. Never echoes the token or its claims.
 */
export function whoami(d: {
  servers: readonly string[]
  /** Aggregating endpoints and their backend servers ('*' already expanded). */
  endpoints: Readonly<Record<string, { servers: readonly string[]; prefix: string }>>
  resources: Resources
  authenticator: Authenticator
  policy: PolicyStore
  metrics: Metrics
}) {
  const everyAudience = [
    ...new Set([
      ...d.servers.flatMap((s) => d.resources.audiences(s)),
      ...Object.keys(d.endpoints).flatMap((e) => d.resources.endpointAudiences(e)),
    ]),
  ]
  return async function handleWhoami(c: Context<Vars>): Promise<Response> {
    const resourceMetadata = d.resources.metadata(d.servers[0] ?? '', 'mcp', c.req.header('host'))
    try {
      const p = await d.authenticator.authenticate(c.req.header('authorization'), everyAudience)
      const policy = d.policy.current
      const servers: Record<string, unknown> = {}
      for (const server of d.servers) {
        const access = decideAccess(policy, p, server)
        const entry: Record<string, unknown> = {
          access: access.effect,
          ...(access.effect === 'challenge' ? { missing: access.missing } : {}),
        }
        for (const f of FEATURES) entry[f] = ruleVerdicts(policy, p, server, f)
        servers[server] = entry
      }
      const endpoints: Record<string, unknown> = {}
      for (const [name, e] of Object.entries(d.endpoints)) {
        const reach = (effect: string) =>
          e.servers.filter((s) => (servers[s] as { access: string }).access === effect)
        endpoints[name] = {
          resource: d.resources.endpointResource(name, c.req.header('host')),
          prefix: e.prefix,
          // Backends whose tools, prompts and resources this caller sees through the endpoint.
          servers: reach('allow'),
          // Backends a broader token would add (their access asks for a scope this one lacks).
          challenged: reach('challenge'),
        }
      }
      return Response.json(
        {
          sub: p.sub,
          iss: p.iss,
          clientId: p.clientId ?? null,
          scopes: [...p.scopes].sort(),
          roles: [...p.roles].sort(),
          // The scopes that count (README "Scopes and roles"), and how they were formed.
          grantedScopes: [...grantsOf(policy, p).scopes].sort(),
          // Those held through `implies:`: each with the granted scope that implies it.
          impliedScopes: Object.fromEntries([...grantsOf(policy, p).implied].sort()),
          scopeBasis: grantsOf(policy, p).basis,
          servers,
          endpoints,
        },
        { headers: { 'cache-control': 'no-store' } },
      )
    } catch (err) {
      return errorResponse(err, { resourceMetadata, log: c.get('log'), metrics: d.metrics })
    }
  }
}
