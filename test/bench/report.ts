import type { RowResult } from './measure.js'

/** Targets mcp-edge must meet. */
export const TARGETS = { cpuMsPerCall: 0.25 }

/** A row that could not be measured. */
export interface RowFailure { row: string; error: string }

const COLUMNS: [string, (r: RowResult) => string][] = [
  ['row', (r) => r.row],
  ['p50 ms', (r) => r.p50Ms.toFixed(3)],
  ['p99 ms', (r) => r.p99Ms.toFixed(3)],
  ['calls/s@16', (r) => r.callsPerSec.toFixed(0)],
  ['CPU ms/call', (r) => r.cpuMsPerCall.toFixed(3)],
  ['session start p50 ms', (r) => r.sessionStartP50Ms.toFixed(1)],
  ['idle RSS MB', (r) => r.idleRssMb.toFixed(1)],
  ['peak RSS MB', (r) => r.peakRssMb.toFixed(1)],
]

/** The results table, fixed-width. */
export function table(rows: RowResult[]): string {
  return grid([COLUMNS.map(([h]) => h), ...rows.map((r) => COLUMNS.map(([, f]) => f(r)))])
}

/** A fixed-width table: the first row is the header, first column left-aligned. */
export function grid(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)))
  const pad = (v: string, i: number) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))
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

/** Ratios of mcp-edge to both floors and the target verdicts; undefined without mcp-edge. */
export function summary(rows: RowResult[]) {
  const edge = rows.find((r) => r.row === 'mcp-edge')
  if (!edge) return undefined
  const stdio = rows.find((r) => r.row.startsWith('stdio'))
  const sdk = rows.find((r) => r.row.startsWith('SDK HTTP'))
  return {
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
 * The aggregate row over the plain edge row (the same echo call, the same load and client):
 * what an endpoint adds per call. Undefined unless both rows ran.
 */
export function aggregateSummary(rows: RowResult[]) {
  const edge = rows.find((r) => r.row === 'mcp-edge')
  const agg = rows.find((r) => r.row.startsWith('mcp-edge endpoint'))
  if (!edge || !agg) return undefined
  return {
    row: agg.row,
    overEdge: ratios(agg, edge),
    gatewayCpuMsPerCall: { aggregate: agg.rootCpuMsPerCall, edge: edge.rootCpuMsPerCall },
  }
}

/** The aggregate-over-edge line. */
export function aggregateText(a: NonNullable<ReturnType<typeof aggregateSummary>>): string {
  const r = Object.entries(a.overEdge).map(([k, v]) => `${k} ×${v.toFixed(2)}`).join(', ')
  const g = a.gatewayCpuMsPerCall
  return `${a.row} / mcp-edge: ${r}; gateway process CPU/call ${g.aggregate.toFixed(3)} vs `
    + `${g.edge.toFixed(3)} ms`
}

/** PASS or FAIL. */
export const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL')

/** Human-readable ratios and verdicts. */
export function summaryText(s: NonNullable<ReturnType<typeof summary>>): string {
  const fmt = (r: Ratios | undefined) =>
    r === undefined ? 'n/a' : Object.entries(r).map(([k, v]) => `${k} ×${v.toFixed(2)}`).join(', ')
  const p50 = s.targets.p50NoWorseThanSdkHttp
  const cpu = s.targets.cpuMsPerCallBelow
  return [
    `mcp-edge / stdio floor:    ${fmt(s.vsStdio)}`,
    `mcp-edge / SDK HTTP floor: ${fmt(s.vsSdkHttp)}`,
    `target p50 <= SDK HTTP p50: ${p50
      ? `${verdict(p50.ok)} (${p50.edge.toFixed(3)} vs ${p50.sdkHttp.toFixed(3)} ms)`
      : 'n/a'}`,
    `target CPU/call < ${cpu.limit} ms: ${verdict(cpu.ok)} (${cpu.edge.toFixed(3)} ms)`,
  ].join('\n')
}
