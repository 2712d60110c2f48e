// The relay block's tree-CPU bounds (ratios.ts): what each target allows the tree, what the
// edge row's children use of it and what that leaves the gateway, on synthetic medians.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { RowResult } from './measure.js'
import type { MedianRow } from './medians.js'
import { OUT_OF_REACH_SHARE, pairedRange, relayRatios, relayText } from './ratios.js'

/** A row of medians: its key, name, tree and root CPU/call (children: the difference). */
const row = (key: string, name: string, tree: number, root: number): RowResult => ({
  key,
  row: name,
  p50Ms: 1,
  p99Ms: 1,
  seqP50Ms: 1,
  seqP99Ms: 1,
  callsPerSec: 1,
  cpuMsPerCall: tree,
  rootCpuMsPerCall: root,
  childrenCpuMsPerCall: tree - root,
  childWakeupsPerCall: 1,
  childrenStarted: 0,
  childrenEnded: 0,
  sessionStartP50Ms: 1,
  idleRssMb: 1,
  peakRssMb: 1,
  processes: 17,
  concurrencyMode: '16 sessions',
  loadWindowUs: [0, 1],
  problems: [],
})

/** One expected tree-CPU ratio: its verdict, its bound's figures and its bound line. */
interface Expect {
  base: string
  ok: boolean
  allowanceMs: number
  childrenMs: number
  gatewayLeftMs: number
  outOfReach: boolean
  line: string
}

