import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import type { AuditLog } from '../observability/audit.js'
import type { Tracing } from '../observability/tracing.js'
import type { Metrics } from '../observability/metrics.js'
import type { PolicyStore } from '../policy/store.js'
import { SubjectBounds, type Hold, type Holders, type Scope } from './bounds.js'
import type { Child } from './child.js'
import type { CredentialGate } from './credential-gate.js'
import { EndingHolds } from './ending-holds.js'
import { BridgeError } from './errors.js'
import { HoldCounts } from './hold-counts.js'
import { Outbound, queueLimits } from './outbound-budget.js'
import { drain, startReaper, type Reaper } from './lifecycle.js'
import { ProcessPool } from './pool.js'
import { ProcessStarts } from './process-starts.js'
import type { OutputCaps } from './result-cap.js'
import { ownerKey, Session, type ClientTransport, type ResultFilter } from './session.js'
import { SharedServer } from './shared.js'
import { SharedCrashes } from './shared-crashes.js'
import { StartFailures, spawnThrew } from './start-failures.js'

/**
 * Random bytes in a session id (192 bits, base64url: visible ASCII only). Not a setting: MCP
 * (Streamable HTTP, Session Management) asks for a cryptographically secure, unguessable id; a
 * shorter one would weaken it and a longer one adds nothing.
 */
export const SESSION_ID_BYTES = 24
/** A session id's random part, in characters (a replica id may come before it). */
export const SESSION_ID_CHARS = 32

/**
 * Every live session, by id, and where their processes come from: a warm pool per
 * session-mode server, a shared process per shared-mode server. A lookup from a principal
 * other than the session's owner finds nothing, exactly like an unknown id, so session ids
 * are not authentication and do not leak. Sessions are bounded together with sessionless
 * lanes (`bounds`): a session counts from its open until its process is gone, not only until it
 * ends (ending-holds.ts), as a lane does.
 */
export class SessionRegistry implements Holders {
  private readonly sessions = new Map<string, Session>()
  /** Sessions whose process is being taken: they count toward every limit already. */
  private readonly opening = new Set<Hold>()
  /**
   * `count` of every scope a bound names: live sessions, sessions being opened and sessions
   * ended whose process is not gone yet, kept as each enters or leaves one of the three (in
   * `open`, in a session's `onclose`, and in `stopping`), so an initialize checks the bounds in
   * four reads whatever the number of sessions open.
   */
  private readonly held = new HoldCounts()
  /**
   * Sessions ended whose process is not gone yet, and processes a session replaced (the user's
   * credentials changed) not gone yet: each counts toward every bound until it is.
   */
  private readonly stopping = new EndingHolds<Hold>(this.held)
  private readonly pools = new Map<string, ProcessPool>()
  private readonly shared = new Map<string, SharedServer>()
  private readonly reaper: Reaper
  /** When shutdown began; `closed` once every process was ended. */
  private closingAt: number | undefined
  private closed = false
  private readonly outbound: Outbound
  /** The limits sessions share with sessionless lanes. */
  readonly bounds: SubjectBounds
  /** Which servers failed to start lately: sessions, lanes and endpoints start none meanwhile. */
  readonly starts: StartFailures
  /** Each subject's process starts in the window (`limits.processStartsPerSubject`). */
  readonly processStarts: ProcessStarts
  /** Each subject's share of shared processes' exits in the window (`limits.sharedCrashesPerSubject`). */
  readonly sharedCrashes: SharedCrashes

  /** Each server's logger: sessions log through it (never through the request that opened them). */
  private readonly serverLogs = new Map<string, Logger>()

