// Tables and target verdicts of the process-model sections (pool start, back-to-back session
// start, shared scale, memory, endpoint start).
import { endpointSummary, type EndpointStartResult } from './endpoint-start.js'
import type { LoadResult } from './load.js'
import type { MemoryAt, MemoryResult } from './memory.js'
import type { PoolStartResult } from './pool-start.js'
import { grid, TARGETS, verdict } from './report.js'
import type { SessionStartResult } from './session-start.js'
import type { SharedScaleResult } from './shared-scale.js'

/** Targets of the process-models issue. */
export const PROCESS_TARGETS = {
  /** Session start from a warm pool, p50. */
  warmStartP50Ms: 5,
  /** The gateway process with 1,000 shared-mode sessions open. */
  sharedGatewayRssMb: 300,
  /** Throughput over many sessions relative to the same load on one session. */
  spreadRatio: 0.8,
  /** CPU per call of the serving tree (the edge row's target). */
  cpuMsPerCall: TARGETS.cpuMsPerCall,
  /** Session start p50 over back-to-back starts with the default config. */
  backToBackStartP50Ms: 10,
  /** The gateway process idle. */
  idleGatewayRssMb: 100,
  /** The gateway process with 1,000 idle shared-mode sessions open. */
  idleSessionsGatewayRssMb: 150,
  /** The gateway process after many sessions opened and closed, over its idle RSS. */
  churnRssRatio: 1.1,
}

const ms = (v: number) => v.toFixed(2)

/** Cold-to-warm ratios and the warm-start verdicts; undefined unless both rows ran. */
export function poolSummary(rows: PoolStartResult[]) {
  const warm = rows.find((r) => r.poolMin > 0 && !r.preinitialize)
  const cold = rows.find((r) => r.poolMin === 0)
  const pre = rows.find((r) => r.preinitialize)
  const limit = PROCESS_TARGETS.warmStartP50Ms
  return {
    preinitInitP50Below: pre && { ok: pre.initP50Ms < limit, value: pre.initP50Ms, limit },
    preinitHandshakeP50Below: pre && {
      ok: pre.handshakeP50Ms < limit,
      value: pre.handshakeP50Ms,
      limit,
    },
    coldOverWarm:
      warm && cold
        ? {
            initP50: cold.initP50Ms / warm.initP50Ms,
            initP99: cold.initP99Ms / warm.initP99Ms,
            handshakeP50: cold.handshakeP50Ms / warm.handshakeP50Ms,
            handshakeP99: cold.handshakeP99Ms / warm.handshakeP99Ms,
          }
        : undefined,
    warmInitP50Below: warm && { ok: warm.initP50Ms < limit, value: warm.initP50Ms, limit },
    warmHandshakeP50Below: warm && {
      ok: warm.handshakeP50Ms < limit,
      value: warm.handshakeP50Ms,
      limit,
    },
  }
}

/** The pool-start table, ratios and verdicts. */
export function poolText(rows: PoolStartResult[]): string {
  const head = [
    'session start',
    'sessions',
    'init p50 ms',
    'init p99 ms',
    'handshake p50 ms',
    'handshake p99 ms',
    'healthz p50 ms',
    'settle ms',
    'mean wait ms',
  ]
  const cells = rows.map((r) => [
    r.row,
    String(r.sessions),
    ms(r.initP50Ms),
    ms(r.initP99Ms),
    ms(r.handshakeP50Ms),
    ms(r.handshakeP99Ms),
    ms(r.floorP50Ms),
    String(r.settleMs),
    r.meanWaitMs.toFixed(0),
  ])
  const lines = [grid([head, ...cells])]
  const s = poolSummary(rows)
  const c = s.coldOverWarm
  if (c) {
    const x = (v: number) => `×${v.toFixed(1)}`
    lines.push(
      `cold / warm: init p50 ${x(c.initP50)}, init p99 ${x(c.initP99)}, ` +
        `handshake p50 ${x(c.handshakeP50)}, handshake p99 ${x(c.handshakeP99)}`,
    )
  }
  if (s.warmInitP50Below && s.warmHandshakeP50Below) {
    lines.push(
      `target warm p50 < ${PROCESS_TARGETS.warmStartP50Ms} ms: ` +
        `initialize ${verdict(s.warmInitP50Below.ok)} (${ms(s.warmInitP50Below.value)} ms), ` +
        `full handshake ${verdict(s.warmHandshakeP50Below.ok)} ` +
        `(${ms(s.warmHandshakeP50Below.value)} ms)`,
    )
  }
  if (s.preinitInitP50Below && s.preinitHandshakeP50Below) {
    lines.push(
      `target pre-initialized p50 < ${PROCESS_TARGETS.warmStartP50Ms} ms: ` +
        `initialize ${verdict(s.preinitInitP50Below.ok)} (${ms(s.preinitInitP50Below.value)} ms), ` +
        `full handshake ${verdict(s.preinitHandshakeP50Below.ok)} ` +
        `(${ms(s.preinitHandshakeP50Below.value)} ms)`,
    )
  }
  for (const r of rows) for (const p of r.problems) lines.push(`  ${r.row}: ${p}`)
  return lines.join('\n')
}

