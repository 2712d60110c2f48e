import { scopePattern } from './glob.js'
import { NO_IMPLICATIONS, type ScopeHierarchy } from './implies.js'

/** What a set of roles grants through a policy's role map. */
export interface RoleScopes {
  /** The role map's entries for these roles, as written (patterns included). */
  granted: ReadonlySet<string>
  /** Scopes held only through `implies:`, each with the granted scope it comes from. */
  implied: ReadonlyMap<string, string>
  /**
   * Does some granted scope equal `scope`, imply it, or a granted pattern (`*`, `tools:*`)
   * match it (or match a scope that implies it)?
   */
  has(scope: string): boolean
}

/**
 * Expands `roles` through `roleMap` (`mcp-admin: ["*"]`) and the scope hierarchy. Patterns
 * come only from here: `*` grants all, `tools:*` grants `tools:x`; a token's own scopes are
 * taken literally elsewhere. A granted scope grants every scope it implies, and a pattern
 * grants what each scope it matches implies. Unknown roles grant nothing.
 */
export function scopesOfRoles(
  roleMap: ReadonlyMap<string, readonly string[]>,
  roles: Iterable<string>,
  implies: ScopeHierarchy = NO_IMPLICATIONS,
): RoleScopes {
  const granted = new Set<string>()
  for (const role of roles) for (const s of roleMap.get(role) ?? []) granted.add(s)
  const patterns = [...granted].filter((s) => s.includes('*')).map(scopePattern)
  const implied = new Map<string, string>()
  // Held already (as written, or by a pattern): not "implied", which explanations would cite.
  const held = (s: string) => granted.has(s) || implied.has(s) || patterns.some((m) => m(s))
  const add = (from: string) => {
    for (const s of implies.below(from)) if (!held(s)) implied.set(s, from)
  }
  for (const s of granted) add(s)
  // A pattern holds every scope it matches, so also what those scopes imply.
  if (patterns.length > 0)
    for (const s of implies.written.keys()) if (patterns.some((m) => m(s))) add(s)
  return {
    granted,
    implied,
    has: held,
  }
}
