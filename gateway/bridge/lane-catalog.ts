import type { JSONRPCMessage } from '@modelcontextprotocol/server'
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
 * What the gateway remembers of the processes behind lanes: each one's initialize result and
 * its tools' input schemas, per server; under `identityEnv` per identity, and for a server
 * that takes per-user credentials per user (each principal's processes may answer
 * differently: whom the credential signs them in as), forgotten with the user's last process
 * of the server.
 */
export class LaneCatalog {
  private readonly inits = new Map<string, InitResult>()
  /** Input schemas of each server's tools, by name, until the server says its list changed. */
  private readonly schemas = new Map<string, Map<string, unknown>>()
  private readonly reading = new Map<string, Promise<Map<string, unknown>>>()

  constructor(
    private readonly config: GatewayConfig,
    private readonly limits: { toolPages: number; laneWait: number },
  ) {}

  /**
   * What the processes behind lane key `key` have in common with others of the server: all of
   * them, under `identityEnv` only those of the same identity, and with per-user credentials
   * only the same user's (`server \n owner`, the key without the values' fingerprint).
   */
  private cacheKey(server: string, key: string): string {
    const c = this.config.servers[server]
    if (c?.identityEnv) return key
    if (c !== undefined && Object.keys(c.credentials).length > 0) return key.split('\n#')[0]!
    return server
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
  init(server: string, key: string): InitResult | undefined {
    return this.inits.get(this.cacheKey(server, key))
  }

  /** A process behind lane key `key` initialized with `init` (the first one is kept). */
  initialized(server: string, key: string, init: InitResult): void {
    const cacheKey = this.cacheKey(server, key)
    if (!this.inits.has(cacheKey)) this.inits.set(cacheKey, init)
  }

  /** The tool schemas of the processes behind lane key `key`, if already read. */
  knownSchemas(server: string, key: string): Map<string, unknown> | undefined {
    return this.schemas.get(this.cacheKey(server, key))
  }

  /** The server said its tool list changed: the schemas are read again when next needed. */
  forgetSchemas(server: string, key: string): void {
    this.schemas.delete(this.cacheKey(server, key))
  }

  /** See LanePool.toolSchemas. */
  async toolSchemas(lane: Lane): Promise<Map<string, unknown>> {
    const cacheKey = this.cacheKey(lane.server, lane.key)
    const known = this.schemas.get(cacheKey)
    if (known !== undefined) return known
    // Plain requests starting together on a new lane read the list once.
    let reading = this.reading.get(cacheKey)
    if (reading === undefined) {
      reading = this.readSchemas(lane, cacheKey).finally(() => this.reading.delete(cacheKey))
      this.reading.set(cacheKey, reading)
    }
    return reading
  }

  private async readSchemas(lane: Lane, cacheKey: string): Promise<Map<string, unknown>> {
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
    this.schemas.set(cacheKey, found)
    return found
  }
}
