// A gateway in broker mode in front of a real upstream IdP fixture (Entra-, Google- or
// GitHub-like oidc-provider), on 127.0.0.1 with ephemeral ports: the authorization server MCP
// clients register with is the gateway itself.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway, type StartOptions } from '../../gateway/gateway.js'
import { recordingStore, type RecordingStore } from './recording-store.js'
import { startTlsFront, type TestCa } from './test-ca.js'
import { freePort } from './ports.js'
import { SERVERS_DIR } from './stack.js'
import {
  startEntraLike,
  startGoogleLike,
  startPlainOAuth,
  type UpstreamIdp,
} from './upstream-idp.js'

/** Roles of the fixtures' users mapped to scopes, and the demo servers' rules. */
export const BROKER_POLICY = `
roles:
  MCP.Developer: ["mcp:read", "mcp:write"]
  MCP.Admin: ["*"]
  mcp-reader: ["mcp:read"]
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
`

export type UpstreamKind = 'entra' | 'google' | 'github'

/** The sign-in steps per address a test stack takes a minute unless told (the product's: 60). */
export const TESTS_SIGN_INS_PER_MINUTE = 100_000

export interface BrokerStack {
  gateway: Gateway
  idp: UpstreamIdp
  url: string
  endpoint(server: string): string
  dir: string
  logLines: string[]
  log: Logger
  /** The broker's store (in memory), readable whole. */
  store: RecordingStore
  audit(): Record<string, unknown>[]
  close(): Promise<void>
}

/**
 * Starts an upstream fixture of `kind` and a gateway whose broker logs users in there, with
 * the upstream's registered app (client secret from an environment variable, as in production).
 * `broker` and `config` add to the configuration.
 */
export async function startBrokerStack(
  o: {
    kind?: UpstreamKind
    broker?: Record<string, unknown>
    upstream?: Record<string, unknown>
    auth?: Record<string, unknown>
    config?: Record<string, unknown>
    policy?: string
    port?: number
    /** The loopback address the gateway listens on and its URL names (default 127.0.0.1). */
    host?: '127.0.0.1' | '::1'
    start?: Pick<StartOptions, 'accountClock' | 'signInClock'>
    /** The configured audit destination (`log.audit`) instead of the in-memory one. */
    realAudit?: boolean
    /** Told each line of the main log as it is written. */
    onLog?: (line: string) => void
    /** The memory store's `maxKeys` (default the product's). */
    storeMaxKeys?: number
    /**
     * Served on https through a TLS terminator with `ca`'s certificate, at `name` (default
     * 127.0.0.1): the publicUrl, the upstream callback and `url` are the terminator's (a client
     * trusts the CA and resolves the name to 127.0.0.1).
     */
    tls?: { ca: TestCa; name?: string }
  } = {},
): Promise<BrokerStack> {
  const kind = o.kind ?? 'entra'
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-broker-'))
  writeFileSync(join(dir, 'policy.yaml'), o.policy ?? BROKER_POLICY)
  const port = o.port ?? (await freePort())
  const host = o.host ?? '127.0.0.1'
  const front = o.tls ? await startTlsFront(o.tls.ca, port, o.tls.name) : undefined
  const url = front?.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  const callback = `${url}/oauth/callback`
  const idp =
    kind === 'entra'
      ? await startEntraLike({ callback })
      : kind === 'google'
        ? await startGoogleLike({ callback })
        : await startPlainOAuth({ callback })
  const env = `MCP_EDGE_TEST_UPSTREAM_SECRET_${port}`
  const upstream =
    kind === 'entra'
      ? {
          issuer: idp.issuer,
          clientId: 'mcp-edge-entra-basic',
          clientSecret: { env },
          roleClaims: ['roles'],
          subjectClaim: 'oid',
        }
      : kind === 'google'
        ? {
            issuer: idp.issuer,
            clientId: '1234-basic.apps.googleusercontent.example',
            clientSecret: { env },
            roleClaims: [],
            authorizeParams: { access_type: 'offline', prompt: 'consent' },
          }
        : {
            endpoints: idp.endpoints,
            clientId: 'Iv1.0123456789abcdef',
            clientSecret: { env },
            tokenEndpointAuth: 'client_secret_post',
            subjectClaim: 'id',
            roleClaims: ['teams'],
          }
  process.env[env] =
    kind === 'entra'
      ? 'entra-secret-0123456789'
      : kind === 'google'
        ? 'GOCSPX-basic-secret'
        : 'gh-secret-0123456789abcdef'
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
      listen: { host, port },
      auth: {
        broker: {
          upstream: { ...upstream, ...o.upstream },
          // Tests of other concerns start many sign-ins a minute, all from 127.0.0.1; the tests
          // of the bound (sign-in-guard.test.ts) set it, or `signIn: {}` for the product's.
          signIn: { perAddressPerMinute: TESTS_SIGN_INS_PER_MINUTE },
          ...o.broker,
        },
        ...o.auth,
      },
      servers: {
        echo: { command: node, args: [join(SERVERS_DIR, 'echo.js')] },
        notes: { command: node, args: [join(SERVERS_DIR, 'notes.js')] },
      },
      policies: join(dir, 'policy.yaml'),
      ...(front ? { publicUrl: front.url } : {}),
      ...o.config,
    },
    { file: 'test', baseDir: dir },
  )
  const auditLines: string[] = []
  const store = recordingStore({ maxKeys: o.storeMaxKeys })
  let gateway: Gateway
  try {
    gateway = await startGateway(config, {
      log,
      store,
      ...(o.realAudit
        ? {}
        : { auditDestination: { write: (line: string) => void auditLines.push(line) } }),
      ...o.start,
    })
  } catch (err) {
    await idp.close()
    await front?.close()
    throw err
  }
  return {
    gateway,
    idp,
    url,
    endpoint: (server) => `${url}/mcp/${server}`,
    dir,
    logLines,
    log,
    store,
    audit: () => auditLines.map((l) => JSON.parse(l) as Record<string, unknown>),
    async close() {
      await gateway.close()
      await idp.close()
      await front?.close()
      delete process.env[env]
    },
  }
}

/**
 * A broker behind a proxy (`trustProxy: true`) that takes 3 registrations per client address a
 * minute: the stack of the tests of which address a registration counts at.
 */
export function startProxiedBrokerStack(): Promise<BrokerStack> {
  return startBrokerStack({
    kind: 'entra',
    config: { trustProxy: true },
    broker: { registration: { perAddressPerMinute: 3 } },
  })
}
