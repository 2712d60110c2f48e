// The results table (report.ts): the children column beside tree and root, on synthetic medians.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { MedianRow } from './medians.js'
import { seqCell, table } from './report.js'

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
  reps: 3,
  seqP50ByRep: { 1: 1, 2: 1, 3: 1 },
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

describe('results table: seq p50 with the spread of its repetitions', () => {
  const base = row('edge ×16/1s', 1, 1, 0)
  const cases: [string, Partial<MedianRow>, string][] = [
    ['one repetition: the figure alone', { seqP50Ms: 0.87, seqP50ByRep: { 1: 0.87 } }, '0.870'],
    [
      'three: the median, lowest and highest',
      { seqP50Ms: 0.87, seqP50ByRep: { 1: 1.172, 2: 0.87, 3: 0.792 } },
      '0.870 (0.79–1.17)',
    ],
    [
      'a repetition missing: those it has',
      { seqP50Ms: 1.05, seqP50ByRep: { 1: 1.2, 3: 0.9 } },
      '1.050 (0.90–1.20)',
    ],
  ]
  for (const [name, over, shown] of cases)
    test(`${name}: ${shown}`, () => {
      const r = { ...base, ...over }
      assert.equal(seqCell(r), shown)
      const [head, , line] = table([r], 3).split('\n')
      const cols = (l: string) => l.trim().split(/ {2,}/)
      assert.equal(cols(line!)[cols(head!).indexOf('seq p50 ms (reps)')], shown)
    })
})
