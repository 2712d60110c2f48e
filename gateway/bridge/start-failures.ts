import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { BridgeError } from './errors.js'
import { initializeTimeout } from './handshake.js'
import { Backoff } from './lifecycle.js'
import { ownerKey } from './session.js'

/*
 * A server whose command cannot start (it is missing, exits at once, never answers initialize)
 * must not cost a process spawn on every request: after a failed start it is "failing" for a
 * backoff window (respawnBackoff, doubling to respawnBackoffMax), and every start it would
 * take is refused at once with 503 and Retry-After. After the window one start (the probe)
 * runs; starts asked for meanwhile wait for its outcome instead of spawning their own, holding
 * no place under the session bounds. A start that succeeds forgets the failures. Warm pools
 * (pool.ts) spawn nothing inside a window and feed it; /readyz lists the servers failing and
 * counts the users. Users' own windows are kept apart from the servers' and bounded
 * (`limits.startFailureUsers`).
 */

/**
 * How long past a start's own initialize timeout a probe that has not told its outcome holds
 * the requests waiting for it, in ms. Not a setting: the timeout is the bound; this only lets
 * the probe's own failure arrive first.
 */
const PROBE_GRACE_MS = 1000

/**
 * Why a start failed: the process could not be spawned, exited before initialize was
 * answered, gave no initialize result in time, or answered initialize with an error. What
 * /readyz shows of a failure: never the process's output, nor its environment.
 */
export type FailureKind = 'spawn' | 'exit' | 'timeout' | 'error'

/** How a start the memory admitted ended; the first call counts, the rest are ignored. */
export interface StartAttempt {
  /** The process started and answered initialize. */
  succeeded(): void
  /** It could not start: spawn error, exit before initialize was answered, initialize timeout. */
  failed(kind: FailureKind): void
  /** It ended without telling either (refused at a limit, the client left): the next may probe. */
  abandoned(): void
}

interface Failing {
  server: string
  backoff: Backoff
  /** Failures in a row, and how the last one failed. */
  failures: number
  kind: FailureKind
  /** When the next start may be tried (ms, by the memory's clock). */
  until: number
  /** The probe running after the window, and how its waiters hear it ended. */
  probe?: Promise<void>
  endProbe?: () => void
}

/** Whose start: the principal (its identity under identityEnv) and its credentials' fingerprint. */
export interface Starter {
  principal: Principal
  fingerprint?: string
  /**
   * The process is initialized with the client's own `initialize` (a session-era session), not
   * the gateway's: its failure may be that client's doing (a crafted initialize that crashes or
   * stalls a fragile server), so it opens a window for that user only, never for the others.
   * Such a start is still refused while the server itself is failing (a start the gateway
   * initialized failed), but it never runs as that window's probe.
   */
  ownInitialize?: boolean
}

/**
 * Tells `attempt` how a process request that threw ended: a spawn that failed is a failed
 * start; any other refusal (a limit, shutdown) says nothing of the server. Rethrows `err`.
 */
export function spawnThrew(attempt: StartAttempt | undefined, err: unknown): never {
  if (err instanceof BridgeError && err.code === 'spawn_failed') attempt?.failed('spawn')
  else attempt?.abandoned()
  throw err
}

/** An attempt whose outcome changes nothing (a server this memory does not watch). */
const UNWATCHED: StartAttempt = { succeeded() {}, failed() {}, abandoned() {} }

/**
 * What a warm process of a server may do now (pool.ts): start (the attempt tells how it
 * ended), or look again after `retryIn` ms (a window) or once `probe` ended.
 */
export type WarmStart = { attempt: StartAttempt } | { retryIn: number } | { probe: Promise<void> }

/** A server failing to start, as /readyz shows it (nothing of a user's, nor of any output). */
export interface FailingServer {
  server: string
  /** Failed starts in a row. */
  failures: number
  /** Seconds until the next start is tried (0: the next start is the probe, or it runs now). */
  retryIn: number
  /** Whether the probe runs now. */
  probing: boolean
  lastFailure: FailureKind
}

