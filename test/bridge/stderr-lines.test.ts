// The stderr line splitter: the lines readline finds (checked against readline itself for every
// way of cutting each input into three chunks: CR, LF, CRLF split between chunks, multi-byte
// characters cut in two), and a line that does not end held to `keep` characters, not whole.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { PassThrough } from 'node:stream'
import { describe, it } from 'node:test'
import { LineSplitter } from '../../gateway/bridge/stderr-lines.js'

function split(chunks: Buffer[], keep = 1_000): string[] {
  const lines: string[] = []
  const s = new LineSplitter(keep, (l) => lines.push(l))
  for (const c of chunks) s.write(c)
  s.end()
  return lines
}

async function readlineLines(chunks: Buffer[]): Promise<string[]> {
  const input = new PassThrough()
  const lines: string[] = []
  const rl = createInterface({ input, crlfDelay: Infinity })
  rl.on('line', (l) => lines.push(l))
  const closed = once(rl, 'close')
  for (const c of chunks) input.write(c)
  input.end()
  await closed
  return lines
}

const INPUTS = [
  '',
  'a',
  '\n',
  'a\nb',
  'a\nb\n',
  'a\r\nb\r\n',
  'a\rb\rc',
  '\r\r\n\n\r',
  '\n\n\n',
  'é😀\r\n€x\n',
  'line one\r\n\r\nline three\rline four\n',
  '\r\n',
  'x\r',
]

describe('LineSplitter', () => {
  it('finds the lines readline finds, however the bytes are cut into chunks', async () => {
    let cases = 0
    for (const input of INPUTS) {
      const bytes = Buffer.from(input)
      for (let i = 0; i <= bytes.length; i++) {
        for (let j = i; j <= bytes.length; j++) {
          const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]
          assert.deepEqual(
            split(chunks),
            await readlineLines(chunks),
            `${JSON.stringify(input)} cut at ${i} and ${j}`,
          )
          cases++
        }
      }
    }
    assert.ok(cases > 400, `${cases} cuts`)
  })

  it('keeps `keep` characters of a long line and drops the rest; the next line is whole', () => {
    assert.deepEqual(split([Buffer.from('abcdefgh\nij\r\nklmnopq')], 5), ['abcde', 'ij', 'klmno'])
    assert.deepEqual(split([Buffer.from('abc'), Buffer.from('def'), Buffer.from('gh\nij')], 5), [
      'abcde',
      'ij',
    ])
  })

  it('a line that does not end holds at most `keep` characters, however much arrives', () => {
    const lines: string[] = []
    const s = new LineSplitter(2_000, (l) => lines.push(l))
    const chunk = Buffer.alloc(64 * 1024, 'x')
    let most = 0
    for (let n = 0; n < 800; n++) {
      s.write(chunk)
      most = Math.max(most, s.held)
    }
    assert.equal(most, 2_000, '50 MB written, 2,000 characters held')
    assert.deepEqual(lines, [])
    s.write(Buffer.from('\nnext\n'))
    assert.deepEqual(lines, ['x'.repeat(2_000), 'next'])
    assert.equal(s.held, 0)
  })

  it('many short lines in one chunk: each found once, in order', () => {
    const text = Array.from({ length: 10_000 }, (_, i) => `l${i}`).join('\n')
    const lines = split([Buffer.from(text)])
    assert.equal(lines.length, 10_000)
    assert.equal(lines[9_999], 'l9999')
  })
})
