import { randomBytes } from 'node:crypto'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Child } from './child.js'
import { BridgeError } from './errors.js'
import { exchange, initializeChild, type InitResult } from './handshake.js'
import { envelope, rpcError } from './jsonrpc.js'
import { ownerKey } from './session.js'

/** Processes one principal may hold per server for sessionless requests at the same time. */
export const DEFAULT_LANES_PER_SUBJECT = 4
/** How long a sessionless request waits for one of its principal's busy processes, in ms. */
export const DEFAULT_LANE_WAIT_MS = 10_000
/** `subscriptions/listen` streams one principal may hold open per server. */
export const DEFAULT_LISTENS_PER_SUBJECT = 8
/** Pages of `tools/list` read at most to learn a server's tool schemas. */
const DEFAULT_TOOL_PAGES = 20
/** A lane unused this long is ended (unless the server's idleTimeout is shorter), in ms. */
export const DEFAULT_LANE_IDLE_MS = 5 * 60_000

/**
 * What the gateway declares to a lane's process: every capability a sessionless client may
 * bring, since each request carries its own. A server→client request for one the request's
 * client did not declare is refused by the gateway, not relayed.
 */
export const LANE_CLIENT_CAPABILITIES = { sampling: {}, elicitation: { form: {}, url: {} }, roots: {} }

/** Server events a lane's process emits outside any request, for `subscriptions/listen` streams. */
export type LaneEvent = { server: string; owner: string; method: string; params: Record<string, unknown> | undefined }

/** Whoever is using a lane right now: it sees every message the process sends. */
export interface LaneUser {
  fromServer(message: JSONRPCMessage): void
  /** The process exited while in use. */
  lost(): void
}

/**
 * One gateway-initialized process serving sessionless (2026-07-28) requests of one principal
 * on one server, one request at a time: while a request (and its multi-round-trip rounds)
 * holds the lane, every message of the process is that request's, so progress, logs and
 * server→client requests are correlated exactly, with no guessing.
 */
export class Lane {
  readonly id = randomBytes(9).toString('base64url')
  user: LaneUser | undefined
  /** Held by a request waiting between rounds for the client's answers (input_required). */
  parked = false
  lastUsed = Date.now()
  private seq = 0

  constructor(
    readonly server: string,
    readonly owner: string,
    readonly child: Child,
    readonly init: InitResult,
    private readonly emit: (event: LaneEvent) => void,
  ) {
    child.onmessage = (message) => this.fromServer(message)
  }

  /** A JSON-RPC id unique on this lane, for a request the gateway sends the process. */
  nextId(): string {
    return `mcp-edge-${this.id}-${++this.seq}`
  }

  get busy(): boolean {
    return this.user !== undefined
  }

  private fromServer(message: JSONRPCMessage): void {
    const env = envelope(message)
    if (env.kind === 'notification' && isServerEvent(env.method)) {
      this.emit({ server: this.server, owner: this.owner, method: env.method, params: env.params })
      return
    }
    if (this.user !== undefined) return this.user.fromServer(message)
    // Nobody is waiting: a server→client request gets a refusal so the process does not hang.
    if (env.kind === 'request') {
      const reply = env.method === 'ping' ? ({ jsonrpc: '2.0', id: env.id, result: {} } as JSONRPCMessage) : rpcError(env.id, -32601, 'no client request is in progress to answer this')
      void this.child.send(reply).catch(() => {})
    }
  }
}

function isServerEvent(method: string): boolean {
  return method === 'notifications/tools/list_changed' || method === 'notifications/prompts/list_changed' || method === 'notifications/resources/list_changed' || method === 'notifications/resources/updated'
}

/** A held lane's user until its holder sets one: the process's messages have nobody to go to. */
const HELD: LaneUser = { fromServer: () => {}, lost: () => {} }

/** Where lanes' processes come from (the session registry's pools and shared processes). */
export interface ProcessSource {
  process(server: string, principal: Principal, log: Logger): Promise<Child>
}

/**
 * The lanes of every (server, principal): a principal's sessionless requests never share a
 * process with another principal's (a `shared` server's lanes are views of its one process,
 * as its sessions are). A request takes a free lane of its principal, else a new one up to
 * DEFAULT_LANES_PER_SUBJECT, else waits for one. Idle lanes end after a while.
 */
export class LanePool {
  private readonly lanes = new Map<string, Lane[]>()
  private readonly waiting = new Map<string, (() => void)[]>()
  private readonly listeners = new Set<(event: LaneEvent) => void>()
  private readonly closers = new Set<() => void>()
  /** Open `subscriptions/listen` streams per (server, principal). */
  private readonly listening = new Map<string, number>()
  private readonly inits = new Map<string, InitResult>()
  /** Input schemas of each server's tools, by name, until the server says its list changed. */
  private readonly schemas = new Map<string, Map<string, unknown>>()
  private readonly reaper: NodeJS.Timeout
  private starting = new Map<string, number>()
  private closed = false

