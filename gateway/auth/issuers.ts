import { decodeJwt } from 'jose'
import type { Authenticator } from './authenticator.js'
import { parseBearer } from './bearer.js'
import { AuthError } from './errors.js'

/**
 * One authenticator for several trusted issuers (the broker, and the company IdP for machine
 * clients that get tokens there): the token's `iss`, read before any verification, only
 * chooses which issuer's verifier runs, and that verifier checks `iss` again with the rest.
 * An issuer not listed is refused without touching any key set.
 */
export function byIssuer(
  entries: readonly { issuer: string; authenticator: Authenticator }[],
): Authenticator {
  if (entries.length === 1) return entries[0]!.authenticator
  const by = new Map(entries.map((e) => [e.issuer, e.authenticator]))
  return {
    async authenticate(authorization, audiences) {
      const token = parseBearer(authorization)
      let iss: unknown
      try {
        iss = decodeJwt(token).iss
      } catch (err) {
        throw new AuthError('malformed_token', 'the access token is not a signed JWT', err)
      }
      const chosen = typeof iss === 'string' ? by.get(iss) : undefined
      if (chosen === undefined)
        throw new AuthError('wrong_issuer', 'the token was issued by another issuer')
      return chosen.authenticate(authorization, audiences)
    },
  }
}
