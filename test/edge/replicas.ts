// Gateway replicas as behind a proxy: one shared IdP, one public URL, each replica with its
// own replicaId and port, all in this process.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
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
  close(): Promise<void>
}

/** Starts the IdP and one gateway per id, each trusting the proxy on 127.0.0.1. */
export async function startReplicas(o: { ids: string[]; publicUrl: string; dir: string }): Promise<Replicas> {
  const servers = ['fixture', 'shared']
  const resource = (s: string) => `${o.publicUrl}/mcp/${s}`
  const silent = pino({ level: 'silent' })
  writeFileSync(join(o.dir, 'policy.yaml'), POLICY)
  const scopesFor = scopesForPolicy(join(o.dir, 'policy.yaml'))
  const idp = await startDevIdp({ resources: servers.map(resource), clients: CLIENTS, scopesFor, stateFile: false, logger: silent })
  const node = process.execPath
  const fixture = join(SERVERS_DIR, 'fixture.js')
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
          servers: {
            fixture: { command: node, args: [fixture] },
            // One user opens a hundred cheap shared sessions through the proxy: bounds raised.
            shared: { command: node, args: [fixture], mode: 'shared', maxSessionsPerSubject: 500 },
          },
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
  return {
    idp,
    list,
    async token(server, client = 'alice') {
      const c = CLIENTS.find((x) => x.clientId === client)!
      const { token_endpoint } = await discover(idp.issuer)
      const res = await tokenRequest(
        token_endpoint,
        { grant_type: 'client_credentials', resource: resource(server), scope: '' },
        { authorization: `Basic ${Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')}` },
      )
      return res.access_token
    },
    async close() {
      await Promise.all(list.map((r) => r.gateway.close()))
      await idp.close()
    },
  }
}
