// The gateway's memory: idle; with many idle shared-mode sessions open; and after many more
// sessions were opened and closed (what a long-running gateway keeps of sessions that are
// gone). Shared mode so that ten thousand sessions cost seconds, not a spawn each. RSS comes
// from /proc, the V8 heap from the gateway's own /metrics (prom-client's process figures); with
// BENCH_MEMORY_GC=1 the gateway runs with --expose-gc and gc-probe.js, and each point also says
// what is left after forced full collections (live objects, against garbage not yet collected).
// The idle and settled points are read after the quiet time a user's gateway gets: long enough
// for its idle collection (limits.idleGcAfter, gateway/idle-gc.ts) to have run; the idle point
// is also read 1 s after start, when start-up's garbage is still there.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { DEFAULT_IDLE_GC_AFTER_MS } from '../../gateway/config/schema.js'
import { SECOND_GC_AFTER_MS } from '../../gateway/idle-gc.js'
import type { GcProbeReport } from './gc-probe.js'
import type { Gateway } from './gateway-target.js'
import { eachLimit } from './load.js'
import { HttpSession } from './mcp-http.js'
import { ownAnonMb, ownArenaMb, ownCpuMs, ownRssMb, treeRssMb } from './proc.js'
import { cleanup } from './procs.js'

/** Sizes of the memory section (env BENCH_MEMORY_*). */
export interface MemorySizes {
  /** Idle sessions held open at once. */
  sessions: number
  /** Sessions opened and closed afterwards (handshake, DELETE). */
  churn: number
  /** How long the gateway is left alone after the churn before its RSS is read, ms (at least
   *  QUIET_MS: shorter would read a heap the gateway is about to give back). */
  settleMs: number
  /** BENCH_MEMORY_GC=1: a diagnostic run, forced full collections at every point. */
  gc: boolean
}

/** The gateway's memory at one point, MB. */
export interface MemoryAt {
  /** RSS of the gateway process alone and of its whole tree (with the echo process). */
  gatewayMb: number
  /** Of gatewayMb, the process's own memory (V8's heap, malloc, stacks: RssAnon + RssShmem);
   *  the rest is file pages of the node binary and libraries. */
  anonMb: number
  /** Of anonMb, glibc's per-thread malloc arenas (resident; much of it may be free memory glibc
   *  keeps): a diagnostic, from /proc/<pid>/smaps. */
  arenasMb: number
  treeMb: number
  /** V8's heap: bytes in use (live and not yet collected) and reserved; off-heap (Buffers…). */
  heapUsedMb: number
  heapTotalMb: number
  externalMb: number
  /** BENCH_MEMORY_GC=1 only: the same after forced full collections (the point's own
   *  figures are read before them). */
  gc?: { rssMb: number; heapUsedMb: number; heapTotalMb: number; externalMb: number }
}

/** The memory section. */
export interface MemoryResult {
  sessions: number
  churn: number
  settleMs: number
  /** Whether forced collections ran at every point (they also change the later points). */
  gc: boolean
  /** 1 s after start: start-up's garbage not collected yet. */
  started: MemoryAt
  /** After start, quiet for settleMs, before any session. */
  idle: MemoryAt
  /** With `sessions` idle sessions open. */
  open: MemoryAt
  /** Once they are closed: the baseline of a gateway that has served sessions. */
  closed: MemoryAt
  /** Right after the churn, and after `settleMs` more with nothing to do. */
  churned: MemoryAt
  settled: MemoryAt
  churnSec: number
  /** CPU the gateway process spent on the churn (its collections included), ms. */
  churnCpuMs: number
  problems: string[]
}

const AT_ONCE = 32
/**
 * The least quiet time before the idle and settled points: the gateway's idle collection runs
 * 1 to 1.25 idleGcAfter into the quiet, its second GC (the one that shrinks the new space)
 * SECOND_GC_AFTER_MS later, rounded up to its ticks; one more idleGcAfter leaves margin on busy
 * cores. The gateway runs with the default idleGcAfter.
 */
export const QUIET_MS = 2 * DEFAULT_IDLE_GC_AFTER_MS + SECOND_GC_AFTER_MS
const MB = 1024 * 1024

/** Node options and the probe's directory for a BENCH_MEMORY_GC run; the directory is removed at exit. */
export function gcProbeSetup(): { nodeArgs: string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-gc-probe-'))
  cleanup(() => rmSync(dir, { recursive: true, force: true }))
  const probe = fileURLToPath(new URL('./gc-probe.js', import.meta.url))
  return { nodeArgs: ['--expose-gc', '--import', probe], dir }
}

