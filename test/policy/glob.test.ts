import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compileGlob } from '../../gateway/policy/glob.js'

const cases: { pattern: string; input: string; expect: boolean }[] = [
  { pattern: 'echo', input: 'echo', expect: true },
  { pattern: 'echo', input: 'echo2', expect: false },
  { pattern: 'echo', input: 'Echo', expect: false },
  { pattern: '*', input: '', expect: true },
  { pattern: '*', input: 'anything/at all', expect: true },
  { pattern: 'read_*', input: 'read_note', expect: true },
  { pattern: 'read_*', input: 'read_', expect: true },
  { pattern: 'read_*', input: 'xread_note', expect: false },
  { pattern: '*_note', input: 'write_note', expect: true },
  { pattern: '*_note', input: 'write_notes', expect: false },
  { pattern: 'a.b', input: 'axb', expect: false },
  { pattern: 'a.*', input: 'axb', expect: false },
  { pattern: 'a.*', input: 'a.b', expect: true },
  { pattern: 'file:///docs/*.md', input: 'file:///docs/a/b.md', expect: true },
  { pattern: 'file:///docs/*.md', input: 'file:///docs/amd', expect: false },
  { pattern: 'a?c', input: 'abc', expect: true },
  { pattern: 'a?c', input: 'ac', expect: false },
  { pattern: 'a?c', input: 'abbc', expect: false },
  { pattern: '(a|b)*', input: '(a|b)x', expect: true },
  { pattern: '(a|b)*', input: 'a', expect: false },
  { pattern: '[ab]*', input: '[ab]z', expect: true },
  { pattern: '[ab]*', input: 'az', expect: false },
  { pattern: '^a*$', input: '^ab$', expect: true },
  { pattern: '^a*$', input: 'ab', expect: false },
  { pattern: 'a+*', input: 'aab', expect: false },
  { pattern: 'a\\*', input: 'a\\b', expect: true },
  { pattern: 'x*', input: 'x\ny', expect: true },
  { pattern: 'tools:*', input: 'tools:', expect: true },
  { pattern: 'tools:*', input: 'toolsx', expect: false },
]

for (const c of cases) {
  const name = `${JSON.stringify(c.pattern)} on ${JSON.stringify(c.input)} → ${c.expect}`
  test(`compileGlob ${name}`, () => assert.equal(compileGlob(c.pattern)(c.input), c.expect))
}
