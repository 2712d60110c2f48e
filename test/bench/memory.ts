// The gateway's memory: idle; with many idle shared-mode sessions open; and after many more
// sessions were opened and closed (what a long-running gateway keeps of sessions that are
// gone). Shared mode so that ten thousand sessions cost seconds, not a spawn each.
import { setTimeout as delay } from 'node:timers/promises'
import { Pool } from 'undici'
import type { Gateway } from './gateway-target.js'
import { eachLimit } from './load.js'
import { HttpSession } from './mcp-http.js'
import { ownRssMb, treeRssMb } from './proc.js'

/** Sizes of the memory section (env BENCH_MEMORY_*). */
export interface MemorySizes {
  /** Idle sessions held open at once. */
  sessions: number
  /** Sessions opened and closed afterwards (handshake, DELETE). */
  churn: number
  /** How long the gateway is left alone after the churn before its RSS is read, ms. */
  settleMs: number
}

/** RSS of the gateway process alone and of its whole tree (with the echo process), MB. */
export interface Rss {
  gatewayMb: number
  treeMb: number
}

/** The memory section. */
export interface MemoryResult {
  sessions: number
  churn: number
  settleMs: number
  /** After start, before any session. */
  idle: Rss
  /** With `sessions` idle sessions open. */
  open: Rss
  /** Once they are closed: the baseline of a gateway that has served sessions. */
  closed: Rss
  /** Right after the churn, and after `settleMs` more with nothing to do. */
  churned: Rss
  settled: Rss
  churnSec: number
  problems: string[]
}

const AT_ONCE = 32

function rss(pid: number): Rss {
  return { gatewayMb: ownRssMb(pid), treeMb: treeRssMb(pid) }
}

/**
 * On a gateway whose echo server is `mode: shared`: RSS idle; `sessions` sessions opened (32
 * handshakes at a time) and held idle; RSS; all DELETEd; RSS; `churn` sessions opened and
 * DELETEd, 32 at a time; RSS at once and after `settleMs`.
 */
export async function memory(gw: Gateway, sizes: MemorySizes): Promise<MemoryResult> {
  const pid = gw.child.pid
  if (pid === undefined) throw new Error('mcp-edge: no process')
  const client = new Pool(gw.origin, { connections: AT_ONCE + 4, pipelining: 1 })
  const open: HttpSession[] = []
  const bad = new Map<string, number>()
  const close = async (s: HttpSession) => {
    const status = await s.close()
    const key = `DELETE: HTTP ${status}`
    if (status !== 200) bad.set(key, (bad.get(key) ?? 0) + 1)
  }
  try {
    await delay(1000) // the start-up's garbage collected, the shared process initialized
    const idle = rss(pid)
    await eachLimit(Array.from({ length: sizes.sessions }), AT_ONCE, async () => {
      open.push((await HttpSession.open(client, gw.path, gw.headers)).session)
    })
    const opened = rss(pid)
    await eachLimit(open.splice(0), AT_ONCE, close)
    const closed = rss(pid)
    const t0 = performance.now()
    await eachLimit(Array.from({ length: sizes.churn }), AT_ONCE, async () => {
      await close((await HttpSession.open(client, gw.path, gw.headers)).session)
    })
    const churnSec = (performance.now() - t0) / 1000
    const churned = rss(pid)
    await delay(sizes.settleMs)
    return {
      sessions: sizes.sessions,
      churn: sizes.churn,
      settleMs: sizes.settleMs,
      idle,
      open: opened,
      closed,
      churned,
      settled: rss(pid),
      churnSec,
      problems: [...bad]
        .map(([k, n]) => `${k} ×${n}`)
        .concat(gw.problems().filter((p) => !p.startsWith('log lines'))),
    }
  } finally {
    await eachLimit(open.splice(0), AT_ONCE, close).catch(() => {})
    await client.close()
  }
}
