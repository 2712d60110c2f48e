import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { blotted, goneOf, loggedMethod, spawnChild, type Child } from './child.js'
import { BridgeError } from './errors.js'
import { Backoff } from './lifecycle.js'
import { NoFreeUid } from './run-as.js'
import type { FailureKind, StartAttempt, StartFailures } from './start-failures.js'
import {
  exchange,
  InitializeFailed,
  initializeChild,
  initializeTimeout,
  preinitialized,
  refuseAsk,
  type InitResult,
} from './handshake.js'

/**
 * Delay between handing out a warm process and spawning its replacement, in ms. Not a setting:
 * it only lets the session's reply go out before the spawn blocks the event loop; it bounds
 * nothing, and pool.min/pool.max are the operator's bounds.
 */
const REFILL_DELAY_MS = 20

/**
 * The processes of one session-mode server: a warm target of processes kept spawned and
 * waiting so a new session does not pay the spawn, at most `pool.max` alive in all. A process
 * handed to a session is never handed to another; the pool refills in the background. The
 * target is `pool.min` at rest; a session that finds no warm process, or takes the last one,
 * is demand coming faster than the pool refills: the target doubles, up to `pool.burst`, and
 * the difference starts at once, one spawn per turn of the event loop. After `pool.cooldown`
 * with no such session the target is `pool.min` again and the warm processes above it end.
 * Warm processes that die are replaced with exponential backoff, so a crashing command cannot
 * spin: with the gateway's start-failure memory (`starts`), a warm process that cannot start,
 * or exits before a session took it, is a failed start of the server like any other, and the
 * pool spawns nothing inside the window it opened (one warm process probes after it), so a
 * broken server with `pool.min` costs at most one spawn per window.
 */
export class ProcessPool {
  private readonly idle: Child[] = []
  /** Results of the gateway's own initialize, for warm processes it already initialized. */
  private readonly initialized = new WeakMap<Child, InitResult>()
  /**
   * Sessions waiting for a warm process that is loading, first come first served: each gets
   * the next one ready, or undefined when one failed (it then looks again).
   */
  private readonly waiters: ((child: Child | undefined) => void)[] = []
  /** Processes spawning (not started yet), warm and sessions' own. */
  private spawning = 0
  /**
   * Every process the pool started, from its start until it is gone: warm, loading, a
   * session's, and dead ones still being stopped (their stdout read, their group's stop ladder).
   */
  private readonly processes = new Set<Child>()
  /** Warm processes spawning. */
  private warming = 0
  /** Those warm processes, each until it is warm or ended: shutdown waits for them. */
  private readonly loading = new Set<Promise<void>>()
  /** Those spawned and not warm yet (priming, initializing): shutdown ends them at once. */
  private readonly unready = new Set<Child>()
  /** Whether new warm processes are primed with a ping (false once a server exited on one). */
  private primeable = true
  private readonly backoff: Backoff
  private retry: NodeJS.Timeout | undefined
  /** The next warm spawn, one turn of the event loop after the last (`refill`). */
  private next: NodeJS.Immediate | undefined
  /** Waiting for the start-failure memory: its window's end, or its probe's. */
  private held: NodeJS.Timeout | Promise<void> | undefined
  private closed = false
  /** Warm processes wanted now: pool.min at rest, more while demand lasts. */
  private wanted: number
  /** When a session last found the pool empty or took its last process. */
  private lastDemand = 0
  private cooling: NodeJS.Timeout | undefined
  private readonly now: () => number

  constructor(
    private readonly o: {
      name: string
      config: ServerConfig
      log: Logger
      /** The clock the cooldown is measured with. */
      now?: () => number
      /** The start-failure memory: warm starts follow its windows and feed it. */
      starts?: StartFailures
      /** Counts a warm process's log lines a rate limit suppressed while it has no owner. */
      metrics?: Metrics
    },
  ) {
    this.wanted = o.config.pool.min
    this.now = o.now ?? Date.now
    this.backoff = new Backoff({
      first: o.config.respawnBackoff,
      max: o.config.respawnBackoffMax,
    })
  }

  /**
   * The processes `pool.max` caps: spawning, and started until gone, dead ones too until they
   * are: one that exited (or was ended) may still hold its stdout open, or leave what it started
   * running, for up to three `stopGrace`s of the stop ladder, and its replacement must not come
   * on top of it.
   */
  get size(): number {
    return this.spawning + this.processes.size
  }

