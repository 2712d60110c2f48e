// Session start through a session-mode server with and without a warm pool: the initialize
// round trip and the whole handshake, one session at a time, the pool refilled in between, and
// beside them the bare HTTP round trip (GET /healthz) of the same client at the same moment.
import { setTimeout as delay } from 'node:timers/promises'
import { Pool } from 'undici'
import type { Gateway } from './gateway-target.js'
import { HttpSession } from './mcp-http.js'
import { percentile } from './measure.js'
import { liveChildren } from './proc.js'

/** Sizes of a pool-start run (env BENCH_POOL_*). */
export interface PoolStartSizes {
  sessions: number
  /** Sessions first opened and not counted (the gateway's own warm-up: JIT, connections). */
  warmup: number
  /** Age every warm process must reach before the next session starts, ms. */
  settleMs: number
}

/** One pool-start row. */
export interface PoolStartResult {
  row: string
  /** Warm processes initialized by the gateway (pool.preinitialize). */
  preinitialize: boolean
  poolMin: number
  poolMax: number
  sessions: number
  /** POST initialize → 200 with Mcp-Session-Id. */
  initP50Ms: number
  initP99Ms: number
  /** initialize, then notifications/initialized → 202. */
  handshakeP50Ms: number
  handshakeP99Ms: number
  /**
   * GET /healthz → 200 on the same client just before each initialize: the HTTP round trip
   * with no MCP work (client, loopback, Hono, auth-free route). What initialize takes beyond it
   * is the gateway's session start (and the process's answer, when not pre-initialized).
   */
  floorP50Ms: number
  settleMs: number
  /** Mean wait before a session for the pool to be full and settled again. */
  meanWaitMs: number
  problems: string[]
}

const POLL_MS = 10
const SETTLE_TIMEOUT_MS = 15_000

/**
 * Waits until the gateway has exactly `min` live child processes (the pool is full and the
 * last session's process has exited) and each has run at least `settleMs`: spawned is not
 * loaded, and a process the pool hands out before its runtime has loaded is not warm.
 * Resolves with the time waited.
 */
export async function poolSettled(
  gatewayPid: number,
  min: number,
  settleMs: number,
): Promise<number> {
  const start = performance.now()
  for (;;) {
    const kids = liveChildren(gatewayPid)
    if (kids.length === min && kids.every((k) => k.ageMs >= settleMs)) {
      return performance.now() - start
    }
    if (performance.now() - start > SETTLE_TIMEOUT_MS) {
      const ages = kids.map((k) => `${k.pid}: ${k.ageMs.toFixed(0)} ms`).join(', ')
      throw new Error(
        `pool not settled after ${SETTLE_TIMEOUT_MS} ms: want ${min} processes` +
          ` at least ${settleMs} ms old, have [${ages}]`,
      )
    }
    await delay(POLL_MS)
  }
}

/** One GET /healthz round trip, ms. */
async function healthz(client: Pool): Promise<number> {
  const start = performance.now()
  const res = await client.request({ path: '/healthz', method: 'GET' })
  await res.body.text()
  const ms = performance.now() - start
  if (res.statusCode !== 200) throw new Error(`/healthz: HTTP ${res.statusCode}`)
  return ms
}

/**
 * Opens sessions one at a time on a gateway whose echo server has `pool`: each waits for the
 * pool to settle, times its handshake, makes one verified echo call and is DELETEd.
 */
export async function poolStart(
  gw: Gateway,
  pool: { min: number; max: number; preinitialize?: boolean; burst?: number },
  sizes: PoolStartSizes,
): Promise<PoolStartResult> {
  const pid = gw.child.pid
  if (pid === undefined) throw new Error('mcp-edge: no process')
  const client = new Pool(gw.origin, { connections: 2, pipelining: 1 })
  const init: number[] = []
  const handshake: number[] = []
  const floor: number[] = []
  const problems: string[] = []
  let waited = 0
  try {
    for (let i = 0; i < sizes.warmup + sizes.sessions; i++) {
      const wait = await poolSettled(pid, pool.min, pool.min > 0 ? sizes.settleMs : 0)
      const floorMs = await healthz(client)
      const { session, ms, initMs } = await HttpSession.open(client, gw.path, gw.headers)
      try {
        await session.callEcho()
      } finally {
        const status = await session.close()
        if (status !== 200 && problems.length < 5) problems.push(`DELETE: HTTP ${status}`)
      }
      if (i < sizes.warmup) continue
      waited += wait
      init.push(initMs)
      handshake.push(ms)
      floor.push(floorMs)
    }
  } finally {
    await client.close()
  }
  return {
    row:
      pool.min === 0
        ? 'cold spawn (min 0)'
        : pool.preinitialize
          ? `pre-initialized (min ${pool.min})`
          : `warm pool (min ${pool.min})`,
    preinitialize: pool.preinitialize === true,
    poolMin: pool.min,
    poolMax: pool.max,
    sessions: sizes.sessions,
    initP50Ms: percentile(init, 50),
    initP99Ms: percentile(init, 99),
    handshakeP50Ms: percentile(handshake, 50),
    handshakeP99Ms: percentile(handshake, 99),
    floorP50Ms: percentile(floor, 50),
    settleMs: pool.min > 0 ? sizes.settleMs : 0,
    meanWaitMs: waited / sizes.sessions,
    problems: [...problems, ...gw.problems()],
  }
}
