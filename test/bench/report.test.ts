// The results table (report.ts): the children column beside tree and root, on synthetic medians.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { MedianRow } from './medians.js'
import { table } from './report.js'

/** A row of medians: name, tree, root and children CPU/call. */
const row = (name: string, tree: number, root: number, children: number): MedianRow => ({
  key: name,
  row: name,
  p50Ms: 1,
  p99Ms: 1,
  seqP50Ms: 1,
  seqP99Ms: 1,
  callsPerSec: 1,
  cpuMsPerCall: tree,
  rootCpuMsPerCall: root,
  childrenCpuMsPerCall: children,
  sessionStartP50Ms: 1,
  idleRssMb: 1,
  peakRssMb: 1,
  processes: 17,
  concurrencyMode: '16 sessions',
  loadWindowUs: [0, 1],
  problems: [],
  reps: 3,
})

describe('results table: CPU ms/call children', () => {
  // The column shows the row's own median of per-repetition differences (medians.ts), not
  // tree minus root of the medians: here the two differ on purpose.
  const cases: [MedianRow, string][] = [
    [row('edge ×16s', 1.355, 0.6, 0.755), '0.755'],
    [row('supergateway ×16s', 1.72, 0.975, 0.745), '0.745'],
    [row('medians of different reps', 1.2, 0.5, 0.8), '0.800'],
    [row('stdio floor ×16/1s', 0.3, 0.3, 0), '0.000'],
  ]
  for (const [r, shown] of cases) {
    test(`${r.row}: ${shown}`, () => {
      const [head, , line] = table([r], 3).split('\n')
      const cols = (l: string) => l.trim().split(/ {2,}/)
      const at = cols(head!).indexOf('CPU ms/call children')
      assert.equal(cols(head!)[at - 2], 'CPU ms/call tree')
      assert.equal(cols(head!)[at - 1], 'CPU ms/call root')
      assert.equal(cols(line!)[at], shown)
    })
  }
})
