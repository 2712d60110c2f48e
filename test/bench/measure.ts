import { runLoad } from './load.js'
import { rssSampler, treePids, treeRssMb } from './proc.js'
import type { BenchSession, Target } from './target.js'

/** Sizes of one row (env BENCH_*). */
export interface Sizes {
  /** Sequential calls on one session, timed one by one (latency without load). */
  calls: number
  /** Calls of the timed load run, `concurrency` in flight. */
  concurrentCalls: number
  concurrency: number
  /** Sequential calls first, untimed. */
  warmup: number
  /** Calls of the row's load shape first, untimed (every session and its process warmed). */
  loadWarmup: number
}

/** One row of the results table (one repetition, or the medians of several). */
export interface RowResult {
  /** The row's BENCH_ROWS key. */
  key: string
  row: string
  /** Latency under the row's load (`concurrency` in flight, in the row's shape). */
  p50Ms: number
  p99Ms: number
  /** Latency of one call at a time on one session. */
  seqP50Ms: number
  seqP99Ms: number
  callsPerSec: number
  /** CPU of the whole serving tree per call, under load. */
  cpuMsPerCall: number
  /** Part of cpuMsPerCall spent in the root process itself (the rest: its children). */
  rootCpuMsPerCall: number
  /**
   * The rest: cpuMsPerCall minus rootCpuMsPerCall, the root's descendants (stdio children,
   * a peer's own child processes); per repetition, so a row's median is the median of these.
   */
  childrenCpuMsPerCall: number
  sessionStartP50Ms: number
  idleRssMb: number
  peakRssMb: number
  /** Processes in the serving tree during the load run. */
  processes: number
  concurrencyMode: string
  /** The load run's start and end on CLOCK_MONOTONIC, µs (what V8's profiles stamp samples with). */
  loadWindowUs: [number, number]
  problems: string[]
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? NaN
}

/** Now on CLOCK_MONOTONIC, µs. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)

/**
 * Measures one target: the first session (start time, idle RSS), sequential warm-up and
 * timed calls on it, then, for a row of 16 sessions, the other sessions; then the load:
 * `concurrency` calls in flight (on the one session, or one per session), warmed up, then
 * timed with the tree's and the root's CPU time read before and after. RSS is sampled every
 * 50 ms from the first call to the last.
 */
export async function measure(key: string, target: Target, sizes: Sizes): Promise<RowResult> {
  const sessions: BenchSession[] = []
  let sampler: ReturnType<typeof rssSampler> | undefined
  try {
    const primary = await target.open()
    sessions.push(primary)
    const root = target.pid ?? primary.pid
    if (root === undefined) throw new Error(`${target.name}: no serving process`)
    const starts = [primary.ms]
    const idleRssMb = treeRssMb(root)
    sampler = rssSampler(root)

    for (let i = 0; i < sizes.warmup; i++) await primary.call()
    const sequential: number[] = []
    for (let i = 0; i < sizes.calls; i++) {
      const t0 = performance.now()
      await primary.call()
      sequential.push(performance.now() - t0)
    }

    // One session: every call in flight on the primary. Sessions: one each, kept open.
    const workers: BenchSession[] = [primary]
    for (let i = 1; i < sizes.concurrency; i++) {
      if (target.sharedSession) {
        workers.push(primary)
        continue
      }
      const s = await target.open()
      starts.push(s.ms)
      sessions.push(s)
      workers.push(s)
    }
    const calls = workers.map((s, w) => () => s.call(w))
    await runLoad(root, calls, sizes.loadWarmup)

    const processes = treePids(root).length
    const t0 = monotonicUs()
    const run = await runLoad(root, calls, sizes.concurrentCalls)
    const window: [number, number] = [t0, monotonicUs()]
    const peakRssMb = sampler.stop()
    const n = run.latencies.length
    return {
      key,
      row: target.name,
      p50Ms: percentile(run.latencies, 50),
      p99Ms: percentile(run.latencies, 99),
      seqP50Ms: percentile(sequential, 50),
      seqP99Ms: percentile(sequential, 99),
      callsPerSec: (n * 1000) / run.wallMs,
      cpuMsPerCall: run.cpuMs / n,
      rootCpuMsPerCall: run.rootCpuMs / n,
      childrenCpuMsPerCall: (run.cpuMs - run.rootCpuMs) / n,
      sessionStartP50Ms: percentile(starts, 50),
      idleRssMb,
      peakRssMb,
      processes,
      concurrencyMode:
        target.concurrencyMode ??
        (target.sharedSession
          ? `${sizes.concurrency} in flight on 1 session`
          : `${sizes.concurrency} sessions, 1 in flight each`),
      loadWindowUs: window,
      problems: target.problems(),
    }
  } finally {
    sampler?.stop()
    await Promise.all(sessions.map((s) => s.close().catch(() => {})))
  }
}
