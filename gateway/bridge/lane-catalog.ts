import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { InitResult } from './handshake.js'
import { HELD, type Lane } from './lane.js'
import { ownRequest } from './lifecycle.js'

/**
 * Sends the gateway's own request on a held lane and waits for its reply (undefined when the
 * process exits or stays silent past `timeoutMs`).
 */
export function laneRequest(
  lane: Lane,
  method: string,
  params: Record<string, unknown>,
  timeoutMs: number,
): Promise<JSONRPCMessage | undefined> {
  const id = lane.nextId()
  return ownRequest(
    {
      send: (m) => lane.child.send(m),
      listen(fromServer, lost) {
        // Held alone: every message is this request's; shared by plain requests: its reply.
        if (lane.user !== undefined) {
          lane.user = { fromServer, lost }
          return () => {
            lane.user = HELD
          }
        }
        lane.route(id, { fromServer, lost })
        return () => lane.unroute(id)
      },
    },
    { id, method, params },
    timeoutMs,
  )
}

/**
 * Whose processes of `server` a catalog entry is about besides their user (`\n@<client> <scopes>`),
 * or '' for the user alone: a server that trades the presented token (`exchange` credentials)
 * runs each app of a user with that app's own exchanged token (credentials/resolve.ts), and
 * what such a process says (its lists, its instructions) may depend on it.
 */
export function presenterScope(
  config: GatewayConfig,
  server: string,
  principal: Pick<Principal, 'clientId' | 'scopes'>,
): string {
  const credentials = Object.values(config.servers[server]?.credentials ?? {})
  if (!credentials.some((c) => 'exchange' in c)) return ''
  return `\n@${JSON.stringify([principal.clientId ?? null, [...principal.scopes].sort()])}`
}

/**
 * What the gateway remembers of the processes behind lanes: each one's initialize result and
 * its tools' input schemas.
 * - The initialize result is one per server: a process answers it before any request of its
 *   user reaches it, so processes started alike answer alike. Under `identityEnv`, and for a
 *   server that takes per-user credentials, processes start differently per user (whom the
 *   credential signs them in as; per app of the user when the presented token is traded), so
 *   there it is each user's (each app's).
 * - The tool schemas are one per server only for a `shared` server (its one process is every
 *   user's). A session-mode process is its user's own, and so are the tools it registers as it
 *   runs (tools/list_changed): each user's (each app's) schemas are theirs.
 * Per-user entries are forgotten with the user's last process of the server (lanes.ts
 * onLanesEnded), so the catalog holds them only for users with a process.
 */
export class LaneCatalog {
  private readonly inits = new Map<string, InitResult>()
  /** Input schemas of the tools, by name, per schemaKey, until the process says its list changed. */
  private readonly schemas = new Map<string, Map<string, unknown>>()
  private readonly reading = new Map<string, Promise<Map<string, unknown>>>()
  /** Reads under way when their processes said the list changed: what they read is not kept. */
  private readonly overtaken = new Set<string>()

  constructor(
    private readonly config: GatewayConfig,
    private readonly limits: { toolPages: number; laneWait: number },
  ) {}

  /**
   * The user (and app) lane key `key` of `principal` belongs to: `server \n owner`, the
   * identity under `identityEnv`, the app when the server trades the presented token; never
   * the credential values' fingerprint (`\n#…`: a user's new values make new processes, which
   * say what the old ones said).
   */
  private ownKey(server: string, key: string, principal: Principal): string {
    return key.split('\n#')[0]! + presenterScope(this.config, server, principal)
  }

  /** Whose processes answer initialize alike (see the class). */
  private initKey(server: string, key: string, principal: Principal): string {
    const c = this.config.servers[server]
    if (c !== undefined && (c.identityEnv || Object.keys(c.credentials).length > 0))
      return this.ownKey(server, key, principal)
    return server
  }

  /** Whose processes have the same tools (see the class). */
  private schemaKey(server: string, key: string, principal: Principal): string {
    if (this.config.servers[server]?.mode === 'shared') return server
    return this.ownKey(server, key, principal)
  }

  /**
   * A user's last process of `server` is gone: what was kept from their own processes goes too,
   * so the catalog holds per-user entries only for users with a process (lanes.ts onLanesEnded).
   */
  forget(server: string, owner: string): void {
    const mine = `${server}\n${owner}`
    for (const map of [this.inits, this.schemas])
      for (const key of [...map.keys()])
        if (key === mine || key.startsWith(`${mine}\n`)) map.delete(key)
  }

  /** The initialize result of the processes behind lane key `key`, if one has started yet. */
  init(server: string, key: string, principal: Principal): InitResult | undefined {
    return this.inits.get(this.initKey(server, key, principal))
  }

  /** A process behind lane key `key` initialized with `init` (the first one is kept). */
  initialized(server: string, key: string, principal: Principal, init: InitResult): void {
    const initKey = this.initKey(server, key, principal)
    if (!this.inits.has(initKey)) this.inits.set(initKey, init)
  }

  /** The tool schemas of the processes behind lane key `key`, if already read. */
  knownSchemas(
    server: string,
    key: string,
    principal: Principal,
  ): Map<string, unknown> | undefined {
    return this.schemas.get(this.schemaKey(server, key, principal))
  }

  /**
   * A process behind lane key `key` said its tool list changed: the schemas are read again when
   * next needed (a read under way is not kept).
   */
  forgetSchemas(server: string, key: string, principal: Principal): void {
    const schemaKey = this.schemaKey(server, key, principal)
    this.schemas.delete(schemaKey)
    if (this.reading.has(schemaKey)) this.overtaken.add(schemaKey)
  }

  /** See LanePool.toolSchemas. */
  async toolSchemas(lane: Lane, principal: Principal): Promise<Map<string, unknown>> {
    const schemaKey = this.schemaKey(lane.server, lane.key, principal)
    const known = this.schemas.get(schemaKey)
    if (known !== undefined) return known
    // Plain requests starting together on a new lane read the list once.
    let reading = this.reading.get(schemaKey)
    if (reading === undefined) {
      reading = this.readSchemas(lane, schemaKey).finally(() => {
        this.reading.delete(schemaKey)
        this.overtaken.delete(schemaKey)
      })
      this.reading.set(schemaKey, reading)
    }
    return reading
  }

  private async readSchemas(lane: Lane, schemaKey: string): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>()
    let cursor: string | undefined
    for (let page = 0; page < this.limits.toolPages; page++) {
      const reply = (await laneRequest(
        lane,
        'tools/list',
        cursor ? { cursor } : {},
        this.limits.laneWait,
      )) as { result?: { tools?: unknown; nextCursor?: unknown } } | undefined
      const tools = reply?.result?.tools
      if (!Array.isArray(tools)) return found
      for (const t of tools) if (typeof t?.name === 'string') found.set(t.name, t.inputSchema)
      cursor = typeof reply?.result?.nextCursor === 'string' ? reply.result.nextCursor : undefined
      if (cursor === undefined) break
    }
    // The list changed while it was read: this request checks against it, later ones read again.
    if (!this.overtaken.has(schemaKey)) this.schemas.set(schemaKey, found)
    return found
  }
}
