import { readFileSync } from 'node:fs'
import * as oidc from 'openid-client'
import { ConfigError, type ConfigProblem } from '../config/errors.js'
import type { SecretRef } from '../config/secrets.js'
import type { UpstreamConfig } from './upstream.js'
import { insecureAllowed } from './upstream-client.js'
import { importClientKey } from './upstream-key.js'

/** Scopes asked of an OIDC upstream unless configured. */
export const DEFAULT_UPSTREAM_OIDC_SCOPES = ['openid', 'profile', 'email']

// Authorization parameters the login sets itself: authorizeParams may not replace them.
const RESERVED = new Set([
  'client_id',
  'redirect_uri',
  'response_type',
  'response_mode',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'resource',
  'request',
  'request_uri',
])

const AT = 'auth.broker.upstream'

type ReadSecret = (ref: SecretRef, path: string) => string

/** What start-up resolves from the upstream section. */
export interface UpstreamSetup {
  auth: oidc.ClientAuth
  scopes: string[]
  /** An OIDC issuer (ID tokens, nonce, discovery), not plain OAuth 2.0 endpoints. */
  isOidc: boolean
  /** The PEM of `caFile`, trusted besides the system's roots. */
  ca?: string
}

/**
 * Checks the upstream section for what the schema cannot see, reads its secret or private
 * key, and builds the client authentication. Every problem is reported at once, and none
 * quotes a secret.
 * @throws ConfigError
 */
export async function upstreamSetup(
  config: UpstreamConfig,
  redirectUri: string,
  readSecret: ReadSecret,
): Promise<UpstreamSetup> {
  const problems: ConfigProblem[] = []
  const problem = (path: string, message: string) =>
    problems.push({ file: 'configuration', path: `${AT}${path}`, message })
  const isOidc = config.issuer !== undefined
  const scopes = config.scopes ?? (isOidc ? DEFAULT_UPSTREAM_OIDC_SCOPES : [])

  const redirect = URL.parse(redirectUri)
  if (redirect?.search !== '' || redirect.hash !== '') {
    // openid-client sends the callback URL stripped of its query as redirect_uri.
    problem('', "the gateway's callback URL must be absolute, without query or fragment")
  }
  const urls = {
    '.issuer': config.issuer,
    '.endpoints.authorization': config.endpoints?.authorization,
    '.endpoints.token': config.endpoints?.token,
    '.endpoints.userinfo': config.endpoints?.userinfo,
  }
  for (const [path, url] of Object.entries(urls)) {
    if (url?.startsWith('http:') && !insecureAllowed(url)) {
      problem(path, 'must be https (http only for loopback)')
    }
  }
  // A loopback URL connected elsewhere would carry the secret off the host in clear.
  const plain = Object.values(urls).some((u) => u?.startsWith('http:'))
  if (
    plain &&
    config.connectTo !== undefined &&
    !insecureAllowed(`http://${hostOf(config.connectTo)}/`)
  ) {
    problem('.connectTo', 'must be a loopback address while the upstream URLs are http')
  }
  let ca: string | undefined
  if (config.caFile !== undefined) {
    try {
      ca = readFileSync(config.caFile, 'utf8')
      if (!ca.includes('-----BEGIN CERTIFICATE-----'))
        problem('.caFile', `${config.caFile} holds no PEM certificate`)
    } catch (err) {
      problem(
        '.caFile',
        `cannot read ${config.caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      )
    }
  }
  if (isOidc && !scopes.includes('openid')) {
    problem('.scopes', 'must include openid for an OIDC issuer (the login reads the ID token)')
  }
  if (config.endpoints && config.endpoints.userinfo === undefined) {
    problem('.endpoints.userinfo', 'is required: without an ID token, userinfo names the user')
  }
  for (const name of Object.keys(config.authorizeParams)) {
    if (RESERVED.has(name)) {
      problem(
        `.authorizeParams.${name}`,
        'is set by the login itself (scope: use scopes; resource: sendResource)',
      )
    }
  }

  let auth: oidc.ClientAuth | undefined
  try {
    auth = await clientAuth(config, readSecret)
  } catch (err) {
    if (err instanceof ConfigError) problems.push(...err.problems)
    else problem('.privateKey', (err as Error).message)
  }
  if (problems.length > 0 || auth === undefined) throw new ConfigError(problems)
  return { auth, scopes, isOidc, ...(ca !== undefined ? { ca } : {}) }
}

/** An IPv6 literal in URL form ([::1]); a name or IPv4 address as it is. */
function hostOf(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/**
 * client_secret_basic (default) or _post; or private_key_jwt with its assertion addressed to
 * the token endpoint (RFC 7523 §3 allows it; Entra ID and Okta require it; oidc-provider and
 * Keycloak accept it) instead of openid-client's default, the issuer.
 */
async function clientAuth(
  config: UpstreamConfig,
  readSecret: ReadSecret,
): Promise<oidc.ClientAuth> {
  if (config.privateKey === undefined) {
    const secret = readSecret(config.clientSecret!, `${AT}.clientSecret`)
    return config.tokenEndpointAuth === 'client_secret_post'
      ? oidc.ClientSecretPost(secret)
      : oidc.ClientSecretBasic(secret)
  }
  const imported = await importClientKey(readSecret(config.privateKey, `${AT}.privateKey`))
  const kid = config.privateKeyId ?? imported.kid
  let audience = ''
  const sign = oidc.PrivateKeyJwt(
    { key: imported.key, ...(kid !== undefined ? { kid } : {}) },
    {
      [oidc.modifyAssertion]: (_header, payload) => {
        payload.aud = audience
      },
    },
  )
  return (as, client, body, headers) => {
    audience = as.token_endpoint ?? as.issuer
    return sign(as, client, body, headers)
  }
}