  /** Warm processes waiting for a session. */
  get warm(): number {
    return this.idle.length
  }

  /** Warm processes wanted now: `pool.min` at rest, up to `pool.burst` while demand lasts. */
  get target(): number {
    return this.wanted
  }

  /** Starts filling the pool. */
  start(): void {
    this.refill()
  }

  /**
   * A process for a new session: a warm one when there is one (never with an `env` of its own:
   * `identityEnv` or the user's credentials,
   * whose environment must be the session's), else a new one.
   * @throws BridgeError `too_many_sessions` at `pool.max`, `spawn_failed`
   */
  async take(
    log: Logger,
    identity?: Record<string, string>,
    redact: readonly string[] = [],
    pay?: (starts: number) => number,
  ): Promise<Child> {
    let child: Child | undefined
    // A process with an env of its own is no demand on the warm pool: it could never use it.
    while (identity === undefined && child === undefined && !this.closed) {
      while (child === undefined && this.idle.length > 0) {
        const c = this.idle.shift()!
        if (c.alive) child = c
      }
      if (child !== undefined) {
        // The last one: the next session would miss. Warmed after this session's reply is out.
        if (this.idle.length === 0) this.demand(pay)
        break
      }
      // A miss: warm more at once, then wait for one loading or starting on the next turns (it
      // started before this session's own would), unless every one is another waiting session's.
      this.demand(pay)
      this.refill()
      if (this.warming + this.queued() <= this.waiters.length) break
      child = await new Promise<Child | undefined>((resolve) => this.waiters.push(resolve))
    }
    if (child !== undefined) {
      child.retag(log)
      const init = this.initialized.get(child)
      this.initialized.delete(child)
      if (init !== undefined) child = preinitialized(child, init)
    } else {
      if (this.size >= this.o.config.pool.max) {
        throw BridgeError.limited(
          'too_many_sessions',
          `server ${this.o.name} is at its process limit; retry later`,
          `servers.${this.o.name}.pool.max`,
        )
      }
      this.spawning++
      try {
        child = await spawnChild(this.o.config, log, identity, redact)
        this.own(child)
      } catch (err) {
        // Every uid of its runAs range is a live process's: a bound, like pool.max.
        if (err instanceof NoFreeUid)
          throw BridgeError.limited(
            'too_many_sessions',
            `server ${this.o.name} has no free uid in runAs.uids; retry later`,
            `servers.${this.o.name}.runAs.uids`,
          )
        log.error(
          { err: { message: (err as Error).message }, command: this.o.config.command },
          'server process failed to start',
        )
        throw new BridgeError('spawn_failed', 'the MCP server could not be started', err)
      } finally {
        this.spawning--
      }
    }
    // Spawning blocks the event loop for a moment: do it after this session's reply is out.
    setTimeout(() => this.refill(), REFILL_DELAY_MS).unref()
    return child
  }

