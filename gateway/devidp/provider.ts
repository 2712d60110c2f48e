import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type Provider from 'oidc-provider'
import type { errors as OidcErrors } from 'oidc-provider'
import { pino, type Logger } from 'pino'
import { createModelStore, MODELS_FILE, type ModelStore } from './adapter.js'
import { loadOidcModule } from '../broker/oidc-module.js'
import { type OriginPolicy, requestHostAllowed } from '../http/origin.js'
import { configuration, isLoopbackHost, registrationCors, type Settings } from './configuration.js'
import { DevIdpError } from './errors.js'
import { devInteractions } from './interactions.js'
import { generateJwks, persistentJwks, type Jwks } from './keys.js'
import type { DevUser } from './sign-in-page.js'
import { openStateDir } from './state-dir.js'
import { devIdpStateDir, devIdpStatePath, removeDevIdpState, writeDevIdpState } from './state.js'

/** A confidential client allowed to use the client_credentials grant. */
export interface DevIdpClient {
  clientId: string
  clientSecret: string
  roles: string[]
  /** `sub` of its tokens; default: clientId. */
  subject?: string
}

/**
 * A confidential web client using the authorization code flow: the gateway's own broker,
 * when the dev IdP plays the company IdP (upstream), as Entra would with a registered app.
 */
export interface DevIdpWebClient {
  clientId: string
  clientSecret: string
  redirectUris: string[]
}

/**
 * For a subject's roles, which scopes it may be granted: the gateway passes its live policy's
 * role map, so a token never carries a scope the roles do not grant.
 */
export type ScopesFor = (roles: readonly string[]) => (scope: string) => boolean

/** Options of {@link startDevIdp}. */
export interface DevIdpOptions {
  /** Loopback address only (127.x, ::1, localhost); default '127.0.0.1'. */
  host?: string
  /** Default 0 (ephemeral). */
  port?: number
  /** Allowed RFC 8707 resource indicators, e.g. http://127.0.0.1:8080/mcp/echo. */
  resources: string[]
  /**
   * The resource a request without `resource` gets (RFC 8707 §2: only when unambiguous, e.g.
   * a gateway with one server); default: the only resource, if there is one.
   */
  defaultResource?: string
  /** Scopes the IdP knows; default mcp:read mcp:write mcp:admin. */
  scopes?: string[]
  /** Which of them a subject's roles allow, asked on every grant. */
  scopesFor: ScopesFor
  /** Who can sign in; the first is the CLI's. Default: dev-user (mcp-user, mcp-developer). */
  users?: DevUser[]
  /** Extra confidential clients for client_credentials. */
  clients?: DevIdpClient[]
  /** Confidential authorization-code clients registered up front (the broker's upstream client). */
  webClients?: DevIdpWebClient[]
  /** Dynamic client registration (default on; off when playing an upstream like Entra). */
  registration?: boolean
  /** Private JWKs to sign with (not stored); default: the state folder's, else a new RS256 key */
  jwks?: Jwks
  /** Access token lifetime in seconds; default 3600. */
  accessTokenTtl?: number
  /** Where to publish the CLI clients; default devIdpStatePath(); false: nowhere. */
  stateFile?: string | false
  /**
   * Folder keeping signing keys and registrations across restarts; default: next to
   * `stateFile` (devIdpStateDir), none when `stateFile` is false; false: keep nothing.
   */
  stateDir?: string | false
  logger?: Logger
}

/** A running dev IdP. */
export interface DevIdp {
  issuer: string
  /** The CLI client of the first user. */
  cliClient: DevIdpClient
  /** One CLI client per user, in the users' order. */
  cliClients: DevIdpClient[]
  /** The folder keys and registrations persist in, if any. */
  stateDir: string | undefined
  close(): Promise<void>
}

/** Client id of the built-in confidential client used by `mcp-edge token` (first user). */
export const CLI_CLIENT_ID = 'mcp-edge-cli'
/** The dev IdP's Host rule: the loopback names only (it listens on loopback alone). */
const LOOPBACK_ONLY: OriginPolicy = { origins: [], local: true, hosts: [] }

const DEFAULT_SCOPES = ['mcp:read', 'mcp:write', 'mcp:admin']
const DEFAULT_USERS: DevUser[] = [{ sub: 'dev-user', roles: ['mcp-user', 'mcp-developer'] }]

/**
 * Starts the development OAuth 2.1 / OIDC authorization server on a loopback address:
 * open dynamic client registration, authorization code + PKCE (S256) with passwordless
 * users (one: signed in automatically; several: a "Sign in as" page), client_credentials,
 * JWT access tokens (RFC 9068) audience-bound to RFC 8707 resource indicators, scopes cut
 * to what the subject's roles allow. With a state folder, signing keys, registered clients,
 * grants and refresh tokens survive a restart.
 * @throws DevIdpError bad_options, state_unsafe
 */
