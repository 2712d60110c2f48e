// shared mode at scale: many open sessions on one echo process, the gateway's memory with
// them open, and whether spreading calls over sessions costs throughput.
import { Pool } from 'undici'
import type { Gateway } from './gateway-target.js'
import { eachLimit, runLoad, summarize, type LoadResult } from './load.js'
import { HttpSession } from './mcp-http.js'
import { percentile } from './measure.js'
import { ownRssMb, treePids, treeRssMb } from './proc.js'

/** Sizes of a shared-scale run (env BENCH_SHARED_*). */
export interface SharedScaleSizes {
  sessions: number
  /** Calls in flight in both load runs. */
  inFlight: number
  /** Calls per shape, in two runs (ABBA order), after `warmup` calls of each shape. */
  calls: number
  warmup: number
  /** Sequential calls on one session (latency without load). */
  sequential: number
}

/** RSS of the gateway process alone and of its whole tree (with the echo process), MB. */
export interface Rss {
  gatewayMb: number
  treeMb: number
}

/** The shared-scale section. */
export interface SharedScaleResult {
  sessions: number
  /** Wall time to open them all, 32 handshakes at a time. */
  openSec: number
  openP50Ms: number
  openP99Ms: number
  /** Processes in the serving tree with every session open. */
  processes: number
  /** Before any session; with all sessions open; after each served a call; peak under load. */
  rss: { idle: Rss; open: Rss; used: Rss; peak: Rss }
  sequentialP50Ms: number
  sequentialP99Ms: number
  /** `inFlight` calls on one session. */
  oneSession: LoadResult
  /** `inFlight` sessions, one call in flight each. */
  spread: LoadResult
  /** spread / oneSession throughput. */
  spreadRatio: number
  problems: string[]
}

const OPEN_AT_ONCE = 32

function rss(pid: number): Rss {
  return { gatewayMb: ownRssMb(pid), treeMb: treeRssMb(pid) }
}

/** Peak RSS of the gateway and of its tree, sampled every 50 ms until stopped. */
function peakSampler(pid: number): { stop(): Rss } {
  const peak = rss(pid)
  const sample = () => {
    const now = rss(pid)
    peak.gatewayMb = Math.max(peak.gatewayMb, now.gatewayMb)
    peak.treeMb = Math.max(peak.treeMb, now.treeMb)
  }
  const timer = setInterval(sample, 50)
  return {
    stop() {
      clearInterval(timer)
      sample()
      return peak
    },
  }
}

/**
 * Opens `sessions` sessions on a gateway whose echo server is `mode: shared`, keeps them
 * open through two closed-loop runs of `inFlight` calls (one session, then as many
 * sessions), and DELETEs every one at the end, also on failure.
 */
export async function sharedScale(
  gw: Gateway,
  sizes: SharedScaleSizes,
): Promise<SharedScaleResult> {
  const pid = gw.child.pid
  if (pid === undefined) throw new Error('mcp-edge: no process')
  if (sizes.sessions < sizes.inFlight) throw new Error('fewer sessions than calls in flight')
  const client = new Pool(gw.origin, {
    connections: sizes.inFlight + 16,
    pipelining: 1,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
  const sessions: HttpSession[] = []
  const badDeletes = new Map<string, number>()
  const closeAll = () =>
    eachLimit(sessions.splice(0), OPEN_AT_ONCE, async (s) => {
      const status = await s.close()
      const key = `DELETE: HTTP ${status}`
      if (status !== 200) badDeletes.set(key, (badDeletes.get(key) ?? 0) + 1)
    })
  let sampler: ReturnType<typeof peakSampler> | undefined
  try {
    const idle = rss(pid)
    const starts: number[] = []
    const t0 = performance.now()
    await eachLimit(Array.from({ length: sizes.sessions }), OPEN_AT_ONCE, async () => {
      const { session, ms } = await HttpSession.open(client, gw.path, gw.headers)
      sessions.push(session)
      starts.push(ms)
    })
    const openSec = (performance.now() - t0) / 1000
    const open = rss(pid)
    const processes = treePids(pid).length
    // Every session serves one verified call before the timed runs.
    await eachLimit(sessions, sizes.inFlight, (s) => s.callEcho())
    const used = rss(pid)

    const first = sessions[0]!
    const sequential: number[] = []
    for (let i = 0; i < sizes.sequential; i++) {
      const c0 = performance.now()
      await first.callEcho()
      sequential.push(performance.now() - c0)
    }
    const one = Array.from({ length: sizes.inFlight }, () => () => first.callEcho())
    const spread = sessions.slice(0, sizes.inFlight).map((s) => () => s.callEcho())
    sampler = peakSampler(pid)
    await runLoad(pid, one, sizes.warmup)
    await runLoad(pid, spread, sizes.warmup)
    // A B B A: neither shape always runs on the fresher (or the more worn) heap.
    const half = Math.ceil(sizes.calls / 2)
    const a1 = await runLoad(pid, one, half)
    const b1 = await runLoad(pid, spread, half)
    const b2 = await runLoad(pid, spread, half)
    const a2 = await runLoad(pid, one, half)
    const peak = sampler.stop()
    const oneSession = summarize([a1, a2])
    const spreadRun = summarize([b1, b2])
    await closeAll()
    return {
      sessions: sizes.sessions,
      openSec,
      openP50Ms: percentile(starts, 50),
      openP99Ms: percentile(starts, 99),
      processes,
      rss: { idle, open, used, peak },
      sequentialP50Ms: percentile(sequential, 50),
      sequentialP99Ms: percentile(sequential, 99),
      oneSession,
      spread: spreadRun,
      spreadRatio: spreadRun.callsPerSec / oneSession.callsPerSec,
      problems: [...badDeletes].map(([k, n]) => `${k} ×${n}`).concat(gw.problems()),
    }
  } finally {
    sampler?.stop()
    await closeAll()
    await client.close()
  }
}
