import type { Grants } from './evaluate.js'
import type { ScopeHierarchy } from './implies.js'

/**
 * The `scope` of a step-up challenge for an operation needing `needed` (MCP 2025-11-25
 * §Runtime Insufficient Scope Errors: the scopes needed to satisfy the request, held ones
 * included so a client asking for exactly these loses nothing the operation needs):
 * - a needed scope the caller lacks is named as itself, never a broader one that implies it;
 * - a needed scope held only through an implication is named by the caller's own narrowest
 *   held scope implying it, never by itself (asking for `mcp:read` would have a client trade
 *   its `mcp:write` for it);
 * - then every scope another named scope implies is left out (`mcp:write` covers `mcp:read`).
 * Without `implies:` this is `needed` without repeats, the same for every caller.
 */
export function stepUpScopes(
  needed: readonly string[],
  grants: Grants,
  implies: ScopeHierarchy,
): string[] {
  const named = needed.flatMap((s) => {
    if (!grants.implied.has(s)) return [s]
    const own = [...grants.scopes].filter((t) => implies.below(t).has(s))
    const narrowest = own.filter((t) => !own.some((u) => u !== t && implies.below(t).has(u)))
    return narrowest.length > 0 ? narrowest : [s]
  })
  return implies.withoutImplied(named)
}
