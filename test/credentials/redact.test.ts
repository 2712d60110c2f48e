// The stderr redactor of processes started with users' credentials: every known value blotted
// out as written and as JSON, URL and base64 encodings write it, whatever characters it holds.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { redactor } from '../../gateway/bridge/child.js'

describe('redactor', () => {
  const hostile = [
    'a.b*c+?',
    '$&$1',
    '(x|y)',
    '\\n\\u0000',
    'é😀',
    'p@ss w0rd',
    '"quoted"',
    'tab\there',
    '%41%20',
    'a'.repeat(300),
  ]
  for (const value of hostile) {
    it(`blots out ${JSON.stringify(value).slice(0, 30)} in every form`, () => {
      const r = redactor([value])
      for (const form of [
        value,
        JSON.stringify(value).slice(1, -1),
        encodeURIComponent(value),
        Buffer.from(value).toString('base64'),
      ]) {
        const out = r(`before ${form} after ${form}`)
        assert.equal(out, 'before [redacted] after [redacted]', `${form} → ${out}`)
      }
    })
  }

  it('a value that contains another is blotted whole; empty values are ignored; other text is untouched', () => {
    const r = redactor(['abc', 'xxabcxx', ''])
    assert.equal(r('1 xxabcxx 2 abc 3'), '1 [redacted] 2 [redacted] 3')
    assert.equal(r('nothing secret here'), 'nothing secret here')
    assert.equal(redactor([])('as is'), 'as is')
  })
})
