import type Provider from 'oidc-provider'

type Grant = InstanceType<Provider['Grant']>

/**
 * What a grant records for a resource the user approved, next to the scopes granted there.
 * oidc-provider's Grant keeps a resource only with some scope (an empty one is dropped at
 * save), so a server whose policy needs no scope (`access: []`, a request of `scope=openid`)
 * was never held and its consent page came back at every authorization. This marker is a scope
 * no policy can name (a double quote is outside RFC 6749's scope characters, which the policy
 * schema enforces) and no token carries: oidc-provider issues a token only the scopes of its
 * resource server (scopes.ts serverScopes), filtered from the grant's. Being in the grant, it
 * is the grant's client's and user's alone, and ends with the grant (revocation, expiry).
 */
export const APPROVED = '"mcp-edge:approved"'

/** Records that the user approved `resource` for this grant's client, scopes or none. */
export function recordApproval(grant: Grant, resource: string): void {
  grant.addResourceScope(resource, APPROVED)
}

/**
 * What the grant holds for `resource`: whether the user approved it, and the scopes granted
 * there (never the marker). A grant from before the marker holds a resource with scopes only.
 */
export function heldFor(
  grant: Pick<Grant, 'getResourceScope'> | undefined,
  resource: string,
): { approved: boolean; scopes: Set<string> } {
  const scopes = new Set(String(grant?.getResourceScope(resource) ?? '').split(' '))
  scopes.delete('')
  const approved = scopes.delete(APPROVED) || scopes.size > 0
  return { approved, scopes }
}