  constructor(
    private readonly o: {
      config: GatewayConfig
      log: Logger
      filter?: ResultFilter
      /** The live policy, handed to every session (what servers send on their own follows it). */
      policy?: PolicyStore
      /** Output caps, handed to every session. */
      caps?: OutputCaps
      audit?: AuditLog
      metrics?: Metrics
      /** Where sessions get their stream budgets; default: one of its own from `config.limits`. */
      outbound?: Outbound
      /** Stands before requests of servers that take per-user credentials. */
      gate?: CredentialGate
      /** The scopes handed to `identityEnv` processes (token scopes plus what roles grant). */
      scopesOf?: (p: Principal) => Iterable<string>
      /** The limits shared with sessionless lanes; default: its own, counting sessions only. */
      bounds?: SubjectBounds
      /** The idle clock (epoch ms): sessions' last activity and the reaper's sweeps. */
      now?: () => number
      /** Where a session's end is recorded (`mcp.server.session.duration`). */
      tracing?: Tracing
      /** The clock of the start-failure memory's backoff windows (tests end one without waiting). */
      startClock?: () => number
      /** The clock of the subjects' process-start windows (tests end one without waiting). */
      processStartClock?: () => number
      /** The clock of shared processes' runs (respawnStableAfter) and crash windows. */
      sharedClock?: () => number
    },
  ) {
    this.sharedCrashes = new SharedCrashes({
      config: o.config,
      log: o.log,
      metrics: o.metrics,
      now: o.sharedClock,
    })
    this.processStarts = new ProcessStarts({
      config: o.config,
      log: o.log,
      metrics: o.metrics,
      now: o.processStartClock,
    })
    this.starts = new StartFailures({
      config: o.config,
      log: o.log,
      metrics: o.metrics,
      now: o.startClock,
      // Every value of the identity the process starts with, the subject included: a start
      // that fails for one user's MCP_EDGE_SUBJECT (their own state on the server) says
      // nothing of another user's, even of the same client and scopes (identityOf leaves the
      // subject out: a lane's key has its owner already). As JSON: a subject holding a line
      // break cannot spell another user's values.
      identityOf: (server, p) =>
        this.o.config.servers[server]?.identityEnv
          ? JSON.stringify(Object.values(this.identity(p)))
          : undefined,
    })
    this.outbound =
      o.outbound ?? new Outbound(queueLimits(o.config), o.metrics, o.config.limits.sseKeepAlive)
    this.bounds = o.bounds ?? new SubjectBounds({ config: o.config, log: o.log })
    this.bounds.join({ sessions: this })
    for (const [name, config] of Object.entries(o.config.servers)) {
      const log = o.log.child({ server: name })
      this.serverLogs.set(name, log)
      if (config.mode === 'shared')
        this.shared.set(
          name,
          new SharedServer({
            name,
            config,
            log,
            crashes: this.sharedCrashes,
            now: o.sharedClock,
            metrics: o.metrics,
          }),
        )
      else
        this.pools.set(
          name,
          new ProcessPool({ name, config, log, starts: this.starts, metrics: o.metrics }),
        )
    }
    this.reaper = startReaper(
      Object.values(o.config.servers).map((s) => s.idleTimeout),
      () => this.reapIdle(),
    )
  }

  /** Starts warm pools and shared processes. */
  start(): void {
    for (const p of this.pools.values()) p.start()
    for (const s of this.shared.values()) s.start()
  }

  /** Live sessions. */
  get size(): number {
    return this.sessions.size
  }

  /** Warm processes waiting, per session-mode server. */
  warm(server: string): number {
    return this.pools.get(server)?.warm ?? 0
  }

  /** Warm processes wanted now, per session-mode server (`pool.min`, up to `pool.burst`). */
  warmTarget(server: string): number {
    return this.pools.get(server)?.target ?? 0
  }

