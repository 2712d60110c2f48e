import { percentile } from './measure.js'
import { ownCpuMs, treeCpuMs } from './proc.js'

/** Throughput, latency under load and CPU per call of one or more load runs together. */
export interface LoadResult {
  calls: number
  inFlight: number
  callsPerSec: number
  p50Ms: number
  p99Ms: number
  /** CPU of the whole serving tree per call. */
  cpuMsPerCall: number
  /** Part of it spent in the root process (the gateway) itself. */
  rootCpuMsPerCall: number
}

/** The raw figures of one run, to be summed with others of the same shape. */
export interface LoadRun {
  inFlight: number
  wallMs: number
  latencies: number[]
  cpuMs: number
  rootCpuMs: number
}

/**
 * `total` calls over `workers`, each awaiting its previous call (closed loop, so the number
 * in flight is the number of workers); latencies of every call, CPU of `root`'s tree.
 */
export async function runLoad(
  root: number,
  workers: (() => Promise<void>)[],
  total: number,
): Promise<LoadRun> {
  const latencies: number[] = []
  let issued = 0
  let failure: { err: unknown } | undefined
  const cpu0 = treeCpuMs(root)
  const own0 = ownCpuMs(root)
  const start = performance.now()
  // After a failure no new call starts; the run rejects once the calls in flight settled.
  await Promise.all(
    workers.map(async (call) => {
      while (failure === undefined && issued < total) {
        issued++
        const t0 = performance.now()
        await call().then(
          () => latencies.push(performance.now() - t0),
          (err: unknown) => void (failure ??= { err }),
        )
      }
    }),
  )
  const wallMs = performance.now() - start
  if (failure !== undefined) throw failure.err
  const cpuMs = treeCpuMs(root) - cpu0
  return { inFlight: workers.length, wallMs, latencies, cpuMs, rootCpuMs: ownCpuMs(root) - own0 }
}

/** Runs of the same shape as one: calls and times summed, percentiles over every call. */
export function summarize(runs: LoadRun[]): LoadResult {
  const sum = (f: (r: LoadRun) => number) => runs.reduce((n, r) => n + f(r), 0)
  const latencies = runs.flatMap((r) => r.latencies)
  const calls = latencies.length
  return {
    calls,
    inFlight: runs[0]?.inFlight ?? 0,
    callsPerSec: (calls * 1000) / sum((r) => r.wallMs),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuMsPerCall: sum((r) => r.cpuMs) / calls,
    rootCpuMsPerCall: sum((r) => r.rootCpuMs) / calls,
  }
}

/**
 * Runs `fn` over `items` with at most `limit` at once. After a failure no new item starts;
 * it settles once every started one has, then rejects with the first failure (so whatever
 * they opened can be closed).
 */
export async function eachLimit<T>(
  items: T[],
  limit: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0
  let failure: { err: unknown } | undefined
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (failure === undefined && next < items.length) {
        const i = next++
        await fn(items[i]!, i).catch((err: unknown) => {
          failure ??= { err }
        })
      }
    }),
  )
  if (failure !== undefined) throw failure.err
}
