import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import type { Holders, Scope, SubjectBounds } from './bounds.js'
import type { InitResult } from './handshake.js'
import { HELD, type Lane, type LaneEvent, type LaneUser } from './lane.js'
import { LaneCatalog, laneRequest } from './lane-catalog.js'
import { LaneEvents } from './lane-events.js'
import { type Lease, LaneLeases } from './lane-leases.js'
import { assign, LaneSet } from './lane-set.js'
import { laneKey, type ProcessSource } from './lane-start.js'
import { LaneWaiters } from './lane-waiters.js'
import { drain, startReaper, type Reaper } from './lifecycle.js'
import { ownerKey } from './session.js'
import type { GoneSignal } from './gone.js'

export type { Lease } from './lane-leases.js'
export type { ProcessSource } from './lane-start.js'

/**
 * The lanes of every (server, principal): a principal's sessionless requests never share a
 * process with another principal's (a `shared` server's lanes are views of its one process,
 * as its sessions are). A request takes a free lane of its principal, else a new one up to
 * `limits.sessionless.lanesPerSubject` running and within the bounds it shares with sessions
 * (idle and parked lanes count there), else waits for one. Idle lanes end after a while.
 * This is the engine's face; lane-leases.ts finds lanes, lane-set.ts keeps and ends them,
 * lane-waiters.ts queues requests, lane-events.ts and lane-catalog.ts serve what processes say.
 */
