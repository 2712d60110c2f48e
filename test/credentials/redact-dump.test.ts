// Brief redact36: a user's secret in a formatted hex dump written to stderr (xxd, hexdump -C,
// od -A x -t x1z, hexdump's 16-bit words, a dump after a log prefix), its bytes over two lines or
// three, in the hex and in the text column, at each of the 16 offsets of a line. Each line is
// logged before the next comes, so what may show is fewer than 4 of a value's first bytes, where
// the line break fell among them; nothing after those.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { redactor } from '../../gateway/bridge/redact.js'
import { stderrLogged } from '../helpers/stderr-log.js'

const TOKEN = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2Gi'
const NON_ASCII = 'pässwörd-ünïcode-42'

/** A dump's lines and, for each byte, where its hex digits and its text-column character are. */
interface Dumped {
  lines: string[]
  /** Per byte: [line, first hex digit, text-column character or -1]. */
  at: [number, number, number][]
}

const hx = (b: number) => b.toString(16).padStart(2, '0')
const shows = (b: number) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')

/**
 * `bytes` as each tool prints them, 16 a line (as xxd 2022, util-linux hexdump and GNU od write
 * them, byte for byte): `xxd`, `hexdump -C`, `od -A x -t x1z`, `hexdump` (16-bit little-endian
 * words, no text column) and `xxd -g1 -u` after a logger's prefix, or after 70 characters and
 * hex-looking words.
 */
function dump(kind: string, bytes: Buffer): Dumped {
  const out: Dumped = { lines: [], at: [] }
  for (let row = 0; row < bytes.length; row += 16) {
    const b = [...bytes.subarray(row, row + 16)]
    const li = out.lines.length
    let line = ''
    const hexAt: number[] = []
    const put = (i: number, text: string) => {
      hexAt[i] = line.length
      line += text
    }
    let column = -1
    const text = b.map(shows).join('')
    if (kind === 'xxd') {
      line = `${row.toString(16).padStart(8, '0')}: `
      b.forEach((x, i) => {
        if (i > 0 && i % 2 === 0) line += ' '
        put(i, hx(x))
      })
      line = `${line.padEnd(49)}  `
      column = line.length
      line += text
    } else if (kind === 'hexdump -C') {
      line = `${row.toString(16).padStart(8, '0')}  `
      b.forEach((x, i) => {
        put(i, hx(x))
        line += i === 7 ? '  ' : ' '
      })
      line = `${line.padEnd(59)} |`
      column = line.length
      line += `${text}|`
    } else if (kind === 'od') {
      line = row.toString(16).padStart(6, '0')
      b.forEach((x, i) => {
        line += ' '
        put(i, hx(x))
      })
      line = `${line.padEnd(54)}  >`
      column = line.length
      line += `${text}<`
    } else if (kind === 'hexdump') {
      line = row.toString(16).padStart(7, '0')
      for (let i = 0; i < b.length; i += 2) {
        line += ' '
        const p = line.length
        line += hx(b[i + 1] ?? 0) + hx(b[i]!)
        hexAt[i] = p + 2
        if (i + 1 < b.length) hexAt[i + 1] = p
      }
    } else {
      // A logger's prefix; or a long one with hex-looking words (a decoy offset, groups).
      const prefix = kind.startsWith('decoys')
        ? `${'-'.repeat(70)} ab cd 12: 0x1f `
        : '2026-12-03T15:40:00Z dbg dump: '
      line = `${prefix}${row.toString(16).padStart(8, '0')}: `
      b.forEach((x, i) => {
        if (i > 0) line += ' '
        put(i, hx(x).toUpperCase())
      })
      line = `${line.padEnd(prefix.length + 57)}  `
      column = line.length
      line += text
    }
    b.forEach((_, i) => out.at.push([li, hexAt[i]!, column < 0 ? -1 : column + i]))
    out.lines.push(line)
  }
  if (kind === 'hexdump -C') out.lines.push(bytes.length.toString(16).padStart(8, '0'))
  if (kind === 'od') out.lines.push(bytes.length.toString(16).padStart(6, '0'))
  return out
}

/**
 * Which characters of `input` are left showing in `output` (the line logged): the text
 * between `[redacted]`s, placed in the input in order (the first at its start, the last at
 * its end).
 */
function left(input: string, output: string): boolean[] {
  const kept = new Array<boolean>(input.length).fill(false)
  const pieces = output.split('[redacted]')
  let at = 0
  pieces.forEach((piece, k) => {
    const start =
      k === 0 ? 0 : k === pieces.length - 1 ? input.length - piece.length : input.indexOf(piece, at)
    assert.ok(start >= at && input.startsWith(piece, start), `${input} → ${output}`)
    for (let i = start; i < start + piece.length; i++) kept[i] = true
    at = start + piece.length + 1
  })
  return kept
}