/** prom-client's heap figures from the gateway's /metrics, MB. */
async function heapOf(
  client: Pool,
): Promise<Omit<MemoryAt, 'gatewayMb' | 'anonMb' | 'arenasMb' | 'treeMb' | 'gc'>> {
  const res = await client.request({ path: '/metrics', method: 'GET' })
  const text = await res.body.text()
  const value = (name: string) => {
    const m = new RegExp(`^mcp_edge_nodejs_${name} (\\S+)$`, 'm').exec(text)
    return m ? Number(m[1]) / MB : Number.NaN
  }
  return {
    heapUsedMb: value('heap_size_used_bytes'),
    heapTotalMb: value('heap_size_total_bytes'),
    externalMb: value('external_memory_bytes'),
  }
}

/** Signals gc-probe.js in the gateway and waits for its n-th report. */
async function probeGc(pid: number, dir: string, n: number): Promise<GcProbeReport> {
  const file = join(dir, `${n}.json`)
  process.kill(pid, 'SIGUSR2')
  for (let waited = 0; !existsSync(file); waited += 50) {
    if (waited > 60_000) throw new Error('gc-probe: no report (was the gateway started with it?)')
    await delay(50)
  }
  await delay(50) // written in one call, but let it land
  return JSON.parse(readFileSync(file, 'utf8')) as GcProbeReport
}

/**
 * On a gateway whose echo server is `mode: shared`: memory idle; `sessions` sessions opened (32
 * handshakes at a time) and held idle; memory; all DELETEd; memory; `churn` sessions opened and
 * DELETEd, 32 at a time; memory at once and after `settleMs`. `gcDir`: the gateway runs
 * gc-probe.js writing there.
 */
export async function memory(
  gw: Gateway,
  sizes: MemorySizes,
  gcDir?: string,
): Promise<MemoryResult> {
  const pid = gw.child.pid
  if (pid === undefined) throw new Error('mcp-edge: no process')
  const client = new Pool(gw.origin, { connections: AT_ONCE + 4, pipelining: 1 })
  const open: HttpSession[] = []
  const bad = new Map<string, number>()
  let probes = 0
  const at = async (): Promise<MemoryAt> => {
    const rss = {
      gatewayMb: ownRssMb(pid),
      anonMb: ownAnonMb(pid),
      arenasMb: ownArenaMb(pid),
      treeMb: treeRssMb(pid),
    }
    const heap = await heapOf(client)
    if (gcDir === undefined) return { ...rss, ...heap }
    const { after } = await probeGc(pid, gcDir, probes++)
    const gc = {
      rssMb: ownRssMb(pid),
      heapUsedMb: after.heapUsed / MB,
      heapTotalMb: after.heapTotal / MB,
      externalMb: after.external / MB,
    }
    return { ...rss, ...heap, gc }
  }
  const close = async (s: HttpSession) => {
    const status = await s.close()
    const key = `DELETE: HTTP ${status}`
    if (status !== 200) bad.set(key, (bad.get(key) ?? 0) + 1)
  }
  const settleMs = Math.max(sizes.settleMs, QUIET_MS)
  try {
    await delay(1000) // the shared process initialized
    const started = await at()
    await delay(settleMs - 1000)
    const idle = await at()
    await eachLimit(Array.from({ length: sizes.sessions }), AT_ONCE, async () => {
      open.push((await HttpSession.open(client, gw.path, gw.headers)).session)
    })
    const opened = await at()
    await eachLimit(open.splice(0), AT_ONCE, close)
    const closed = await at()
    const t0 = performance.now()
    const cpu0 = ownCpuMs(pid)
    await eachLimit(Array.from({ length: sizes.churn }), AT_ONCE, async () => {
      await close((await HttpSession.open(client, gw.path, gw.headers)).session)
    })
    const churnSec = (performance.now() - t0) / 1000
    const churnCpuMs = ownCpuMs(pid) - cpu0
    const churned = await at()
    await delay(settleMs)
    return {
      sessions: sizes.sessions,
      churn: sizes.churn,
      settleMs,
      gc: gcDir !== undefined,
      started,
      idle,
      open: opened,
      closed,
      churned,
      settled: await at(),
      churnSec,
      churnCpuMs,
      problems: [...bad]
        .map(([k, n]) => `${k} ×${n}`)
        .concat(gw.problems().filter((p) => !p.startsWith('log lines'))),
    }
  } finally {
    await eachLimit(open.splice(0), AT_ONCE, close).catch(() => {})
    await client.close()
  }
}
