import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { RowResult } from './measure.js'
import { median, medianRow, mergeLines } from './medians.js'

describe('medians over repetitions', () => {
  const cases = [
    { name: 'odd count: the middle one', samples: [3, 1, 2], expect: 2 },
    { name: 'even count: the mean of the middle two', samples: [4, 1, 3, 2], expect: 2.5 },
    { name: 'one', samples: [7], expect: 7 },
    { name: 'none', samples: [], expect: NaN },
  ]
  for (const c of cases) test(c.name, () => assert.equal(median(c.samples), c.expect))

  /** One repetition; children CPU/call as measure() counts it: tree minus root. */
  const rep = (cpu: number, p50: number, problems: string[], root = 1): RowResult => ({
    key: 'edge',
    row: 'edge ×16s',
    p50Ms: p50,
    p99Ms: 1,
    seqP50Ms: 1,
    seqP99Ms: 1,
    callsPerSec: 1,
    cpuMsPerCall: cpu,
    rootCpuMsPerCall: root,
    childrenCpuMsPerCall: cpu - root,
    childWakeupsPerCall: 1,
    childrenStarted: 0,
    childrenEnded: 0,
    sessionStartP50Ms: 1,
    idleRssMb: 1,
    peakRssMb: 1,
    processes: 17,
    concurrencyMode: '16 sessions',
    loadWindowUs: [0, 1],
    problems,
  })

  const rep0 = () => rep(1, 1, [])

  test("one at a time: each repetition's p50 by its number, the median row names none", () => {
    const reps = [3, 1, 2].map((rep, i) => ({ ...rep0(), rep, seqP50Ms: [0.9, 1.2, 1.0][i]! }))
    const m = medianRow(reps)
    assert.deepEqual(m.seqP50ByRep, { 3: 0.9, 1: 1.2, 2: 1.0 })
    assert.equal(m.seqP50Ms, 1.0)
    assert.equal(m.rep, undefined)
    // Without numbers (one repetition measured on its own): counted from 1 in order.
    assert.deepEqual(medianRow([rep0(), rep0()]).seqP50ByRep, { 1: 1, 2: 1 })
  })

  test('a row: each figure on its own, problems once each', () => {
    const m = medianRow([rep(1.5, 9, ['a']), rep(1.2, 3, ['a', 'b']), rep(1.3, 4, [])])
    assert.equal(m.reps, 3)
    assert.equal(m.cpuMsPerCall, 1.3)
    assert.equal(m.p50Ms, 4)
    assert.deepEqual(m.problems, ['a', 'b'])
  })

  // Children CPU/call is each repetition's tree minus root, then the median: not the median
  // tree minus the median root, which may come from different repetitions.
  const children = [
    {
      name: 'medians from different repetitions: the per-repetition differences win',
      reps: [rep(1.2, 1, [], 0.6), rep(1.0, 1, [], 0.2), rep(1.4, 1, [], 0.5)],
      // differences 0.6, 0.8, 0.9 → 0.8; median tree 1.2 − median root 0.5 would be 0.7
      expect: 0.8,
    },
    {
      name: 'even count: the mean of the middle two differences',
      reps: [
        rep(1.4, 1, [], 0.6),
        rep(1.3, 1, [], 0.6),
        rep(1.6, 1, [], 0.6),
        rep(1.1, 1, [], 0.6),
      ],
      expect: 0.75,
    },
    { name: 'one repetition: its difference', reps: [rep(1.355, 1, [], 0.6)], expect: 0.755 },
    // stdio: the root is the only process, nothing below it
    { name: 'no children: zero', reps: [rep(0.3, 1, [], 0.3), rep(0.2, 1, [], 0.2)], expect: 0 },
  ]
  for (const c of children) {
    test(`children CPU/call: ${c.name}`, () => {
      assert.ok(Math.abs(medianRow(c.reps).childrenCpuMsPerCall - c.expect) < 1e-9)
    })
  }

  const merges = [
    { name: 'the same line: once', lines: ['x', 'x'], expect: ['x'] },
    {
      name: 'numbers differ: each value once, in order',
      lines: [
        'log lines after start: 2918',
        'log lines after start: 2926',
        'log lines after start: 2918',
      ],
      expect: ['log lines after start: 2918/2926'],
    },
    {
      name: 'several numbers, each its own values',
      lines: ['DELETE: HTTP 404 ×2', 'DELETE: HTTP 404 ×5'],
      expect: ['DELETE: HTTP 404 ×2/5'],
    },
    { name: 'other text: apart', lines: ['a 1', 'b 1', 'a 2'], expect: ['a 1/2', 'b 1'] },
  ]
  for (const c of merges)
    test(`merged problems: ${c.name}`, () => assert.deepEqual(mergeLines(c.lines), c.expect))
})
