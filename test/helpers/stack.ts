// A real IdP (the dev IdP with test keys and clients) plus a real gateway in front of the
// fixture and demo servers, all on 127.0.0.1 on ports from freePort (outside the ephemeral range).
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exportJWK, SignJWT, type JWTPayload } from 'jose'
import { pino, type Logger } from 'pino'
import { createResources } from '../../gateway/auth/resources.js'
import { validateConfig } from '../../gateway/config/load.js'
import { startDevIdp, type DevIdp, type DevIdpClient } from '../../gateway/devidp/provider.js'
import type { DevUser } from '../../gateway/devidp/sign-in-page.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import type { Store } from '../../gateway/store/store.js'
import { scopesForPolicy } from './dev-roles.js'
import { discover, tokenRequest } from './oauth-flow.js'
import { freePort } from './ports.js'
import { rsaSigningKey } from './rsa-keys.js'

export const SERVERS_DIR = fileURLToPath(new URL('../../servers/', import.meta.url))

export const CLIENTS: DevIdpClient[] = [
  { clientId: 'alice', clientSecret: 'alice-secret', roles: ['mcp-user'], subject: 'alice' },
  { clientId: 'bob', clientSecret: 'bob-secret', roles: ['mcp-user'], subject: 'bob' },
  { clientId: 'dev', clientSecret: 'dev-secret', roles: ['mcp-developer'], subject: 'dora' },
  { clientId: 'admin', clientSecret: 'admin-secret', roles: ['mcp-admin'], subject: 'ada' },
]

/** Policy used by the gateway tests: demo servers as shipped, plus the fixture. */
export const TEST_POLICY = `
roles:
  mcp-admin: ["*"]
  mcp-developer: ["mcp:read", "mcp:write"]
  mcp-user: ["mcp:read"]
servers:
  echo:
    access: ["mcp:read"]
    tools: { echo: ["mcp:read"] }
  notes:
    access: ["mcp:read"]
    tools:
      list_notes: ["mcp:read"]
      read_note: ["mcp:read"]
      write_note: ["mcp:write"]
      delete_note: ["mcp:admin"]
  fixture:
    access: ["mcp:read"]
    tools:
      crash: deny
      "*": ["mcp:read"]
    prompts: { "*": allow }
    resources: { "*": allow }
  impatient:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  echojson:
    access: ["mcp:read"]
    tools: { echo: ["mcp:read"] }
  broken:
    access: ["mcp:read"]
`

export interface Stack {
  gateway: Gateway
  idp: DevIdp
  url: string
  /** The server's resource URL (publicUrl based). */
  endpoint(server: string): string
  /** Where to send requests for the server (the listening address). */
  local(server: string): string
  /** A real token from the IdP by client_credentials, for a server (default echo) or any resource URL. */
  token(client: string, o?: { scope?: string; server?: string; resource?: string }): Promise<string>
  /** A token signed with the IdP's own key, with any claims (expired, wrong audience…). */
  forge(claims: JWTPayload, header?: Record<string, unknown>): Promise<string>
  privateKey: CryptoKey
  kid: string
  dir: string
  log: Logger
  logLines: string[]
  /** Audit events written so far, parsed. */
  audit(): Record<string, unknown>[]
  /** Restarts the IdP on the same port with a fresh key (rotation). */
  rotateKeys(): Promise<void>
  close(): Promise<void>
}

