import { discoveryUrls } from '../auth/discovery-urls.js'
import type { IdpHttp } from '../auth/idp-http.js'
import { CredentialError } from './errors.js'

/**
 * The token endpoint of an issuer, from its discovery document (OpenID Connect, else RFC 8414),
 * whose `issuer` must be the one asked for exactly. Found once and kept; a failure is not kept,
 * so the next exchange tries again (an IdP that starts after the gateway).
 * @throws CredentialError `exchange_unavailable`
 */
export function discoveredTokenEndpoint(issuer: string, http: IdpHttp): () => Promise<string> {
  let found: string | undefined
  return async () => {
    if (found !== undefined) return found
    for (const url of discoveryUrls(issuer)) {
      try {
        const res = await http.fetch(url)
        if (res.status !== 200) {
          await res.body?.cancel()
          continue
        }
        const doc = (await res.json()) as { issuer?: unknown; token_endpoint?: unknown }
        if (doc.issuer === issuer && typeof doc.token_endpoint === 'string')
          return (found = doc.token_endpoint)
      } catch {
        // the next document, else unavailable
      }
    }
    throw new CredentialError(
      'exchange_unavailable',
      `the identity provider's token endpoint could not be discovered at ${new URL(issuer).host}; set auth.tokenExchange.tokenEndpoint`,
    )
  }
}
