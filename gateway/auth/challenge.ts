/** Parameters of a `Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1). */
export interface BearerChallenge {
  resourceMetadata: string
  error?: 'invalid_token' | 'invalid_request' | 'insufficient_scope'
  description?: string
  scope?: string[]
}

/**
 * Builds a `WWW-Authenticate: Bearer …` value. Each parameter appears once; values are
 * quoted-strings restricted to the characters RFC 6750 §3 allows, anything else dropped, so
 * nothing from a token (a hostile `kid`, say) can inject a header or a parameter.
 */
export function bearerChallenge(c: BearerChallenge): string {
  const params: string[] = []
  if (c.error) params.push(`error="${c.error}"`)
  // RFC 6750 §3: error-description chars are %x20-21 / %x23-5B / %x5D-7E.
  if (c.error && c.description) params.push(`error_description="${clean(c.description)}"`)
  // RFC 6750 §3: scope-token chars are %x21 / %x23-5B / %x5D-7E, space separated.
  if (c.scope) {
    const scopes = c.scope
      .map((s) => s.replace(/[^\x21\x23-\x5B\x5D-\x7E]/g, ''))
      .filter((s) => s !== '')
    if (scopes.length > 0) params.push(`scope="${scopes.join(' ')}"`)
  }
  params.push(`resource_metadata="${clean(c.resourceMetadata)}"`)
  return `Bearer ${params.join(', ')}`
}

function clean(value: string): string {
  return value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '')
}