/**
 * The most bytes in a row of `value` (at `from` in the dumped bytes) a reader finds in the
 * logged lines: a byte shows where both its hex digits do, or its text-column character.
 */
function mostShown(d: Dumped, out: readonly string[], from: number, length: number): number {
  const kept = d.lines.map((line, i) => left(line, out[i]!))
  let most = 0
  let run = 0
  for (let b = from; b < from + length; b++) {
    const [li, hex, column] = d.at[b]!
    const k = kept[li]!
    const seen = (k[hex]! && k[hex + 1]!) || (column >= 0 && k[column]!)
    run = seen ? run + 1 : 0
    most = Math.max(most, run)
  }
  return most
}

describe('redact36: a value in a formatted hex dump', () => {
  it('xxd, hexdump -C, od, hexdump, xxd -g1 after a prefix or decoys, UTF-16: fewer than 4 bytes in a row show', async () => {
    const cases: { name: string; d: Dumped; from: number; length: number }[] = []
    for (const kind of ['xxd', 'hexdump -C', 'od', 'hexdump', 'prefixed xxd -g1 -u', 'decoys'])
      for (const [value, encoding] of [
        [TOKEN, 'utf8'],
        [NON_ASCII, 'utf8'],
        [TOKEN, 'utf16le'],
      ] as const)
        for (let offset = 0; offset < 16; offset++) {
          const before = Buffer.from(`${'x'.repeat(offset)}{"token":"`, encoding)
          const bytes = Buffer.concat([before, Buffer.from(`${value}","n":1}`, encoding)])
          cases.push({
            name: `${kind} ${encoding} ${value.slice(0, 4)} offset=${offset}`,
            d: dump(kind, bytes),
            from: before.length,
            length: Buffer.byteLength(value, encoding),
          })
        }
    // A process a half of them (one command line holds at most 128 kB).
    for (const half of [cases.slice(0, cases.length / 2), cases.slice(cases.length / 2)]) {
      const text = half.map((c, i) => `[case ${i}]\n${c.d.lines.join('\n')}\n`).join('')
      const out = await stderrLogged(text, [TOKEN, NON_ASCII])
      let at = 0
      for (const [i, c] of half.entries()) {
        assert.equal(out[at], `[case ${i}]`)
        const lines = out.slice(at + 1, at + 1 + c.d.lines.length)
        at += 1 + c.d.lines.length
        const most = mostShown(c.d, lines, c.from, c.length)
        assert.ok(most < 4, `${c.name}: ${most} bytes in a row show in\n${lines.join('\n')}`)
      }
      assert.equal(at, out.length)
    }
  })

  it('a dump with no value in it, and lines that look like one, are logged as written', async () => {
    let x = 11
    const random = Buffer.from(
      Array.from({ length: 4000 }, () => (x = (x * 1103515245 + 12345) & 0x7fffffff) >> 16),
    )
    const text = [
      ...['xxd', 'hexdump -C', 'od', 'hexdump', 'prefixed'].flatMap((k) => dump(k, random).lines),
      ...dump('xxd', Buffer.from(`{"token":"not-the-secret-${'z'.repeat(40)}"}`)).lines,
      '2026 12 03 deadbeef cafe',
      '0000 ab',
    ]
    const out = await stderrLogged(`${text.join('\n')}\n`, [TOKEN, NON_ASCII])
    assert.deepEqual(out, text)
  })

  it('a dump line on its own (an error text) has a value in it blotted, hex and text column', () => {
    const r = redactor(['hunter2hunt'])
    const line = dump('xxd', Buffer.from('pw=hunter2hunt!')).lines[0]!
    assert.equal(r(line), '00000000: 7077 3d[redacted] 21    pw=[redacted]!')
  })

  it('the rest of a value after a dump line the rate limit dropped is blotted', () => {
    const r = redactor([TOKEN])
    const d = dump('hexdump -C', Buffer.from(`${'.'.repeat(12)}${TOKEN}`))
    const s = r.lines()
    s.skip(d.lines[0]!)
    const out = d.lines.slice(1).map((l) => s(l))
    assert.ok(out[0]!.startsWith('00000010  [redacted]'), out.join('\n'))
    assert.ok(!out.join('\n').includes(TOKEN.slice(4, 8)), out.join('\n'))
  })
})
