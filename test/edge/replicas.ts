// Gateway replicas as behind a proxy: one shared IdP, one public URL, each replica with its
// own replicaId and port, all in this process.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { createResources, type HostRoute } from '../../gateway/auth/resources.js'
import { validateConfig } from '../../gateway/config/load.js'
import { startDevIdp, type DevIdp } from '../../gateway/devidp/provider.js'
import { scopesForPolicy } from '../helpers/dev-roles.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { discover, tokenRequest } from '../helpers/oauth-flow.js'
import { CLIENTS, SERVERS_DIR } from '../helpers/stack.js'

/** `fixture`: a process per session; `shared`: one process per replica (its pid names the replica). */
const POLICY = `
roles:
  mcp-user: ["mcp:read"]
servers:
  fixture: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
  shared: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }
`

/** One replica: its gateway and every log line it wrote. */
export interface Replica {
  id: string
  gateway: Gateway
  logLines: string[]
}

/** The replicas, their IdP, and tokens for the public resource URLs. */
export interface Replicas {
  idp: DevIdp
  list: Replica[]
  /** A client_credentials token for `publicUrl/mcp/<server>`. */
  token(server: string, client?: string): Promise<string>
  /** A client_credentials token for any resource URL the gateways serve. */
  tokenFor(resource: string, client?: string): Promise<string>
  close(): Promise<void>
}

/** An endpoint as the test config writes it (gateway/config/schema.ts endpointSchema). */
type EndpointConfig = { path?: string; servers: '*' | string[]; prefix?: string }

/**
 * Starts the IdP and one gateway per id, each trusting the proxy on 127.0.0.1. Without
 * `servers` and `policy`: the fixture per session and shared. `endpoints` and `hosts` go to
 * every replica's config, and the IdP issues tokens for every resource they make.
 */
export async function startReplicas(o: {
  ids: string[]
  publicUrl: string
  dir: string
  servers?: Record<string, Record<string, unknown>>
  policy?: string
  endpoints?: Record<string, EndpointConfig>
  hosts?: Record<string, HostRoute>
}): Promise<Replicas> {
  const node = process.execPath
  const fixture = join(SERVERS_DIR, 'fixture.js')
  const servers = o.servers ?? {
    fixture: { command: node, args: [fixture] },
    // One user opens a hundred cheap shared sessions through the proxy: bounds raised.
    shared: { command: node, args: [fixture], mode: 'shared', maxSessionsPerSubject: 500 },
  }
  const names = Object.keys(servers)
  const resource = (s: string) => `${o.publicUrl}/mcp/${s}`
  const endpoints = Object.fromEntries(
    Object.entries(o.endpoints ?? {}).map(([name, e]) => [
      name,
      { path: e.path ?? `/mcp/${name}`, servers: e.servers === '*' ? names : e.servers },
    ]),
  )
  // Every resource the replicas serve (the listen URL only matters without a publicUrl).
  const resources =
    o.endpoints || o.hosts
      ? createResources({
          publicUrl: o.publicUrl,
          listenUrl: 'http://127.0.0.1:1',
          servers: names,
          endpoints,
          hosts: o.hosts ?? {},
          extra: [],
        }).all()
      : names.map(resource)
  const silent = pino({ level: 'silent' })
  writeFileSync(join(o.dir, 'policy.yaml'), o.policy ?? POLICY)
  const scopesFor = scopesForPolicy(join(o.dir, 'policy.yaml'))
  const idp = await startDevIdp({
    resources,
    clients: CLIENTS,
    scopesFor,
    stateFile: false,
    logger: silent,
  })
  const list: Replica[] = []
  try {
    for (const id of o.ids) {
      const config = validateConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          publicUrl: o.publicUrl,
          replicaId: id,
          trustProxy: ['127.0.0.1'],
          auth: { issuer: idp.issuer },
          servers,
          ...(o.endpoints ? { endpoints: o.endpoints } : {}),
          ...(o.hosts ? { hosts: o.hosts } : {}),
          limits: { maxSessionsPerSubject: 500 },
          policies: join(o.dir, 'policy.yaml'),
          log: { level: 'debug', audit: 'off' },
        },
        { file: 'test', baseDir: o.dir },
      )
      const logLines: string[] = []
      const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) })
      list.push({ id, gateway: await startGateway(config, { log }), logLines })
    }
  } catch (err) {
    await Promise.all(list.map((r) => r.gateway.close()))
    await idp.close()
    throw err
  }
  const tokenFor = async (url: string, client = 'alice') => {
    const c = CLIENTS.find((x) => x.clientId === client)!
    const { token_endpoint } = await discover(idp.issuer)
    const res = await tokenRequest(
      token_endpoint,
      { grant_type: 'client_credentials', resource: url, scope: '' },
      {
        authorization: `Basic ${Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')}`,
      },
    )
    return res.access_token
  }
  return {
    idp,
    list,
    token: (server, client) => tokenFor(resource(server), client),
    tokenFor,
    async close() {
      await Promise.all(list.map((r) => r.gateway.close()))
      await idp.close()
    },
  }
}