/**
 * The start-failure memory of every session-mode server, keyed by what a process starts with:
 * the server, and the identity or credentials handed to it when it has its own (one user's bad
 * credentials never make the server fail for the others). Shared-mode servers restart their
 * one process with their own backoff (replica.ts) and are not watched here.
 */
export class StartFailures {
  /** The servers' own windows: one key per server at most. */
  private readonly servers = new Map<string, Failing>()
  /**
   * Users' own windows (identity, credentials, a session's own initialize), least recently
   * failed first, at most `limits.startFailureUsers`: many users each failing once cost no
   * more, the oldest is forgotten first (that user may try one start again).
   */
  private readonly users = new Map<string, Failing>()
  /** Starts waiting for a probe's outcome now. */
  private waiters = 0
  private readonly now: () => number

  constructor(
    private readonly o: {
      config: GatewayConfig
      log: Logger
      metrics?: Metrics
      /** The clock windows are measured with. */
      now?: () => number
      /** Every value of the identity a process of `server` starts with for a principal (identityEnv), if any. */
      identityOf?: (server: string, principal: Principal) => string | undefined
    },
  ) {
    this.now = o.now ?? Date.now
  }

  /**
   * Processes with the same key start with the same environment: the server's, plus the
   * identity (identityEnv) and the user's credentials when it takes them.
   */
  private keyOf(server: string, who: Starter | undefined, own = false): string {
    const identity = who && this.o.identityOf?.(server, who.principal)
    const key = `${server}\n${identity ?? ''}\n${who?.fingerprint ?? ''}`
    return own && who !== undefined ? `${key}\n${ownerKey(who.principal)}` : key
  }

  /**
   * Whether a start of `key` would be refused or wait now (a window, or a probe running): an
   * endpoint leaves such a backend out of its lists at once.
   */
  isFailing(server: string, who?: Starter): boolean {
    const f = this.get(this.keyOf(server, who))
    return f !== undefined && (f.probe !== undefined || f.until > this.now())
  }

  /**
   * Returns once a start of `server` for `who` may be tried, without being one: refused inside
   * a window, after the probe while one runs. A caller waits here before it takes a place
   * under the bounds, so waiting for a probe holds none.
   * @throws BridgeError `server_unavailable` (503, `retryAfter` seconds) inside a window
   */
  async waitOut(server: string, who?: Starter): Promise<void> {
    if (this.o.config.servers[server]?.mode !== 'session') return
    await this.enter(this.keyOf(server, who), server, false)
  }

  /**
   * Admits a start of `server`: at once when it is not failing; after the probe when one runs
   * (single flight); as the probe when the window is over. The caller reports how it ended.
   * @throws BridgeError `server_unavailable` (503, `retryAfter` seconds) inside a window
   */
  async admit(server: string, who?: Starter): Promise<StartAttempt> {
    if (this.o.config.servers[server]?.mode !== 'session') return UNWATCHED
    // A start with the client's own initialize waits out the server's window and probe, and
    // then answers to its user's own memory.
    if (who?.ownInitialize) await this.enter(this.keyOf(server, who), server, false)
    const own = who?.ownInitialize ? who.principal.sub : undefined
    const attempt = (await this.enter(
      this.keyOf(server, who, own !== undefined),
      server,
      true,
      own,
    ))!
    if (own === undefined) return attempt
    // Its success says the server starts (a warm process's first session tells it): the
    // server's own failures are forgotten too.
    const serverKey = this.keyOf(server, who)
    let told = false
    const first = (fn: () => void) => () => {
      if (told) return
      told = true
      fn()
    }
    return {
      succeeded: first(() => {
        attempt.succeeded()
        this.succeeded(serverKey, server)
      }),
      failed: (kind) => first(() => attempt.failed(kind))(),
      abandoned: first(() => attempt.abandoned()),
    }
  }

