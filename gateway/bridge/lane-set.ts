import type { Logger } from 'pino'
import type { GatewayConfig } from '../config/schema.js'
import type { Hold, Scope } from './bounds.js'
import { EndingHolds } from './ending-holds.js'
import { HoldCounts } from './hold-counts.js'
import { HELD, type Lane, type LaneUser } from './lane.js'
import type { LaneEvents } from './lane-events.js'

/**
 * The lanes of every key, live, starting or ending: what they count toward the bounds, which
 * one a request may take, and how they end (idle, stale credentials, reclaimed, process gone).
 *
 * A lane counts toward the bounds from its start until its process is gone (ending-holds.ts),
 * as a session does (registry.ts): the bounds cap the processes a subject holds, and a dead one
 * holds its process until then. Dead (it exited or its stdin broke), it is leased no more but
 * still live while its stdout is read (`onexit`); then it is ended like a retired lane, counted
 * until it is gone (the stop ladder on its group, what it started, over).
 */
export class LaneSet {
  /** Live lanes by key. */
  private readonly lanes = new Map<string, Lane[]>()
  /**
   * The same lists by (server, owner) (`pairOf`), then key: what a request counts against its
   * cap is its own lanes, not every principal's.
   */
  private readonly pairs = new Map<string, Map<string, Lane[]>>()
  private live = 0
  /** Lanes whose process is being taken: they count toward every bound already. */
  private readonly starting = new Set<Hold>()
  /** How many of `starting` each (server, owner) has. */
  private readonly startingOf = new Map<string, number>()
  /** Lanes being started for a plain request, per key: other plain requests wait to join them. */
  readonly startingPlain = new Map<string, number>()
  /**
   * `count` of every scope a bound names: live, starting and ending lanes, kept as each enters
   * or leaves one of the three.
   */
  private readonly held = new HoldCounts()
  /** Lanes whose process is being ended: they count toward the bounds until it is gone. */
  private readonly ending: EndingHolds<Lane>

  constructor(
    private readonly o: {
      config: GatewayConfig
      /** Plain requests one lane runs at once (limits.sessionless.lanePlainConcurrency). */
      plainConcurrency: number
      log: Logger
      /** Told when a principal's last lane of a server is gone. */
      events: LaneEvents
      /** A lane was released, ended or forgotten: waiting requests look again. */
      changed(): void
      /** A lane was added: the idle reaper watches from now on. */
      added?(): void
    },
  ) {
    this.ending = new EndingHolds(this.held, () => this.o.changed())
  }

  get size(): number {
    return this.live
  }

  /** Whether any lane is in use (a request, a waiting round). */
  get busy(): boolean {
    for (const list of this.lanes.values()) if (list.some((l) => l.busy)) return true
    return false
  }

  /** Whether `owner` has a live lane of `server`. */
  has(server: string, owner: string): boolean {
    return this.pairs.has(pairOf(server, owner))
  }

  add(lane: Lane): void {
    let list = this.lanes.get(lane.key)
    if (list === undefined) {
      list = []
      this.lanes.set(lane.key, list)
      const pair = pairOf(lane.server, lane.owner)
      const keys = this.pairs.get(pair) ?? new Map<string, Lane[]>()
      keys.set(lane.key, list)
      this.pairs.set(pair, keys)
    }
    list.push(lane)
    this.live++
    this.held.add(lane)
    // Gone from the lanes, counted until its group is stopped too.
    lane.child.onexit = () => void this.retire(lane)
    this.o.added?.()
  }

  /** Every live lane, forgotten (shutdown). */
  takeAll(): Lane[] {
    const all = [...this.lanes.values()].flat()
    for (const lane of all) this.held.remove(lane)
    this.lanes.clear()
    this.pairs.clear()
    this.live = 0
    return all
  }

  /** A lane of `hold` is being started: it counts as running, and toward every bound, from now. */
  begin(hold: Hold): void {
    if (this.starting.has(hold)) return
    this.starting.add(hold)
    this.held.add(hold)
    const pair = pairOf(hold.server, hold.owner)
    this.startingOf.set(pair, (this.startingOf.get(pair) ?? 0) + 1)
  }

  /** The start `begin` counted is over: its lane is live (`add`), or none came. */
  end(hold: Hold): void {
    if (!this.starting.delete(hold)) return
    this.held.remove(hold)
    const pair = pairOf(hold.server, hold.owner)
    const left = (this.startingOf.get(pair) ?? 1) - 1
    if (left === 0) this.startingOf.delete(pair)
    else this.startingOf.set(pair, left)
  }

  /**
   * Lanes in `scope` running a request (alone, or plain ones) or starting for one: each will be
   * released. `requests`: count each plain request on a shared lane instead.
   */
  running(scope: Scope, requests = false): number {
    let n = 0
    for (const list of this.lanes.values())
      for (const l of list) if (scope(l)) n += runs(l, requests)
    for (const h of this.starting) if (scope(h)) n++
    return n
  }

  /**
   * `running` of `owner`'s lanes of `server` (a lane shared by plain requests is one), from
   * their own lanes only: what every request that is not joining a shared lane counts.
   */
  runningOf(server: string, owner: string): number {
    const pair = pairOf(server, owner)
    let n = this.startingOf.get(pair) ?? 0
    for (const list of this.pairs.get(pair)?.values() ?? [])
      for (const l of list) n += runs(l, false)
    return n
  }

