import { createHmac } from 'node:crypto'

/** The account page's client id at the broker: no registration can take it (DCR ids are generated, CIMD ids are URLs). */
export const ACCOUNT_CLIENT_ID = 'mcp-edge-account'
/** Where the broker sends the account page's sign-in back, below the public URL. */
export const ACCOUNT_CALLBACK_PATH = '/account/callback'

/** The gateway's own client at its broker: the account page signs users in with it. */
export interface FirstPartyClient {
  clientId: string
  /** A confidential client: the secret never leaves the gateway (replicas derive the same one). */
  clientSecret: string
  redirectUri: string
}

/**
 * The account page's client: confidential (client_secret_basic), authorization code with
 * PKCE, `openid` only, one redirect URI under the issuer. Its secret is derived from the
 * broker's first cookie key, so every replica with the same keys has the same client.
 */
export function firstPartyClient(issuer: string, cookieKeys: readonly string[]): FirstPartyClient {
  return {
    clientId: ACCOUNT_CLIENT_ID,
    clientSecret: createHmac('sha256', cookieKeys[0]!)
      .update('mcp-edge first-party client: account page')
      .digest('base64url'),
    redirectUri: `${issuer.replace(/\/$/, '')}${ACCOUNT_CALLBACK_PATH}`,
  }
}

/** Its metadata, for oidc-provider's static `clients`. */
export function firstPartyMetadata(c: FirstPartyClient): Record<string, unknown> {
  return {
    client_id: c.clientId,
    client_secret: c.clientSecret,
    client_name: 'mcp-edge account page',
    redirect_uris: [c.redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }
}
