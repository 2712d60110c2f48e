import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import type { Bound, Hold, Holders, Scope, SubjectBounds } from './bounds.js'
import type { Child } from './child.js'
import { BridgeError } from './errors.js'
import { exchange, initializeChild, initializeTimeout, type InitResult } from './handshake.js'
import { HELD, Lane, LANE_CLIENT_CAPABILITIES, type LaneEvent, type LaneUser } from './lane.js'
import { drain, ownRequest, startReaper, type Reaper } from './lifecycle.js'
import { ownerKey } from './session.js'

/** Where lanes' processes come from (the session registry's pools and shared processes). */
export interface ProcessSource {
  process(
    server: string,
    principal: Principal,
    log: Logger,
    accepted?: number,
    credentials?: ResolvedCredentials,
  ): Promise<Child>
  /** The identity a process of `server` is started with for `principal` (identityEnv), if any. */
  identityOf(server: string, principal: Principal): string | undefined
}

/** A request waiting for a lane of `key`: woken to look again, or handed a lane. */
interface Waiter {
  key: string
  /** What it will hold a lane with: HELD alone, or a plain request's share. */
  holder: LaneUser
  wake: (lane?: Lane) => void
}

/** A lane held for a request: `holder` gives it back (`release`). */
export interface Lease {
  lane: Lane
  /** HELD for a request holding the lane alone, else the plain request's share. */
  holder: LaneUser
}

/**
 * The lanes of every (server, principal): a principal's sessionless requests never share a
 * process with another principal's (a `shared` server's lanes are views of its one process,
 * as its sessions are). A request takes a free lane of its principal, else a new one up to
 * `limits.sessionless.lanesPerSubject` running and within the bounds it shares with sessions (idle and
 * parked lanes count there), else waits for one. Idle lanes end after a while.
 */
export class LanePool implements Holders {
  private readonly lanes = new Map<string, Lane[]>()
  /** Requests waiting for a lane to free up, per (server, principal), oldest first. */
  private readonly waiting = new Map<string, Set<Waiter>>()
  private readonly listeners = new Set<(event: LaneEvent) => void>()
  private readonly lanesEnded = new Set<(server: string, owner: string) => void>()
  private readonly closers = new Set<() => void>()
  /** Shared-server events delivered this tick (each of a principal's views repeats them). */
  private readonly recent = new Set<string>()
  /** Open `subscriptions/listen` streams per (server, principal). */
  private readonly listening = new Map<string, number>()
  private readonly inits = new Map<string, InitResult>()
  /** Input schemas of each server's tools, by name, until the server says its list changed. */
  private readonly schemas = new Map<string, Map<string, unknown>>()
  private readonly reaper: Reaper
  /** Lanes whose process is being taken: they count toward every bound already. */
  private readonly starting = new Set<Hold>()
  /** Lanes being started for a plain request, per key: other plain requests wait to join them. */
  private readonly startingPlain = new Map<string, number>()
  /** Lanes whose process is being ended: they count toward the bounds until it has exited. */
  private readonly ending = new Map<Lane, Promise<void>>()
  private acquiring = 0
  /** When shutdown began: requests accepted since get no lane. */
  private closedAt: number | undefined
  /** Shutdown ended: every lane was closed. */
  private finished = false

  /** The configured bounds of sessionless requests (`limits.sessionless`). */
  readonly limits: GatewayConfig['limits']['sessionless']

  constructor(
    private readonly o: {
      config: GatewayConfig
      source: ProcessSource
      bounds: SubjectBounds
      log: Logger
    },
  ) {
    this.limits = o.config.limits.sessionless
    this.reaper = startReaper(
      [this.limits.laneIdle, ...Object.values(o.config.servers).map((c) => c.idleTimeout)],
      () => this.reap(),
    )
    o.bounds.join({ lanes: this })
  }

  /** Whether any lane is in use (a request, a waiting round) or being started for one. */
  get busy(): boolean {
    if (this.acquiring > 0) return true
    for (const list of this.lanes.values()) if (list.some((l) => l.busy)) return true
    return false
  }

  /** Requests waiting for a lane to free up, per server. */
  waiters(): Map<string, number> {
    const n = new Map<string, number>()
    for (const [pair, set] of this.waiting) {
      const server = pair.slice(0, pair.indexOf('\n'))
      n.set(server, (n.get(server) ?? 0) + set.size)
    }
    return n
  }

