import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { BridgeError } from './errors.js'
import { ownerKey } from './session.js'
import { leaveWindow } from './sliding-window.js'

/*
 * The bounds (bounds.ts) cap how many processes a subject holds at once, not how often it
 * makes the gateway start one: a client that opens and DELETEs sessions, cancels sessionless
 * calls (each retires its lane's process) or changes a secret in a loop costs a spawn
 * (~200-300 ms of CPU) each time while holding one process. This budget counts each process
 * started or handed out for a subject (iss+sub) and refuses the next one past
 * `limits.processStartsPerSubject` within `limits.processStartsWindow` (a sliding window) with
 * 429 and Retry-After: the seconds until the oldest start in the window leaves it. The warm
 * processes a session's demand adds to a pool (`pool.burst`) are counted as that subject's
 * too, as far as its budget goes (past it the pool is not raised). Shared-mode processes serve
 * everyone and are not counted. Per replica, in memory: processes are a
 * replica's own, so is what they cost.
 */

const NOTHING = () => {}

const startedAt = (t: number) => t

/** The rule a refusal names in the audit log (its request's line: bridge/refused.ts). */
export const PROCESS_STARTS_RULE = 'limits.processStartsPerSubject'

/**
 * Each subject's process starts within the window, oldest first. The map is ordered by each
 * subject's latest start, so subjects whose window is over are swept from its front.
 */
export class ProcessStarts {
  private readonly starts = new Map<string, number[]>()
  private readonly now: () => number

  constructor(
    private readonly o: {
      config: GatewayConfig
      log: Logger
      metrics?: Metrics
      /** The clock the window is measured with (ms); default: a monotonic one. */
      now?: () => number
    },
  ) {
    // A window is a duration: the wall clock set back (NTP stepping, a VM resumed) would keep
    // a subject at its budget refused for as long as it went back, with a Retry-After that long.
    this.now = o.now ?? (() => performance.now())
  }

  /**
   * Counts a process of `server` started (or taken from the warm pool) for `principal`, or
   * refuses it: counted, logged, and thrown before any process is spawned (audited by whoever
   * answers the request that needed it, with that request's method: refused.ts). Gives back the
   * count's undoing, for a start refused with no process tried (a pool at `pool.max`).
   * @throws BridgeError `process_start_limit` (429, `retryAfter` seconds)
   */
  take(server: string, principal: Principal): () => void {
    return this.admit(server, principal, true)
  }

  /**
   * Refuses at once, counting nothing, when a start for `principal` would be refused now: a
   * caller with work to do before its start (resolving the user's credentials) is spared it.
   * @throws BridgeError `process_start_limit` (429, `retryAfter` seconds)
   */
  check(server: string, principal: Principal): void {
    this.admit(server, principal, false)
  }

  /**
   * Counts up to `n` starts for `principal` within its budget, never refusing: the warm
   * processes its session made the pool add (pool.ts `demand`), which are raised only as far
   * as they are paid. Gives back how many were counted (`n` with no limit).
   */
  spend(principal: Principal, n: number): number {
    const max = this.o.config.limits.processStartsPerSubject
    if (max === 0) return n
    const { now, owner, times } = this.inWindow(principal)
    const paid = Math.max(0, Math.min(n, max - times.length))
    if (paid === 0) return 0
    for (let i = 0; i < paid; i++) times.push(now)
    this.latest(owner, times)
    return paid
  }

  private admit(server: string, principal: Principal, count: boolean): () => void {
    const { processStartsPerSubject: max, processStartsWindow: window } = this.o.config.limits
    if (max === 0) return NOTHING
    const { now, owner, times } = this.inWindow(principal)
    if (times.length >= max) {
      const retryAfter = Math.max(1, Math.ceil((times[0]! + window - now) / 1000))
      this.refused(server, principal, retryAfter)
      throw BridgeError.limited(
        'process_start_limit',
        `you started ${max} server processes in ${window / 1000} s, the most allowed; retry in ${retryAfter} s`,
        PROCESS_STARTS_RULE,
        retryAfter,
      )
    }
    if (!count) return NOTHING
    times.push(now)
    this.latest(owner, times)
    // Undone in place: an entry left later in the map than its latest start now says is only
    // swept later, once those before it are.
    return () => {
      if (this.starts.get(owner) !== times) return
      const i = times.lastIndexOf(now)
      if (i !== -1) times.splice(i, 1)
      if (times.length === 0) this.starts.delete(owner)
    }
  }

  /** `principal`'s starts still in the window now (the map swept of subjects without any). */
  private inWindow(principal: Principal): { now: number; owner: string; times: number[] } {
    const window = this.o.config.limits.processStartsWindow
    const now = this.now()
    this.sweep(now - window)
    const owner = ownerKey(principal)
    const times = this.starts.get(owner) ?? []
    leaveWindow(times, now, window, startedAt)
    return { now, owner, times }
  }

  /** Latest start last: the front of the map holds the subjects longest without one. */
  private latest(owner: string, times: number[]): void {
    this.starts.delete(owner)
    this.starts.set(owner, times)
  }

  /** Subjects with a start in the window now, for tests and the log. */
  get size(): number {
    this.sweep(this.now() - this.o.config.limits.processStartsWindow)
    return this.starts.size
  }

  /** Forgets the subjects whose latest start is at or before `before`: nothing of theirs counts. */
  private sweep(before: number): void {
    for (const [owner, times] of this.starts) {
      if (times[times.length - 1]! > before) break
      this.starts.delete(owner)
    }
  }

  private refused(server: string, principal: Principal, retryAfter: number): void {
    this.o.metrics?.processStartsRefused.inc({ server })
    this.o.log.info(
      { server, sub: principal.sub, retryAfter },
      'process start refused: the subject started the most processes allowed in the window',
    )
  }
}
