// Session start as clients meet it: sessions started back to back on a session-mode server,
// nobody waiting for the pool to refill in between. With the default config (the pool's own
// defaults) this is the figure the session-start target names; with a warm pool of 4 it shows
// how many processes the pool keeps warm for back-to-back demand. The warm-up sessions are
// demand too: the pool may hold more than pool.min when the timed starts begin (`warmAtStart`),
// as a gateway that has just served sessions would.
import { Pool } from 'undici'
import type { Gateway } from './gateway-target.js'
import { HttpSession } from './mcp-http.js'
import { percentile } from './measure.js'
import { liveChildren } from './proc.js'

/** Sizes of the section (env BENCH_START_*). */
export interface SessionStartSizes {
  /** Back-to-back starts timed. */
  starts: number
  /** Sessions first opened and not counted (the gateway's own warm-up: JIT, connections). */
  warmup: number
  /** More rows: the default config with these pool settings (BENCH_START_POOLS). */
  pools: Record<string, number>[]
}

/**
 * Pool settings of extra rows: rows split by `;`, settings by `,`, each `key=integer`, e.g.
 * `burst=8;burst=16,spawnConcurrency=2`.
 */
export function startPools(spec: string | undefined): Record<string, number>[] {
  if (spec === undefined || spec.trim() === '') return []
  return spec.split(';').map((row) =>
    Object.fromEntries(
      row.split(',').map((kv) => {
        const [k, v] = kv.split('=').map((x) => x.trim())
        if (!k || !/^[0-9]+$/.test(v ?? '')) throw new Error(`BENCH_START_POOLS: bad setting ${kv}`)
        return [k, Number(v)]
      }),
    ),
  )
}

/** One row: a pool configuration and its back-to-back starts. */
export interface SessionStartResult {
  row: string
  /** pool.min the server ran with (what the section waits for before the first start). */
  poolMin: number
  starts: number
  /** POST initialize → 200 with Mcp-Session-Id, each start. */
  initMs: number[]
  /** initialize, then notifications/initialized → 202, each start. */
  handshakeMs: number[]
  initP50Ms: number
  handshakeP50Ms: number
  handshakeP95Ms: number
  /** Warm processes when the timed starts began (pool.min, or more after the warm-up's demand). */
  warmAtStart: number
  /** Processes the gateway started during the timed starts (seen alive at least once). */
  spawned: number
  problems: string[]
}

/** Time to settle a warm pool before the first start, each process at least this old, ms. */
const SETTLE_MS = 250

const POLL_MS = 10
const REST_TIMEOUT_MS = 15_000

/**
 * Waits until the gateway's children are at least `min`, each at least SETTLE_MS old, and the
 * same set for SETTLE_MS (the last warm-up session's process has exited; warm ones have
 * loaded). Resolves with how many there are.
 */
async function poolRested(gatewayPid: number, min: number): Promise<number> {
  const start = performance.now()
  let last = ''
  let since = start
  for (;;) {
    const kids = liveChildren(gatewayPid)
    const set = kids
      .map((k) => k.pid)
      .sort()
      .join(',')
    const now = performance.now()
    if (set !== last) [last, since] = [set, now]
    if (kids.length >= min && kids.every((k) => k.ageMs >= SETTLE_MS) && now - since >= SETTLE_MS)
      return kids.length
    if (now - start > REST_TIMEOUT_MS)
      throw new Error(`pool not at rest after ${REST_TIMEOUT_MS} ms`)
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

/**
 * Warm-up sessions, then (the pool full and settled) `starts` sessions one right after the
 * other: each timed handshake, one verified echo call, DELETE, and the next at once.
 */
export async function sessionStart(
  gw: Gateway,
  o: { row: string; poolMin: number },
  sizes: SessionStartSizes,
): Promise<SessionStartResult> {
  const pid = gw.child.pid
  if (pid === undefined) throw new Error('mcp-edge: no process')
  const client = new Pool(gw.origin, { connections: 2, pipelining: 1 })
  const problems: string[] = []
  // Processes seen: sampled while each session is open (its own process is alive then) and after.
  const seen = new Set<number>()
  const look = () => {
    for (const c of liveChildren(pid)) seen.add(c.pid)
  }
  const session = async () => {
    const opened = await HttpSession.open(client, gw.path, gw.headers)
    try {
      await opened.session.callEcho()
      look()
    } finally {
      const status = await opened.session.close()
      if (status !== 200 && problems.length < 5) problems.push(`DELETE: HTTP ${status}`)
    }
    return opened
  }
  const initMs: number[] = []
  const handshakeMs: number[] = []
  try {
    for (let i = 0; i < sizes.warmup; i++) await session()
    const warmAtStart = await poolRested(pid, o.poolMin)
    seen.clear()
    look()
    const before = seen.size
    for (let i = 0; i < sizes.starts; i++) {
      const { ms, initMs: init } = await session()
      initMs.push(init)
      handshakeMs.push(ms)
      look()
    }
    return {
      row: o.row,
      poolMin: o.poolMin,
      starts: sizes.starts,
      initMs,
      handshakeMs,
      initP50Ms: percentile(initMs, 50),
      handshakeP50Ms: percentile(handshakeMs, 50),
      handshakeP95Ms: percentile(handshakeMs, 95),
      warmAtStart,
      spawned: seen.size - before,
      problems: [...problems, ...gw.problems().filter((p) => !p.startsWith('log lines'))],
    }
  } finally {
    await client.close()
  }
}
