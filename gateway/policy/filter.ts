import type { Principal } from '../auth/principal.js'
import { decideAccess, decideByRules } from './evaluate.js'
import type { Feature, Policy } from './policy.js'

/** List methods whose results are filtered, the array holding the items, and the item's name field. */
const LISTS: Record<string, { feature: Feature; key: string; name: 'name' | 'uri' | 'uriTemplate' }> = {
  'tools/list': { feature: 'tools', key: 'tools', name: 'name' },
  'prompts/list': { feature: 'prompts', key: 'prompts', name: 'name' },
  'resources/list': { feature: 'resources', key: 'resources', name: 'uri' },
  'resources/templates/list': { feature: 'resources', key: 'resourceTemplates', name: 'uriTemplate' },
}

/**
 * Keeps, in a list result, only the items the principal may use. Other results pass
 * unchanged; `nextCursor` and every other field are kept, so pagination still works.
 */
export function filterListResult(policy: Policy, server: string, method: string, result: unknown, principal: Principal): unknown {
  const list = LISTS[method]
  if (list === undefined || typeof result !== 'object' || result === null) return result
  const items = (result as Record<string, unknown>)[list.key]
  if (!Array.isArray(items)) return result
  // Server access once for the whole list, then each item's rule.
  const access = decideAccess(policy, principal, server).effect === 'allow'
  const kept = items.filter((item) => {
    const name = (item as Record<string, unknown> | null)?.[list.name]
    return access && typeof name === 'string' && decideByRules(policy, principal, server, list.feature, name).effect === 'allow'
  })
  return { ...result, [list.key]: kept }
}
