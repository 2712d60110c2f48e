// The relay targets: mcp-edge (session mode, and sessionless 2026-07-28) against the peers
// (supergateway, mcp-proxy) and the SDK's own HTTP server, each edge row against the peer row
// of the same load shape, on the medians of the table.
import type { RowResult } from './measure.js'
import { grid, verdict } from './report.js'

/** The ratio limits the relay must meet (with auth + policy + audit on, the peers with none). */
export const RELAY_TARGETS = {
  /** CPU per call of the whole serving tree, over each peer's. */
  treeCpuOverPeer: 0.6,
  /** CPU per call of the gateway process alone, over the SDK HTTP floor's (one process). */
  gatewayCpuOverSdk: 1.0,
  /** p50 over the SDK HTTP floor's. */
  p50OverSdk: 1.1,
}

/** One checked ratio: `row`'s figure over `base`'s. */
export interface RelayRatio {
  row: string
  figure: string
  base: string
  value: number
  baseValue: number
  ratio: number
  limit: number
  ok: boolean
}

/** The edge rows held to the targets, by key; each meets the rows of its own shape. */
const EDGE_ROWS = ['edge', 'edge-1s', 'edge-2026', 'edge-2026-1s']

/**
 * Every ratio the targets name, for each edge row that ran against each base row of its shape
 * that ran: tree CPU/call over supergateway's and mcp-proxy's, the gateway process's CPU/call
 * over the SDK floor's, and p50 over the SDK floor's (under the row's load, and one call at a
 * time).
 */
export function relayRatios(rows: RowResult[]): RelayRatio[] {
  const byKey = new Map(rows.map((r) => [r.key, r]))
  const out: RelayRatio[] = []
  for (const key of EDGE_ROWS) {
    const edge = byKey.get(key)
    if (edge === undefined) continue
    const suffix = key.endsWith('-1s') ? '-1s' : ''
    const check = (baseKey: string, figure: string, f: (r: RowResult) => number, limit: number) => {
      const base = byKey.get(baseKey + suffix)
      if (base === undefined) return
      const [value, baseValue] = [f(edge), f(base)]
      const ratio = value / baseValue
      out.push({
        row: edge.row,
        figure,
        base: base.row,
        value,
        baseValue,
        ratio,
        limit,
        ok: ratio <= limit,
      })
    }
    const t = RELAY_TARGETS
    check('supergateway', 'tree CPU/call', (r) => r.cpuMsPerCall, t.treeCpuOverPeer)
    check('mcp-proxy', 'tree CPU/call', (r) => r.cpuMsPerCall, t.treeCpuOverPeer)
    check('sdk', 'gateway-process CPU/call', (r) => r.rootCpuMsPerCall, t.gatewayCpuOverSdk)
    check('sdk', 'p50 under load', (r) => r.p50Ms, t.p50OverSdk)
    check('sdk', 'p50 one at a time', (r) => r.seqP50Ms, t.p50OverSdk)
  }
  return out
}

/** The ratio block: one line per ratio, with its verdict, and a count. */
export function relayText(ratios: RelayRatio[]): string {
  const fig = (v: number) => v.toFixed(3)
  const head = ['row', 'figure', '÷ row', 'ms', 'base ms', 'ratio', 'target', 'verdict']
  const cells = ratios.map((r) => [
    r.row,
    r.figure,
    r.base,
    fig(r.value),
    fig(r.baseValue),
    `×${r.ratio.toFixed(2)}`,
    `≤ ${r.limit.toFixed(1)}`,
    verdict(r.ok),
  ])
  const passed = ratios.filter((r) => r.ok).length
  return [
    'relay targets (medians; each edge row against the row of the same load shape; ' +
      'mcp-edge with auth + policy + audit, the peers with none):',
    grid([head, ...cells], 3),
    `${passed} of ${ratios.length} PASS`,
  ].join('\n')
}
