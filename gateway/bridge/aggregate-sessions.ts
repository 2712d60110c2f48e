import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { OutputCaps } from './result-cap.js'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import type { Tracing } from '../observability/tracing.js'
import type { Metrics } from '../observability/metrics.js'
import type { Aggregate } from './aggregate.js'
import { AggregateSession } from './aggregate-session.js'
import { endpointHold, type Hold, type Holders, type Scope, type SubjectBounds } from './bounds.js'
import type { CredentialGate } from './credential-gate.js'
import { HoldCounts } from './hold-counts.js'
import type { LanePool } from './lanes.js'
import { startReaper, type Reaper } from './lifecycle.js'
import type { Outbound } from './outbound-budget.js'
import { SESSION_ID_BYTES, SESSION_ID_CHARS } from './registry.js'
import { ownerKey, type ClientTransport } from './session.js'

/**
 * The session-era sessions of every endpoint, by id. A session holds no process of its own
 * (its calls run on the user's lanes, which the subject bounds count on their own), and counts
 * as a session toward its user's and the gateway's bounds (`limits.maxSessionsPerSubject`,
 * `limits.maxSessions`), together with server sessions and lanes (bounds.ts `endpointHold`):
 * a user at their bound gets the same refusal at an endpoint as at a server. It counts from
 * its open until it ends; its lanes count until their processes are gone. A lookup by another
 * principal finds nothing, as for server sessions.
 */
export class AggregateSessions implements Holders {
  private readonly sessions = new Map<string, AggregateSession>()
  /** Each live session's hold (its endpoint as `endpointHold`, its owner), counted in `held`. */
  private readonly holds = new Map<AggregateSession, Hold>()
  /** Holds counted from the check that found room until their session is made (same turn on). */
  private readonly opening = new Set<Hold>()
  private readonly held = new HoldCounts()
  private readonly reaper: Reaper

  constructor(
    private readonly o: {
      config: GatewayConfig
      lanes: LanePool
      /** The bounds shared with server sessions and lanes: these sessions join them. */
      bounds: SubjectBounds
      gate?: CredentialGate
      /** Output caps, each backend's own. */
      caps?: OutputCaps
      log: Logger
      audit?: AuditLog
      metrics?: Metrics
      outbound: Outbound
      /** Where a session's end is recorded (`mcp.server.session.duration`). */
      tracing?: Tracing
      /** The idle clock (epoch ms): sessions' last activity and the reaper's sweeps. */
      now?: () => number
    },
  ) {
    this.reaper = startReaper(
      Object.values(o.config.endpoints).map((e) => e.idleTimeout),
      () => this.reap(),
    )
    o.bounds.join({ endpoints: this })
  }

  get size(): number {
    return this.sessions.size
  }

  /** @throws BridgeError `subject_session_limit` (429), `too_many_sessions` (503) */
  async open(
    agg: Aggregate,
    principal: Principal,
    log: Logger,
    transport?: (s: AggregateSession) => ClientTransport,
  ): Promise<AggregateSession> {
    const owner = ownerKey(principal)
    const hold: Hold = { server: endpointHold(agg.name), owner }
    // Counted from the check that found room, synchronously: concurrent opens (all waiting for
    // the same ended process to be gone) cannot all pass it before this one is counted.
    await this.o.bounds.room(hold.server, owner, () => {
      this.opening.add(hold)
      this.held.add(hold)
    })
    try {
      return this.made(agg, principal, log, hold, transport)
    } finally {
      this.opening.delete(hold)
    }
  }