  /**
   * A lane of `key` `holder` may take now: for a plain request one already running plain ones
   * with room left (so they share one process), else an unused one; for any other, an unused one.
   */
  pick(
    key: string,
    holder: LaneUser,
    fits: (lane: Lane, holder: LaneUser) => boolean = (l, h) => this.fits(l, h),
  ): Lane | undefined {
    let unused: Lane | undefined
    for (const l of this.lanes.get(key) ?? []) {
      if (!fits(l, holder)) continue
      if (l.plain.size > 0) return l
      unused ??= l
    }
    return unused
  }

  /** Whether `holder` may take `lane` now (a request alone: unused; plain: room among plain ones). */
  fits(lane: Lane, holder: LaneUser): boolean {
    if (lane.user !== undefined || !lane.child.alive) return false
    if (holder === HELD) return lane.plain.size === 0 && !lane.abandoned
    const room = lane.asked ? 1 : this.o.plainConcurrency
    return !lane.stale && lane.plain.size < room
  }

  /** Lanes in `scope`, live (running, parked or idle), starting, or ending. */
  count(scope: Scope): number {
    if (scope.where !== undefined) return this.held.of(scope.where)
    let n = 0
    for (const list of this.lanes.values()) for (const l of list) if (scope(l)) n++
    for (const h of this.starting) if (scope(h)) n++
    return n + this.ending.count(scope)
  }

  /** When each lane in `scope` being ended is gone (none: none is). */
  endingIn(scope: Scope): Promise<void>[] {
    return this.ending.ending(scope)
  }

  /** See LanePool.reclaimIdle. */
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

  /**
   * A user's credentials changed (a secret set, rotated or deleted, a token renewed): their
   * lanes started with the old values end at a request boundary, now if idle, else when
   * released. One holding resource subscriptions ends too (their holders are told, as when a
   * process exits): a subscription never keeps a value the user changed or deleted running, as
   * a session's process is replaced with its subscriptions (session.ts replaceChild).
   */
  retireStale(server: string, owner: string, current: string): void {
    // The same server, principal and identity; other values (`\n#<fingerprint>` ends a key,
    // then ` <client> <user's own values>` when a client's own token was exchanged).
    const [base, values = ''] = current.split('\n#')
    const [, by, shared] = values.split(' ')
    const keys = this.pairs.get(pairOf(server, owner))
    if (keys === undefined) return
    for (const [key, list] of [...keys]) {
      const [keyBase, keyValues = ''] = key.split('\n#')
      if (key === current || keyBase !== base) continue
      // Another client's process holds what was exchanged for that client: stale only when
      // the user's own values (a secret deleted or set) differ.
      const [, keyBy, keyShared] = keyValues.split(' ')
      if (by !== undefined && keyBy !== undefined && keyBy !== by && keyShared === shared) continue
      for (const lane of [...list]) {
        if (lane.busy) lane.stale = true
        else void this.retire(lane)
      }
    }
  }

  /**
   * Ends a lane's process, forgotten first: a closing lane is never handed out, and a view of a
   * shared process (whose close fires no exit) is forgotten all the same. Counted until its
   * process is gone (`goneOf`); resolves then.
   */
  retire(lane: Lane): Promise<void> {
    this.lost(lane)
    void lane.child.close()
    return this.ending.add(lane, lane.child)
  }

  /** Ends the lanes unused for longer than their idle timeout (the reaper's sweep). */
  reap(laneIdle: number): void {
    const now = Date.now()
    for (const list of [...this.lanes.values()]) {
      for (const lane of [...list]) {
        const idle = Math.min(laneIdle, this.o.config.servers[lane.server]?.idleTimeout || laneIdle)
        if (lane.busy || lane.pins.size > 0 || now - lane.lastUsed <= idle) continue
        void this.retire(lane)
      }
    }
  }

  /** Forgets a lane whose process is gone or going; whoever used it hears so. */
  private lost(lane: Lane): void {
    const list = this.lanes.get(lane.key)
    const i = list?.indexOf(lane) ?? -1
    if (list !== undefined && i !== -1) {
      list.splice(i, 1)
      this.live--
      this.held.remove(lane)
      if (list.length === 0) {
        this.lanes.delete(lane.key)
        const pair = pairOf(lane.server, lane.owner)
        const keys = this.pairs.get(pair)
        keys?.delete(lane.key)
        if (keys?.size === 0) this.pairs.delete(pair)
      }
    }
    const { events } = this.o
    if (events.watchingEnds && !this.has(lane.server, lane.owner))
      events.lanesGone(lane.server, lane.owner)
    for (const user of lane.takeUsers()) user.lost()
    // Its users' timeouts ended with them: the lane's timer goes now, not when next due.
    lane.timeouts.release()
    for (const pin of [...lane.pins]) pin()
    lane.pins.clear()
    this.o.changed()
  }
}

/** The index of `server` and `owner`'s lanes (as lane-waiters.ts names its queues). */
function pairOf(server: string, owner: string): string {
  return `${server}\n${owner}`
}

/**
 * What a lane counts as running: 1 for a request alone (not parked between rounds), 1 for
 * plain ones sharing it (each, with `requests`), else 0.
 */
function runs(l: Lane, requests: boolean): number {
  if (l.user !== undefined && !l.parked) return 1
  if (l.plain.size > 0) return requests ? l.plain.size : 1
  return 0
}

/** Holds `lane` for `holder`: alone (HELD), or as one more plain request's share. */
export function take(lane: Lane, holder: LaneUser): void {
  if (holder === HELD) lane.user = HELD
  else lane.plain.add(holder)
}

/**
 * The call that runs on a lease, from now on its holder (`release` names it): alone, it hears
 * every message of the process; as a plain request, the reply with `id`.
 */
export function assign(lease: { lane: Lane; holder: LaneUser }, call: LaneUser, id: string): void {
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