export async function startStack(
  o: {
    policy?: string
    config?: Record<string, unknown>
    auth?: Record<string, unknown>
    publicUrl?: string
    servers?: Record<string, Record<string, unknown>>
    users?: DevUser[]
    store?: Store
    /** Another stack whose IdP this one trusts (a second replica): tokens from either work at both. */
    idpOf?: Stack
    /** The clock of the backoff after a server failed to start (StartOptions.startClock). */
    startClock?: () => number
    /** The clock of each subject's process-start window (StartOptions.processStartClock). */
    processStartClock?: () => number
    /** The clock of shared processes' stable runs and crash windows (StartOptions.sharedClock). */
    sharedClock?: () => number
    /** Audit events go where `config.log.audit` says (a real file), not to {@link Stack.audit}. */
    realAudit?: boolean
    /** Told each line of the main log as it is written. */
    onLog?: (line: string) => void
    /** The sessions' idle clock (StartOptions.sessionClock). */
    sessionClock?: () => number
  } = {},
): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-test-'))
  writeFileSync(join(dir, 'policy.yaml'), o.policy ?? TEST_POLICY)
  // The IdP grants what the roles of the policy as written allow (the gateway reads it live).
  const scopesFor = scopesForPolicy(join(dir, 'policy.yaml'))
  const [gwPort, idpPort] = [await freePort(), await freePort()]
  const url = `http://127.0.0.1:${gwPort}`
  const endpoint = (s: string) => `${o.publicUrl ?? url}/mcp/${s}`
  const local = (s: string) => `${url}/mcp/${s}`
  const servers = [
    'echo',
    'notes',
    'fixture',
    'impatient',
    'echojson',
    'broken',
    ...Object.keys(o.servers ?? {}),
  ]

  let { privateKey, kid, jwk } = await newKey()
  const idpOptions = () => ({
    port: idpPort,
    // Every resource the gateway serves: both endpoints of each server, under each loopback name.
    resources: createResources({
      publicUrl: o.publicUrl,
      listenUrl: url,
      servers,
      endpoints: endpointsOf(o.config, servers),
      hosts: (o.config?.hosts ?? {}) as never,
      extra: [],
    }).all(),
    clients: CLIENTS,
    jwks: { keys: [jwk] },
    scopesFor,
    ...(o.users ? { users: o.users } : {}),
    stateFile: false as const,
  })
  const shared = o.idpOf
  let idp = shared ? shared.idp : await startDevIdp(idpOptions())
  if (shared) ({ privateKey, kid } = shared)

  const logLines: string[] = []
  const log = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        logLines.push(line)
        o.onLog?.(line)
      },
    },
  )
  const node = process.execPath
  const config = validateConfig(
    {
      listen: { host: '127.0.0.1', port: gwPort },
      ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
      auth: { issuer: idp.issuer, ...o.auth },
      servers: {
        echo: { command: node, args: [join(SERVERS_DIR, 'echo.js')] },
        notes: { command: node, args: [join(SERVERS_DIR, 'notes.js')] },
        fixture: {
          command: node,
          args: [join(SERVERS_DIR, 'fixture.js')],
          env: { FIXTURE_RECORD_FILE: join(dir, 'fixture-record.jsonl') },
        },
        impatient: { command: node, args: [join(SERVERS_DIR, 'fixture.js')], requestTimeout: 1500 },
        echojson: { command: node, args: [join(SERVERS_DIR, 'echo.js')], responses: 'json' },
        broken: { command: join(dir, 'no-such-command') },
        ...o.servers,
      },
      policies: join(dir, 'policy.yaml'),
      ...o.config,
    },
    { file: 'test', baseDir: dir },
  )
  // Tests rotate keys between requests: no cooldown. Set past validation, where no config file
  // or environment variable reaches (auth.jwksCooldown is at least 1000 there).
  if (o.auth?.jwksCooldown === undefined) config.auth.jwksCooldown = 0
  const auditLines: string[] = []
  const gateway = await startGateway(config, {
    log,
    ...(o.realAudit
      ? {}
      : { auditDestination: { write: (line: string) => void auditLines.push(line) } }),
    ...(o.store ? { store: o.store } : {}),
    ...(o.startClock ? { startClock: o.startClock } : {}),
    ...(o.processStartClock ? { processStartClock: o.processStartClock } : {}),
    ...(o.sharedClock ? { sharedClock: o.sharedClock } : {}),
    ...(o.sessionClock ? { sessionClock: o.sessionClock } : {}),
  })
  const stack: Stack = {
    gateway,
    get idp() {
      return idp
    },
    url,
    endpoint,
    local,
    dir,
    log,
    logLines,
    audit: () => auditLines.map((l) => JSON.parse(l) as Record<string, unknown>),
    get privateKey() {
      return privateKey
    },
    get kid() {
      return kid
    },
    async token(client, t = {}) {
      const c = CLIENTS.find((x) => x.clientId === client)!
      const { token_endpoint } = await discover(idp.issuer)
      const res = await tokenRequest(
        token_endpoint,
        {
          grant_type: 'client_credentials',
          resource: t.resource ?? endpoint(t.server ?? 'echo'),
          scope: t.scope ?? '',
        },
        {
          authorization: `Basic ${Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')}`,
        },
      )
      return res.access_token
    },
    forge(claims, header = {}) {
      const now = Math.floor(Date.now() / 1000)
      return new SignJWT({
        iss: idp.issuer,
        sub: 'alice',
        aud: endpoint('echo'),
        iat: now,
        exp: now + 300,
        realm_access: { roles: ['mcp-user'] },
        ...claims,
      })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'at+jwt', ...header })
        .sign(privateKey)
    },
    async rotateKeys() {
      await idp.close()
      ;({ privateKey, kid, jwk } = await newKey())
      idp = await startDevIdp(idpOptions())
    },
    async close() {
      await gateway.close()
      if (!shared) await idp.close()
    },
  }
  return stack
}

/** The `endpoints` of a test config, as createResources takes them. */
function endpointsOf(
  config: Record<string, unknown> | undefined,
  servers: string[],
): Record<string, { path: string; servers: string[] }> {
  const endpoints = (config?.endpoints ?? {}) as Record<
    string,
    { path?: string; servers: '*' | string[] }
  >
  return Object.fromEntries(
    Object.entries(endpoints).map(([name, e]) => [
      name,
      { path: e.path ?? `/mcp/${name}`, servers: e.servers === '*' ? servers : e.servers },
    ]),
  )
}

async function newKey() {
  const privateKey = await rsaSigningKey()
  const kid = `k-${Math.random().toString(36).slice(2, 10)}`
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' }
  return { privateKey, kid, jwk }
}
