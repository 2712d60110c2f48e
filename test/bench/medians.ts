// The table's figures over repetitions: each figure's median, so one disturbed repetition
// (another process on the cores, a GC at the wrong moment) moves no figure.
import type { RowResult } from './measure.js'

/** Median of samples (the mean of the middle two for an even count); NaN for none. */
export function median(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * A row over its repetitions: every figure's median, with how many repetitions it had, and
 * the one-at-a-time p50 of each (by repetition number, the noisiest figure: its spread shown).
 */
export type MedianRow = RowResult & { reps: number; seqP50ByRep: Record<number, number> }

const FIGURES = [
  'p50Ms',
  'p99Ms',
  'seqP50Ms',
  'seqP99Ms',
  'callsPerSec',
  'cpuMsPerCall',
  'rootCpuMsPerCall',
  // Each repetition's own difference: the median of tree minus root, not the difference of
  // the two medians (which may come from different repetitions).
  'childrenCpuMsPerCall',
  'childWakeupsPerCall',
  'childrenStarted',
  'childrenEnded',
  'sessionStartP50Ms',
  'idleRssMb',
  'peakRssMb',
  'processes',
] as const

/**
 * Lines that differ only in their numbers, as one line with each number's values in order
 * (`log lines after start: 2918/2926`); other lines once each, in order of first appearance.
 */
export function mergeLines(lines: string[]): string[] {
  const NUMBER = /\d+(?:\.\d+)?/g
  const groups = new Map<string, string[]>()
  for (const l of lines) {
    const shape = l.replace(NUMBER, '#')
    groups.set(shape, [...(groups.get(shape) ?? []), l])
  }
  return [...groups].map(([shape, same]) => {
    const values = same.map((l) => l.match(NUMBER) ?? [])
    let i = 0
    return shape.replace(/#/g, () => {
      const at = i++
      return [...new Set(values.map((v) => v[at]))].join('/')
    })
  })
}

/** The medians of one row's repetitions (at least one); problems of every repetition, merged. */
export function medianRow(reps: RowResult[]): MedianRow {
  const first = reps[0]
  if (first === undefined) throw new Error('medianRow: no repetition')
  const problems = mergeLines(reps.flatMap((r) => r.problems))
  const seqP50ByRep = Object.fromEntries(reps.map((r, i) => [r.rep ?? i + 1, r.seqP50Ms]))
  const out: MedianRow = { ...first, rep: undefined, reps: reps.length, problems, seqP50ByRep }
  for (const f of FIGURES) out[f] = median(reps.map((r) => r[f]))
  return out
}
