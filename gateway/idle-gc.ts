// One full garbage collection when the gateway falls quiet after work. V8 keeps the heap a
// burst grew to (a doubled new space, old-space garbage below its next collection limit), and
// its own memory reducer only gets to it about 100 s after the last collection: it judges the
// allocation rate from samples taken at collections, which an idle process never makes, and
// waits for its watchdog. Measured in issue 14's bench: after 10,000 sessions opened and closed
// the gateway holds ~180 MB for those 100 s and ~96 MB once collected. The serving process
// (main.ts) runs this; code that embeds the gateway keeps its own heap policy.
import type { Logger } from 'pino'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { tickWhile } from './bridge/lifecycle.js'

/** What the collector reads and does: the process's, or a test's. */
export interface IdleGcProbe {
  /** CPU the process has used so far, in µs. */
  cpuMicros(): number
  /** Bytes of V8 heap backed by memory (what the collection can give back). */
  heapBytes(): number
  /** A full, synchronous collection. */
  collect(): void
  /** Requests received so far: a tick in which any arrived is work, however little CPU it took. */
  requests?(): number
}

/** The quiet time is watched in this many ticks: a collection comes 1 to 1¼ quiet times late. */
export const QUIET_TICKS = 4
/** A tick in which the process used more CPU than this share of it is work, not quiet. */
export const BUSY_CPU_SHARE = 0.02
/** The heap must have grown by this much (and 10%) since the last collection to collect again. */
export const MIN_GROWTH_BYTES = 4 * 1024 * 1024

/**
 * The second GC of a collection comes at least this long after the first. V8 shrinks a new
 * space that a burst doubled (16 to 32 MB, all of it resident) only at a GC that finds the
 * allocation rate low (under 1 KB/ms); it judges the rate from the samples it takes at GCs,
 * averaged back over at least 5 s. At the first GC the newest sample spans the quiet time back
 * to the work's last GC and holds what the work allocated since (up to a full new space):
 * with start-up's it is often too high. At a second GC this long after the first, the newest
 * sample alone spans the window and holds only what a quiet process allocates. A tick after the
 * first (2.5 s with the default quiet time) the window reached back into the work's sample too:
 * in issue 14's bench the idle gateway kept its 32 MB new space after start-up in 4 runs of 4
 * (RSS ~100 MB, against ~90 once shrunk); with this wait, 1-2 MB in 3 of 3.
 */
export const SECOND_GC_AFTER_MS = 6000

/**
 * The rule, ticked every quietMs / QUIET_TICKS: collect once the process has been quiet for
 * QUIET_TICKS ticks in a row and its heap has grown since the last collection (at start: any
 * heap, so start-up's garbage goes too). A collection is two full GCs SECOND_GC_AFTER_MS apart
 * (the first tick after it): the first frees objects, the second shrinks the new space and
 * compacts the old-space pages the first left sparse (measured after 10,000 sessions: old
 * space 44 MB committed for 22 MB live after one, 25 MB after two); if work comes back between
 * them, the second is skipped. A collection's own CPU does not count as work, and a heap that
 * has not grown again is never collected twice: an idle gateway stays untouched.
 */
export class IdleCollector {
  private quietTicks = 0
  private lastCpu: number
  private lastRequests: number
  private collectedAt = 0
  /** Heap bytes before the first GC of a collection whose second is due. */
  private firstFrom: number | undefined
  /** Quiet ticks since that first GC, and how many the second waits for. */
  private sinceFirst = 0
  private readonly secondTicks: number
  /**
   * The last collection gave back less than MIN_GROWTH_BYTES: V8 does not shrink a heap within
   * about 10 s of its previous full GC (start-up's, often), so the next quiet time collects once
   * more whatever the heap did; a second one giving back nothing ends it.
   */
  private retry = false
  /** The collection under way is that retry (it gets none of its own). */
  private retried = false

  constructor(
    private readonly tickMs: number,
    private readonly probe: IdleGcProbe,
  ) {
    this.lastCpu = probe.cpuMicros()
    this.lastRequests = probe.requests?.() ?? 0
    this.secondTicks = Math.max(1, Math.ceil(SECOND_GC_AFTER_MS / tickMs))
  }

