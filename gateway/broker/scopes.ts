import type { Policy } from '../policy/policy.js'
import { scopesOfRoles } from '../policy/role-scopes.js'

/**
 * The scopes a server's policy speaks of: its `access` scopes, every scope a rule needs, and
 * every scope of `implies:` that implies one of those (a step-up challenge may name a broader
 * scope the token already holds, and a client may ask for it again). These are what a token
 * for that server may carry (oidc-provider: a resource server's scopes); wildcards belong to
 * the role map only and are never issued.
 */
export function serverScopes(policy: Policy, servers: string | readonly string[]): string[] {
  const out = new Set<string>()
  // An endpoint's resource speaks for each of its backends: the union of their scopes.
  for (const server of [servers].flat()) {
    const sp = policy.servers.get(server)
    if (sp === undefined) continue
    for (const s of sp.access) out.add(s)
    for (const rules of Object.values(sp.rules)) {
      for (const r of rules)
        if (r.effect.kind === 'scopes') for (const s of r.effect.scopes) out.add(s)
    }
  }
  for (const [broad] of policy.implies.written)
    if ([...policy.implies.below(broad)].some((s) => out.has(s))) out.add(broad)
  return [...out].filter((s) => !s.includes('*'))
}

/**
 * What a user may be granted on a server: the server's scopes that the user's roles grant
 * through the live role map (consent can never grant more than the role map would).
 */
export function grantableScopes(
  policy: Policy,
  server: string | readonly string[],
  roles: readonly string[],
): string[] {
  const held = scopesOfRoles(policy.roles, roles, policy.implies)
  return serverScopes(policy, server).filter((s) => held.has(s))
}

/**
 * For each scope a user lacks, the roles of the role map that would grant it: what the
 * "missing role" page names.
 */
export function rolesGranting(policy: Policy, scopes: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const scope of scopes) {
    out.set(
      scope,
      [...policy.roles.keys()].filter((role) =>
        scopesOfRoles(policy.roles, [role], policy.implies).has(scope),
      ),
    )
  }
  return out
}