const cases: { name: string; rows: RowResult[]; expect: Expect[] }[] = [
  {
    // The ×16s figures of issue 14: every model runs 16 cold children.
    name: 'measured ×16s: supergateway within reach, mcp-proxy (1 shared child) out of it',
    rows: [
      row('sdk', 'SDK HTTP floor ×16s', 0.45, 0.45),
      row('edge', 'edge ×16s', 1.355, 0.6),
      row('supergateway', 'supergateway ×16s', 1.72, 0.975),
      row('mcp-proxy', 'mcp-proxy ×16s', 1.075, 0.82),
    ],
    expect: [
      {
        base: 'supergateway ×16s',
        ok: false,
        allowanceMs: 1.032,
        childrenMs: 0.755,
        gatewayLeftMs: 0.277,
        outOfReach: false,
        line:
          '  edge ×16s ÷ supergateway ×16s: allowance 0.6 × 1.720 ms = 1.032 ms; children ' +
          '0.755 ms (73%); leaves the gateway 0.277 ms (it uses 0.600 ms; the SDK HTTP server ' +
          '0.450 ms)',
      },
      {
        base: 'mcp-proxy ×16s',
        ok: false,
        allowanceMs: 0.645,
        childrenMs: 0.755,
        gatewayLeftMs: -0.11,
        outOfReach: true,
        line:
          '  edge ×16s ÷ mcp-proxy ×16s: allowance 0.6 × 1.075 ms = 0.645 ms; children ' +
          '0.755 ms (117%); leaves the gateway -0.110 ms (it uses 0.600 ms; the SDK HTTP server ' +
          '0.450 ms); out of reach for the gateway: children alone use 117% of the allowance',
      },
    ],
  },
  {
    name: 'a pass: the verdict stands, a small share, no SDK row: no floor',
    rows: [row('edge-1s', 'edge ×16/1s', 0.3, 0.2), row('supergateway-1s', 'sg ×16/1s', 1, 0.5)],
    expect: [
      {
        base: 'sg ×16/1s',
        ok: true,
        allowanceMs: 0.6,
        childrenMs: 0.1,
        gatewayLeftMs: 0.5,
        outOfReach: false,
        line:
          '  edge ×16/1s ÷ sg ×16/1s: allowance 0.6 × 1.000 ms = 0.600 ms; children 0.100 ms ' +
          '(17%); leaves the gateway 0.500 ms (it uses 0.200 ms)',
      },
    ],
  },
  {
    name: 'just over the share, failed: out of reach',
    rows: [row('edge', 'edge ×16s', 0.686, 0.2), row('supergateway', 'sg ×16s', 1, 0.5)],
    expect: [
      {
        base: 'sg ×16s',
        ok: false,
        allowanceMs: 0.6,
        childrenMs: 0.486,
        gatewayLeftMs: 0.114,
        outOfReach: true,
        line:
          '  edge ×16s ÷ sg ×16s: allowance 0.6 × 1.000 ms = 0.600 ms; children 0.486 ms ' +
          '(81%); leaves the gateway 0.114 ms (it uses 0.200 ms); out of reach for the ' +
          'gateway: children alone use 81% of the allowance',
      },
    ],
  },
  {
    name: 'a share that rounds to the threshold shows one decimal',
    rows: [row('edge', 'edge ×16s', 0.6818, 0.2), row('supergateway', 'sg ×16s', 1, 0.5)],
    expect: [
      {
        base: 'sg ×16s',
        ok: false,
        allowanceMs: 0.6,
        childrenMs: 0.4818,
        gatewayLeftMs: 0.1182,
        outOfReach: true,
        line:
          '  edge ×16s ÷ sg ×16s: allowance 0.6 × 1.000 ms = 0.600 ms; children 0.482 ms ' +
          '(80.3%); leaves the gateway 0.118 ms (it uses 0.200 ms); out of reach for the ' +
          'gateway: children alone use 80.3% of the allowance',
      },
    ],
  },
  {
    name: 'just under the share, failed: a gateway target, not out of reach',
    rows: [row('edge-2026', 'e26 ×16s', 0.674, 0.2), row('supergateway', 'sg ×16s', 1, 0.5)],
    expect: [
      {
        base: 'sg ×16s',
        ok: false,
        allowanceMs: 0.6,
        childrenMs: 0.474,
        gatewayLeftMs: 0.126,
        outOfReach: false,
        line:
          '  e26 ×16s ÷ sg ×16s: allowance 0.6 × 1.000 ms = 0.600 ms; children 0.474 ms ' +
          '(79%); leaves the gateway 0.126 ms (it uses 0.200 ms)',
      },
    ],
  },
  {
    // The gateway met it with little left: met, so never "out of reach".
    name: 'over the share but passed: not out of reach',
    rows: [row('edge', 'edge ×16s', 0.55, 0.05), row('mcp-proxy', 'mp ×16s', 1, 0.9)],
    expect: [
      {
        base: 'mp ×16s',
        ok: true,
        allowanceMs: 0.6,
        childrenMs: 0.5,
        gatewayLeftMs: 0.1,
        outOfReach: false,
        line:
          '  edge ×16s ÷ mp ×16s: allowance 0.6 × 1.000 ms = 0.600 ms; children 0.500 ms ' +
          '(83%); leaves the gateway 0.100 ms (it uses 0.050 ms)',
      },
    ],
  },
]

const near = (a: number, b: number) => Math.abs(a - b) < 1e-9