export async function startDevIdp(options: DevIdpOptions): Promise<DevIdp> {
  const host = options.host ?? '127.0.0.1'
  if (!isLoopbackHost(host)) {
    throw new DevIdpError(
      'bad_options',
      `dev IdP must listen on a loopback address, got host ${JSON.stringify(host)}`,
    )
  }
  if (options.resources.length === 0) {
    throw new DevIdpError('bad_options', 'dev IdP needs at least one resource')
  }
  for (const resource of options.resources) {
    if (!URL.parse(resource) || resource.includes('#')) {
      throw new DevIdpError(
        'bad_options',
        `dev IdP resource must be an absolute URI without fragment: ${resource}`,
      )
    }
  }
  const users = new Map<string, DevUser>()
  for (const user of options.users ?? DEFAULT_USERS) {
    if (users.has(user.sub)) {
      throw new DevIdpError('bad_options', `duplicate dev IdP user ${user.sub}`)
    }
    users.set(user.sub, user)
  }
  if (users.size === 0) throw new DevIdpError('bad_options', 'dev IdP needs at least one user')
  // One CLI client per user, acting as that user with that user's roles.
  const cliClients: DevIdpClient[] = [...users.values()].map((u, i) => ({
    clientId: i === 0 ? CLI_CLIENT_ID : `${CLI_CLIENT_ID}:${u.sub}`,
    clientSecret: randomBytes(32).toString('base64url'),
    roles: [...u.roles],
    subject: u.sub,
  }))
  const clients = new Map<string, DevIdpClient>()
  for (const client of [...cliClients, ...(options.clients ?? [])]) {
    if (clients.has(client.clientId)) {
      throw new DevIdpError('bad_options', `duplicate dev IdP client ${client.clientId}`)
    }
    clients.set(client.clientId, client)
  }
  const logger = options.logger ?? pino({ name: 'devidp', level: 'warn' })
  const stateFile = options.stateFile === undefined ? devIdpStatePath() : options.stateFile
  const stateDir = options.stateDir ?? (stateFile ? devIdpStateDir(stateFile) : false)
  if (stateDir) await openStateDir(stateDir)
  const store: ModelStore = await createModelStore({
    ...(stateDir ? { file: path.join(stateDir, MODELS_FILE) } : {}),
    log: logger,
  })
  const settings: Settings = {
    resources: new Set(options.resources),
    defaultResource:
      options.defaultResource ??
      (options.resources.length === 1 ? options.resources[0] : undefined),
    scopes: options.scopes ?? DEFAULT_SCOPES,
    scopesFor: options.scopesFor,
    users,
    clients,
    webClients: new Map((options.webClients ?? []).map((c) => [c.clientId, c])),
    registration: options.registration ?? true,
    jwks: options.jwks ?? (stateDir ? await persistentJwks(stateDir, logger) : generateJwks()),
    ttl: options.accessTokenTtl ?? 3600,
    adapter: store.adapter,
  }

  // Loaded before listening, and nothing awaited from listen to the request listener: a
  // connection accepted with no listener gets no answer at all (Node's requestTimeout, 300 s).
  const oidc = await loadOidcModule(logger)
  const server = http.createServer()
  await listen(server, options.port ?? 0, host)
  const { port } = server.address() as AddressInfo
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  try {
    const provider = new oidc.Provider(issuer, configuration(oidc, settings))
    provider.use(registrationCors())
    provider.use(devInteractions(provider, [...users.values()], logger))
    observe(provider, logger)
    const callback = provider.callback()
    server.on('request', (req, res) => {
      // DNS rebinding: a page whose own name resolves to 127.0.0.1 could read discovery (which
      // names the request's Host as the authorization endpoint), register a client and sign in
      // as the dev user. Only a plain loopback host[:port] passes, as at the gateway.
      if (requestHostAllowed(req.headers.host, { incoming: req }, LOOPBACK_ONLY, false))
        return void callback(req, res)
      res.writeHead(403, { 'content-type': 'application/json' })
      res.end('{"error":"invalid_request","error_description":"host not allowed"}')
    })
    if (stateFile) {
      await writeDevIdpState(stateFile, {
        issuer,
        users: cliClients.map((c) => ({
          sub: c.subject!,
          roles: c.roles,
          clientId: c.clientId,
          clientSecret: c.clientSecret,
        })),
        resources: [...options.resources],
        scopes: settings.scopes,
        pid: process.pid,
      })
    }
  } catch (err) {
    await closeServer(server)
    throw err
  }
  logger.info(
    { issuer, resources: options.resources, users: [...users.keys()], stateDir: stateDir || null },
    'dev IdP listening',
  )

  let closing: Promise<void> | undefined
  return {
    issuer,
    cliClient: cliClients[0]!,
    cliClients,
    stateDir: stateDir || undefined,
    close() {
      closing ??= (async () => {
        if (stateFile) await removeDevIdpState(stateFile, issuer)
        await closeServer(server)
        await store.flushed()
      })()
      return closing
    },
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
