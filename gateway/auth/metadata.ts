/** The well-known prefix of RFC 9728 §3. */
export const PRM_PREFIX = '/.well-known/oauth-protected-resource'

/** URL of the metadata document for a resource: the well-known string between host and path (RFC 9728 §3.1). */
export function metadataUrl(resource: string): string {
  const url = new URL(resource)
  const path = url.pathname === '/' ? '' : url.pathname
  return `${url.origin}${PRM_PREFIX}${path}`
}

/**
 * The RFC 9728 §2 document for one resource. Empty values are left out (§3.2: parameters
 * with zero values MUST be omitted).
 */
export function protectedResourceMetadata(o: {
  resource: string
  issuer: string
  scopes?: readonly string[]
  name?: string
}): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    resource: o.resource,
    authorization_servers: [o.issuer],
    bearer_methods_supported: ['header'],
  }
  // RFC 9728 §2 and MCP scope selection: publish the baseline only, never offline_access.
  const scopes = (o.scopes ?? []).filter((s) => s !== 'offline_access' && s !== '*')
  if (scopes.length > 0) doc.scopes_supported = scopes
  if (o.name) doc.resource_name = o.name
  return doc
}
