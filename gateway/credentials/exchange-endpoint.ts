import { loopbackUrl } from '../config/loopback.js'
import { CredentialError } from './errors.js'

/**
 * The token endpoint an exchange posts to: the one configured (`auth.tokenExchange.tokenEndpoint`),
 * else the one the issuer's discovery document names.
 * @throws CredentialError `exchange_unavailable` when neither is known
 */
export function tokenEndpointFor(
  config: { tokenEndpoint?: string | undefined },
  discovered: string | undefined,
): string {
  const endpoint = config.tokenEndpoint ?? discovered
  if (endpoint === undefined) {
    throw new CredentialError(
      'exchange_unavailable',
      'no token endpoint for the token exchange: ' +
        'set auth.tokenExchange.tokenEndpoint, or use an issuer whose discovery names one',
    )
  }
  return endpoint
}

/**
 * Checks the URL the client secret and the user's token are about to be sent to: an absolute
 * https URL, or http to a loopback host (a development IdP on this machine); no user info, no
 * fragment (RFC 6749 §3.2). Anything else is a misconfiguration, refused before a byte is sent.
 * @throws CredentialError `exchange_unavailable`
 */
export function checkTokenEndpoint(endpoint: string): URL {
  const url = URL.parse(endpoint)
  const refuse = (why: string) =>
    new CredentialError('exchange_unavailable', `the token exchange endpoint ${why}`)
  if (url === null) throw refuse('is not an absolute URL')
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopbackUrl(endpoint))) {
    throw refuse(
      `${url.origin} is neither https nor on this machine: ` +
        "the client secret and the user's token would cross the network in clear",
    )
  }
  if (url.username !== '' || url.password !== '') throw refuse('has credentials in its URL')
  if (url.hash !== '') throw refuse('has a fragment (RFC 6749 §3.2)')
  return url
}
