import type { RowResult } from './measure.js'
import type { MedianRow } from './medians.js'

/** Targets mcp-edge must meet. */
export const TARGETS = { cpuMsPerCall: 0.25 }

/** A row that could not be measured. */
export interface RowFailure {
  row: string
  error: string
}

const columns = (reps: number): [string, (r: MedianRow) => string][] => [
  ['row', (r) => (r.reps < reps ? `${r.row} (${r.reps} of ${reps} reps)` : r.row)],
  ['p50 ms', (r) => r.p50Ms.toFixed(2)],
  ['p99 ms', (r) => r.p99Ms.toFixed(2)],
  ['calls/s', (r) => r.callsPerSec.toFixed(0)],
  ['CPU ms/call tree', (r) => r.cpuMsPerCall.toFixed(3)],
  ['CPU ms/call root', (r) => r.rootCpuMsPerCall.toFixed(3)],
  ['CPU ms/call children', (r) => r.childrenCpuMsPerCall.toFixed(3)],
  ['seq p50 ms (reps)', seqCell],
  ['start p50 ms', (r) => r.sessionStartP50Ms.toFixed(1)],
  ['idle RSS MB', (r) => r.idleRssMb.toFixed(0)],
  ['peak RSS MB', (r) => r.peakRssMb.toFixed(0)],
  ['procs', (r) => r.processes.toFixed(0)],
]

/**
 * One call at a time: the median of the repetitions' p50s and, with more than one, their
 * lowest and highest (`0.870 (0.79–1.17)`), so a reader sees how far the figure moves.
 */
export function seqCell(r: MedianRow): string {
  const all = Object.values(r.seqP50ByRep)
  if (all.length < 2) return r.seqP50Ms.toFixed(3)
  return `${r.seqP50Ms.toFixed(3)} (${Math.min(...all).toFixed(2)}–${Math.max(...all).toFixed(2)})`
}

/**
 * The results table, fixed-width, with a legend of its columns; `reps`: the repetitions the
 * run asked for (a row with fewer, some having failed, says so).
 */
export function table(rows: MedianRow[], reps: number): string {
  const cols = columns(reps)
  const legend = [
    `medians of ${reps} repetitions; p50/p99 and calls/s under the row's load; CPU per call ` +
      'of the whole serving tree, of its root process alone (the gateway) and of its children',
    '(tree minus root in each repetition, then the median); seq p50: one call at a time on one ' +
      "session, every row's calls interleaved call by call, the repetitions' lowest and highest " +
      'in brackets;',
    'start: session start (handshake) p50 of the sessions the row opened;',
    '×16s = 16 sessions with 1 call in flight each, ×16/1s = 16 calls in flight on 1 session',
  ]
  const cells = [cols.map(([h]) => h), ...rows.map((r) => cols.map(([, f]) => f(r)))]
  return [grid(cells), ...legend].join('\n')
}

/** A fixed-width table: the first row is the header; the first `left` columns left-aligned. */
export function grid(cells: string[][], left = 1): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)))
  const pad = (v: string, i: number) => (i < left ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))
  const line = (c: string[]) => c.map(pad).join('  ')
  const rule = widths.map((w) => '-'.repeat(w)).join('  ')
  return [line(cells[0]!), rule, ...cells.slice(1).map(line)].join('\n')
}

type Ratios = Record<'p50' | 'p99' | 'callsPerSec' | 'cpuMsPerCall', number>

function ratios(a: RowResult, b: RowResult): Ratios {
  return {
    p50: a.p50Ms / b.p50Ms,
    p99: a.p99Ms / b.p99Ms,
    callsPerSec: a.callsPerSec / b.callsPerSec,
    cpuMsPerCall: a.cpuMsPerCall / b.cpuMsPerCall,
  }
}

/** Ratios of mcp-edge (session mode, 16 sessions) to both floors and the verdicts; undefined without it. */
export function summary(rows: RowResult[]) {
  const edge = rows.find((r) => r.key === 'edge')
  if (!edge) return undefined
  const stdio = rows.find((r) => r.key === 'stdio')
  const sdk = rows.find((r) => r.key === 'sdk')
  return {
    row: edge.row,
    vsStdio: stdio ? ratios(edge, stdio) : undefined,
    vsSdkHttp: sdk ? ratios(edge, sdk) : undefined,
    targets: {
      p50NoWorseThanSdkHttp: sdk
        ? { ok: edge.p50Ms <= sdk.p50Ms, edge: edge.p50Ms, sdkHttp: sdk.p50Ms }
        : undefined,
      cpuMsPerCallBelow: {
        ok: edge.cpuMsPerCall < TARGETS.cpuMsPerCall,
        edge: edge.cpuMsPerCall,
        limit: TARGETS.cpuMsPerCall,
      },
    },
  }
}

/**
 * Each aggregate row over the plain edge row of the same shape (the same echo call, the same
 * load and client): what an endpoint adds per call. Only the pairs that both ran.
 */
export function aggregateSummary(rows: RowResult[]) {
  return [
    ['aggregate', 'edge'],
    ['aggregate-1s', 'edge-1s'],
  ].flatMap(([a, e]) => {
    const agg = rows.find((r) => r.key === a)
    const edge = rows.find((r) => r.key === e)
    if (!edge || !agg) return []
    return [
      {
        row: agg.row,
        edgeRow: edge.row,
        overEdge: ratios(agg, edge),
        gatewayCpuMsPerCall: { aggregate: agg.rootCpuMsPerCall, edge: edge.rootCpuMsPerCall },
      },
    ]
  })
}

/** The aggregate-over-edge lines. */
export function aggregateText(list: ReturnType<typeof aggregateSummary>): string {
  return list
    .map((a) => {
      const r = Object.entries(a.overEdge)
        .map(([k, v]) => `${k} ×${v.toFixed(2)}`)
        .join(', ')
      const g = a.gatewayCpuMsPerCall
      return (
        `${a.row} / ${a.edgeRow}: ${r}; gateway process CPU/call ${g.aggregate.toFixed(3)} vs ` +
        `${g.edge.toFixed(3)} ms`
      )
    })
    .join('\n')
}

/** PASS or FAIL. */
export const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL')

/** Human-readable ratios and verdicts. */
export function summaryText(s: NonNullable<ReturnType<typeof summary>>): string {
  const fmt = (r: Ratios | undefined) =>
    r === undefined
      ? 'n/a'
      : Object.entries(r)
          .map(([k, v]) => `${k} ×${v.toFixed(2)}`)
          .join(', ')
  const p50 = s.targets.p50NoWorseThanSdkHttp
  const cpu = s.targets.cpuMsPerCallBelow
  return [
    `${s.row} / stdio floor:    ${fmt(s.vsStdio)}`,
    `${s.row} / SDK HTTP floor: ${fmt(s.vsSdkHttp)}`,
    `target p50 <= SDK HTTP p50: ${
      p50 ? `${verdict(p50.ok)} (${p50.edge.toFixed(3)} vs ${p50.sdkHttp.toFixed(3)} ms)` : 'n/a'
    }`,
    `target CPU/call < ${cpu.limit} ms: ${verdict(cpu.ok)} (${cpu.edge.toFixed(3)} ms)`,
  ].join('\n')
}
