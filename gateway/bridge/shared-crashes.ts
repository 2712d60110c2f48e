import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { BridgeError } from './errors.js'
import { ownerKey } from './session.js'
import { leaveWindow } from './sliding-window.js'

/*
 * A shared process serves every user: when it exits, every session on it ends and every
 * request in flight on it fails. It restarts with a backoff that only shrinks once a start
 * served `respawnStableAfter` (replica.ts), so a crash loop slows down for everyone; this
 * budget finds who keeps crashing it and refuses them alone.
 *
 * Who is blamed. The gateway cannot see which message made a process exit. Each exit is one
 * charge, divided equally among the distinct subjects (iss+sub) with a request in flight on
 * the process then, counting requests they cancelled (or left by closing their session) for
 * `requestTimeout` after the cancel, answered or not (replica.ts): a cancel sent right after the
 * crashing call must not hide it, one long past must not charge its user. A
 * subject whose charges within `limits.sharedCrashesWindow` (sliding) reach
 * `limits.sharedCrashesPerSubject` gets 429 with Retry-After on its next requests to that
 * server (new sessions, sessionless requests, endpoints, and requests on a session another
 * replica of the process still serves) until enough of its charges leave the window.
 *
 * Why divided, not charged whole nor only to a subject alone in flight: whoever crashes the
 * process is in flight at every exit it causes, a bystander only at some, and a bystander's
 * share of an exit is never larger than the culprit's. One attacker reaches the allowance
 * first (a bystander in flight at every one of its crashes, at the same exit at worst), so it
 * cannot get another user refused without being refused as well; several accounts of one
 * attacker in flight together divide each charge instead of escaping it (charging only a
 * subject alone in flight would let two accounts crash the process forever). Accounts taking
 * turns are the limit of any per-subject count: each is charged at its own crashes only, so a
 * user in flight at every one of them (always a call running) reaches the allowance first.
 * An exit with nothing in flight (a process that exits after it answered) charges no one: the
 * backoff still slows that loop for everyone.
 *
 * Per server and replica, in memory, like the process-start budget: the process is the
 * replica's own. Each exit also sweeps the server's charges that left the window. An exit is
 * charged once the dead process's stdout is read to the end (up to stopGrace after it died,
 * replica.ts), its replacement starting meanwhile: from its death, `check` counts the share it
 * will charge (`dying`), or whoever crashed it could crash each replacement before being charged.
 *
 * Bounded for any number of subjects (`limits.sharedCrashesSubjects`, N): an exit with more than
 * N subjects in flight charges no one (each share would be under 1/N: a subject would need
 * `sharedCrashesPerSubject` × N such exits within the window, which the restart backoff does not
 * allow), and a server keeps the charges of N subjects at most, the smallest totals forgotten
 * first. What an attacker with many accounts gains: having more than N of them in flight at each
 * crash escapes charges it could not have reached anyway; pushing a culprit's charges out takes N
 * subjects each charged more than it, that is, refused before it. A bystander, charged less
 * than whoever crashes the process, is forgotten first. The log line names the first
 * BLAMED_LOGGED subjects and counts them all.
 */

/** Subjects an exit's log line names at most (`blamedCount` counts them all). */
export const BLAMED_LOGGED = 10

/** The rule a refusal names in the audit log. */
export const SHARED_CRASHES_RULE = 'limits.sharedCrashesPerSubject'

/** Shares add up in floating point (three thirds): a total this close to the allowance is it. */
const EPSILON = 1e-9

interface Charge {
  at: number
  share: number
}

const chargedAt = (c: Charge) => c.at

/**
 * Forgets the `n` subjects of a server with the smallest totals (of equal ones, those charged
 * least lately): bystanders before whoever crashes the process, which is in flight at each exit.
 */
function forgetSmallest(charges: Map<string, Charge[]>, n: number): void {
  const totals = [...charges].map(([key, list]) => ({
    key,
    total: list.reduce((t, c) => t + c.share, 0),
    last: list[list.length - 1]!.at,
  }))
  totals.sort((a, b) => a.total - b.total || a.last - b.last)
  for (let i = 0; i < n; i++) charges.delete(totals[i]!.key)
}

/** Each subject's charges for each shared server's exits within the window, oldest first. */
export class SharedCrashes {
  /** By server, then by subject (ownerKey). */
  private readonly charges = new Map<string, Map<string, Charge[]>>()
  private readonly now: () => number
  /**
   * Exits not charged yet, by process: it died (the replica restarted it) and its stdout is
   * still read, for up to stopGrace. Counted by `check` as charged now, or whoever crashed it
   * could crash each replacement before the charges of the last crashes land.
   */
  private readonly pending = new Map<object, { server: string; share: number; keys: Set<string> }>()

