import { ownCpuMs, rssSampler, treeCpuMs, treePids, treeRssMb } from './proc.js'
import type { BenchSession, Target } from './target.js'

/** Sizes of one run (env BENCH_*). */
export interface Sizes {
  calls: number
  concurrentCalls: number
  concurrency: number
  warmup: number
}

/** One row of the results table. */
export interface RowResult {
  row: string
  p50Ms: number
  p99Ms: number
  callsPerSec: number
  cpuMsPerCall: number
  /** Part of cpuMsPerCall spent in the root process itself (the rest: its children). */
  rootCpuMsPerCall: number
  sessionStartP50Ms: number
  idleRssMb: number
  peakRssMb: number
  /** Processes in the serving tree during the concurrent run. */
  processes: number
  concurrencyMode: string
  problems: string[]
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? NaN
}

/** `total` calls spread over workers, each awaiting its previous call; wall time in ms. */
async function runWorkers(calls: (() => Promise<void>)[], total: number): Promise<number> {
  let issued = 0
  const start = performance.now()
  await Promise.all(calls.map(async (call) => {
    while (issued < total) {
      issued++
      await call()
    }
  }))
  return performance.now() - start
}

/**
 * Measures one target: first session (start time, idle RSS), warm-up, N sequential calls,
 * the other session starts, then C calls at concurrency 16 with the tree's CPU time read
 * before and after. RSS is sampled every 50 ms from the first call to the last.
 */
export async function measure(target: Target, sizes: Sizes): Promise<RowResult> {
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
    const latencies: number[] = []
    for (let i = 0; i < sizes.calls; i++) {
      const t0 = performance.now()
      await primary.call()
      latencies.push(performance.now() - t0)
    }

    // Session starts; an HTTP row keeps them as its concurrent sessions, stdio closes them.
    const workers: BenchSession[] = [primary]
    for (let i = 1; i < sizes.concurrency; i++) {
      const s = await target.open()
      starts.push(s.ms)
      if (target.sharedSession) await s.close()
      else sessions.push(s)
      workers.push(target.sharedSession ? primary : s)
    }
    const calls = workers.map((s) => () => s.call())
    // Warm every session (and, per session, its fresh process) as much as the first one.
    await runWorkers(calls, sizes.concurrency * sizes.warmup)

    const cpu0 = treeCpuMs(root)
    const own0 = ownCpuMs(root)
    const processes = treePids(root).length
    const wallMs = await runWorkers(calls, sizes.concurrentCalls)
    const cpu1 = treeCpuMs(root)
    const own1 = ownCpuMs(root)
    const peakRssMb = sampler.stop()

    return {
      row: target.name,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      callsPerSec: (sizes.concurrentCalls * 1000) / wallMs,
      cpuMsPerCall: (cpu1 - cpu0) / sizes.concurrentCalls,
      rootCpuMsPerCall: (own1 - own0) / sizes.concurrentCalls,
      sessionStartP50Ms: percentile(starts, 50),
      idleRssMb,
      peakRssMb,
      processes,
      concurrencyMode: target.sharedSession
        ? `${sizes.concurrency} in flight on 1 session`
        : `${sizes.concurrency} sessions, 1 in flight each`,
      problems: target.problems(),
    }
  } finally {
    sampler?.stop()
    await Promise.all(sessions.map((s) => s.close().catch(() => {})))
  }
}
