import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { ServerConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { Channel } from './channel.js'
import type { Child } from './child.js'
import { BridgeError } from './errors.js'
import { Replica } from './replica.js'
import type { SharedCrashes } from './shared-crashes.js'

/**
 * One long-lived process (per replica) serving every session of a `shared` server. The
 * gateway initializes it once with no client capabilities, so it never asks for sampling,
 * elicitation or roots; each session's own `initialize` is answered from that result with
 * the version the session asked for when the gateway speaks it. Request ids and progress
 * tokens are rewritten so replies, progress and cancellations reach exactly their session;
 * list-changed notifications go to every session, resource updates to subscribers only, log
 * lines (which name no request) to none.
 * When the process dies (exits, or its stdin breaks) it is attached to no more and restarts with
 * exponential backoff, reset only by a run of respawnStableAfter; once what it wrote is read to
 * the end, its requests still in flight fail, its sessions end (clients get 404 and initialize
 * again) and the subjects whose requests were in flight are charged for the exit, once; one
 * charged too often is refused here (shared-crashes.ts).
 */
export class SharedServer {
  private readonly replicas: Replica[]
  private readonly readyWait: number

  constructor(
    private readonly o: {
      name: string
      config: ServerConfig
      log: Logger
      /** Each subject's share of the process's exits (limits.sharedCrashesPerSubject). */
      crashes?: SharedCrashes
      /** The clock of runs against respawnStableAfter (ms); default: monotonic. */
      now?: () => number
      /** Counts the process's log lines a rate limit suppressed. */
      metrics?: Metrics
    },
  ) {
    this.readyWait = o.config.readyWait
    this.replicas = Array.from(
      { length: o.config.replicas },
      (_, i) =>
        new Replica(o.config, o.log.child({ replica: i }), {
          server: o.name,
          crashes: o.crashes,
          now: o.now,
          metrics: o.metrics,
        }),
    )
  }

  /** Starts every replica (in the background; sessions wait for one to be ready). */
  start(): void {
    for (const r of this.replicas) r.start()
  }

  /** Sessions attached across replicas. */
  get sessions(): number {
    return this.replicas.reduce((n, r) => n + r.channels.size, 0)
  }

  /**
   * A view of the shared process for `principal`'s session or lane, on the least-loaded ready
   * replica; `method` the request that asks for it, as a refusal's audit line names it.
   * @throws BridgeError `shared_crash_limit` (429) while the process exited too often with
   * `principal`'s requests in flight, `spawn_failed` when no replica becomes ready in time
   */
  async attach(principal: Principal, method = 'initialize'): Promise<Child> {
    this.o.crashes?.check(this.o.name, principal, method)
    const deadline = Date.now() + this.readyWait
    for (;;) {
      const ready = this.replicas.filter((r) => r.ready)
      if (ready.length > 0) {
        const replica = ready.reduce((a, b) => (b.channels.size < a.channels.size ? b : a))
        return new Channel(replica, principal)
      }
      const left = deadline - Date.now()
      if (left <= 0)
        throw new BridgeError('spawn_failed', 'the MCP server is not available; retry later')
      // A replica becoming ready, or the deadline: a replica in a long backoff must not hold us.
      await Promise.race([
        ...this.replicas.map((r) => r.readyOnce()),
        new Promise((r) => setTimeout(r, left)),
      ])
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.close()))
  }
}
