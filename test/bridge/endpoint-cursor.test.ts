// The sealed cursor an aggregated endpoint pages with: only what the gateway issued comes back in.
import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import {
  decodeCursor,
  encodeCursor,
  MAX_CURSOR_CHARS,
  type CursorState,
} from '../../gateway/bridge/endpoint-cursor.js'

const KEY = randomBytes(32)
const OTHER_KEY = randomBytes(32)
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** Seals any body with KEY exactly as the module documents, to reach the checks past the tag. */
function forge(body: string | Uint8Array, bind = '', key: Uint8Array = KEY): string {
  const bytes = Buffer.from(body)
  const tag = createHmac('sha256', key)
    .update(`mcp-edge endpoint cursor v1\n${Buffer.byteLength(bind)}:${bind}\n`)
    .update(bytes)
    .digest()
  return Buffer.concat([bytes, tag]).toString('base64url')
}

describe('round trips', () => {
  const states: [string, CursorState][] = [
    ['the first backend, its first page', { backend: 0 }],
    ['a backend cursor', { backend: 3, cursor: 'abc' }],
    ['an empty backend cursor', { backend: 1, cursor: '' }],
    ['a cursor holding JSON and quotes', { backend: 2, cursor: '{"page":2,"q":"a\\"b"}' }],
    ['unicode and a lone surrogate', { backend: 4, cursor: 'ü🙂\ud800' }],
    ['a large backend index', { backend: Number.MAX_SAFE_INTEGER }],
    ['the longest backend cursor that fits', { backend: 0, cursor: 'a'.repeat(1498) }],
  ]
  for (const [name, state] of states) {
    test(name, () => {
      const text = encodeCursor(state, KEY)
      assert.match(text, /^[A-Za-z0-9_-]+$/)
      assert.ok(text.length <= MAX_CURSOR_CHARS)
      assert.deepEqual(decodeCursor(text, KEY), state)
    })
  }
  test('bound cursors open only where they were bound', () => {
    const text = encodeCursor({ backend: 1, cursor: 'c' }, KEY, 'tools/list /mcp')
    assert.deepEqual(decodeCursor(text, KEY, 'tools/list /mcp'), { backend: 1, cursor: 'c' })
    for (const bind of ['', 'prompts/list /mcp', 'tools/list /mcp/support', 'tools/list /mcp '])
      assert.equal(decodeCursor(text, KEY, bind), undefined, bind)
  })
})