  /**
   * Stops refilling and ends the warm processes, those still loading included: a process
   * spawned just before shutdown would otherwise outlive the gateway (sessions end their own).
   */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    clearImmediate(this.next)
    if (this.held !== undefined && !(this.held instanceof Promise)) clearTimeout(this.held)
    clearTimeout(this.cooling)
    for (const wake of this.waiters.splice(0)) wake(undefined)
    await Promise.all([
      ...this.idle.splice(0).map((c) => c.close()),
      ...[...this.unready].map((c) => c.close()),
      ...this.loading,
    ])
  }

  /**
   * Ends the warm processes above `pool.min` once no session found the pool empty for
   * `pool.cooldown` (by the pool's clock); else looks again when that could be so. Its own
   * timer calls it.
   */
  cool(): void {
    clearTimeout(this.cooling)
    this.cooling = undefined
    const { min, cooldown } = this.o.config.pool
    if (this.closed || this.wanted <= min) return
    const quiet = this.now() - this.lastDemand
    if (quiet < cooldown) {
      this.cooling = setTimeout(() => this.cool(), cooldown - quiet).unref()
      return
    }
    this.wanted = min
    const surplus = this.idle.splice(min)
    this.o.log.info(
      { target: min, ended: surplus.length },
      'warm target back to pool.min after a quiet cooldown',
    )
    for (const c of surplus) void c.close()
  }

  /**
   * Sessions are coming faster than the pool refills: doubles the target (the caller refills).
   * The warm processes a raise adds are spawns the session asking made the gateway do: `pay`
   * charges them to its subject (process-starts.ts) and the target rises only as far as it
   * paid, so one user opening sessions cannot have the pool spawn what nobody is charged for.
   */
  private demand(pay?: (starts: number) => number): void {
    const { min, max, burst, cooldown } = this.o.config.pool
    this.lastDemand = this.now()
    const ceiling = Math.min(max, Math.max(min, burst))
    const doubled = Math.min(ceiling, Math.max(2, this.wanted * 2))
    const raise = doubled > this.wanted ? doubled - this.wanted : 0
    const paid = raise > 0 && pay !== undefined ? Math.min(raise, pay(raise)) : raise
    if (paid > 0) {
      this.wanted += paid
      this.o.log.debug({ target: this.wanted }, 'warm target raised')
    }
    if (this.wanted > min && this.cooling === undefined)
      this.cooling = setTimeout(() => this.cool(), cooldown).unref()
  }

  /** Warm processes the target wants that start on the next turns of the event loop (`refill`). */
  private queued(): number {
    return this.next === undefined ? 0 : Math.max(0, this.missing())
  }

  /**
   * Warm processes the target wants and `pool.max` allows that are neither warm nor loading;
   * those a waiting session has claimed do not count: they are already in use.
   */
  private missing(): number {
    const unclaimed = this.idle.length + this.warming - this.waiters.length
    return Math.min(this.wanted - unclaimed, this.o.config.pool.max - this.size)
  }

  /**
   * Starts the warm processes the target wants, one per turn of the event loop: a spawn blocks
   * the loop (a fork of the gateway, milliseconds each, far more on a busy machine), and the
   * requests in flight, sessions starting on warm processes among them, go between two spawns
   * rather than after all of them. They still load side by side.
   */
  private refill(): void {
    if (this.closed || this.retry !== undefined || this.next !== undefined) return
    if (this.missing() > 0) {
      const attempt = this.admitted()
      if (attempt === undefined) return
      this.spawning++
      this.warming++
      const loading = this.load(attempt)
        .catch((err: Error) => {
          this.o.log.error(
            { err: { message: err.message }, command: this.o.config.command },
            'warm server process failed to start',
          )
          this.afterFailure()
        })
        .finally(() => {
          this.loading.delete(loading)
          // A waiting session whose warm process will not come looks again.
          if (this.waiters.length > this.warming) this.waiters.shift()?.(undefined)
        })
      this.loading.add(loading)
      if (this.missing() > 0)
        this.next = setImmediate(() => {
          this.next = undefined
          this.refill()
        })
    }
  }

  /**
   * Whether a warm process may start now, by the start-failure memory: its attempt, or
   * undefined while the server is failing (the pool looks again when the window or probe ends).
   */
  private admitted(): StartAttempt | undefined {
    const starts = this.o.starts
    if (starts === undefined) return NO_MEMORY
    const now = starts.warmStart(this.o.name)
    if ('attempt' in now) return now.attempt
    if (this.held === undefined) {
      const again = () => {
        this.held = undefined
        this.refill()
      }
      this.o.log.debug(
        'retryIn' in now ? { retryInMs: now.retryIn } : { probing: true },
        'warm processes wait for the server to start again',
      )
      this.held = 'retryIn' in now ? setTimeout(again, now.retryIn).unref() : now.probe.then(again)
    }
    return undefined
  }

  /** One warm process: spawned, primed, initialized when asked; ready for a session, or ended. */
  private async load(attempt: StartAttempt): Promise<void> {
    // Counted as warming until it is ready or ended, once, whichever way it goes.
    let counted = true
    const loaded = () => {
      if (!counted) return
      counted = false
      this.warming--
    }
    let child: Child
    try {
      child = await spawnChild(this.o.config, this.o.log.child({ warm: true }))
      this.spawning--
      this.own(child)
      // Counted while it waits for a session too (whoever takes it counts from then on).
      child.onsuppressed = (source, lines) =>
        this.o.metrics?.logLinesSuppressed.inc({ server: this.o.name, source }, lines)
    } catch (err) {
      this.spawning--
      loaded()
      attempt.failed('spawn')
      throw err
    }
    this.unready.add(child)
    try {
      // Shut down while it spawned: ended at once, not primed first.
      if (this.closed) {
        loaded()
        attempt.abandoned()
        return await child.close()
      }
      if (this.primeable) {
        await primed(child, this.o.config.pool.primeTimeout)
        // Some servers exit on any request before initialize: prime no more, and start over
        // (unless shutdown ended it). Says nothing yet of whether the server starts.
        if (!child.alive && !this.closed) {
          this.primeable = false
          this.o.log.warn(
            'server process exited on a ping before initialize; warm processes are no longer primed',
          )
          loaded()
          attempt.abandoned()
          return this.refill()
        }
      }
      if (this.o.config.pool.preinitialize && child.alive) {
        let failure: FailureKind = 'exit'
        const init = await initializeChild(child, initializeTimeout(this.o.config)).catch(
          (err: Error) => {
            if (err instanceof InitializeFailed) failure = err.kind
            this.o.log.error(
              { err: { message: blotted(child, err.message) }, pid: child.pid },
              'warm server process failed to initialize',
            )
            return undefined
          },
        )
        if (init === undefined) {
          attempt.failed(failure)
          await child.close()
          loaded()
          return this.afterFailure()
        }
        this.initialized.set(child, init)
        // Initialized and idle, it may ask: refused at once, as preinitialized() does once a
        // session has it.
        child.onmessage = (m) => {
          const method = refuseAsk(child, m)
          if (method !== undefined)
            this.o.log.debug(
              { pid: child.pid, method: loggedMethod(method, child.redact) },
              'warm server process asked; refused',
            )
        }
        attempt.succeeded()
      }
      loaded()
      if (this.closed) {
        attempt.abandoned()
        return void child.close()
      }
      if (!child.alive) {
        attempt.failed('exit')
        await child.close()
        return this.afterFailure()
      }
      // Alive and waiting: whether it starts is its first session's to tell.
      attempt.abandoned()
      this.backoff.reset()
      this.o.log.debug({ pid: child.pid }, 'warm server process ready')
      const waiter = this.waiters.shift()
      if (waiter !== undefined) return waiter(child)
      // Loading when the target fell back to pool.min: not wanted any more.
      if (this.idle.length >= this.wanted) return void child.close()
      // Out of the pool as soon as it exits: its stdout may stay open (a descendant holding
      // it) for up to stopGrace, and no session may take it meanwhile.
      child.ondead = () => this.onWarmExit(child)
      this.idle.push(child)
    } finally {
      loaded()
      this.unready.delete(child)
    }
  }

  /** Counts `child` until it is gone (`goneOf`: exited, its stdout read, its group's ladder over). */
  private own(child: Child): void {
    this.processes.add(child)
    void goneOf(child).then(() => {
      this.processes.delete(child)
      this.refill()
    })
  }

  /** A warm process failed to start: the memory's window holds the next, else the pool's backoff. */
  private afterFailure(): void {
    if (this.o.starts !== undefined) this.refill()
    else this.later()
  }

  private onWarmExit(child: Child): void {
    const i = this.idle.indexOf(child)
    if (i === -1) return
    this.idle.splice(i, 1)
    this.o.log.warn({ pid: child.pid }, 'warm server process exited before use')
    // It never served: the server failed to start, and the memory's window holds the refill.
    this.o.starts?.warmExited(this.o.name)
    this.afterFailure()
  }

  /** Refills after a growing delay. */
  private later(): void {
    if (this.closed || this.retry !== undefined) return
    this.retry = setTimeout(() => {
      this.retry = undefined
      this.refill()
    }, this.backoff.next()).unref()
  }
}

/** The attempt of a pool with no start-failure memory: its outcome changes nothing. */
const NO_MEMORY: StartAttempt = { succeeded() {}, failed() {}, abandoned() {} }

/**
 * Waits until a new process has loaded: it answers a `ping` (MCP lifecycle: pings may precede
 * initialize). A process counts as warm only then, so a session never waits on a runtime that
 * is still starting. Any answer will do, an error included; silence ends the wait too. A
 * process that exits, or whose stdin broke, is ended before this resolves: `alive` then says
 * so, whichever event the process's end arrived by first.
 */
async function primed(child: Child, timeoutMs: number): Promise<void> {
  const heard: { timedOut?: boolean } = {}
  const reply = await exchange(child, 'ping', undefined, timeoutMs, heard)
  if (reply === undefined && !heard.timedOut) await child.close()
}