  constructor(private readonly o: { config: GatewayConfig; source: ProcessSource; log: Logger }) {
    this.reaper = setInterval(() => this.reap(), 10_000).unref()
  }

  /** Live lanes, all servers. */
  get size(): number {
    let n = 0
    for (const l of this.lanes.values()) n += l.length
    return n
  }

  /** The first initialize result seen for a server, if any lane has started yet. */
  initOf(server: string): InitResult | undefined {
    return this.inits.get(server)
  }

  /**
   * Subscribes a `subscriptions/listen` stream of `principal` on `server` to server events of
   * every lane, and to the pool closing (shutdown ends streams gracefully); returns the
   * unsubscribe, or undefined when the principal already holds DEFAULT_LISTENS_PER_SUBJECT.
   */
  listen(server: string, principal: Principal, fn: (event: LaneEvent) => void, onClose: () => void): (() => void) | undefined {
    const key = `${server}\n${ownerKey(principal)}`
    const open = this.listening.get(key) ?? 0
    if (open >= DEFAULT_LISTENS_PER_SUBJECT) return undefined
    this.listening.set(key, open + 1)
    this.listeners.add(fn)
    this.closers.add(onClose)
    let live = true
    return () => {
      if (!live) return
      live = false
      this.listeners.delete(fn)
      this.closers.delete(onClose)
      const left = (this.listening.get(key) ?? 1) - 1
      if (left === 0) this.listening.delete(key)
      else this.listening.set(key, left)
    }
  }

  /** Open listen streams, all servers and principals. */
  get listenStreams(): number {
    return this.listeners.size
  }

  /**
   * Sends the gateway's own request on a held lane and waits for its reply (undefined when the
   * process exits or stays silent past `timeoutMs`).
   */
  request(lane: Lane, method: string, params: Record<string, unknown>, timeoutMs: number): Promise<JSONRPCMessage | undefined> {
    const id = lane.nextId()
    return new Promise((resolve) => {
      const done = (m?: JSONRPCMessage) => {
        clearTimeout(timer)
        lane.user = HELD
        resolve(m)
      }
      const timer = setTimeout(done, timeoutMs)
      lane.user = { fromServer: (m) => void ((m as { id?: unknown }).id === id && done(m)), lost: () => done() }
      lane.child.send({ jsonrpc: '2.0', id, method, params } as JSONRPCMessage).catch(() => done())
    })
  }

