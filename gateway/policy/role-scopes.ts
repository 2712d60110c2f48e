import { scopePattern } from './glob.js'

/** What a set of roles grants through a policy's role map. */
export interface RoleScopes {
  /** The role map's entries for these roles, as written (patterns included). */
  granted: ReadonlySet<string>
  /** Does some granted scope equal `scope`, or a granted pattern (`*`, `tools:*`) match it? */
  has(scope: string): boolean
}

/**
 * Expands `roles` through `roleMap` (`mcp-admin: ["*"]`). Scope hierarchies (MCP
 * authorization, step-up) come only from here: `*` grants all, `tools:*` grants `tools:x`;
 * a token's own scopes are taken literally elsewhere. Unknown roles grant nothing.
 */
export function scopesOfRoles(
  roleMap: ReadonlyMap<string, readonly string[]>,
  roles: Iterable<string>,
): RoleScopes {
  const granted = new Set<string>()
  for (const role of roles) for (const s of roleMap.get(role) ?? []) granted.add(s)
  const patterns = [...granted].filter((s) => s.includes('*')).map(scopePattern)
  return { granted, has: (s) => granted.has(s) || patterns.some((m) => m(s)) }
}