export class LanePool implements Holders {
  private readonly lanes: LaneSet
  private readonly waiting = new LaneWaiters()
  private readonly events: LaneEvents
  private readonly catalog: LaneCatalog
  private readonly leases: LaneLeases
  private readonly reaper: Reaper

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
    const limits = o.config.limits.sessionless
    this.limits = limits
    this.events = new LaneEvents(limits.listensPerSubject)
    this.catalog = new LaneCatalog(o.config, limits)
    this.events.onLanesEnded((server, owner) => this.catalog.forget(server, owner))
    this.lanes = new LaneSet({
      config: o.config,
      plainConcurrency: limits.lanePlainConcurrency,
      log: o.log,
      events: this.events,
      changed: () => this.waiting.wakeAll(),
      added: () => this.reaper.watch(),
    })
    this.leases = new LaneLeases({
      ...o,
      lanes: this.lanes,
      waiters: this.waiting,
      catalog: this.catalog,
      limits,
      events: this.events,
      cap: (server) => this.laneCap(server),
    })
    this.reaper = startReaper(
      [limits.laneIdle, ...Object.values(o.config.servers).map((c) => c.idleTimeout)],
      () => {
        this.lanes.reap(limits.laneIdle)
        return this.lanes.size > 0
      },
    )
    o.bounds.join({ lanes: this })
  }

  /** Whether any lane is in use (a request, a waiting round) or being started for one. */
  get busy(): boolean {
    return this.leases.acquiring > 0 || this.lanes.busy
  }

  /** Requests waiting for a lane to free up, per server. */
  waiters(): Map<string, number> {
    return this.waiting.perServer()
  }

  /** Requests running on a server's lanes (or starting one), every principal's. */
  inFlight(server: string): number {
    return this.lanes.running((h) => h.server === server, true)
  }

  /** Live lanes, all servers. */
  get size(): number {
    return this.lanes.size
  }

  /**
   * The initialize result of a server's processes, if one has started yet. With `identityEnv`
   * each principal's processes may answer differently, so each has its own.
   */
  initOf(server: string, principal: Principal): InitResult | undefined {
    return this.catalog.init(server, laneKey(this.o.source, server, principal), principal)
  }

  /**
   * The identity a process of `server` is started with for `principal` under `identityEnv`
   * (client and scopes; undefined without): processes of two identities may answer differently.
   */
  identityOf(server: string, principal: Principal): string | undefined {
    return this.o.source.identityOf(server, principal)
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
    return this.events.listen(server, ownerKey(principal), fn, onClose)
  }

  /** Open listen streams, all servers and principals. */
  get listenStreams(): number {
    return this.events.streams
  }

  /**
   * Calls `fn` when a principal's last process of a server is gone: what the gateway keeps
   * about that principal's own process of it (an endpoint's per-user lists) can go too.
   */
  onLanesEnded(fn: (server: string, owner: string) => void): () => void {
    return this.events.onLanesEnded(fn)
  }

  /**
   * The gateway's own listener to every lane's server events (an endpoint's list caches);
   * unbounded, uncounted. A shared process's event is heard once, not once per principal.
   */
  onEvent(fn: (event: LaneEvent) => void): () => void {
    return this.events.onEvent(fn)
  }

  /**
   * The gateway's own listener to the server events of one principal's lanes (`owner`, an
   * ownerKey: an endpoint session's); unbounded, uncounted.
   */
  onEventOf(owner: string, fn: (event: LaneEvent) => void): () => void {
    return this.events.onEventOf(owner, fn)
  }

  /**
   * Sends the gateway's own request on a held lane and waits for its reply (undefined when the
   * process exits or stays silent past `timeoutMs`).
   */
  readonly request = laneRequest

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
    const key = laneKey(this.o.source, server, principal, credentials)
    const lease = { key, server, principal, log, accepted, signal, credentials }
    return (await this.leases.hold(lease, HELD)).lane
  }

  /**
   * `acquire` for a caller as the sessionless engine knows it (who, their log, when their
   * request arrived, and the signal of their going away, when it should cancel the lease).
   * `plain`: the request may share a lane with other plain ones (modern-call.ts `isPlain`);
   * its share is the lease's holder until `assign` names the call that runs.
   */
  lease(
    server: string,
    caller: { principal: Principal; log: Logger; accepted: number; signal?: GoneSignal },
    credentials?: ResolvedCredentials,
    plain = false,
  ): Promise<Lease> {
    const key = laneKey(this.o.source, server, caller.principal, credentials)
    const holder: LaneUser = plain ? { fromServer() {}, lost() {} } : HELD
    return this.leases.hold({ key, server, ...caller, credentials }, holder)
  }

  /**
   * The caller's credentials are now `credentials` (a secret deleted, and the request asking for
   * it refused without a lease): their lanes of `server` started with other values end, now if
   * idle, else when released, as a lease with the new values would end them.
   */
  retireStale(server: string, principal: Principal, credentials: ResolvedCredentials): void {
    const key = laneKey(this.o.source, server, principal, credentials)
    this.lanes.retireStale(server, ownerKey(principal), key)
  }

  /**
   * The call that runs on a lease, from now on its holder (`release` names it): alone, it
   * hears every message of the process; as a plain request, the reply with `id`.
   */
  readonly assign = assign

  /** Lanes in `scope`, live (running, parked or idle), starting, or ending. */
  count(scope: Scope): number {
    return this.lanes.count(scope)
  }

  /** When each lane in `scope` being ended is gone (none: none is). */
  ending(scope: Scope): Promise<void>[] {
    return this.lanes.endingIn(scope)
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
  reclaimIdle(scope: Scope, reason: string): Promise<boolean> {
    return this.lanes.reclaimIdle(scope, reason)
  }

  /** The tool schemas of a server as the principal's processes have them, if already read. */
  knownToolSchemas(server: string, principal: Principal): Map<string, unknown> | undefined {
    return this.catalog.knownSchemas(server, laneKey(this.o.source, server, principal), principal)
  }

  /**
   * The input schema of each tool of a server as `principal`'s processes have them, read with
   * `tools/list` on `lane` (theirs, held) when not known yet: a session-mode process's tools
   * are its user's own (it may register tools as it runs), a shared process's everyone's.
   */
  toolSchemas(lane: Lane, principal: Principal): Promise<Map<string, unknown>> {
    return this.catalog.toolSchemas(lane, principal)
  }

  /**
   * Gives a lane back: the next request of its principal may take it. With `holder`, only if
   * that holder still has it (a late release must not free a lane someone else now uses).
   */
  release(lane: Lane, holder?: LaneUser): void {
    this.leases.release(lane, holder)
  }

  /**
   * Shutdown: refuses new requests, ends listen streams, lets requests in flight finish for
   * at most the longest `shutdownGrace` of the servers, then ends every lane.
   */
  async close(): Promise<void> {
    this.leases.closedAt = Date.now()
    this.reaper.stop()
    this.events.close()
    const grace = Math.max(0, ...Object.values(this.o.config.servers).map((s) => s.shutdownGrace))
    await drain(() => this.busy, grace)
    this.leases.finished = true
    this.waiting.wakeAll()
    await Promise.all(this.lanes.takeAll().map((l) => l.child.close()))
  }
}
