import type { OAuthClientProvider } from '@modelcontextprotocol/client'

/** The loopback redirect URI test clients register (nothing listens there; the flow stops at it). */
export const REDIRECT = 'http://127.0.0.1:9/callback'

/**
 * What a client like MCP Inspector keeps between the steps of an OAuth flow, in memory: its
 * registration, tokens, PKCE verifier, and the last authorization URL it was sent to. With
 * `clientMetadataUrl` the SDK uses that URL as its client_id (CIMD) where the authorization
 * server supports it, instead of registering.
 */
export function memoryProvider(name = 'test client', o: { clientMetadataUrl?: string } = {}) {
  const saved: Record<string, unknown> = {}
  const provider: OAuthClientProvider & { authorizationUrl?: URL } = {
    ...(o.clientMetadataUrl ? { clientMetadataUrl: o.clientMetadataUrl } : {}),
    get redirectUrl() {
      return REDIRECT
    },
    get clientMetadata() {
      return {
        client_name: name,
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }
    },
    clientInformation: () => saved.client as never,
    saveClientInformation: (info) => void (saved.client = info),
    tokens: () => saved.tokens as never,
    saveTokens: (tokens) => void (saved.tokens = tokens),
    redirectToAuthorization: (url) => void (provider.authorizationUrl = url),
    saveCodeVerifier: (v) => void (saved.verifier = v),
    codeVerifier: () => saved.verifier as string,
  }
  return { provider, saved }
}
