import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type Provider from 'oidc-provider'
import type { Configuration, errors as OidcErrors } from 'oidc-provider'
import { pino, type Logger } from 'pino'
import { autoInteractions, INTERACTION_PATH } from './interactions.js'
import { devIdpStatePath, removeDevIdpState, writeDevIdpState } from './state.js'

/** A confidential client allowed to use the client_credentials grant. */
export interface DevIdpClient {
  clientId: string
  clientSecret: string
  roles: string[]
  /** `sub` of its tokens; default: clientId. */
  subject?: string
}

/** Options of {@link startDevIdp}. */
export interface DevIdpOptions {
  /** Loopback address only (127.x, ::1, localhost); default '127.0.0.1'. */
  host?: string
  /** Default 0 (ephemeral). */
  port?: number
  /** Allowed RFC 8707 resource indicators, e.g. http://127.0.0.1:8080/mcp/echo. */
  resources: string[]
  /** Scopes a token may carry; default mcp:read mcp:write mcp:admin. */
  scopes?: string[]
  /** The auto-logged-in user; default dev-user with roles mcp-user, mcp-developer. */
  user?: { sub: string; roles: string[] }
  /** Extra confidential clients for client_credentials. */
  clients?: DevIdpClient[]
  /** Private JWKs to sign with; default: one fresh RS256 key. */
  jwks?: { keys: object[] }
  /** Access token lifetime in seconds; default 3600. */
  accessTokenTtl?: number
  /** Where to publish the CLI client; default devIdpStatePath(); false: nowhere. */
  stateFile?: string | false
  logger?: Logger
}

/** A running dev IdP. */
export interface DevIdp {
  issuer: string
  cliClient: DevIdpClient
  close(): Promise<void>
}

/** Client id of the built-in confidential client used by `mcp-edge token`. */
export const CLI_CLIENT_ID = 'mcp-edge-cli'
const DEFAULT_SCOPES = ['mcp:read', 'mcp:write', 'mcp:admin']
const DEFAULT_USER = { sub: 'dev-user', roles: ['mcp-user', 'mcp-developer'] }
const REGISTRATION_PATH = '/reg'

type OidcModule = typeof import('oidc-provider')
type KoaMiddleware = Parameters<Provider['use']>[0]
type SigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA'

interface Settings {
  resources: Set<string>
  scopes: string[]
  user: { sub: string; roles: string[] }
  clients: Map<string, DevIdpClient>
  jwks: { keys: object[] }
  ttl: number
}

/**
 * Starts the development OAuth 2.1 / OIDC authorization server on a loopback address:
 * open dynamic client registration, authorization code + PKCE (S256) with a dev user that
 * is logged in and consents automatically, client_credentials, JWT access tokens (RFC 9068)
 * audience-bound to RFC 8707 resource indicators.
 */
export async function startDevIdp(options: DevIdpOptions): Promise<DevIdp> {
  const host = options.host ?? '127.0.0.1'
  if (!isLoopbackHost(host)) {
    throw new Error(`dev IdP must listen on a loopback address, got host ${JSON.stringify(host)}`)
  }
  if (options.resources.length === 0) throw new Error('dev IdP needs at least one resource')
  for (const resource of options.resources) {
    if (!URL.parse(resource) || resource.includes('#')) {
      throw new Error(`dev IdP resource must be an absolute URI without fragment: ${resource}`)
    }
  }
  const user = options.user ?? DEFAULT_USER
  const cliClient: DevIdpClient = {
    clientId: CLI_CLIENT_ID,
    clientSecret: randomBytes(32).toString('base64url'),
    roles: [...user.roles],
    subject: user.sub,
  }
  const clients = new Map<string, DevIdpClient>([[CLI_CLIENT_ID, cliClient]])
  for (const client of options.clients ?? []) {
    if (clients.has(client.clientId)) throw new Error(`duplicate dev IdP client ${client.clientId}`)
    clients.set(client.clientId, client)
  }
  const logger = options.logger ?? pino({ name: 'devidp', level: 'warn' })
  const settings: Settings = {
    resources: new Set(options.resources),
    scopes: options.scopes ?? DEFAULT_SCOPES,
    user,
    clients,
    jwks: options.jwks ?? generateJwks(),
    ttl: options.accessTokenTtl ?? 3600,
  }

  const server = http.createServer()
  await listen(server, options.port ?? 0, host)
  const { port } = server.address() as AddressInfo
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  const stateFile = options.stateFile === undefined ? devIdpStatePath() : options.stateFile
  try {
    const oidc = await loadOidcProvider(logger)
    const provider = new oidc.Provider(issuer, await configuration(oidc, settings))
    provider.use(registrationCors())
    provider.use(autoInteractions(provider, user.sub, logger))
    observe(provider, logger)
    server.on('request', provider.callback())
    if (stateFile) {
      await writeDevIdpState(stateFile, {
        issuer,
        clientId: cliClient.clientId,
        clientSecret: cliClient.clientSecret,
        resources: [...options.resources],
        scopes: settings.scopes,
        pid: process.pid,
      })
    }
  } catch (err) {
    await closeServer(server)
    throw err
  }
  logger.info({ issuer, resources: options.resources }, 'dev IdP listening')

  let closing: Promise<void> | undefined
  return {
    issuer,
    cliClient,
    close() {
      closing ??= (async () => {
        if (stateFile) await removeDevIdpState(stateFile, issuer)
        await closeServer(server)
      })()
      return closing
    },
  }
}