  /**
   * A lane of `principal` on `server`, held until `release`; its holder sets `lane.user` to
   * whoever should see the process's messages.
   * @throws BridgeError `too_many_sessions` when none frees up in time, `spawn_failed`
   */
  async acquire(server: string, principal: Principal, log: Logger): Promise<Lane> {
    const key = `${server}\n${ownerKey(principal)}`
    const deadline = Date.now() + DEFAULT_LANE_WAIT_MS
    for (;;) {
      if (this.closed) throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
      const lanes = this.lanes.get(key) ?? []
      const free = lanes.find((l) => !l.busy && l.child.alive)
      if (free !== undefined) {
        free.user = HELD
        return free
      }
      // Requests waiting for their client's answers do not count: an abandoned round must not
      // lock its principal out (InputRounds bounds those separately).
      const active = lanes.filter((l) => !l.parked).length
      if (active + (this.starting.get(key) ?? 0) < DEFAULT_LANES_PER_SUBJECT) {
        const lane = await this.start(key, server, principal, log)
        lane.user = HELD
        return lane
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new BridgeError('too_many_sessions', `you have ${DEFAULT_LANES_PER_SUBJECT} requests in progress on ${server}, the most allowed; retry later`)
      await new Promise<void>((resolve) => {
        const list = this.waiting.get(key) ?? []
        list.push(resolve)
        this.waiting.set(key, list)
        setTimeout(resolve, left).unref()
      })
    }
  }

  /**
   * The input schema of each tool of a server, read with `tools/list` on a held lane when not
   * known yet (a server's tools are the same for every principal's process).
   */
  async toolSchemas(lane: Lane): Promise<Map<string, unknown>> {
    const known = this.schemas.get(lane.server)
    if (known !== undefined) return known
    const found = new Map<string, unknown>()
    let cursor: string | undefined
    for (let page = 0; page < DEFAULT_TOOL_PAGES; page++) {
      const reply = (await this.request(lane, 'tools/list', cursor ? { cursor } : {}, DEFAULT_LANE_WAIT_MS)) as { result?: { tools?: unknown; nextCursor?: unknown } } | undefined
      const tools = reply?.result?.tools
      if (!Array.isArray(tools)) return found
      for (const t of tools) if (typeof t?.name === 'string') found.set(t.name, t.inputSchema)
      cursor = typeof reply?.result?.nextCursor === 'string' ? reply.result.nextCursor : undefined
      if (cursor === undefined) break
    }
    this.schemas.set(lane.server, found)
    return found
  }

  /** A lane by id, if it is still alive and belongs to `principal` on `server`. */
  find(id: string, server: string, principal: Principal): Lane | undefined {
    const lane = this.lanes.get(`${server}\n${ownerKey(principal)}`)?.find((l) => l.id === id)
    return lane?.child.alive ? lane : undefined
  }

  /** Gives a lane back: the next request of its principal may take it. */
  release(lane: Lane): void {
    lane.user = undefined
    lane.parked = false
    lane.lastUsed = Date.now()
    const key = `${lane.server}\n${lane.owner}`
    for (const wake of this.waiting.get(key)?.splice(0) ?? []) wake()
  }

  /**
   * Shutdown: refuses new requests, ends listen streams, lets requests in flight finish for
   * at most the longest `shutdownGrace` of the servers, then ends every lane.
   */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.reaper)
    for (const fn of [...this.closers]) fn()
    const grace = Math.max(0, ...Object.values(this.o.config.servers).map((s) => s.shutdownGrace))
    const deadline = Date.now() + grace
    while (Date.now() < deadline && [...this.lanes.values()].some((l) => l.some((lane) => lane.busy))) {
      await new Promise((r) => setTimeout(r, 25))
    }
    for (const list of this.waiting.values()) for (const wake of list.splice(0)) wake()
    const all = [...this.lanes.values()].flat()
    this.lanes.clear()
    await Promise.all(all.map((l) => l.child.close()))
  }

  private async start(key: string, server: string, principal: Principal, log: Logger): Promise<Lane> {
    this.starting.set(key, (this.starting.get(key) ?? 0) + 1)
    try {
      const config = this.o.config.servers[server]!
      const child = await this.o.source.process(server, principal, log)
      const timeout = config.requestTimeout || 30_000
      let init: InitResult
      try {
        init = await initializeChild(child, timeout, LANE_CLIENT_CAPABILITIES)
        // Logs are filtered per request by the gateway (each names its own logLevel): the
        // process sends them all.
        if (init.capabilities !== null && typeof init.capabilities === 'object' && 'logging' in init.capabilities) {
          await exchange(child, 'logging/setLevel', { level: 'debug' }, timeout)
        }
      } catch (err) {
        await child.close()
        log.error({ err: { message: (err as Error).message } }, 'server process failed to initialize')
        throw new BridgeError('spawn_failed', 'the MCP server could not be started', err)
      }
      if (this.closed) {
        await child.close()
        throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
      }
      if (!this.inits.has(server)) this.inits.set(server, init)
      const lane = new Lane(server, ownerKey(principal), child, init, (e) => this.emit(e))
      const list = this.lanes.get(key) ?? []
      list.push(lane)
      this.lanes.set(key, list)
      child.onexit = () => this.lost(key, lane)
      log.debug({ pid: child.pid, lane: lane.id }, 'sessionless lane started')
      return lane
    } finally {
      const n = (this.starting.get(key) ?? 1) - 1
      if (n === 0) this.starting.delete(key)
      else this.starting.set(key, n)
    }
  }

  private lost(key: string, lane: Lane): void {
    const list = this.lanes.get(key)
    if (list !== undefined) {
      const i = list.indexOf(lane)
      if (i !== -1) list.splice(i, 1)
      if (list.length === 0) this.lanes.delete(key)
    }
    const user = lane.user
    lane.user = undefined
    user?.lost()
    for (const wake of this.waiting.get(key)?.splice(0) ?? []) wake()
  }

  private emit(event: LaneEvent): void {
    if (event.method === 'notifications/tools/list_changed') this.schemas.delete(event.server)
    for (const fn of this.listeners) fn(event)
  }

  private reap(): void {
    const now = Date.now()
    for (const list of this.lanes.values()) {
      for (const lane of [...list]) {
        const idle = Math.min(DEFAULT_LANE_IDLE_MS, this.o.config.servers[lane.server]?.idleTimeout || DEFAULT_LANE_IDLE_MS)
        if (!lane.busy && now - lane.lastUsed > idle) void lane.child.close()
      }
    }
  }
}