describe('refused: what the gateway did not seal', () => {
  const good = encodeCursor({ backend: 2, cursor: 'next-page' }, KEY)

  test('a control: the good cursor opens', () =>
    assert.deepEqual(decodeCursor(good, KEY), { backend: 2, cursor: 'next-page' }))
  test('another key', () => assert.equal(decodeCursor(good, OTHER_KEY), undefined))

  test('any one character changed', () => {
    for (let i = 0; i < good.length; i++) {
      for (const c of ['A', 'z', '-', '_']) {
        if (good[i] === c) continue
        assert.equal(
          decodeCursor(good.slice(0, i) + c + good.slice(i + 1), KEY),
          undefined,
          `position ${i} → ${c}`,
        )
      }
    }
  })

  test('every truncation, and anything appended', () => {
    for (let n = 0; n < good.length; n++)
      assert.equal(decodeCursor(good.slice(0, n), KEY), undefined, `first ${n}`)
    for (const tail of ['A', 'AA', 'AAAA', good])
      assert.equal(decodeCursor(good + tail, KEY), undefined, tail)
  })

  test('a non-canonical spelling of the same bytes', () => {
    const text = forge('[0,"xy"]') // 8 + 32 = 40 bytes: the last character carries 4 spare bits
    const last = ALPHABET.indexOf(text.at(-1)!)
    const sloppy = text.slice(0, -1) + ALPHABET[last | 1]
    assert.notEqual(sloppy, text)
    assert.deepEqual(
      Buffer.from(sloppy, 'base64url'),
      Buffer.from(text, 'base64url'),
      'Buffer reads both as the same bytes',
    )
    assert.deepEqual(decodeCursor(text, KEY), { backend: 0, cursor: 'xy' })
    assert.equal(decodeCursor(sloppy, KEY), undefined)
  })

  test('characters outside base64url, padding, whitespace', () => {
    for (const variant of [
      good + '=',
      `${good}==`,
      ` ${good}`,
      `${good}\n`,
      good.slice(0, 10) + '+' + good.slice(11),
      good.slice(0, 10) + '/' + good.slice(11),
      good.slice(0, 10) + '.' + good.slice(11),
      good.slice(0, 10) + 'é' + good.slice(11),
    ]) {
      assert.equal(decodeCursor(variant, KEY), undefined, JSON.stringify(variant))
    }
  })

  test('values that are not strings', () => {
    for (const value of [
      undefined,
      null,
      0,
      42,
      true,
      {},
      [],
      [good],
      { toString: () => good },
      Buffer.from(good),
    ]) {
      assert.equal(decodeCursor(value, KEY), undefined, String(value))
    }
  })

  test('past 2 KiB, even with a valid tag', () => {
    const long = forge(JSON.stringify([0, 'a'.repeat(1499)]))
    assert.equal(long.length, MAX_CURSOR_CHARS + 2)
    assert.equal(decodeCursor(long, KEY), undefined)
    assert.equal(decodeCursor('A'.repeat(MAX_CURSOR_CHARS + 1), KEY), undefined)
    const fits = forge(JSON.stringify([0, 'a'.repeat(1498)]))
    assert.deepEqual(
      decodeCursor(fits, KEY),
      { backend: 0, cursor: 'a'.repeat(1498) },
      'a control at the limit',
    )
  })

  const shapes: [string, string | Uint8Array, CursorState | undefined][] = [
    ['control: [0]', '[0]', { backend: 0 }],
    ['control: [0,"x"]', '[0,"x"]', { backend: 0, cursor: 'x' }],
    ['not JSON', 'not json', undefined],
    ['an object', '{"backend":0}', undefined],
    ['an empty array', '[]', undefined],
    ['three items', '[0,"x","y"]', undefined],
    ['a negative backend', '[-1]', undefined],
    ['a fractional backend', '[1.5]', undefined],
    ['a backend past 2^53', '[9007199254740992]', undefined],
    ['an infinite backend', '[1e400]', undefined],
    ['a string backend', '["1"]', undefined],
    ['a null backend', '[null]', undefined],
    ['a numeric cursor', '[0,2]', undefined],
    ['a null cursor', '[0,null]', undefined],
    ['an object cursor', '[0,{}]', undefined],
    [
      'a truncated UTF-8 sequence',
      Buffer.concat([Buffer.from('[0,"'), Buffer.from([0xc3]), Buffer.from('"]')]),
      undefined,
    ],
    [
      'control: a whole UTF-8 sequence',
      Buffer.concat([Buffer.from('[0,"'), Buffer.from([0xc3, 0xbc]), Buffer.from('"]')]),
      { backend: 0, cursor: 'ü' },
    ],
  ]
  for (const [name, body, expected] of shapes) {
    test(`sealed: ${name}`, () => assert.deepEqual(decodeCursor(forge(body), KEY), expected))
  }
  test('sealed with the right key but another bind', () =>
    assert.equal(decodeCursor(forge('[0]', 'other'), KEY), undefined))
})

describe('refused at encoding: a programming error, or a backend cursor too long to carry', () => {
  const cases: [string, () => unknown][] = [
    ['a negative backend', () => encodeCursor({ backend: -1 }, KEY)],
    ['a fractional backend', () => encodeCursor({ backend: 0.5 }, KEY)],
    ['NaN', () => encodeCursor({ backend: Number.NaN }, KEY)],
    ['a backend past 2^53', () => encodeCursor({ backend: 2 ** 53 }, KEY)],
    [
      'a cursor that is not a string',
      () => encodeCursor({ backend: 0, cursor: 7 as unknown as string }, KEY),
    ],
    [
      'a backend cursor one character too long',
      () => encodeCursor({ backend: 0, cursor: 'a'.repeat(1499) }, KEY),
    ],
    ['a 31-byte key', () => encodeCursor({ backend: 0 }, randomBytes(31))],
    [
      'a 31-byte key, decoding',
      () => decodeCursor(encodeCursor({ backend: 0 }, KEY), randomBytes(31)),
    ],
    ['a key that is a string', () => decodeCursor('x', 'k'.repeat(64) as unknown as Uint8Array)],
  ]
  for (const [name, run] of cases) test(name, () => assert.throws(run, RangeError))
})
