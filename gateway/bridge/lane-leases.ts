import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import type { Bound, Hold, SubjectBounds } from './bounds.js'
import { BridgeError } from './errors.js'
import { HELD, Lane, type LaneUser } from './lane.js'
import type { LaneCatalog } from './lane-catalog.js'
import type { LaneEvents } from './lane-events.js'
import { type LaneSet, take } from './lane-set.js'
import { type ProcessSource, startLaneProcess } from './lane-start.js'
import type { LaneWaiters } from './lane-waiters.js'
import { ownerKey } from './session.js'
import type { GoneSignal } from './gone.js'

/** A lane held for a request: `holder` gives it back (`release`). */
export interface Lease {
  lane: Lane
  /** HELD for a request holding the lane alone, else the plain request's share. */
  holder: LaneUser
}

/** Who asks for a lane: of which key, on which server, for whom, since when, until when. */
export interface LeaseAsk {
  key: string
  server: string
  principal: Principal
  log: Logger
  /** When the HTTP request arrived. */
  accepted: number
  /** The client's going away, which cancels the lease. */
  signal?: GoneSignal
  credentials?: ResolvedCredentials
}

/**
 * How a request gets a lane and gives it back: a free lane of its key, a share of one running
 * plain requests, a new one within its principal's lanes and the bounds it shares with
 * sessions, or a place in the queue; a released lane goes straight to the oldest waiter that
 * fits there.
 */
export class LaneLeases {
  /** Requests looking for a lane (or starting one): shutdown waits for them. */
  acquiring = 0
  /** Shutdown ended: every lane was closed. */
  finished = false
  /** When shutdown began: requests accepted since get no lane. */
  closedAt: number | undefined

  constructor(
    private readonly o: {
      config: GatewayConfig
      source: ProcessSource
      bounds: SubjectBounds
      lanes: LaneSet
      waiters: LaneWaiters
      catalog: LaneCatalog
      limits: GatewayConfig['limits']['sessionless']
      /** Lanes one principal may run at once on a server. */
      cap(server: string): number
      /** Who hears the server events of a lane's process. */
      events: LaneEvents
      /** The lanes' own logger: a lane's process logs under it once started. */
      log: Logger
    },
  ) {}

  /**
   * A lane for `ask`, held with `holder`: HELD (alone) or a plain request's share.
   * @throws BridgeError `too_many_sessions`, `subject_session_limit`, `client_gone`, `spawn_failed`,
   * `shared_crash_limit` (429) for a subject that crashed the shared process too often
   */
  async hold(ask: LeaseAsk, holder: LaneUser): Promise<Lease> {
    // A request the gateway accepted before shutdown began is still served (within the grace).
    if (this.closedAt !== undefined && ask.accepted >= this.closedAt)
      throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
    // Past its share of a shared process's exits: refused before any lane, one it holds
    // already (left running on another replica) too, so that the refusal is this request's
    // 429, audited once by whoever answers it, not the process's answer (channel.ts).
    if (this.o.config.servers[ask.server]?.mode === 'shared')
      this.o.source.sharedCrashes?.check(ask.server, ask.principal, 'initialize')
    // A request already here when shutdown begins is waited for, even while its lane starts.
    this.acquiring++
    try {
      if (ask.credentials !== undefined)
        this.o.lanes.retireStale(ask.server, ownerKey(ask.principal), ask.key)
      const { lane, started } = await this.acquire(ask, holder)
      // The client left while its lane was found or started: nothing may run for it.
      if (ask.signal?.aborted) {
        this.release(lane, holder)
        throw new BridgeError('client_gone', 'the client disconnected')
      }
      // Plain requests that waited to join the lane this one started look again only now, its
      // lease resolving first: they came after it, and are served after it (arrival order).
      if (started && holder !== HELD) this.o.waiters.wakeAll()
      return { lane, holder }
    } finally {
      this.acquiring--
    }
  }

