// The redirect patterns' wildcard: `*` any run, everything else literal, linear time.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { glob } from '../../gateway/broker/glob.js'

describe('glob', () => {
  const cases: [string, string, boolean][] = [
    ['abc', 'abc', true],
    ['abc', 'abd', false],
    ['*', '', true],
    ['*', 'anything', true],
    ['a*', 'a', true],
    ['a*', 'ba', false],
    ['*a', 'ba', true],
    ['*a', 'ab', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['a*b*c', 'acb', false],
    ['ab*ba', 'aba', false],
    ['ab*ba', 'abba', true],
    ['a**b', 'ab', true],
    ['/x/*/y', '/x//y', true],
    ['*.*', 'nodot', false],
    ['/cb?x', '/cb?x', true],
    ['/cb?x', '/cbax', false],
    ['a.c', 'abc', false],
  ]
  for (const [p, s, expected] of cases)
    test(`${p} ~ ${s} → ${expected}`, () => assert.equal(glob(p, s), expected))
  test('a long hostile string is linear, not exponential', () => {
    assert.equal(glob(`${'*a'.repeat(50)}b`, 'a'.repeat(10_000)), false)
  })
})
