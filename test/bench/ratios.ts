// The relay targets: mcp-edge (session mode, and sessionless 2026-07-28) against the peers
// (supergateway, mcp-proxy) and the SDK's own HTTP server, each edge row against the peer row
// of the same load shape, on the medians of the table.
import type { RowResult } from './measure.js'
import type { MedianRow } from './medians.js'
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

/**
 * Above this share of a tree-CPU allowance used by the edge row's children alone, the bound
 * line says the target is out of the gateway's reach (explanation only: the verdict stands).
 */
export const OUT_OF_REACH_SHARE = 0.8

/**
 * What a tree-CPU target leaves the gateway: the whole tree may use `allowanceMs` (the limit ×
 * the peer's tree CPU/call), of which the edge row's stdio children (the MCP servers, no
 * gateway code) use `childrenMs`.
 */
export interface TreeBound {
  /** The edge row's children's CPU/call (tree minus root per repetition, median). */
  childrenMs: number
  /** limit × the base row's tree CPU/call: what the target allows the whole tree. */
  allowanceMs: number
  /** allowanceMs − childrenMs: what that leaves the gateway process (negative: nothing). */
  gatewayLeftMs: number
  /** The edge row's gateway process's own CPU/call, beside what it is left. */
  gatewayMs: number
  /** The SDK HTTP floor's server process CPU/call in the same shape, when that row ran. */
  sdkFloorMs?: number
  /** childrenMs / allowanceMs. */
  childrenShare: number
  /**
   * The target failed and childrenShare > OUT_OF_REACH_SHARE: what is left is too little for
   * any gateway (a passing target is never called out of reach).
   */
  outOfReach: boolean
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
  /** Tree CPU/call ratios only: the allowance split into children and gateway. */
  bound?: TreeBound
  /**
   * One call at a time only, over two or more repetitions both rows had: the lowest and highest
   * of the repetitions' own ratios (each repetition interleaves the two rows call by call, so
   * its ratio is measured under one spell of the machine).
   */
  byRep?: [number, number]
}

/**
 * The bound of a tree-CPU target `limit` × `baseTreeMs` for `edge`'s tree; `ok`: the target's
 * verdict (unchanged here); `sdk`: the SDK HTTP floor's row of the same shape, if it ran.
 */
export function treeBound(
  edge: RowResult,
  baseTreeMs: number,
  limit: number,
  ok: boolean,
  sdk?: RowResult,
): TreeBound {
  const allowanceMs = limit * baseTreeMs
  const childrenMs = edge.childrenCpuMsPerCall
  const childrenShare = childrenMs / allowanceMs
  return {
    childrenMs,
    allowanceMs,
    gatewayLeftMs: allowanceMs - childrenMs,
    gatewayMs: edge.rootCpuMsPerCall,
    ...(sdk && { sdkFloorMs: sdk.rootCpuMsPerCall }),
    childrenShare,
    outOfReach: !ok && childrenShare > OUT_OF_REACH_SHARE,
  }
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
    const sdk = byKey.get(`sdk${suffix}`)
    const check = (
      baseKey: string,
      figure: string,
      f: (r: RowResult) => number,
      limit: number,
      tree = false,
      byRep = false,
    ) => {
      const base = byKey.get(baseKey + suffix)
      if (base === undefined) return
      const [value, baseValue] = [f(edge), f(base)]
      const ratio = value / baseValue
      const ok = ratio <= limit
      out.push({
        row: edge.row,
        figure,
        base: base.row,
        value,
        baseValue,
        ratio,
        limit,
        ok,
        ...(tree && { bound: treeBound(edge, baseValue, limit, ok, sdk) }),
        ...(byRep && pairedRange(edge, base)),
      })
    }
    const t = RELAY_TARGETS
    check('supergateway', 'tree CPU/call', (r) => r.cpuMsPerCall, t.treeCpuOverPeer, true)
    check('mcp-proxy', 'tree CPU/call', (r) => r.cpuMsPerCall, t.treeCpuOverPeer, true)
    check('sdk', 'gateway-process CPU/call', (r) => r.rootCpuMsPerCall, t.gatewayCpuOverSdk)
    check('sdk', 'p50 under load', (r) => r.p50Ms, t.p50OverSdk)
    check('sdk', 'p50 one at a time', (r) => r.seqP50Ms, t.p50OverSdk, false, true)
  }
  return out
}

/**
 * `{ byRep }`: the lowest and highest of `row`'s one-at-a-time p50 over `base`'s, repetition by
 * repetition, over the repetitions both had (two at least); else nothing.
 */
export function pairedRange(row: RowResult, base: RowResult): { byRep?: [number, number] } {
  const a = (row as Partial<MedianRow>).seqP50ByRep
  const b = (base as Partial<MedianRow>).seqP50ByRep
  if (a === undefined || b === undefined) return {}
  const ratios = Object.keys(a)
    .filter((rep) => b[Number(rep)] !== undefined)
    .map((rep) => a[Number(rep)]! / b[Number(rep)]!)
  if (ratios.length < 2) return {}
  return { byRep: [Math.min(...ratios), Math.max(...ratios)] }
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
    r.byRep
      ? `×${r.ratio.toFixed(2)} (×${r.byRep[0].toFixed(2)}–${r.byRep[1].toFixed(2)} by rep)`
      : `×${r.ratio.toFixed(2)}`,
    `≤ ${r.limit.toFixed(1)}`,
    verdict(r.ok),
  ])
  const passed = ratios.filter((r) => r.ok).length
  const bounds = ratios.flatMap((r) => (r.bound ? [boundText(r, r.bound)] : []))
  return [
    'relay targets (medians; each edge row against the row of the same load shape; ' +
      'mcp-edge with auth + policy + audit, the peers with none):',
    grid([head, ...cells], 3),
    `${passed} of ${ratios.length} PASS`,
    ...(bounds.length > 0
      ? [
          'what each tree CPU/call target leaves the gateway (allowance = target × base ms; ' +
            "children: the edge row's tree minus its gateway process):",
          ...bounds,
        ]
      : []),
  ].join('\n')
}

/** One tree-CPU bound: allowance, children, what is left; out of reach above the share. */
export function boundText(r: RelayRatio, b: TreeBound): string {
  const ms = (v: number) => `${v.toFixed(3)} ms`
  // One decimal where a whole percent would read as the threshold itself (80.25% is over it).
  const near = Math.round(b.childrenShare * 100) === Math.round(OUT_OF_REACH_SHARE * 100)
  const pct = `${(b.childrenShare * 100).toFixed(near ? 1 : 0)}%`
  const floor = b.sdkFloorMs === undefined ? '' : `; the SDK HTTP server ${ms(b.sdkFloorMs)}`
  const reach = b.outOfReach
    ? `; out of reach for the gateway: children alone use ${pct} of the allowance`
    : ''
  return (
    `  ${r.row} ÷ ${r.base}: allowance ${r.limit.toFixed(1)} × ${ms(r.baseValue)} = ` +
    `${ms(b.allowanceMs)}; children ${ms(b.childrenMs)} (${pct}); leaves the gateway ` +
    `${ms(b.gatewayLeftMs)} (it uses ${ms(b.gatewayMs)}${floor})${reach}`
  )
}