  /**
   * A lane of `ask.key` for `holder`: taken, shared, started, or waited for (laneWait at most).
   * @throws BridgeError `too_many_sessions`, `subject_session_limit`, `client_gone`, `spawn_failed`
   */
  private async acquire(
    ask: LeaseAsk,
    holder: LaneUser,
  ): Promise<{ lane: Lane; started: boolean }> {
    const { lanes, waiters, limits, bounds } = this.o
    const { key, server, principal, signal } = ask
    const owner = ownerKey(principal)
    const deadline = Date.now() + limits.laneWait
    for (;;) {
      if (this.finished)
        throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
      // A plain request joining a lane that already runs plain ones adds no process: within
      // the lane's room (lanePlainConcurrency) no bound is passed.
      const shared = holder === HELD ? undefined : this.pick(key, holder)
      if (shared !== undefined && shared.plain.size > 0) {
        take(shared, holder)
        return { lane: shared, started: false }
      }
      // Lanes running at once, over every identity and credential of the principal (a lane
      // shared by plain requests is one). Rounds waiting for their client's answers do not
      // count here: the bounds below end the oldest.
      const cap = this.o.cap(server)
      let full: Bound | undefined
      if (lanes.runningOf(server, owner) < cap) {
        const free = this.pick(key, holder)
        if (free !== undefined) {
          take(free, holder)
          return { lane: free, started: false }
        }
        // A lane starting for plain requests will have room: a plain one waits to join it (a
        // burst of them starts one process, not one each), when it may wait at all.
        const join =
          holder !== HELD &&
          (lanes.startingPlain.get(key) ?? 0) > 0 &&
          deadline > Date.now() &&
          waiters.count(server, owner) < limits.laneWaiters
        if (!join) {
          // A server failing to start: refused inside its window, and its probe waited for
          // before a place under the bounds is taken (a wait holds none of the others').
          const starts = this.o.source.starts
          const starter = { principal, fingerprint: ask.credentials?.fingerprint }
          if (starts?.isFailing(server, starter)) {
            await starts.waitOut(server, starter)
            continue
          }
          // Past the subject's process-start budget: refused before room is made at a bound,
          // which ends another user's idle session, for a start refused anyway.
          // (A shared server's is checked in hold: there is no start to count there.)
          if (this.o.config.servers[server]?.mode !== 'shared')
            this.o.source.processStarts?.check(server, principal)
          full = bounds.full(server, owner, 'lane')
          // Counted as starting in this same turn: concurrent requests cannot all pass.
          if (full === undefined) return { lane: await this.start(ask, holder), started: true }
          if (await bounds.makeRoom(full, owner, 'session limit')) continue
          // Nothing to end: a request running in the bound's scope will free a process; else
          // there is nothing to wait for.
          if (lanes.running(full.scope) === 0) throw full.refuse()
        }
      }
      const left = deadline - Date.now()
      if (left <= 0 || waiters.count(server, owner) >= limits.laneWaiters)
        throw (
          full?.refuse() ??
          BridgeError.limited(
            'too_many_sessions',
            `you have ${cap} requests in progress on ${server}, the most allowed; retry later`,
            cap < limits.lanesPerSubject
              ? `servers.${server}.maxSessionsPerSubject`
              : 'limits.sessionless.lanesPerSubject',
          )
        )
      if (signal?.aborted) throw new BridgeError('client_gone', 'the client disconnected')
      const handed = await waiters.wait(server, owner, key, holder, left, signal)
      // Handed a lane as it was released (held for this request already): nothing to look for.
      if (handed !== undefined) return { lane: handed, started: false }
    }
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
    // Started with credentials that have changed since (its subscriptions end with it: lane-set.ts
    // retireStale), or maybe still running a call whose client left: ended at this request boundary.
    if (!lane.busy && (lane.stale || (lane.abandoned && lane.pins.size === 0)))
      void this.o.lanes.retire(lane)
    else if (this.handOff(lane)) return
    this.o.waiters.wakeAll()
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
    return this.o.waiters.handOff(lane, (l, h) => this.fits(l, h), take)
  }

  /**
   * Whether `holder` may take `lane` now. A plain request never overtakes one that must run
   * alone and waits ahead of it: plain ones arriving all the time would otherwise keep every
   * lane busy, and that one waiting until its laneWait ran out. Once it waits, the lanes it may
   * take drain, and the oldest waiter of a lane's key is handed it as it empties.
   */
  private fits(lane: Lane, holder: LaneUser): boolean {
    if (!this.o.lanes.fits(lane, holder)) return false
    return holder === HELD || !this.o.waiters.aloneAhead(lane.server, lane.owner, holder)
  }

  /** A lane of `key` `holder` may take now (see LaneSet.pick, with `fits` above). */
  private pick(key: string, holder: LaneUser): Lane | undefined {
    return this.o.lanes.pick(key, holder, (l, h) => this.fits(l, h))
  }

  private async start(ask: LeaseAsk, holder: LaneUser): Promise<Lane> {
    const { lanes, catalog } = this.o
    const { key, server, principal, log } = ask
    const hold: Hold = { server, owner: ownerKey(principal) }
    lanes.begin(hold)
    const plain = holder !== HELD
    if (plain) lanes.startingPlain.set(key, (lanes.startingPlain.get(key) ?? 0) + 1)
    let started = false
    try {
      const { child, init } = await startLaneProcess(this.o, ask)
      // Past the shutdown grace the lanes are gone: this one must not outlive them.
      if (this.finished) {
        await child.close()
        throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
      }
      catalog.initialized(server, key, principal, init)
      const shared = this.o.config.servers[server]?.mode === 'shared'
      const lane = new Lane(key, server, ownerKey(principal), child, init, (event) => {
        if (event.method === 'notifications/tools/list_changed')
          catalog.forgetSchemas(event.server, key, principal)
        this.o.events.emit(event, shared)
      })
      // Its process served the request that started it; from now on it serves whoever holds
      // the lane: its log lines name the lane, not that request (whose context the request's
      // logger would also keep alive for the lane's life).
      child.retag(this.o.log.child({ server, lane: lane.id }))
      // Held from the start: listed unheld, another request could take it first.
      take(lane, holder)
      lanes.add(lane)
      log.debug({ pid: child.pid, lane: lane.id }, 'sessionless lane started')
      started = true
      return lane
    } finally {
      lanes.end(hold)
      if (plain) {
        const left = (lanes.startingPlain.get(key) ?? 1) - 1
        if (left === 0) lanes.startingPlain.delete(key)
        else lanes.startingPlain.set(key, left)
      }
      // A start that failed frees its place under the bounds. (One for a plain request has room
      // for those waiting to join it: they look again once its lease is out, in `hold`.)
      if (!started) this.o.waiters.wakeAll()
    }
  }
}
