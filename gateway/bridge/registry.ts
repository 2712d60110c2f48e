import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { spawnChild } from './child.js'
import { BridgeError } from './errors.js'
import { ownerKey, Session, type ResultFilter } from './session.js'

/** Random bytes in a session id (192 bits, base64url: visible ASCII only). */
export const SESSION_ID_BYTES = 24
/** How often idle sessions are looked for, in ms. */
export const DEFAULT_REAP_INTERVAL_MS = 10_000

/**
 * Every live session, by id. A lookup from a principal other than the session's owner finds
 * nothing, exactly like an unknown id, so session ids are not authentication and do not leak.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>()
  private readonly reaper: NodeJS.Timeout

  constructor(
    private readonly o: { config: GatewayConfig; log: Logger; filter?: ResultFilter; audit?: AuditLog; metrics?: Metrics; now?: () => number },
  ) {
    this.reaper = setInterval(() => this.reapIdle(), DEFAULT_REAP_INTERVAL_MS).unref()
  }

  /** Live sessions. */
  get size(): number {
    return this.sessions.size
  }

  /**
   * Spawns a process for a new session of `server`, owned by `principal`.
   * @throws BridgeError `too_many_sessions`, `spawn_failed`
   */
  async open(server: string, principal: Principal, log: Logger): Promise<Session> {
    const config = this.o.config.servers[server]
    if (config === undefined) throw new BridgeError('unknown_server', `no MCP server named ${server}`)
    if (this.sessions.size >= this.o.config.limits.maxSessions) {
      throw new BridgeError('too_many_sessions', 'the gateway is at its session limit; retry later')
    }
    const id = randomBytes(SESSION_ID_BYTES).toString('base64url')
    const sessionLog = log.child({ session: id.slice(0, 8) })
    let child
    try {
      child = await spawnChild(config, sessionLog)
    } catch (err) {
      sessionLog.error({ err: { message: (err as Error).message }, command: config.command }, 'server process failed to start')
      throw new BridgeError('spawn_failed', 'the MCP server could not be started', err)
    }
    const session = new Session({
      id,
      server,
      config,
      owner: principal,
      child,
      log: sessionLog.child({ pid: child.pid }),
      filter: this.o.filter,
      audit: this.o.audit,
      metrics: this.o.metrics,
      onclose: (s) => this.sessions.delete(s.id),
    })
    this.sessions.set(id, session)
    sessionLog.info({ pid: child.pid }, 'session opened')
    return session
  }

  /** The session with this id on this server owned by this principal, else undefined. */
  find(id: string, server: string, principal: Principal): Session | undefined {
    const session = this.sessions.get(id)
    if (session === undefined || session.server !== server || session.owner !== ownerKey(principal)) return undefined
    return session
  }

  /** Ends every session and its process. */
  async closeAll(): Promise<void> {
    clearInterval(this.reaper)
    await Promise.all([...this.sessions.values()].map((s) => s.close()))
  }

  private reapIdle(): void {
    const now = (this.o.now ?? Date.now)()
    for (const session of this.sessions.values()) {
      const idle = this.o.config.servers[session.server]?.idleTimeout ?? 0
      if (idle > 0 && session.pending === 0 && now - session.lastActive > idle) {
        this.o.log.info({ server: session.server, session: session.id.slice(0, 8) }, 'idle session reaped')
        void session.close()
      }
    }
  }
}