async function configuration(oidc: OidcModule, s: Settings): Promise<Configuration> {
  const { errors } = oidc
  const [resource] = s.resources
  const alg = signingAlg(s.jwks)
  return {
    adapter: await memoryAdapter(),
    clients: [...s.clients.values()].map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    clientDefaults: { id_token_signed_response_alg: alg },
    // Browser clients (MCP Inspector on http://localhost:6274) call the token endpoint
    // directly. oidc-provider's default only allows public clients from their redirect_uri
    // origins; also allow any loopback origin, as everything here is loopback-only.
    clientBasedCORS: (_ctx, origin, client) => isLoopbackOrigin(origin)
      || client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) === true,
    claims: { openid: ['sub', 'roles'] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    enabledJWA: { idTokenSigningAlgValues: [alg] },
    extraTokenClaims: (_ctx, token) => ({ realm_access: { roles: rolesOf(token, s) } }),
    // MCP clients register with `scope` = the scopes of their first request, which
    // oidc-provider then enforces as a ceiling; step-up (MCP 2025-11-25) asks for more later.
    // The validator runs on every registration and may edit the metadata: drop the ceiling.
    extraClientMetadata: {
      properties: ['mcp_edge_dev_idp'],
      validator: (_ctx, _key, _value, metadata) => {
        delete (metadata as { scope?: string }).scope
      },
    },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false }, // the gateway validates Bearer tokens only
      rpInitiatedLogout: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true, initialAccessToken: false },
      resourceIndicators: {
        enabled: true,
        // RFC 8707 §2: without `resource`, default only when unambiguous (one MCP server);
        // otherwise fail loudly instead of issuing a token no MCP server accepts.
        defaultResource: (_ctx, _client, oneOf) => {
          if (oneOf) return oneOf
          if (s.resources.size === 1) return resource
          throw new errors.InvalidTarget(
            `resource parameter required (RFC 8707), one of: ${[...s.resources].join(' ')}`)
        },
        // The token request may omit `resource`: use the one granted at authorization.
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (!s.resources.has(indicator)) {
            throw new errors.InvalidTarget(`resource ${indicator} is not served by this gateway`)
          }
          return {
            scope: s.scopes.join(' '),
            audience: indicator,
            accessTokenTTL: s.ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          }
        },
      },
    },
    findAccount: (_ctx, sub) => sub !== s.user.sub ? undefined : {
      accountId: sub,
      claims: () => ({ sub, roles: s.user.roles }),
    },
    formats: {
      customizers: {
        // Client-credentials tokens act as the client's configured subject (default: client_id).
        jwt: (_ctx, token, parts) => {
          if (token.kind !== 'ClientCredentials') return
          const client = s.clients.get(token.clientId ?? '')
          if (client?.subject) parts.payload.sub = client.subject
        },
      },
    },
    interactions: { url: (_ctx, interaction) => `${INTERACTION_PATH}${interaction.uid}` },
    // Refresh tokens for every client registered with the refresh_token grant, not only
    // those asking for offline_access (MCP clients rarely request OIDC scopes).
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    jwks: s.jwks as Configuration['jwks'],
    pkce: { required: () => true }, // OAuth 2.1 §4.1.1: PKCE for every client
    renderError: (ctx, out) => {
      ctx.type = 'json'
      ctx.body = out
    },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', ...s.scopes],
    ttl: {
      AccessToken: s.ttl,
      AuthorizationCode: 60,
      ClientCredentials: s.ttl,
      Grant: 24 * 3600,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 24 * 3600,
      Session: 24 * 3600,
    },
  }
}