  /** Requests running on a server's lanes (or starting one), every principal's. */
  inFlight(server: string): number {
    return this.running((h) => h.server === server, true)
  }

  /** Live lanes, all servers. */
  get size(): number {
    let n = 0
    for (const l of this.lanes.values()) n += l.length
    return n
  }

  /**
   * The initialize result of a server's processes, if one has started yet. With `identityEnv`
   * each principal's processes may answer differently, so each has its own.
   */
  initOf(server: string, principal: Principal): InitResult | undefined {
    return this.inits.get(this.cacheKey(server, this.keyOf(server, principal)))
  }

  /**
   * Which of a server's lanes serve a principal: its own, and under `identityEnv` only those
   * started with the identity it has now (client, scopes), so a narrower client of the same
   * user never runs as a broader one, and a scope taken away takes effect on new processes.
   */
  private keyOf(server: string, principal: Principal, credentials?: ResolvedCredentials): string {
    const identity = this.o.source.identityOf(server, principal)
    const values = credentials?.fingerprint ? `\n#${credentials.fingerprint}` : ''
    return `${server}\n${ownerKey(principal)}${identity === undefined ? '' : `\n${identity}`}${values}`
  }

  /**
   * What the processes behind lane key `key` have in common with others of the server: all of
   * them, or under `identityEnv` only those of the same identity.
   */
  private cacheKey(server: string, key: string): string {
    return this.o.config.servers[server]?.identityEnv ? key : server
  }

  /**
   * Subscribes a `subscriptions/listen` stream of `principal` on `server` to server events of
   * every lane, and to the pool closing (shutdown ends streams gracefully); returns the
   * unsubscribe, or undefined when the principal already holds `listensPerSubject`.
   */
  listen(
    server: string,
    principal: Principal,
    fn: (event: LaneEvent) => void,
    onClose: () => void,
  ): (() => void) | undefined {
    const key = `${server}\n${ownerKey(principal)}`
    const open = this.listening.get(key) ?? 0
    if (open >= this.limits.listensPerSubject) return undefined
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
    return this.listeners.size - this.internal
  }

  /**
   * Calls `fn` when a principal's last process of a server is gone: what the gateway keeps
   * about that principal's own process of it (an endpoint's per-user lists) can go too.
   */
  onLanesEnded(fn: (server: string, owner: string) => void): () => void {
    this.lanesEnded.add(fn)
    return () => void this.lanesEnded.delete(fn)
  }

  /** The gateway's own listener to every lane's server events (an endpoint's list caches); unbounded, uncounted. */
  onEvent(fn: (event: LaneEvent) => void): () => void {
    this.listeners.add(fn)
    this.internal++
    return () => {
      if (this.listeners.delete(fn)) this.internal--
    }
  }

  private internal = 0