/** The shared-scale verdicts. */
export function sharedSummary(r: SharedScaleResult) {
  const t = PROCESS_TARGETS
  return {
    gatewayRssBelow: {
      ok: r.rss.open.gatewayMb < t.sharedGatewayRssMb,
      value: r.rss.open.gatewayMb,
      limit: t.sharedGatewayRssMb,
    },
    spreadRatioAtLeast: {
      ok: r.spreadRatio >= t.spreadRatio,
      value: r.spreadRatio,
      limit: t.spreadRatio,
    },
    cpuMsPerCallBelow: {
      ok: r.spread.cpuMsPerCall < t.cpuMsPerCall,
      value: r.spread.cpuMsPerCall,
      limit: t.cpuMsPerCall,
    },
  }
}

/** The shared-scale tables and verdicts. */
export function sharedText(r: SharedScaleResult): string {
  const n = r.sessions
  const mb = (v: number) => v.toFixed(1)
  const memory = grid([
    ['RSS MB', 'gateway', 'tree'],
    ...(
      [
        ['no session', r.rss.idle],
        [`${n} sessions open`, r.rss.open],
        [`after a call on each`, r.rss.used],
        ['peak under load', r.rss.peak],
      ] as const
    ).map(([k, v]) => [k, mb(v.gatewayMb), mb(v.treeMb)]),
  ])
  const row = (name: string, l: LoadResult) => [
    name,
    l.callsPerSec.toFixed(0),
    ms(l.p50Ms),
    ms(l.p99Ms),
    l.cpuMsPerCall.toFixed(3),
    l.rootCpuMsPerCall.toFixed(3),
  ]
  const k = r.spread.inFlight
  const load = grid([
    ['shared mode load', 'calls/s', 'p50 ms', 'p99 ms', 'CPU ms/call', 'gateway CPU ms/call'],
    row(`${k} in flight on 1 session`, r.oneSession),
    row(`${k} sessions, 1 in flight each`, r.spread),
  ])
  const s = sharedSummary(r)
  return [
    `shared mode: ${n} sessions open on ${r.processes} processes (gateway + echo), opened in ` +
      `${r.openSec.toFixed(1)} s, handshake p50 ${ms(r.openP50Ms)} / p99 ${ms(r.openP99Ms)} ms` +
      ` at 32 at a time; one call at a time on one session: p50 ${ms(r.sequentialP50Ms)} / ` +
      `p99 ${ms(r.sequentialP99Ms)} ms`,
    memory,
    load,
    `target gateway RSS < ${s.gatewayRssBelow.limit} MB with ${n} sessions open: ` +
      `${verdict(s.gatewayRssBelow.ok)} (${mb(s.gatewayRssBelow.value)} MB)`,
    `target calls/s with ${k} sessions >= ${s.spreadRatioAtLeast.limit} × ${k} in flight on 1 ` +
      `session: ${verdict(s.spreadRatioAtLeast.ok)} (×${s.spreadRatioAtLeast.value.toFixed(2)})`,
    `target CPU/call < ${s.cpuMsPerCallBelow.limit} ms (serving tree, ${k} sessions): ` +
      `${verdict(s.cpuMsPerCallBelow.ok)} (${s.cpuMsPerCallBelow.value.toFixed(3)} ms)`,
    ...r.problems.map((p) => `  ${p}`),
  ].join('\n')
}

