// What tracing costs: each tracing row beside the same gateway row without it, both from the
// same repetitions (rows interleaved), CPU of the serving tree per call and latency.
import type { RowResult } from './measure.js'

/** One tracing row against its untraced base. */
export interface TracingCost {
  row: string
  base: string
  /** CPU per call of the serving tree, traced ÷ untraced. */
  cpuRatio: number
  cpuMsPerCall: number
  baseCpuMsPerCall: number
  p50Ms: number
  baseP50Ms: number
}

/** The rows `edge-traced`, `edge-2026-unsampled-1s`… against `edge`, `edge-2026-1s`…, where both ran. */
export function tracingCosts(results: readonly RowResult[]): TracingCost[] {
  const byKey = new Map(results.map((r) => [r.key, r]))
  const out: TracingCost[] = []
  for (const r of results) {
    const m = /^(.*)-(traced|unsampled)(-1s)?$/.exec(r.key)
    if (!m) continue
    const base = byKey.get(`${m[1]}${m[3] ?? ''}`)
    if (!base) continue
    out.push({
      row: r.row,
      base: base.row,
      cpuRatio: r.cpuMsPerCall / base.cpuMsPerCall,
      cpuMsPerCall: r.cpuMsPerCall,
      baseCpuMsPerCall: base.cpuMsPerCall,
      p50Ms: r.p50Ms,
      baseP50Ms: base.p50Ms,
    })
  }
  return out
}

export function tracingText(costs: readonly TracingCost[], sink: string): string {
  const lines = costs.map(
    (c) =>
      `  ${c.row}: ${c.cpuMsPerCall.toFixed(3)} ms CPU per call vs ${c.baseCpuMsPerCall.toFixed(3)} ` +
      `(${c.base}), ×${c.cpuRatio.toFixed(2)}; p50 ${c.p50Ms.toFixed(2)} vs ${c.baseP50Ms.toFixed(2)} ms`,
  )
  return [
    'tracing overhead (OTLP http/protobuf to a receiver in the bench process):',
    ...lines,
    `  received: ${sink}`,
  ].join('\n')
}
