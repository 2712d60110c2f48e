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

/** The feature and name a gated request names, or undefined for requests that are not gated per name. */
export function gatedTarget(method: string, params: Record<string, unknown> | undefined): { feature: Feature; name: string } | undefined {
  switch (method) {
    case 'tools/call':
      return { feature: 'tools', name: str(params?.name) }
    case 'prompts/get':
      return { feature: 'prompts', name: str(params?.name) }
    case 'resources/read':
    case 'resources/subscribe':
      return { feature: 'resources', name: str(params?.uri) }
    case 'completion/complete': {
      // Completions reveal a prompt's or resource's arguments: gated like the thing itself.
      const ref = params?.ref as Record<string, unknown> | undefined
      if (ref?.type === 'ref/prompt') return { feature: 'prompts', name: str(ref.name) }
      if (ref?.type === 'ref/resource') return { feature: 'resources', name: str(ref.uri) }
      return { feature: 'prompts', name: '' }
    }
    default:
      return undefined
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}
