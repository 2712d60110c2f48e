import type { Principal } from '../auth/principal.js'
import { decideAccess, decideByRules, grantsOf } from './evaluate.js'
import type { Feature, Policy } from './policy.js'

/** List methods whose results are filtered, the array holding the items, and the item's name field. */
const LISTS: Record<
  string,
  { feature: Feature; key: string; name: 'name' | 'uri' | 'uriTemplate' }
> = {
  'tools/list': { feature: 'tools', key: 'tools', name: 'name' },
  'prompts/list': { feature: 'prompts', key: 'prompts', name: 'name' },
  'resources/list': { feature: 'resources', key: 'resources', name: 'uri' },
  'resources/templates/list': {
    feature: 'resources',
    key: 'resourceTemplates',
    name: 'uriTemplate',
  },
}

/** The `_meta` key marking a listed item the caller may use after a step-up (a wider token). */
export const STEP_UP_META = 'mcp-edge/stepUp'

/**
 * Keeps, in a list result, only the items the principal may use, and those its roles would let
 * it use with a wider token: those are marked in `_meta` (`mcp-edge/stepUp: { scopes }`, the
 * scopes a call will be challenged for), so a UI client shows them, the call gets the 403
 * step-up, and the user can authorize it. An item the roles can never reach stays hidden.
 * Other results pass unchanged; `nextCursor` and every other field are kept.
 */
export function filterListResult(
  policy: Policy,
  server: string,
  method: string,
  result: unknown,
  principal: Principal,
): unknown {
  const list = LISTS[method]
  if (list === undefined || typeof result !== 'object' || result === null) return result
  const items = (result as Record<string, unknown>)[list.key]
  if (!Array.isArray(items)) return result
  // Server access once for the whole list, then each item's rule.
  if (decideAccess(policy, principal, server).effect !== 'allow')
    return { ...result, [list.key]: [] }
  const grants = grantsOf(policy, principal)
  const kept: unknown[] = []
  for (const item of items) {
    const name = (item as Record<string, unknown> | null)?.[list.name]
    if (typeof name !== 'string') continue
    const d = decideByRules(policy, principal, server, list.feature, name)
    if (d.effect === 'allow') kept.push(item)
    else if (d.effect === 'challenge' && d.missing.every((s) => grants.reachable(s)))
      kept.push(marked(item as Record<string, unknown>, d.required))
  }
  return { ...result, [list.key]: kept }
}

function marked(
  item: Record<string, unknown>,
  required: readonly string[],
): Record<string, unknown> {
  const meta =
    typeof item._meta === 'object' && item._meta !== null
      ? (item._meta as Record<string, unknown>)
      : {}
  return { ...item, _meta: { ...meta, [STEP_UP_META]: { scopes: [...required] } } }
}
