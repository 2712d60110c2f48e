import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { spawnChild, type Child } from './child.js'
import { BridgeError } from './errors.js'
import {
  exchange,
  initializeChild,
  initializeTimeout,
  preinitialized,
  type InitResult,
} from './handshake.js'

/**
 * Delay between handing out a warm process and spawning its replacement, in ms. Not a setting:
 * it only lets the session's reply go out before the spawn blocks the event loop; it bounds
 * nothing, and pool.min/pool.max are the operator's bounds.
 */
const REFILL_DELAY_MS = 20

/**
 * The processes of one session-mode server: `pool.min` kept spawned and waiting so a new
 * session does not pay the spawn, at most `pool.max` alive in all. A process handed to a
 * session is never handed to another; the pool refills in the background. Warm processes that
 * die are replaced with exponential backoff, so a crashing command cannot spin.
 */
export class ProcessPool {
  private readonly idle: Child[] = []
  /** Results of the gateway's own initialize, for warm processes it already initialized. */
  private readonly initialized = new WeakMap<Child, InitResult>()
  /** Sessions waiting at pool.max for a warm process that is loading. */
  private readonly warmed: (() => void)[] = []
  private starting = 0
  private warming = 0
  /** Whether new warm processes are primed with a ping (false once a server exited on one). */
  private primeable = true
  private inUse = 0
  private backoff = 0
  private retry: NodeJS.Timeout | undefined
  private closed = false

  constructor(private readonly o: { name: string; config: ServerConfig; log: Logger }) {}

  /** Processes alive or starting, warm and in use. */
  get size(): number {
    return this.idle.length + this.starting + this.inUse
  }

  /** Warm processes waiting for a session. */
  get warm(): number {
    return this.idle.length
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
  ): Promise<Child> {
    let child: Child | undefined
    for (;;) {
      if (identity === undefined) {
        while (child === undefined && this.idle.length > 0) {
          const c = this.idle.shift()!
          if (c.alive) child = c
        }
      }
      // At pool.max with warm processes still loading: one of them is this session's.
      if (
        child !== undefined ||
        this.closed ||
        this.size < this.o.config.pool.max ||
        this.warming === 0 ||
        identity !== undefined
      )
        break
      await new Promise<void>((resolve) => this.warmed.push(resolve))
    }
    if (child !== undefined) {
      child.retag(log)
      const init = this.initialized.get(child)
      this.initialized.delete(child)
      if (init !== undefined) child = preinitialized(child, init)
    } else {
      if (this.size >= this.o.config.pool.max) {
        throw new BridgeError(
          'too_many_sessions',
          `server ${this.o.name} is at its process limit; retry later`,
        )
      }
      this.starting++
      try {
        child = await spawnChild(this.o.config, log, identity, redact)
      } catch (err) {
        log.error(
          { err: { message: (err as Error).message }, command: this.o.config.command },
          'server process failed to start',
        )
        throw new BridgeError('spawn_failed', 'the MCP server could not be started', err)
      } finally {
        this.starting--
      }
    }
    this.inUse++
    void child.exited.then(() => {
      this.inUse--
      this.refill()
    })
    // Spawning blocks the event loop for a moment: do it after this session's reply is out.
    setTimeout(() => this.refill(), REFILL_DELAY_MS).unref()
    return child
  }

  /** Stops refilling and ends the warm processes (sessions end their own). */
  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    for (const wake of this.warmed.splice(0)) wake()
    await Promise.all(this.idle.splice(0).map((c) => c.close()))
  }

  private refill(): void {
    if (this.closed || this.retry !== undefined) return
    const { min, max } = this.o.config.pool
    while (this.idle.length + this.starting < min && this.size < max) {
      this.starting++
      this.warming++
      spawnChild(this.o.config, this.o.log.child({ warm: true }))
        .then(async (child) => {
          if (this.primeable) {
            await primed(child, this.o.config.pool.primeTimeout)
            // Some servers exit on any request before initialize: prime no more, and start over.
            if (!child.alive) {
              this.primeable = false
              this.o.log.warn(
                'server process exited on a ping before initialize; warm processes are no longer primed',
              )
              this.starting--
              this.warming--
              return this.refill()
            }
          }
          if (this.o.config.pool.preinitialize && child.alive) {
            const init = await initializeChild(child, initializeTimeout(this.o.config)).catch(
              (err: Error) => {
                this.o.log.error(
                  { err: { message: err.message }, pid: child.pid },
                  'warm server process failed to initialize',
                )
                return undefined
              },
            )
            if (init === undefined) {
              await child.close()
              throw new Error('initialize failed')
            }
            this.initialized.set(child, init)
          }
          this.starting--
          this.warming--
          if (this.closed || !child.alive) return void child.close()
          child.onexit = () => this.onWarmExit(child)
          this.idle.push(child)
          this.o.log.debug({ pid: child.pid }, 'warm server process ready')
          this.backoff = 0
        })
        .catch((err: Error) => {
          this.starting--
          this.warming--
          this.o.log.error(
            { err: { message: err.message }, command: this.o.config.command },
            'warm server process failed to start',
          )
          this.later()
        })
        .finally(() => {
          for (const wake of this.warmed.splice(0)) wake()
        })
    }
  }

  private onWarmExit(child: Child): void {
    const i = this.idle.indexOf(child)
    if (i === -1) return
    this.idle.splice(i, 1)
    this.o.log.warn({ pid: child.pid }, 'warm server process exited before use')
    this.later()
  }

  /** Refills after a growing delay. */
  private later(): void {
    if (this.closed || this.retry !== undefined) return
    this.backoff = Math.min(
      this.backoff === 0 ? this.o.config.respawnBackoff : this.backoff * 2,
      this.o.config.respawnBackoffMax,
    )
    this.retry = setTimeout(() => {
      this.retry = undefined
      this.refill()
    }, this.backoff).unref()
  }
}

/**
 * Waits until a new process has loaded: it answers a `ping` (MCP lifecycle: pings may precede
 * initialize). A process counts as warm only then, so a session never waits on a runtime that
 * is still starting. Any answer will do, an error included; the process exiting or silence
 * ends the wait too.
 */
async function primed(child: Child, timeoutMs: number): Promise<void> {
  await exchange(child, 'ping', undefined, timeoutMs)
}