  /**
   * Opens a session of `server` owned by `principal`, with its process. At a limit (sessions
   * and sessionless lanes count alike) room is made first: an idle lane or the least recently
   * used idle session in the limit's scope, else the principal's oldest round waiting for input.
   * @throws BridgeError `too_many_sessions` (503), `subject_session_limit` (429), `spawn_failed`,
   * `process_start_limit` (429), `shared_crash_limit` (429)
   */
  async open(
    server: string,
    principal: Principal,
    log: Logger,
    transport?: (session: Session) => ClientTransport,
    bearer?: string,
  ): Promise<Session> {
    const config = this.o.config.servers[server]
    if (config === undefined)
      throw new BridgeError('unknown_server', `no MCP server named ${server}`)
    const owner = ownerKey(principal)
    // Past the principal's process-start budget, a refusal comes first (counted when the
    // process is taken, in `process`): before room is made at a bound, which ends another
    // user's idle session, for a start that would then be refused anyway. At a bound, a
    // refusal before any credential or start-failure work.
    // A subject that crashed a shared process too often likewise, before room is made.
    if (config.mode !== 'shared') this.processStarts.check(server, principal)
    else this.sharedCrashes.check(server, principal, 'initialize')
    await this.bounds.room(server, owner)
    const random = randomBytes(SESSION_ID_BYTES).toString('base64url')
    const id =
      this.o.config.replicaId === undefined ? random : `${this.o.config.replicaId}.${random}`
    // A session outlives the request that opened it: its logger hangs off the server's, not
    // off the request's chain (each session kept four chained loggers, ~1.7 KB a session).
    const sessionLog = this.serverLogs.get(server)!.child({ session: random.slice(0, 8) })
    // A server that takes the user's credentials starts with what is set now; the gate
    // asks for the rest at the first call that needs them.
    const gate = this.o.gate?.needs(server) ? this.o.gate : undefined
    const initial = gate && (await gate.initial(server, principal, bearer))
    // A server that failed to start lately is refused here (503), before any process.
    // The client's own initialize reaches this process: a failure is counted against its
    // user only, so one user cannot get the server refused for everyone. Waiting for a probe
    // (up to initializeTimeout) holds no slot: a client sending initializes meanwhile cannot
    // fill the server's or the gateway's bounds for the others with starts that are not
    // under way.
    const attempt = await this.starts.admit(server, {
      principal,
      fingerprint: initial?.fingerprint,
      ownInitialize: true,
    })
    let child: Child
    const slot: Hold = { server, owner }
    try {
      // Counted from the check that found room, synchronously: concurrent initializes cannot
      // all pass the bounds while their processes start.
      await this.bounds.room(server, owner, () => {
        this.opening.add(slot)
        this.held.add(slot)
      })
    } catch (err) {
      attempt.abandoned()
      throw err
    }
    try {
      child = await this.process(server, principal, sessionLog, Date.now(), initial).catch(
        (err: unknown) => spawnThrew(attempt, err),
      )
    } finally {
      this.opening.delete(slot)
      this.held.remove(slot)
    }
    const session = new Session({
      id,
      server,
      config,
      owner: principal,
      child,
      log: sessionLog.child({ pid: child.pid }),
      filter: this.o.filter,
      policy: this.o.policy,
      caps: this.o.caps,
      audit: this.o.audit,
      metrics: this.o.metrics,
      budget: this.outbound.session(),
      transport,
      now: this.o.now,
      onclose: (s) => {
        // Every way a session ends (DELETE, reaped, reclaimed, its process exited, shutdown)
        // passes here, once, before its process is closed: it counts on until that is gone.
        if (this.sessions.delete(s.id)) {
          this.held.remove(s)
          void this.stopping.add(s, s.child)
        }
        this.o.tracing?.sessionEnded({
          durationMs: Date.now() - s.opened,
          protocolVersion: s.version,
        })
      },
      credentials: gate &&
        initial && {
          gate,
          fingerprint: initial.fingerprint,
          spawn: (c) => this.process(server, principal, sessionLog, Date.now(), c),
          // A hold of its own: the session counts on for its current process.
          ended: (old) => void this.stopping.add({ server, owner }, old),
        },
    })
    // Started once its server answered initialize; exiting or silent before that, not started
    // (a process gone by then, even before the session heard it exit, did not start either).
    void session.initialized.then((outcome) => {
      if (outcome.ok) attempt.succeeded()
      else if (!child.alive) attempt.failed('exit')
      else if (outcome.startFailed) attempt.failed('timeout')
      else attempt.abandoned()
    })
    this.sessions.set(id, session)
    this.held.add(session)
    this.reaper.watch()
    log.info({ session: random.slice(0, 8), pid: child.pid, mode: config.mode }, 'session opened')
    return session
  }