  /**
   * Waits until a start of `key` may run: refused inside a window, after the probe while one
   * runs; when the window is over, as the probe if `mayProbe`, else with no attempt at all.
   */
  private async enter(
    key: string,
    server: string,
    mayProbe: boolean,
    /** The user whose own window this is, if it is one. */
    sub?: string,
  ): Promise<StartAttempt | undefined> {
    for (;;) {
      const now = this.step(key, server, mayProbe, sub)
      if ('probe' in now) {
        this.waiters++
        await now.probe.finally(() => this.waiters--)
      } else if ('retryIn' in now) {
        this.o.metrics?.serverStartsRefused.inc({ server })
        const seconds = Math.ceil(now.retryIn / 1000)
        throw new BridgeError(
          'server_unavailable',
          `server ${server} could not be started; retrying in ${seconds} s`,
          undefined,
          seconds,
        )
      } else return now.attempt
    }
  }

  /**
   * Where a start of `key` stands now: it may run (as the probe when a window just ended;
   * with no attempt when it may not probe), or must wait out a window or a running probe.
   */
  private step(
    key: string,
    server: string,
    mayProbe: boolean,
    sub: string | undefined,
  ): { attempt: StartAttempt | undefined } | { retryIn: number } | { probe: Promise<void> } {
    const f = this.get(key)
    if (f === undefined) return { attempt: mayProbe ? this.attempt(key, server, sub) : undefined }
    const left = f.until - this.now()
    if (left > 0) return { retryIn: left }
    if (f.probe !== undefined) return { probe: f.probe }
    if (!mayProbe) return { attempt: undefined }
    const probe = new Promise<void>((resolve) => (f.endProbe = resolve))
    f.probe = probe
    // A probe that never tells (a legacy SSE session whose client sends no initialize)
    // holds the others no longer than a start may take.
    const config = this.o.config.servers[server]!
    const wait = initializeTimeout(config) + PROBE_GRACE_MS
    const timer = setTimeout(() => this.release(f, probe), wait).unref()
    void probe.then(() => clearTimeout(timer))
    return { attempt: this.attempt(key, server, sub, f, probe) }
  }

  /**
   * A warm process of `server` (the pool's: no identity, no credentials, no client input):
   * it starts now, as the probe when a window just ended, or waits for the window or probe.
   * Never refused with an error, never counted as a refused request.
   */
  warmStart(server: string): WarmStart {
    if (this.o.config.servers[server]?.mode !== 'session') return { attempt: UNWATCHED }
    const now = this.step(this.keyOf(server, undefined), server, true, undefined)
    return 'attempt' in now ? { attempt: now.attempt! } : now
  }

  /**
   * A warm process of `server` exited before any session took it: it never served, so the
   * server failed to start (a window opens, or the one open stays).
   */
  warmExited(server: string): void {
    if (this.o.config.servers[server]?.mode !== 'session') return
    this.failed(this.keyOf(server, undefined), server, undefined, 'exit')
  }

  /**
   * The servers whose own starts are failing (a window, a probe, or a window over with no
   * start since), and how many users' own windows are open: what /readyz warns of. Users are
   * only counted: readiness names no subject.
   */
  status(): { servers: FailingServer[]; userWindows: number } {
    const now = this.now()
    const servers: FailingServer[] = []
    let userWindows = 0
    for (const f of this.users.values()) if (f.until > now || f.probe !== undefined) userWindows++
    for (const f of this.servers.values()) {
      if (this.forgettable(f, now)) continue
      servers.push({
        server: f.server,
        failures: f.failures,
        retryIn: Math.max(0, Math.ceil((f.until - now) / 1000)),
        probing: f.probe !== undefined,
        lastFailure: f.kind,
      })
    }
    return { servers, userWindows }
  }

  /** Starts waiting for a probe's outcome now, for tests and the log. */
  get waiting(): number {
    return this.waiters
  }

  /** Keys remembered now (a window, a probe, or a window not long over), for tests and the log. */
  get size(): number {
    return this.servers.size + this.users.size
  }

  /** The map `key` lives in. */
  private mapOf(key: string): Map<string, Failing> {
    return this.isServerKey(key) ? this.servers : this.users
  }

