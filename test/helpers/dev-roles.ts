// How the gateway tells its dev IdP what roles allow, for tests that run the dev IdP alone.
import type { ScopesFor } from '../../gateway/devidp/provider.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import { scopesOfRoles } from '../../gateway/policy/role-scopes.js'

/** What roles allow under a literal role map (`{ 'mcp-admin': ['*'] }`). */
export function scopesForRoles(map: Record<string, string[]>): ScopesFor {
  const roles = new Map(Object.entries(map))
  return (held) => scopesOfRoles(roles, held).has
}

/** What roles allow under the policy file or folder at `path`, as it is now. */
export function scopesForPolicy(path: string): ScopesFor {
  const { roles, implies } = loadPolicy(path)
  return (held) => scopesOfRoles(roles, held, implies).has
}

/** The role map of the shipped example policies (policies/demo.yaml). */
export const DEMO_ROLES = {
  'mcp-admin': ['*'],
  'mcp-developer': ['mcp:read', 'mcp:write'],
  'mcp-tools': ['mcp:read', 'mcp:write'],
  'mcp-user': ['mcp:read'],
}