  /**
   * Sends the gateway's own request on a held lane and waits for its reply (undefined when the
   * process exits or stays silent past `timeoutMs`).
   */
  request(
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
   * A lane of `principal` on `server`, held until `release`; its holder sets `lane.user` to
   * whoever should see the process's messages. `accepted`: when the HTTP request arrived.
   * @throws BridgeError `too_many_sessions` when none frees up in time, `spawn_failed`
   */
  async acquire(
    server: string,
    principal: Principal,
    log: Logger,
    accepted = Date.now(),
    signal?: AbortSignal,
    credentials?: ResolvedCredentials,
  ): Promise<Lane> {
    const { lane } = await this.hold(server, principal, log, accepted, signal, credentials, HELD)
    return lane
  }

  /** `acquire` with what the lane is held with: HELD (alone) or a plain request's share. */
  private async hold(
    server: string,
    principal: Principal,
    log: Logger,
    accepted: number,
    signal: AbortSignal | undefined,
    credentials: ResolvedCredentials | undefined,
    holder: LaneUser,
  ): Promise<Lease> {
    // A request the gateway accepted before shutdown began is still served (within the grace).
    if (this.closedAt !== undefined && accepted >= this.closedAt)
      throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
    // A request already here when shutdown begins is waited for, even while its lane starts.
    this.acquiring++
    try {
      if (credentials !== undefined) this.retireStale(this.keyOf(server, principal, credentials))
      const lane = await this.acquireLane(
        server,
        principal,
        log,
        accepted,
        signal,
        credentials,
        holder,
      )
      // The client left while its lane was found or started: nothing may run for it.
      if (signal?.aborted) {
        this.release(lane, holder)
        throw new BridgeError('client_gone', 'the client disconnected')
      }
      return { lane, holder }
    } finally {
      this.acquiring--
    }
  }

  /**
   * `acquire` for a caller as the sessionless engine knows it (who, their log, when their
   * request arrived, and the signal of their going away, when it should cancel the lease).
   * `plain`: the request may share a lane with other plain ones (modern-call.ts `isPlain`);
   * its share is the lease's holder until `assign` names the call that runs.
   */
  lease(
    server: string,
    caller: { principal: Principal; log: Logger; accepted: number; signal?: AbortSignal },
    credentials?: ResolvedCredentials,
    plain = false,
  ): Promise<Lease> {
    const { principal, log, accepted, signal } = caller
    const holder: LaneUser = plain ? { fromServer() {}, lost() {} } : HELD
    return this.hold(server, principal, log, accepted, signal, credentials, holder)
  }

  /**
   * The call that runs on a lease, from now on its holder (`release` names it): alone, it
   * hears every message of the process; as a plain request, the reply with `id`.
   */
  assign(lease: Lease, call: LaneUser, id: string): void {
    const { lane, holder } = lease
    if (holder === HELD) {
      lane.user = call
      return
    }
    // Gone with its process meanwhile: the call's send fails and it ends as such.
    if (!lane.leave(holder)) return
    lane.plain.add(call)
    lane.route(id, call)
  }

  /**
   * A user's credentials changed (a secret set or rotated, a token renewed): their lanes
   * started with the old values end at a request boundary, now if idle, else when released.
   */
  private retireStale(current: string): void {
    // The same server, principal and identity; other values (`\n#<fingerprint>` ends a key).
    const base = current.split('\n#')[0]
    for (const [key, list] of [...this.lanes]) {
      if (key === current || key.split('\n#')[0] !== base) continue
      for (const lane of [...list]) {
        if (lane.busy || lane.pins.size > 0) lane.stale = true
        else void this.retire(lane)
      }
    }
  }

  private async acquireLane(
    server: string,
    principal: Principal,
    log: Logger,
    accepted: number,
    signal: AbortSignal | undefined,
    credentials: ResolvedCredentials | undefined,
    holder: LaneUser,
  ): Promise<Lane> {
    const key = this.keyOf(server, principal, credentials)
    const owner = ownerKey(principal)
    const mine: Scope = (h) => h.server === server && h.owner === owner
    const deadline = Date.now() + this.limits.laneWait
    for (;;) {
      if (this.finished)
        throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
      // A plain request joining a lane that already runs plain ones adds no process: within
      // the lane's room (lanePlainConcurrency) no bound is passed.
      const shared = holder === HELD ? undefined : this.pick(key, holder)
      if (shared !== undefined && shared.plain.size > 0) {
        this.take(shared, holder)
        return shared
      }
      // Lanes running at once, over every identity and credential of the principal (a lane
      // shared by plain requests is one). Rounds waiting for their client's answers do not
      // count here: the bounds below end the oldest.
      const cap = this.laneCap(server)
      let full: Bound | undefined
      if (this.running(mine) < cap) {
        const free = this.pick(key, holder)
        if (free !== undefined) {
          this.take(free, holder)
          return free
        }
        // A lane starting for plain requests will have room: a plain one waits to join it (a
        // burst of them starts one process, not one each), when it may wait at all.
        const join =
          holder !== HELD &&
          (this.startingPlain.get(key) ?? 0) > 0 &&
          deadline > Date.now() &&
          (this.waiting.get(`${server}\n${owner}`)?.size ?? 0) < this.limits.laneWaiters
        if (!join) {
          full = this.o.bounds.full(server, owner)
          // Counted as starting in this same turn: concurrent requests cannot all pass.
          if (full === undefined)
            return await this.start(key, server, principal, log, accepted, credentials, holder)
          if (await this.o.bounds.makeRoom(full, owner, 'session limit')) continue
          // Nothing to end: a request running in the bound's scope will free a process; else
          // there is nothing to wait for.
          if (this.running(full.scope) === 0) throw full.refuse()
        }
      }
      const refuse = () =>
        full?.refuse() ??
        new BridgeError(
          'too_many_sessions',
          `you have ${cap} requests in progress on ${server}, the most allowed; retry later`,
        )
      const left = deadline - Date.now()
      const pair = `${server}\n${owner}`
      const queue = this.waiting.get(pair) ?? new Set<Waiter>()
      if (left <= 0 || queue.size >= this.limits.laneWaiters) throw refuse()
      if (signal?.aborted) throw new BridgeError('client_gone', 'the client disconnected')
      this.waiting.set(pair, queue)
      const handed = await new Promise<Lane | undefined>((resolve) => {
        const waiter: Waiter = { key, holder, wake: done }
        const timer = setTimeout(done, left).unref()
        const gone = () => done()
        signal?.addEventListener('abort', gone, { once: true })
        queue.add(waiter)
        function done(lane?: Lane) {
          clearTimeout(timer)
          signal?.removeEventListener('abort', gone)
          queue.delete(waiter)
          resolve(lane)
        }
      })
      if (queue.size === 0 && this.waiting.get(pair) === queue) this.waiting.delete(pair)
      // Handed a lane as it was released (held for this request already): nothing to look for.
      if (handed !== undefined) return handed
    }
  }

  /**
   * Lanes in `scope` running a request (alone, or plain ones) or starting for one: each will be
   * released. `requests`: count each plain request on a shared lane instead.
   */
  private running(scope: Scope, requests = false): number {
    let n = 0
    for (const list of this.lanes.values())
      for (const l of list) {
        if (!scope(l)) continue
        if (l.user !== undefined && !l.parked) n++
        else if (l.plain.size > 0) n += requests ? l.plain.size : 1
      }
    for (const h of this.starting) if (scope(h)) n++
    return n
  }

  /**
   * A lane of `key` `holder` may take now: for a plain request one already running plain ones
   * with room left (so they share one process), else an unused one; for any other, an unused one.
   */
  private pick(key: string, holder: LaneUser): Lane | undefined {
    let unused: Lane | undefined
    for (const l of this.lanes.get(key) ?? []) {
      if (!this.fits(l, holder)) continue
      if (l.plain.size > 0) return l
      unused ??= l
    }
    return unused
  }

  /** Whether `holder` may take `lane` now (a request alone: unused; plain: room among plain ones). */
  private fits(lane: Lane, holder: LaneUser): boolean {
    if (lane.user !== undefined || !lane.child.alive) return false
    if (holder === HELD) return lane.plain.size === 0
    const room = lane.asked ? 1 : this.limits.lanePlainConcurrency
    return !lane.stale && lane.plain.size < room
  }

  private take(lane: Lane, holder: LaneUser): void {
    if (holder === HELD) lane.user = HELD
    else lane.plain.add(holder)
  }

  /** Lanes in `scope`, live (running, parked or idle), starting, or ending. */
  count(scope: Scope): number {
    let n = 0
    for (const list of this.lanes.values()) for (const l of list) if (scope(l)) n++
    for (const h of this.starting) if (scope(h)) n++
    for (const l of this.ending.keys()) if (scope(l)) n++
    return n
  }

  /** Waits until the lanes in `scope` being ended have exited; true when there were any. */
  async ended(scope: Scope): Promise<boolean> {
    const closing = [...this.ending].filter(([l]) => scope(l)).map(([, p]) => p)
    await Promise.all(closing)
    return closing.length > 0
  }

  /**
   * Lanes one principal may run at once on a server, over all its identities (a lane runs one
   * request alone, or up to lanePlainConcurrency plain ones):
   * `limits.sessionless.lanesPerSubject`, or the server's `maxSessionsPerSubject` when lower (the
   * operator's bound on one user's processes, which sessions and parked lanes share).
   */
  laneCap(server: string): number {
    return Math.min(
      this.limits.lanesPerSubject,
      this.o.config.servers[server]?.maxSessionsPerSubject ?? Infinity,
    )
  }

  /**
   * Ends the longest-unused idle lane in `scope` (no request, no listen stream on it) to make
   * room at a limit. Resolves true when one was ended.
   */
  async reclaimIdle(scope: Scope, reason: string): Promise<boolean> {
    let oldest: Lane | undefined
    for (const list of this.lanes.values()) {
      for (const lane of list) {
        if (lane.busy || lane.pins.size > 0 || !scope(lane)) continue
        if (oldest === undefined || lane.lastUsed < oldest.lastUsed) oldest = lane
      }
    }
    if (oldest === undefined) return false
    this.o.log.debug(
      { server: oldest.server, lane: oldest.id, reason },
      'idle lane reclaimed to make room',
    )
    await this.retire(oldest)
    return true
  }

  /** The tool schemas of a server as the principal's processes have them, if already read. */
  knownToolSchemas(server: string, principal: Principal): Map<string, unknown> | undefined {
    return this.schemas.get(this.cacheKey(server, this.keyOf(server, principal)))
  }

  /**
   * The input schema of each tool of a server, read with `tools/list` on a held lane when not
   * known yet (a server's tools are the same for every principal's process, unless
   * `identityEnv` makes them the principal's own).
   */
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

  private readonly reading = new Map<string, Promise<Map<string, unknown>>>()

  private async readSchemas(lane: Lane, cacheKey: string): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>()
    let cursor: string | undefined
    for (let page = 0; page < this.limits.toolPages; page++) {
      const reply = (await this.request(
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

  /**
   * Gives a lane back: the next request of its principal may take it. With `holder`, only if
   * that holder still has it (a late release must not free a lane someone else now uses).
   */
  release(lane: Lane, holder?: LaneUser): void {
    // A plain request's share: the lane stays in use while others of them run.
    if (holder === undefined || !lane.leave(holder)) {
      if (holder !== undefined && lane.user !== holder) return
      lane.user = undefined
      lane.parked = false
    }
    lane.lastUsed = Date.now()
    // Started with credentials that have changed since: ended at this request boundary.
    if (lane.stale && !lane.busy && lane.pins.size === 0) void this.retire(lane)
    else if (this.handOff(lane)) return
    this.wake()
  }

  /**
   * Gives the room a release made on a lane to the oldest request waiting for a lane of its
   * key, held for it at once, when it fits there. Nothing else changed (as many requests run as
   * before), so nobody else is woken: under load every release would otherwise wake every
   * waiter to find the one free place. When the oldest does not fit (a request that must run
   * alone, and plain ones still run), everyone looks again.
   */
  private handOff(lane: Lane): boolean {
    if (this.finished || !lane.child.alive) return false
    const queue = this.waiting.get(`${lane.server}\n${lane.owner}`)
    if (queue === undefined) return false
    for (const waiter of queue) {
      if (waiter.key !== lane.key) continue
      if (!this.fits(lane, waiter.holder)) return false
      this.take(lane, waiter.holder)
      waiter.wake(lane)
      return true
    }
    return false
  }

  /**
   * A lane was released or ended: every waiting request looks again (a lane of another of
   * its principal's identities, or another principal's, may be what held its bound).
   */
  private wake(): void {
    for (const queue of [...this.waiting.values()]) for (const w of [...queue]) w.wake()
  }

  /**
   * Shutdown: refuses new requests, ends listen streams, lets requests in flight finish for
   * at most the longest `shutdownGrace` of the servers, then ends every lane.
   */
  async close(): Promise<void> {
    this.closedAt = Date.now()
    this.reaper.stop()
    for (const fn of [...this.closers]) fn()
    const grace = Math.max(0, ...Object.values(this.o.config.servers).map((s) => s.shutdownGrace))
    await drain(() => this.busy, grace)
    this.finished = true
    this.wake()
    const all = [...this.lanes.values()].flat()
    this.lanes.clear()
    await Promise.all(all.map((l) => l.child.close()))
  }

  private async start(
    key: string,
    server: string,
    principal: Principal,
    log: Logger,
    accepted: number,
    credentials: ResolvedCredentials | undefined,
    holder: LaneUser,
  ): Promise<Lane> {
    const hold: Hold = { server, owner: ownerKey(principal) }
    this.starting.add(hold)
    const plain = holder !== HELD
    if (plain) this.startingPlain.set(key, (this.startingPlain.get(key) ?? 0) + 1)
    let started = false
    try {
      const config = this.o.config.servers[server]!
      const child = await this.o.source.process(server, principal, log, accepted, credentials)
      const timeout = initializeTimeout(config)
      let init: InitResult
      try {
        init = await initializeChild(child, timeout, LANE_CLIENT_CAPABILITIES)
        // Logs are filtered per request by the gateway (each names its own logLevel): the
        // process sends them all.
        if (
          init.capabilities !== null &&
          typeof init.capabilities === 'object' &&
          'logging' in init.capabilities
        ) {
          await exchange(child, 'logging/setLevel', { level: 'debug' }, timeout)
        }
      } catch (err) {
        await child.close()
        log.error(
          { err: { message: (err as Error).message } },
          'server process failed to initialize',
        )
        throw new BridgeError('spawn_failed', 'the MCP server could not be started', err)
      }
      // Past the shutdown grace the lanes are gone: this one must not outlive them.
      if (this.finished) {
        await child.close()
        throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
      }
      const cacheKey = this.cacheKey(server, key)
      if (!this.inits.has(cacheKey)) this.inits.set(cacheKey, init)
      const lane = new Lane(key, server, ownerKey(principal), child, init, (e) =>
        this.emit(e, lane),
      )
      // Held from the start: listed unheld, another request could take it first.
      this.take(lane, holder)
      const list = this.lanes.get(key) ?? []
      list.push(lane)
      this.lanes.set(key, list)
      child.onexit = () => this.lost(lane)
      log.debug({ pid: child.pid, lane: lane.id }, 'sessionless lane started')
      started = true
      return lane
    } finally {
      this.starting.delete(hold)
      if (plain) {
        const left = (this.startingPlain.get(key) ?? 1) - 1
        if (left === 0) this.startingPlain.delete(key)
        else this.startingPlain.set(key, left)
      }
      // A start that failed frees its place under the bounds; one for a plain request has
      // room for those waiting to join it.
      if (!started || plain) this.wake()
    }
  }

  /**
   * Ends a lane's process, forgotten first: a closing lane is never handed out, and a view of a
   * shared process (whose close fires no exit) is forgotten all the same.
   */
  private retire(lane: Lane): Promise<void> {
    this.lost(lane)
    let closing = this.ending.get(lane)
    if (closing === undefined) {
      closing = lane.child.close().finally(() => {
        this.ending.delete(lane)
        this.wake()
      })
      this.ending.set(lane, closing)
    }
    return closing
  }

  /** Forgets a lane whose process is gone or going; whoever used it hears so. */
  private lost(lane: Lane): void {
    const list = this.lanes.get(lane.key)
    if (list !== undefined) {
      const i = list.indexOf(lane)
      if (i !== -1) list.splice(i, 1)
      if (list.length === 0) this.lanes.delete(lane.key)
    }
    if (
      this.lanesEnded.size > 0 &&
      ![...this.lanes.values()].some((l) =>
        l.some((x) => x.server === lane.server && x.owner === lane.owner),
      )
    ) {
      for (const fn of this.lanesEnded) fn(lane.server, lane.owner)
    }
    for (const user of lane.takeUsers()) user.lost()
    for (const pin of [...lane.pins]) pin()
    lane.pins.clear()
    this.wake()
  }

  private emit(event: LaneEvent, lane: Lane): void {
    if (event.method === 'notifications/tools/list_changed')
      this.schemas.delete(this.cacheKey(event.server, lane.key))
    if (this.o.config.servers[event.server]?.mode === 'shared') {
      // A shared process tells every view of it at once: one event per principal, not per lane.
      const once = `${event.owner}\n${event.method}\n${JSON.stringify(event.params ?? null)}`
      if (this.recent.has(once)) return
      this.recent.add(once)
      if (this.recent.size === 1) setImmediate(() => this.recent.clear())
    }
    for (const fn of this.listeners) fn(event)
  }

  private reap(): void {
    const now = Date.now()
    for (const list of [...this.lanes.values()]) {
      for (const lane of [...list]) {
        const idle = Math.min(
          this.limits.laneIdle,
          this.o.config.servers[lane.server]?.idleTimeout || this.limits.laneIdle,
        )
        if (lane.busy || lane.pins.size > 0 || now - lane.lastUsed <= idle) continue
        void this.retire(lane)
      }
    }
  }
}