  constructor(
    private readonly o: {
      config: GatewayConfig
      log: Logger
      metrics?: Metrics
      /** The clock the window is measured with (ms); default: a monotonic one. */
      now?: () => number
    },
  ) {
    this.now = o.now ?? (() => performance.now())
  }

  /**
   * The shared process `process` of `server` died with requests of `blamed` in flight: until
   * `settled`, each is counted as charged its share (what `crashed` will charge, or less: a
   * request it answered before its stdout ended is not charged then).
   */
  dying(process: object, server: string, blamed: readonly Principal[]): void {
    const { sharedCrashesPerSubject: max, sharedCrashesSubjects: most } = this.o.config.limits
    if (max === 0 || blamed.length === 0 || blamed.length > most) return
    const keys = new Set(blamed.map((p) => ownerKey(p)))
    this.pending.set(process, { server, share: 1 / blamed.length, keys })
  }

  /** The exit of `process` was charged (`crashed`), or will not be (shutdown). */
  settled(process: object): void {
    this.pending.delete(process)
  }

  /**
   * The shared process of `server` exited with requests of `blamed` (each subject once) in
   * flight: one charge, divided among them.
   */
  crashed(server: string, blamed: readonly Principal[]): void {
    const {
      sharedCrashesPerSubject: max,
      sharedCrashesWindow: window,
      sharedCrashesSubjects: most,
    } = this.o.config.limits
    if (max === 0) return
    const now = this.now()
    const charges = this.charges.get(server) ?? new Map<string, Charge[]>()
    for (const [key, list] of charges) {
      leaveWindow(list, now, window, chargedAt)
      if (list.length === 0) charges.delete(key)
    }
    const named = blamed.slice(0, BLAMED_LOGGED).map((p) => p.sub)
    if (blamed.length > most) {
      if (charges.size === 0) this.charges.delete(server)
      return this.o.log.info(
        { server, blamed: named, blamedCount: blamed.length, limit: most },
        'shared server process exit charged to no one: more subjects had requests in flight than limits.sharedCrashesSubjects',
      )
    }
    if (blamed.length > 0) {
      const share = 1 / blamed.length
      for (const p of blamed) {
        const key = ownerKey(p)
        const list = charges.get(key)
        if (list === undefined) charges.set(key, [{ at: now, share }])
        else list.push({ at: now, share })
      }
      if (charges.size > most) forgetSmallest(charges, charges.size - most)
      this.o.log.info(
        { server, blamed: named, blamedCount: blamed.length, share },
        'shared server process exit charged to the subjects with requests in flight',
      )
    }
    if (charges.size === 0) this.charges.delete(server)
    else this.charges.set(server, charges)
  }

  /**
   * Refuses `principal`'s request (`method`, for the log) to `server` when its charges in the
   * window reach the allowance: counted, logged, and thrown before anything reaches the process,
   * with the allowance as its `limit` (audited by whoever answers the request: refused.ts).
   * @throws BridgeError `shared_crash_limit` (429, `retryAfter` seconds)
   */
  check(server: string, principal: Principal, method: string): void {
    const { sharedCrashesPerSubject: max, sharedCrashesWindow: window } = this.o.config.limits
    // Every request to a shared process passes here: nobody charged is the common case.
    if (max === 0 || (this.charges.size === 0 && this.pending.size === 0)) return
    const key = ownerKey(principal)
    const charged = this.charges.get(server)?.get(key)
    const now = this.now()
    // Exits not charged yet count as charged now.
    const coming: Charge[] = []
    for (const d of this.pending.values())
      if (d.server === server && d.keys.has(key)) coming.push({ at: now, share: d.share })
    if (charged === undefined && coming.length === 0) return
    if (charged !== undefined) leaveWindow(charged, now, window, chargedAt)
    const list = [...(charged ?? []), ...coming]
    let total = list.reduce((n, c) => n + c.share, 0)
    if (total < max - EPSILON) return
    // Allowed again once enough of the oldest charges left the window to bring it below max.
    let until = now
    for (const c of list) {
      total -= c.share
      until = c.at + window
      if (total < max - EPSILON) break
    }
    const retryAfter = Math.max(1, Math.ceil((until - now) / 1000))
    this.refused(server, principal, method, retryAfter)
    throw BridgeError.limited(
      'shared_crash_limit',
      `the shared server process exited too often with your requests in flight (at most ${max} in ${window / 1000} s); retry in ${retryAfter} s`,
      SHARED_CRASHES_RULE,
      retryAfter,
    )
  }

  /** Subjects (per server) with a charge in the window, for tests and the log. */
  get size(): number {
    let n = 0
    for (const charges of this.charges.values()) n += charges.size
    return n
  }

  private refused(server: string, principal: Principal, method: string, retryAfter: number): void {
    this.o.metrics?.sharedCrashesRefused.inc({ server })
    this.o.log.info(
      { server, sub: principal.sub, method, retryAfter },
      "request refused: the shared server process exited too often with the subject's requests in flight",
    )
  }
}