  private isServerKey(key: string): boolean {
    const server = key.slice(0, key.indexOf('\n'))
    return key === this.keyOf(server, undefined)
  }

  /**
   * `key`'s failures, unless they are forgotten by now: a read, that changes nothing (what is
   * over is dropped by the next failure's sweep, or replaced by the key's own next failure).
   */
  private get(key: string): Failing | undefined {
    const f = this.mapOf(key).get(key)
    return f === undefined || this.forgettable(f, this.now()) ? undefined : f
  }

  /**
   * Whether `f` is over: its window ended longer than the server's longest backoff ago, and
   * no probe runs. Such failures are forgotten: a user's bad credentials, tried once and never
   * again, are not kept for ever.
   */
  private forgettable(f: Failing, now: number): boolean {
    const max = this.o.config.servers[f.server]?.respawnBackoffMax ?? 0
    return f.probe === undefined && now - f.until > max
  }

  private attempt(
    key: string,
    server: string,
    sub: string | undefined,
    f?: Failing,
    probe?: Promise<void>,
  ): StartAttempt {
    let done = false
    const once = (fn: () => void) => () => {
      if (done) return
      done = true
      fn()
      if (f !== undefined && probe !== undefined) this.release(f, probe)
    }
    return {
      succeeded: once(() => this.succeeded(key, server)),
      failed: (kind: FailureKind) => once(() => this.failed(key, server, sub, kind))(),
      abandoned: once(() => {}),
    }
  }

  /** Ends `probe` if it is still `f`'s: its waiters look again. */
  private release(f: Failing, probe: Promise<void>): void {
    if (f.probe !== probe) return
    const end = f.endProbe
    f.probe = undefined
    f.endProbe = undefined
    end?.()
  }

  private succeeded(key: string, server: string): void {
    const map = this.mapOf(key)
    const f = map.get(key)
    if (f === undefined) return
    map.delete(key)
    if (f.probe !== undefined) this.release(f, f.probe)
    this.o.log.info({ server }, `server ${server} started again`)
  }

  private failed(key: string, server: string, sub: string | undefined, kind: FailureKind): void {
    const now = this.now()
    let f = this.get(key)
    // Starts that were under way when another failed: that failure opened the window already.
    if (f !== undefined && f.until > now) return
    const map = this.mapOf(key)
    if (f === undefined) {
      if (map === this.users) this.makeRoom(now)
      const config = this.o.config.servers[server]!
      f = {
        server,
        backoff: new Backoff({ first: config.respawnBackoff, max: config.respawnBackoffMax }),
        failures: 0,
        kind,
        until: now,
      }
    }
    // Least recently failed first.
    map.delete(key)
    map.set(key, f)
    f.failures++
    f.kind = kind
    const delay = f.backoff.next()
    f.until = now + delay
    this.o.metrics?.serverStartFailures.inc({ server })
    const seconds = Math.ceil(delay / 1000)
    if (sub === undefined)
      this.o.log.warn(
        { server, failure: kind, failures: f.failures, retryAfterMs: delay },
        `server ${server} failed to start; retrying after ${seconds} s`,
      )
    else
      this.o.log.warn(
        { server, sub, failure: kind, retryAfterMs: delay },
        `server ${server} failed to start a session of ${sub}; that user is refused for ${seconds} s`,
      )
  }

  /**
   * Room for one more user's failures: those over are forgotten, from the least recently
   * failed while they are (each failure is swept once: constant work a failure, amortized);
   * at `limits.startFailureUsers` every one over is, and if none is, the least recently failed
   * (that user may try one start again before their window ends). Runs only on a new failure,
   * which cost a spawn already.
   */
  private makeRoom(now: number): void {
    for (const [key, f] of this.users) {
      if (!this.forgettable(f, now)) break
      this.users.delete(key)
    }
    const max = this.o.config.limits.startFailureUsers
    if (this.users.size < max) return
    for (const [key, f] of this.users) if (this.forgettable(f, now)) this.users.delete(key)
    for (const key of this.users.keys()) {
      if (this.users.size < max) break
      this.users.delete(key)
    }
  }
}
