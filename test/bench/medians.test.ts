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

  test('a row: each figure on its own, problems once each', () => {
    const rep = (cpu: number, p50: number, problems: string[]): RowResult => ({
      key: 'edge',
      row: 'edge ×16s',
      p50Ms: p50,
      p99Ms: 1,
      seqP50Ms: 1,
      seqP99Ms: 1,
      callsPerSec: 1,
      cpuMsPerCall: cpu,
      rootCpuMsPerCall: 1,
      sessionStartP50Ms: 1,
      idleRssMb: 1,
      peakRssMb: 1,
      processes: 17,
      concurrencyMode: '16 sessions',
      loadWindowUs: [0, 1],
      problems,
    })
    const m = medianRow([rep(1.5, 9, ['a']), rep(1.2, 3, ['a', 'b']), rep(1.3, 4, [])])
    assert.equal(m.reps, 3)
    assert.equal(m.cpuMsPerCall, 1.3)
    assert.equal(m.p50Ms, 4)
    assert.deepEqual(m.problems, ['a', 'b'])
  })

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
