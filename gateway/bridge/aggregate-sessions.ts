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
import type { CredentialGate } from './credential-gate.js'
import { BridgeError } from './errors.js'
import type { LanePool } from './lanes.js'
import { startReaper, type Reaper } from './lifecycle.js'
import type { Outbound } from './outbound-budget.js'
import { SESSION_ID_BYTES } from './registry.js'
import { ownerKey, type ClientTransport } from './session.js'

/**
 * The session-era sessions of every endpoint, by id. A session holds no process of its own
 * (its calls run on the user's lanes, which the subject bounds count), so its own bounds are
 * the gateway's session limits: per subject and in all, the least recently used idle one
 * giving way first. A lookup by another principal finds nothing, as for server sessions.
 */
export class AggregateSessions {
  private readonly sessions = new Map<string, AggregateSession>()
  private readonly reaper: Reaper

  constructor(
    private readonly o: {
      config: GatewayConfig
      lanes: LanePool
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
    const limits = this.o.config.limits
    const mine = () => [...this.sessions.values()].filter((s) => s.owner === owner)
    if (mine().length >= limits.maxSessionsPerSubject && !(await this.reclaim(mine()))) {
      throw BridgeError.limited(
        'subject_session_limit',
        `you have ${limits.maxSessionsPerSubject} endpoint sessions in use, the most allowed; end one (DELETE) or retry later`,
        'limits.maxSessionsPerSubject',
      )
    }
    if (
      this.sessions.size >= limits.maxSessions &&
      !(await this.reclaim([...this.sessions.values()]))
    ) {
      throw BridgeError.limited(
        'too_many_sessions',
        'the gateway is at its session limit; retry later',
        'limits.maxSessions',
      )
    }
    const random = randomBytes(SESSION_ID_BYTES).toString('base64url')
    const id =
      this.o.config.replicaId === undefined ? random : `${this.o.config.replicaId}.${random}`
    const session = new AggregateSession({
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
        this.sessions.delete(s.id)
        this.o.tracing?.sessionEnded({
          durationMs: Date.now() - s.opened,
          protocolVersion: s.version,
        })
      },
    })
    this.sessions.set(id, session)
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

  /** Ends the least recently used idle one of `among`; resolves whether one was ended. */
  private async reclaim(among: AggregateSession[]): Promise<boolean> {
    const idle = among
      .filter((s) => s.pending === 0 && !s.listening)
      .sort((a, b) => a.lastActive - b.lastActive)[0]
    if (idle === undefined) return false
    await idle.close()
    return true
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
