import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ruleFinder } from '../../gateway/policy/find.js'
import { compileGlob } from '../../gateway/policy/glob.js'
import type { Rule } from '../../gateway/policy/policy.js'

// A tiny seeded PRNG (mulberry32): the same cases on every run, another seed by env.
const SEED = Number(process.env.FIND_SEED ?? 20261122)
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test(`ruleFinder answers exactly like a linear first-match scan (seed ${SEED})`, () => {
  const rand = prng(SEED)
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!
  const names = ['a', 'b', 'ab', 'abc', 'read_x', 'read_y', 'write_x', 'x1', 'x2', 'zz']
  const patterns = [...names, 'read_*', '*_x', 'a?', 'x?', '*', 'ab*', '?b?']
  for (let round = 0; round < 500; round++) {
    const rules: Rule[] = Array.from({ length: 1 + Math.floor(rand() * 12) }, (_, i) => {
      const pattern = pick(patterns)
      const conditional = rand() < 0.3
      return {
        pattern,
        matches: compileGlob(pattern),
        when: conditional ? new Map([['k', new Set([String(i)])]]) : undefined,
        effect: { kind: 'allow' },
        source: { file: 'f', line: i },
      }
    })
    const holding = new Set(rules.filter(() => rand() < 0.5))
    const holds = (r: Rule) => holding.has(r)
    const find = ruleFinder(rules)
    for (const name of names) {
      const expected = rules.find((r) => r.matches(name) && (r.when === undefined || holds(r)))
      assert.equal(
        find(name, holds),
        expected,
        `round ${round}, name ${name}, patterns ${rules.map((r) => r.pattern + (r.when ? '?' : '')).join(',')}`,
      )
    }
  }
})