  /** One tick; what a collection gave back, on the tick it finished. */
  tick(): { before: number; after: number } | undefined {
    const cpu = this.probe.cpuMicros()
    const requests = this.probe.requests?.() ?? 0
    // Work: a request (light load must not meet a full GC), or CPU past the share (a process
    // serving nothing still uses some: timers, metrics sampling).
    const busy =
      requests !== this.lastRequests || cpu - this.lastCpu > BUSY_CPU_SHARE * this.tickMs * 1000
    this.lastCpu = cpu
    this.lastRequests = requests
    if (this.firstFrom !== undefined) {
      if (!busy && ++this.sinceFirst < this.secondTicks) return undefined
      const before = this.firstFrom
      this.firstFrom = undefined
      if (!busy) this.gc()
      this.collectedAt = this.probe.heapBytes()
      this.retry = !this.retried && before - this.collectedAt < MIN_GROWTH_BYTES
      this.retried = this.retry
      return { before, after: this.collectedAt }
    }
    this.quietTicks = busy ? 0 : this.quietTicks + 1
    if (this.quietTicks < QUIET_TICKS) return undefined
    const before = this.probe.heapBytes()
    const grown = before - this.collectedAt
    if (!this.retry && grown < Math.max(MIN_GROWTH_BYTES, this.collectedAt * 0.1)) return undefined
    this.retry = false
    this.gc()
    this.firstFrom = before
    this.sinceFirst = 0
    return undefined
  }

  /**
   * Nothing is due until work comes back: quiet for QUIET_TICKS, the last tick found the heap
   * not grown enough to collect, and neither a collection's second GC nor a retry is pending.
   * Ticking on would only find the same (a process serving no request grows its heap little).
   */
  get settled(): boolean {
    return this.firstFrom === undefined && !this.retry && this.quietTicks >= QUIET_TICKS
  }

  private gc(): void {
    this.probe.collect()
    this.quietTicks = 0
    this.lastCpu = this.probe.cpuMicros()
  }
}

/**
 * V8's `gc` without starting node with --expose-gc (every way the gateway is started gets it,
 * and no other code sees a global `gc`): the flag is on only while one context is made.
 */
function fullGc(): () => void {
  const exposed = (globalThis as { gc?: unknown }).gc
  if (typeof exposed === 'function') return () => exposed()
  setFlagsFromString('--expose-gc')
  try {
    const gc = runInNewContext('gc') as unknown
    if (typeof gc !== 'function') throw new Error('V8 did not expose gc')
    return () => gc()
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}

/** Where the serving process's requests are seen: counted, and each one told. */
export interface RequestActivity {
  /** Requests received so far. */
  requests(): number
  /** Calls `listener` on every request from now on. */
  onRequest(listener: () => void): void
}

/**
 * Starts the collector on this process (`quietMs` 0: not at all); its timer does not keep the
 * process alive. With `activity` the timer stops once the collector has settled and the next
 * request starts it again: an idle gateway ticks for nothing no longer.
 */
export function startIdleGc(
  quietMs: number,
  log: Logger,
  activity?: RequestActivity,
): { stop(): void } {
  if (quietMs === 0) return { stop() {} }
  const collect = fullGc()
  const cpuMicros = () => {
    const u = process.cpuUsage()
    return u.user + u.system
  }
  const heapBytes = () => getHeapStatistics().total_physical_size
  const tickMs = quietMs / QUIET_TICKS
  const requests = activity && (() => activity.requests())
  const collector = new IdleCollector(tickMs, { cpuMicros, heapBytes, collect, requests })
  const MB = 1024 * 1024
  const ticker = tickWhile(tickMs, () => {
    const t0 = performance.now()
    const done = collector.tick()
    if (done)
      log.debug(
        {
          heapMb: Math.round(done.before / MB),
          heapAfterMb: Math.round(done.after / MB),
          ms: Math.round(performance.now() - t0),
        },
        'quiet: heap collected',
      )
    // Settled: no next tick until a request.
    return !activity || !collector.settled
  })
  ticker.watch()
  activity?.onRequest(() => ticker.watch())
  return { stop: () => ticker.stop() }
}
