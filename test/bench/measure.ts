import { runLoad } from './load.js'
import { childWakeups, rssSampler, treePids, treeRssMb, wakeupsBetween } from './proc.js'
import type { BenchSession, Target } from './target.js'

/** Sizes of one row (env BENCH_*). */
export interface Sizes {
  /**
   * Calls one at a time on each row's first session, timed one by one (latency without load),
   * the rows of a repetition interleaved call by call (sequential.ts).
   */
  calls: number
  /** Calls of the timed load run, `concurrency` in flight. */
  concurrentCalls: number
  concurrency: number
  /** Interleaved rounds of one call a row first, untimed. */
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
  /**
   * Latency of one call at a time on one session, every row of the repetition interleaved
   * call by call (sequential.ts).
   */
  seqP50Ms: number
  seqP99Ms: number
  /** Which repetition this is (1…), when it is one. */
  rep?: number
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
  /**
   * Times per call the root's descendants woke up (voluntary context switches) in the load run:
   * how often the gateway's writes woke its stdio children, which CPU time on shared cores
   * cannot tell apart from a child slowed by its neighbours.
   */
  childWakeupsPerCall: number
  /** Descendants started, and ended, during the load run (a relay's processes churning). */
  childrenStarted: number
  childrenEnded: number
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

/** A row's first session, opened as soon as its server runs. */
export interface FirstSession {
  session: BenchSession
  /** Root of the serving tree. */
  root: number
  /** The handshake, ms. */
  startMs: number
  /** RSS of the tree with the one session open, before any call. */
  idleRssMb: number
}

/** Opens `target`'s first session: its start time and the tree's idle RSS are taken then. */
export async function openFirst(target: Target): Promise<FirstSession> {
  const session = await target.open()
  const root = target.pid ?? session.pid
  if (root === undefined) {
    await session.close().catch(() => {})
    throw new Error(`${target.name}: no serving process`)
  }
  return { session, root, startMs: session.ms, idleRssMb: treeRssMb(root) }
}

/**
 * Measures one target whose first session is open and whose one-at-a-time calls were timed
 * already (`sequential`, ms: sequential.ts, every row of the repetition interleaved): for a
 * row of 16 sessions, the other sessions; then the load: `concurrency` calls in flight (on the
 * one session, or one per session), warmed up, then timed with the tree's and the root's CPU
 * time read before and after. RSS is sampled every 50 ms from the other sessions' opening to
 * the last call. Closes every session, the first one too.
 */
export async function measure(
  key: string,
  target: Target,
  first: FirstSession,
  sequential: number[],
  sizes: Sizes,
): Promise<RowResult> {
  const { session: primary, root } = first
  const sessions: BenchSession[] = [primary]
  const sampler = rssSampler(root)
  try {
    const starts = [first.startMs]
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
    const woke = childWakeups(root)
    const t0 = monotonicUs()
    const run = await runLoad(root, calls, sizes.concurrentCalls)
    const window: [number, number] = [t0, monotonicUs()]
    const children = wakeupsBetween(woke, childWakeups(root))
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
      childWakeupsPerCall: children.wakeups / n,
      childrenStarted: children.started,
      childrenEnded: children.ended,
      sessionStartP50Ms: percentile(starts, 50),
      idleRssMb: first.idleRssMb,
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
    sampler.stop()
    await Promise.all(sessions.map((s) => s.close().catch(() => {})))
  }
}