describe('relay targets: what each tree CPU/call target leaves the gateway', () => {
  test(`the share is ${OUT_OF_REACH_SHARE}`, () => assert.equal(OUT_OF_REACH_SHARE, 0.8))
  for (const c of cases) {
    test(c.name, () => {
      const ratios = relayRatios(c.rows)
      const tree = ratios.filter((r) => r.figure === 'tree CPU/call')
      assert.deepEqual(
        tree.map((r) => r.base),
        c.expect.map((e) => e.base),
      )
      const text = relayText(ratios).split('\n')
      for (const [i, e] of c.expect.entries()) {
        const r = tree[i]!
        const b = r.bound!
        // The verdict is the ratio's alone, as before: the bound explains, never loosens.
        assert.equal(r.ok, r.value / r.baseValue <= r.limit)
        assert.equal(r.ok, e.ok)
        assert.ok(near(b.allowanceMs, e.allowanceMs), `allowance ${b.allowanceMs}`)
        assert.ok(near(b.childrenMs, e.childrenMs), `children ${b.childrenMs}`)
        assert.ok(near(b.gatewayLeftMs, e.gatewayLeftMs), `left ${b.gatewayLeftMs}`)
        assert.equal(b.outOfReach, e.outOfReach)
        assert.ok(text.includes(e.line), `no line\n${e.line}\nin\n${text.join('\n')}`)
      }
      // Only the tree-CPU ratios carry a bound.
      for (const r of ratios) assert.equal(r.bound !== undefined, r.figure === 'tree CPU/call')
    })
  }

  test('no tree-CPU ratio (no peer ran): no bound lines', () => {
    const ratios = relayRatios([row('edge', 'edge ×16s', 1, 0.6), row('sdk', 'SDK ×16s', 0.5, 0.5)])
    assert.ok(ratios.length > 0)
    assert.ok(ratios.every((r) => r.bound === undefined))
    assert.doesNotMatch(relayText(ratios), /leaves the gateway/)
  })
})

describe('relay targets: one at a time, the ratio repetition by repetition', () => {
  /** A median row with its one-at-a-time p50 and each repetition's. */
  const seq = (key: string, p50: number, byRep: Record<number, number>): MedianRow => ({
    ...row(key, key, 1, 1),
    seqP50Ms: p50,
    reps: Object.keys(byRep).length,
    seqP50ByRep: byRep,
  })
  const cases: {
    name: string
    edge: Record<number, number>
    sdk: Record<number, number>
    expect: [number, number] | undefined
  }[] = [
    {
      name: 'every repetition: lowest and highest of the paired ratios',
      edge: { 1: 1.2, 2: 0.9, 3: 1.0 },
      sdk: { 1: 1.0, 2: 1.0, 3: 0.8 },
      expect: [0.9, 1.25],
    },
    {
      // Paired by repetition number: rep 2 of edge failed, rep 2 of the SDK is not used.
      name: 'a repetition one row lacks is left out',
      edge: { 1: 1.1, 3: 0.9 },
      sdk: { 1: 1.0, 2: 0.1, 3: 1.0 },
      expect: [0.9, 1.1],
    },
    {
      name: 'one repetition in common: no range',
      edge: { 1: 1 },
      sdk: { 1: 1, 2: 1 },
      expect: undefined,
    },
    { name: 'one repetition: no range', edge: { 1: 1 }, sdk: { 1: 1 }, expect: undefined },
  ]
  for (const c of cases)
    test(c.name, () => {
      const [edge, sdk] = [seq('edge-1s', 1, c.edge), seq('sdk-1s', 1, c.sdk)]
      const got = pairedRange(edge, sdk).byRep
      if (c.expect === undefined) return assert.equal(got, undefined)
      assert.ok(near(got![0], c.expect[0]) && near(got![1], c.expect[1]), JSON.stringify(got))
    })

  test('only the one-at-a-time line carries it, in the text too', () => {
    const rows = [
      seq('edge-1s', 1.05, { 1: 1.2, 2: 0.9, 3: 1.0 }),
      seq('sdk-1s', 1.0, { 1: 1.0, 2: 1.0, 3: 0.8 }),
    ]
    const ratios = relayRatios(rows)
    for (const r of ratios) assert.equal(r.byRep !== undefined, r.figure === 'p50 one at a time')
    const line = relayText(ratios)
      .split('\n')
      .find((l) => l.includes('p50 one at a time'))
    assert.match(line!, /×1\.05 \(×0\.90–1\.25 by rep\)/)
  })

  test('plain rows (not medians): no range', () => {
    const ratios = relayRatios([row('edge-1s', 'e', 1, 1), row('sdk-1s', 's', 1, 1)])
    assert.ok(ratios.every((r) => r.byRep === undefined))
  })
})