/** The endpoint-start table: times p50 / p95, and the processes each step started. */
export function endpointText(r: EndpointStartResult): string {
  const t = (v: { p50: number; p95: number }) => `${ms(v.p50)} / ${ms(v.p95)}`
  const head = [
    'endpoint session (backends allowed)',
    'sessions',
    'init ms',
    'tools/list ms',
    'init+list ms',
    'first call ms',
    'spawned: init',
    'list',
    'call',
  ]
  const cells = endpointSummary(r).map((s) => [
    s.row,
    String(s.sessions),
    t(s.initMs),
    t(s.listMs),
    t(s.initPlusListMs),
    t(s.callMs),
    s.spawned.handshake,
    s.spawned.list,
    s.spawned.call,
  ])
  const rss = (v: number[]) => v.map((x) => x.toFixed(0)).join(', ')
  return [
    `endpoint over ${r.backends} echo backends (${r.runs} fresh gateways per cold row; times ` +
      'p50 / p95; spawned: backend processes each step started)',
    grid([head, ...cells]),
    `serving tree after the cold list (gateway + backends): ${rss(r.coldTreeRssMb)} MB ` +
      `(${r.backends} allowed), ${rss(r.partialTreeRssMb)} MB (${r.partial} allowed)`,
    ...r.problems.map((p) => `  ${p}`),
  ].join('\n')
}

/** The back-to-back start verdict: the default-config row's handshake p50; undefined without it. */
export function sessionStartSummary(rows: SessionStartResult[]) {
  const dflt = rows[0]
  if (dflt === undefined) return undefined
  const limit = PROCESS_TARGETS.backToBackStartP50Ms
  return { row: dflt.row, ok: dflt.handshakeP50Ms <= limit, value: dflt.handshakeP50Ms, limit }
}

/** The back-to-back session-start table, each start's time, and the verdict. */
export function sessionStartText(rows: SessionStartResult[]): string {
  const head = [
    'back-to-back session start',
    'starts',
    'init p50 ms',
    'handshake p50 ms',
    'handshake p95 ms',
    'warm at start',
    'processes started',
  ]
  const cells = rows.map((r) => [
    r.row,
    String(r.starts),
    ms(r.initP50Ms),
    ms(r.handshakeP50Ms),
    ms(r.handshakeP95Ms),
    String(r.warmAtStart),
    String(r.spawned),
  ])
  const s = sessionStartSummary(rows)
  return [
    grid([head, ...cells]),
    ...rows.map(
      (r) =>
        `  ${r.row}, each handshake in order (ms): ` +
        r.handshakeMs.map((v) => v.toFixed(0)).join(' '),
    ),
    ...(s
      ? [
          `target p50 <= ${s.limit} ms over ${rows[0]!.starts} back-to-back starts with the ` +
            `default config: ${verdict(s.ok)} (${ms(s.value)} ms)`,
        ]
      : []),
    ...rows.flatMap((r) => r.problems.map((p) => `  ${r.row}: ${p}`)),
  ].join('\n')
}

/**
 * The memory verdicts. The churn ratio's baseline is the idle gateway (before any session),
 * as the issue names it; the ratio over the baseline after the first sessions closed (JIT code
 * and caches of a gateway that has served) is given beside it.
 */
export function memorySummary(r: MemoryResult) {
  const t = PROCESS_TARGETS
  const churnRatio = r.settled.gatewayMb / r.idle.gatewayMb
  const atMost = (value: number, limit: number) => ({ ok: value <= limit, value, limit })
  return {
    idleGatewayRss: atMost(r.idle.gatewayMb, t.idleGatewayRssMb),
    idleSessionsGatewayRss: atMost(r.open.gatewayMb, t.idleSessionsGatewayRssMb),
    churnOverIdle: atMost(churnRatio, t.churnRssRatio),
    churnOverClosed: r.settled.gatewayMb / r.closed.gatewayMb,
    heapUsedChurnOverIdle: r.settled.heapUsedMb / r.idle.heapUsedMb,
    /** The same over the process's own memory (RSS without file pages), MB above idle. */
    anonOverIdleMb: r.settled.anonMb - r.idle.anonMb,
    /** Of that, glibc's per-thread malloc arenas (a diagnostic; NaN from an older result). */
    arenasOverIdleMb: r.settled.arenasMb - r.idle.arenasMb,
  }
}