  /**
   * A process to serve `principal` (a session, or sessionless 2026-07-28 requests): from the
   * warm pool, spawned with the principal's identity (`identityEnv`) and `credentials` (the
   * user's own, for a server that takes them), or a view of the shared process. Every
   * process of its own counts against the principal's process-start budget (process-starts.ts):
   * sessions, lanes, endpoints' backends and credential replacements all start theirs here.
   * @throws BridgeError `too_many_sessions` at `pool.max` or while closing, `spawn_failed`,
   * `process_start_limit` (429) past the principal's budget, `shared_crash_limit` (429) for a
   * principal that crashed a shared process too often
   */
  async process(
    server: string,
    principal: Principal,
    log: Logger,
    accepted = Date.now(),
    credentials?: ResolvedCredentials,
  ): Promise<Child> {
    const config = this.o.config.servers[server]
    if (config === undefined)
      throw new BridgeError('unknown_server', `no MCP server named ${server}`)
    // A request accepted before shutdown began still gets its process (it finishes in the grace).
    if (this.closingAt !== undefined && accepted >= this.closingAt)
      throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
    // Its own environment (identity, the user's credentials) means a process of its own, never a warm one.
    const own = config.identityEnv || credentials !== undefined
    const env = own
      ? { ...(config.identityEnv ? this.identity(principal) : {}), ...credentials?.env }
      : undefined
    // The warm processes this session's demand adds are spawns of the principal's too.
    const pay = (n: number) => this.processStarts.spend(principal, n)
    const take = () =>
      this.pools.get(server)!.take(log, env, credentials ? Object.values(credentials.env) : [], pay)
    let child: Child
    if (config.mode === 'shared') child = await this.shared.get(server)!.attach(principal)
    else {
      // Counted before the spawn: a start that fails cost it too. One refused at pool.max
      // tried no process: not counted (other users holding the server's processes would
      // otherwise spend the budget of a client retrying its 503s).
      const undo = this.processStarts.take(server, principal)
      const atMax = (err: unknown) => err instanceof BridgeError && err.code === 'too_many_sessions'
      try {
        try {
          child = await take()
        } catch (err) {
          // At pool.max: an idle process kept for sessionless requests (it holds no client
          // state), else an idle session of this server, makes room, if there is one.
          if (!atMax(err)) throw err
          const ofServer: Scope = (s) => s.server === server
          const made =
            (await this.bounds.reclaimIdleLane(ofServer, 'process limit')) ||
            (await this.reclaimIdle(ofServer, 'process limit'))
          if (!made) throw err
          child = await take()
        }
      } catch (err) {
        if (atMax(err)) undo()
        throw err
      }
      // A shared process's lines are counted by its replica (replica.ts).
      child.onsuppressed = (source, lines) =>
        this.o.metrics?.logLinesSuppressed.inc({ server, source }, lines)
    }
    // The gateway finished shutting down while this process started: it must not outlive it.
    if (this.closed) {
      await child.close()
      throw new BridgeError('too_many_sessions', 'the gateway is shutting down; retry later')
    }
    return child
  }

  /** Whether the session with this id holds a listening stream open. */
  isListening(id: string): boolean {
    return this.sessions.get(id)?.listening === true
  }

  /** The session with this id on this server owned by this principal, else undefined. */
  find(id: string, server: string, principal: Principal): Session | undefined {
    const session = this.sessions.get(id)
    if (session === undefined || session.server !== server || session.owner !== ownerKey(principal))
      return undefined
    return session
  }

  /** Whether a session with this id exists and another subject owns it (any server). */
  heldByOther(id: string, principal: Principal): boolean {
    const session = this.sessions.get(id)
    return session !== undefined && session.owner !== ownerKey(principal)
  }

  /**
   * After a policy reload: sessions whose user the policy in force no longer lets use their
   * server are closed now, their streams ended, not left open until their next request.
   */
  withdrawRevoked(): void {
    for (const s of [...this.sessions.values()]) if (s.accessWithdrawn) s.withdraw()
  }