  /** The session of `hold`, counted already: in `holds` from now on (else `held` gives it back). */
  private made(
    agg: Aggregate,
    principal: Principal,
    log: Logger,
    hold: Hold,
    transport?: (s: AggregateSession) => ClientTransport,
  ): AggregateSession {
    const random = randomBytes(SESSION_ID_BYTES).toString('base64url')
    const id =
      this.o.config.replicaId === undefined ? random : `${this.o.config.replicaId}.${random}`
    let session: AggregateSession
    try {
      session = new AggregateSession({
        id,
        agg,
        owner: principal,
        config: this.o.config,
        lanes: this.o.lanes,
        gate: this.o.gate,
        caps: this.o.caps,
        log: log.child({ session: random.slice(0, 8) }),
        audit: this.o.audit,
        metrics: this.o.metrics,
        budget: this.o.outbound.session(),
        transport,
        now: this.o.now,
        onclose: (s) => {
          // It holds no process of its own: it stops counting now (its lanes count on their own).
          if (this.sessions.delete(s.id)) this.held.remove(this.holds.get(s)!)
          this.holds.delete(s)
          this.o.tracing?.sessionEnded({
            durationMs: Date.now() - s.opened,
            protocolVersion: s.version,
          })
        },
      })
    } catch (err) {
      this.held.remove(hold)
      throw err
    }
    this.sessions.set(id, session)
    this.holds.set(session, hold)
    this.reaper.watch()
    return session
  }

  find(id: string, endpoint: string, principal: Principal): AggregateSession | undefined {
    const s = this.sessions.get(id)
    return s === undefined || s.endpoint !== endpoint || s.owner !== ownerKey(principal)
      ? undefined
      : s
  }

  /** Whether a session with this id exists and another subject owns it (any endpoint). */
  heldByOther(id: string, principal: Principal): boolean {
    const s = this.sessions.get(id)
    return s !== undefined && s.owner !== ownerKey(principal)
  }

  /**
   * After a policy reload: sessions whose user the policy in force leaves no backend of their
   * endpoint are closed now, their streams ended, not left open until their next request; the
   * others give back their subscriptions on backends now denied to their user.
   */
  withdrawRevoked(): void {
    for (const s of [...this.sessions.values()])
      if (s.accessWithdrawn) s.withdraw()
      else s.releaseDenied()
  }

  async closeAll(): Promise<void> {
    this.reaper.stop()
    await Promise.all([...this.sessions.values()].map((s) => s.close()))
  }

  /** Sessions `of` selects (their hold: `endpointHold` of their endpoint, their owner). */
  count(of: Scope): number {
    if (of.where !== undefined) return this.held.of(of.where)
    let n = 0
    for (const h of this.holds.values()) if (of(h)) n++
    for (const h of this.opening) if (of(h)) n++
    return n
  }

  /** The owners of the sessions `of` selects. */
  owners(of: Scope): Set<string> {
    const owners = new Set<string>()
    for (const h of this.holds.values()) if (of(h)) owners.add(h.owner)
    for (const h of this.opening) if (of(h)) owners.add(h.owner)
    return owners
  }

  /** None: a session stops counting as it ends (it holds no process; its lanes count on their own). */
  ending(): Promise<void>[] {
    return []
  }

  /** When the least recently used idle session `of` selects was last active (none: undefined). */
  idleSince(of: Scope): number | undefined {
    return this.idlest(of)?.lastActive
  }

  /** Ends the least recently used idle session `of` selects; resolves whether one was ended. */
  async reclaimIdle(of: Scope, reason: string): Promise<boolean> {
    const idle = this.idlest(of)
    if (idle === undefined) return false
    this.o.log.info(
      {
        endpoint: idle.endpoint,
        session: idle.id.slice(-SESSION_ID_CHARS, -SESSION_ID_CHARS + 8),
        reason,
      },
      'idle endpoint session reclaimed to make room',
    )
    await idle.close()
    return true
  }

  /**
   * The least recently used idle session `of` selects: no request in flight, no stream open, and
   * its initialize answered (one just opened is not ended before it answered its client).
   */
  private idlest(of: Scope): AggregateSession | undefined {
    let oldest: AggregateSession | undefined
    for (const [s, h] of this.holds) {
      if (!of(h) || s.pending > 0 || s.listening || s.version === undefined) continue
      if (oldest === undefined || s.lastActive < oldest.lastActive) oldest = s
    }
    return oldest
  }

  /** Ends the idle sessions; whether any session is left to watch. */
  private reap(): boolean {
    const now = (this.o.now ?? Date.now)()
    for (const s of this.sessions.values()) {
      const idle = this.o.config.endpoints[s.endpoint]?.idleTimeout ?? 0
      if (s.pending === 0 && !s.listening && now - s.lastActive > idle) void s.close()
    }
    return this.sessions.size > 0
  }
}
