/**
 * Where an issuer's metadata is, in the order asked: OpenID Connect Discovery's
 * `{issuer}/.well-known/openid-configuration`, then RFC 8414 §3.1's, whose well-known string goes
 * between the host and the issuer's path (`https://idp/.well-known/oauth-authorization-server/t1`
 * for the issuer `https://idp/t1`). Either document's `issuer` must then be the issuer exactly.
 */
export function discoveryUrls(issuer: string): [oidc: string, oauth: string] {
  const url = new URL(issuer)
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')
  return [
    `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
  ]
}