  /**
   * Shutdown: waits until no request is in flight (nor `othersBusy`: sessionless requests on
   * these processes), at most the longest `shutdownGrace` of the servers concerned, then ends
   * every session, warm process and shared process.
   */
  async closeAll(othersBusy: () => boolean = () => false): Promise<void> {
    this.closingAt = Date.now()
    this.reaper.stop()
    const servers = othersBusy()
      ? Object.keys(this.o.config.servers)
      : [...this.sessions.values()].map((s) => s.server)
    const grace = Math.max(
      0,
      ...servers.map((name) => this.o.config.servers[name]?.shutdownGrace ?? 0),
    )
    await drain(() => [...this.sessions.values()].some((s) => s.pending > 0) || othersBusy(), grace)
    this.closed = true
    await Promise.all([...this.sessions.values()].map((s) => s.close()))
    await Promise.all([...this.pools.values()].map((p) => p.close()))
    await Promise.all([...this.shared.values()].map((s) => s.close()))
  }

  /** The identity a process of `server` starts with for `p` under identityEnv, as one string. */
  identityOf(server: string, p: Principal): string | undefined {
    if (!this.o.config.servers[server]?.identityEnv) return undefined
    const env = this.identity(p)
    return `${env.MCP_EDGE_CLIENT_ID}\n${env.MCP_EDGE_SCOPES}`
  }

  private identity(p: Principal): Record<string, string> {
    return {
      MCP_EDGE_SUBJECT: p.sub,
      MCP_EDGE_CLIENT_ID: p.clientId ?? '',
      MCP_EDGE_SCOPES: [...(this.o.scopesOf?.(p) ?? p.scopes)].sort().join(' '),
    }
  }

  /** Sessions, sessions being opened, and sessions ended whose process is not gone, that `of` selects. */
  count(of: Scope): number {
    if (of.where !== undefined) return this.held.of(of.where)
    let n = 0
    for (const s of this.sessions.values()) if (of(s)) n++
    for (const s of this.opening) if (of(s)) n++
    return n + this.stopping.count(of)
  }

  /** When the process of each ended session `of` selects is gone (none: none is ending). */
  ending(of: Scope): Promise<void>[] {
    return this.stopping.ending(of)
  }

  /** When the least recently used idle session `of` selects was last active (none: undefined). */
  idleSince(of: Scope): number | undefined {
    return this.idlest(of)?.lastActive
  }

  /** The least recently used idle session `of` selects: no request in flight, no stream open. */
  private idlest(of: Scope): Session | undefined {
    let oldest: Session | undefined
    for (const s of this.sessions.values()) {
      if (!of(s) || s.pending > 0 || s.listening) continue
      if (oldest === undefined || s.lastActive < oldest.lastActive) oldest = s
    }
    return oldest
  }

  /**
   * Ends the least recently used idle session among those `of` selects: no request in flight,
   * no stream open (a client listening is not idle). Resolves true once it ended and its
   * process is gone (it counts until then).
   */
  async reclaimIdle(of: Scope, reason: string): Promise<boolean> {
    const oldest = this.idlest(of)
    if (oldest === undefined) return false
    this.o.log.info(
      {
        server: oldest.server,
        session: oldest.id.slice(-SESSION_ID_CHARS, -SESSION_ID_CHARS + 8),
        reason,
      },
      'idle session reclaimed to make room',
    )
    this.o.metrics?.sessionsReclaimed.inc({ server: oldest.server, reason })
    await oldest.close()
    await Promise.all(this.stopping.ending((s) => s === oldest))
    return true
  }

  /** Ends the idle sessions; whether any session is left to watch. */
  private reapIdle(): boolean {
    const now = (this.o.now ?? Date.now)()
    for (const session of this.sessions.values()) {
      const idle = this.o.config.servers[session.server]?.idleTimeout ?? 0
      if (
        idle > 0 &&
        session.pending === 0 &&
        !session.listening &&
        now - session.lastActive > idle
      ) {
        this.o.log.info(
          {
            server: session.server,
            session: session.id.slice(-SESSION_ID_CHARS, -SESSION_ID_CHARS + 8),
          },
          'idle session reaped',
        )
        void session.close()
      }
    }
    return this.sessions.size > 0
  }
}