/** The memory table (RSS, V8 heap, and with BENCH_MEMORY_GC the same after full GCs) and verdicts. */
export function memoryText(r: MemoryResult): string {
  const mb = (v: number) => v.toFixed(1)
  const s = memorySummary(r)
  const rows: [string, MemoryAt][] = [
    ['1 s after start', r.started],
    [`idle, no session yet (${(r.settleMs / 1000).toFixed(0)} s after start)`, r.idle],
    [`${r.sessions} idle sessions open`, r.open],
    ['those closed (baseline after use)', r.closed],
    [`${r.churn} more opened and closed`, r.churned],
    [`  then ${(r.settleMs / 1000).toFixed(0)} s idle`, r.settled],
  ]
  const gcHead = r.gc ? ['after GC: RSS', 'heapUsed', 'heapTotal'] : []
  const gcCells = (v: MemoryAt) =>
    v.gc ? [mb(v.gc.rssMb), mb(v.gc.heapUsedMb), mb(v.gc.heapTotalMb)] : []
  return [
    `memory (echo server in shared mode; sessions 32 handshakes at a time; ${r.churn} opened ` +
      `and closed in ${r.churnSec.toFixed(1)} s, ${(r.churnCpuMs / 1000).toFixed(1)} s of gateway CPU; heap from the gateway's /metrics` +
      `${r.gc ? '; BENCH_MEMORY_GC: full collections forced at every point, so each point after the first also starts from a collected heap' : ''})`,
    grid([
      [
        'MB',
        'gateway RSS',
        'of it anon',
        'malloc arenas',
        'tree RSS',
        'heapUsed',
        'heapTotal',
        'external',
        ...gcHead,
      ],
      ...rows.map(([k, v]) => [
        k,
        mb(v.gatewayMb),
        mb(v.anonMb),
        mb(v.arenasMb),
        mb(v.treeMb),
        mb(v.heapUsedMb),
        mb(v.heapTotalMb),
        mb(v.externalMb),
        ...gcCells(v),
      ]),
    ]),
    `target idle gateway RSS <= ${s.idleGatewayRss.limit} MB: ${verdict(s.idleGatewayRss.ok)} ` +
      `(${mb(s.idleGatewayRss.value)} MB)`,
    `target gateway RSS with ${r.sessions} idle shared-mode sessions <= ` +
      `${s.idleSessionsGatewayRss.limit} MB: ${verdict(s.idleSessionsGatewayRss.ok)} ` +
      `(${mb(s.idleSessionsGatewayRss.value)} MB)`,
    `target gateway RSS after ${r.churn} sessions opened and closed (and ${(r.settleMs / 1000).toFixed(0)} s idle) ` +
      `<= ×${s.churnOverIdle.limit} the idle RSS (baseline: idle, before any session): ` +
      `${verdict(s.churnOverIdle.ok)} (×${s.churnOverIdle.value.toFixed(2)}); over the baseline ` +
      `after the first ${r.sessions} closed: ${verdict(s.churnOverClosed <= s.churnOverIdle.limit)} ` +
      `(×${s.churnOverClosed.toFixed(2)}); heapUsed ×${s.heapUsedChurnOverIdle.toFixed(2)} the idle heapUsed; ` +
      `anon ${s.anonOverIdleMb >= 0 ? '+' : ''}${mb(s.anonOverIdleMb)} MB over idle`,
    // Not a verdict: which part of the anon over idle is glibc's and not V8's or ours.
    `  of the anon over idle, glibc's per-thread malloc arenas (memory it may keep free; README, ` +
      `Deployment, Memory): ${s.arenasOverIdleMb >= 0 ? '+' : ''}${mb(s.arenasOverIdleMb)} MB`,
    ...r.problems.map((p) => `  ${p}`),
  ].join('\n')
}