function rolesOf(token: { kind: string; clientId?: string; accountId?: string }, s: Settings) {
  if (token.kind === 'ClientCredentials') return s.clients.get(token.clientId ?? '')?.roles ?? []
  return token.accountId === s.user.sub ? s.user.roles : []
}

/** RFC 7591 registration has no CORS in oidc-provider; allow loopback browser origins. */
function registrationCors(): KoaMiddleware {
  return async (ctx, next) => {
    const origin = ctx.get('Origin')
    const onPath = ctx.path === REGISTRATION_PATH || ctx.path.startsWith(`${REGISTRATION_PATH}/`)
    if (!onPath || !origin || !isLoopbackOrigin(origin)) return next()
    ctx.vary('Origin')
    ctx.set('Access-Control-Allow-Origin', origin)
    if (ctx.method !== 'OPTIONS' || !ctx.get('Access-Control-Request-Method')) return next()
    ctx.set('Access-Control-Allow-Methods', 'GET,POST')
    const headers = ctx.get('Access-Control-Request-Headers')
    if (headers) ctx.set('Access-Control-Allow-Headers', headers)
    ctx.set('Access-Control-Max-Age', '3600')
    ctx.status = 204
  }
}

function observe(provider: Provider, logger: Logger): void {
  provider.on('server_error', (_ctx: unknown, err: Error) => {
    logger.error({ err }, 'dev IdP server error')
  })
  const rejected = (event: string) => (_ctx: unknown, err: OidcErrors.OIDCProviderError) => {
    logger.debug({ event, error: err.error, description: err.error_description }, 'dev IdP')
  }
  provider.on('grant.error', rejected('grant.error'))
  provider.on('authorization.error', rejected('authorization.error'))
  provider.on('registration_create.error', rejected('registration_create.error'))
  provider.on('registration_create.success', (_ctx, client) => {
    logger.info({ clientId: client.clientId }, 'dev IdP registered client')
  })
  // A Koa 'error' listener replaces Koa's default console.error reporting.
  const koa = provider as unknown as EventEmitter
  koa.on('error', (err: Error) => logger.error({ err }, 'dev IdP request failed'))
}

let oidcModule: Promise<OidcModule> | undefined

/**
 * Imports oidc-provider once. Its import-time "Unsupported runtime" notice (it targets
 * Node 22+) is not configurable; route just that line to the logger.
 */
function loadOidcProvider(logger: Logger): Promise<OidcModule> {
  oidcModule ??= (async () => {
    const warn = console.warn
    console.warn = (...args: unknown[]) => {
      const text = String(args[0])
      if (text.includes('oidc-provider WARNING: Unsupported runtime')) {
        logger.debug({ notice: text }, 'oidc-provider runtime notice')
      } else {
        warn.apply(console, args)
      }
    }
    try {
      return await import('oidc-provider')
    } finally {
      console.warn = warn
    }
  })()
  return oidcModule
}

/** Per-instance in-memory storage (the default adapter is process-global and warns). */
async function memoryAdapter(): Promise<NonNullable<Configuration['adapter']>> {
  // Not in oidc-provider's typings; the package has no "exports" map, so the path is public.
  const spec: string = 'oidc-provider/lib/adapters/memory_adapter.js'
  const mod = await import(spec) as { createMemoryAdapter(tolerance?: number): unknown }
  return mod.createMemoryAdapter(15) as NonNullable<Configuration['adapter']>
}

function generateJwks(): { keys: object[] } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = privateKey.export({ format: 'jwk' })
  return { keys: [{ ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' }] }
}

function signingAlg(jwks: { keys: object[] }): SigningAlg {
  const key = jwks.keys[0] as { alg?: string; kty?: string } | undefined
  if (key?.alg) return key.alg as SigningAlg
  if (key?.kty === 'EC') return 'ES256'
  if (key?.kty === 'OKP') return 'EdDSA'
  return 'RS256'
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}

function isLoopbackOrigin(origin: string): boolean {
  const url = URL.parse(origin)
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return false
  return url.hostname === '[::1]' || isLoopbackHost(url.hostname)
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
