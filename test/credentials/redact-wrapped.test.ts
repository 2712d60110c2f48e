// Brief redact35: a user's secret base64-encoded and then wrapped over stderr lines as written
// (MIME's 76 columns, PEM's 64, any width), alone, after `user:` in a Basic header, or inside a
// JSON blob at each of the three byte offsets, either alphabet, padded or not. Each line is
// logged before the next comes, so what may show is fewer than 8 of a value's first bytes
// (or under half of it), where a line break fell among them; nothing after those.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { redactor } from '../../gateway/bridge/redact.js'
import { stderrLogged } from '../helpers/stderr-log.js'

const TOKEN = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2Gi'
const NON_ASCII = 'pässwörd-ünïcode-42'

/** The base64 of `text` in `alphabet`, its padding kept or not, cut into lines of `width`. */
function wrapped(text: string, alphabet: 'base64' | 'base64url', pad: boolean, width: number) {
  let blob = Buffer.from(text).toString(alphabet)
  if (alphabet === 'base64' && !pad) blob = blob.replace(/=+$/, '')
  if (alphabet === 'base64url' && pad) blob += '='.repeat((4 - (blob.length % 4)) % 4)
  const lines: string[] = []
  for (let i = 0; i < blob.length; i += width) lines.push(blob.slice(i, i + width))
  return lines
}

/**
 * Of `value`, a piece of 5 bytes past its first 7 that a reader finds in `out` (logged
 * lines): what shows of consecutive lines read as one text, decoded at each alignment.
 */
function shown(out: readonly string[], value: string): string | undefined {
  const bytes = Buffer.from(value)
  const pieces: Buffer[] = []
  for (let i = 3; i + 5 <= bytes.length; i++) pieces.push(bytes.subarray(i, i + 5))
  const texts: string[] = []
  let run = ''
  for (const line of out) {
    const parts = line.split('[redacted]')
    run += parts[0]
    if (parts.length > 1) {
      texts.push(run)
      run = parts.at(-1)!
    }
  }
  texts.push(run)
  for (const text of texts) {
    const b64 = text.replace(/[^A-Za-z0-9+/_-]/g, '')
    for (let k = 0; k < 4; k++) {
      const decoded = Buffer.from(b64.slice(k), 'base64')
      const piece = pieces.find((p) => decoded.includes(p))
      if (piece !== undefined) return piece.toString()
    }
  }
  return undefined
}

describe('redact35: base64 wrapped over stderr lines as written', () => {
  it('each blob, alphabet, padding, offset and wrap width: at most 7 first bytes show', async () => {
    const cases: { name: string; lines: string[]; value: string }[] = []
    for (const value of [TOKEN, NON_ASCII])
      for (const alphabet of ['base64', 'base64url'] as const)
        for (const pad of [true, false])
          for (const width of [76, 64, 40, 17, 7]) {
            const basic = wrapped(`alice:${value}`, alphabet, pad, width)
            cases.push({
              name: `Basic ${alphabet} pad=${pad} width=${width}`,
              lines: [`Authorization: Basic ${basic[0]}`, ...basic.slice(1)],
              value,
            })
            // The value at each of the three byte offsets of the encoding's 3-byte groups.
            for (let offset = 0; offset < 3; offset++)
              cases.push({
                name: `JSON offset=${offset} ${alphabet} pad=${pad} width=${width}`,
                lines: wrapped(
                  `${'x'.repeat(offset)}{"token":"${value}","n":1}`,
                  alphabet,
                  pad,
                  width,
                ),
                value,
              })
          }
    // Indented (a YAML block, a folded header) and with spaces after each line.
    cases.push({
      name: 'indented',
      lines: wrapped(`{"token":"${TOKEN}"}`, 'base64', true, 64).map((l) => `    ${l}  `),
      value: TOKEN,
    })
    const text = cases.map((c, i) => `[case ${i}]\n${c.lines.join('\n')}\n`).join('')
    const out = await stderrLogged(text, [TOKEN, NON_ASCII])
    assert.equal(out.length, cases.length + cases.reduce((n, c) => n + c.lines.length, 0))
    let at = 0
    for (const [i, c] of cases.entries()) {
      assert.equal(out[at], `[case ${i}]`)
      const lines = out.slice(at + 1, at + 1 + c.lines.length)
      at += 1 + c.lines.length
      assert.ok(
        lines.some((l) => l.includes('[redacted]')),
        `${c.name}: ${lines.join('\n')}`,
      )
      const piece = shown(lines, c.value)
      assert.equal(piece, undefined, `${c.name}: ${piece} shows in\n${lines.join('\n')}`)
    }
  })

  it('base64 wrapped with no value in it, and the lines around it, are logged as written', async () => {
    let x = 7
    const random = Buffer.from(
      Array.from({ length: 6000 }, () => (x = (x * 1103515245 + 12345) & 0x7fffffff) & 0xff),
    )
    const text = [
      'begin',
      ...wrapped(random.toString('latin1'), 'base64', true, 76),
      ...wrapped(`{"token":"not-the-secret-at-all-${'y'.repeat(40)}"}`, 'base64', true, 64),
      'Authorization: Basic',
      'end of it',
    ]
    const out = await stderrLogged(`${text.join('\n')}\n`, [TOKEN, NON_ASCII])
    assert.deepEqual(out, text)
  })

  it('the rest of a value after a line the rate limit dropped is blotted', () => {
    const r = redactor([TOKEN])
    const lines = wrapped(`alice:${TOKEN}`, 'base64', true, 20)
    assert.ok(lines.length >= 3)
    const s = r.lines()
    s.skip(lines[0]!)
    s.skip(lines[1]!)
    const out = lines.slice(2).map((l) => s(l))
    assert.ok(out[0]!.startsWith('[redacted]'), out.join('\n'))
    assert.equal(shown(out, TOKEN), undefined, out.join('\n'))
  })

  it('the rest of a value after a line cut at lineMax is blotted', async () => {
    const lines = wrapped(`alice:${TOKEN}`, 'base64', true, 24)
    const text = `${'x'.repeat(5000)} Basic ${lines[0]}\n${lines.slice(1).join('\n')}\nafter\n`
    const out = await stderrLogged(text, [TOKEN], { lineMax: 80 })
    assert.equal(out.length, lines.length + 1, out.join('\n'))
    assert.ok(out[1]!.startsWith('[redacted]'), out.join('\n'))
    assert.equal(shown(out, TOKEN), undefined, out.join('\n'))
    assert.equal(out.at(-1), 'after')
  })
})

describe('redact35: more written forms an outsider found showing', () => {
  it("hex bytes with ':' or '-' between them, or each after 0x (.NET, OpenSSL, a C array, Python)", async () => {
    const token = 'sk-live-0123456789abcdef'
    for (const value of [token, NON_ASCII]) {
      const hex = [...Buffer.from(`{"k":"${value}"}`)].map((b) => b.toString(16).padStart(2, '0'))
      const lines = [
        `BitConverter: ${hex.join('-').toUpperCase()}`,
        `bytes.hex(':'): ${hex.join(':')}`,
        `openssl: ${hex.join(':').toUpperCase()}`,
        `C: { ${hex.map((h) => `0x${h}`).join(', ')} }`,
        `hex(): [${hex.map((h) => `0x${h.replace(/^0/, '')}`).join(', ')}]`,
        `Go %#v: []byte{${hex.map((h) => `0x${h}`).join(', ')}}`,
      ]
      const out = await stderrLogged(`${lines.join('\n')}\n`, [value])
      assert.equal(out.length, lines.length)
      for (const [i, line] of out.entries()) {
        assert.ok(line.includes('[redacted]'), `${lines[i]} → ${line}`)
        const left = line.split('[redacted]').join(' ')
        const own = [...Buffer.from(value)]
        const seen = (
          left.match(/(?<![0-9A-Za-z])(?:0x)?[0-9A-Fa-f]{1,2}(?![0-9A-Za-z])/g) ?? []
        ).map((t) => Number.parseInt(t.replace(/^0x/, ''), 16))
        // No 4 of its bytes in a row are left showing.
        for (let j = 0; j + 4 <= own.length; j++)
          assert.ok(
            !seen.some((_, s) => own.slice(j, j + 4).every((b, t) => seen[s + t] === b)),
            `${lines[i]} → ${line}`,
          )
      }
    }
    // Times, versions and ids with such separators are left as they are.
    const text = [
      'at 12:30:45:99',
      'v1-2-3-4',
      'id 550e8400-e29b-41d4-a716-446655440000',
      '0x1f 0x20',
    ]
    assert.deepEqual(await stderrLogged(`${text.join('\n')}\n`, [token]), text)
  })

  it('a non-ASCII value as mojibake: its UTF-8 read as Latin-1 or Windows-1252 and written again', async () => {
    const value = 'Pässwörd-Ünïcode-€42'
    const latin1 = Buffer.from(value).toString('latin1')
    // Python's bytes.decode('cp1252'), .NET's Encoding.GetEncoding(1252), a browser's windows-1252.
    const cp1252 = 'PÃ¤sswÃ¶rd-Ãœnïcode-â‚¬42'.replace('ï', 'Ã¯')
    const lines = [
      `pw=${latin1}`,
      `pw=${cp1252}`,
      `{"pw":${JSON.stringify(cp1252)}}`,
      `{"pw":"${[...cp1252].map((c) => (c < '\x80' ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)).join('')}"}`,
      `pw=${encodeURIComponent(cp1252)}`,
    ]
    const out = await stderrLogged(`${lines.join('\n')}\n`, [value])
    assert.deepEqual(out, [
      'pw=[redacted]',
      'pw=[redacted]',
      '{"pw":"[redacted]"}',
      '{"pw":"[redacted]"}',
      'pw=[redacted]',
    ])
  })
})

describe('redact35: hex wrapped over stderr lines as written', () => {
  it('xxd -p (60 columns), upper-case, odd widths that split a byte: no 4 bytes of a value show', async () => {
    const cases: { name: string; lines: string[]; value: string }[] = []
    for (const value of [TOKEN, NON_ASCII])
      for (const width of [60, 32, 31, 9])
        for (const upper of [false, true])
          for (let offset = 0; offset < 3; offset++) {
            let hex = Buffer.from(`${'x'.repeat(offset)}{"token":"${value}"}`).toString('hex')
            if (upper) hex = hex.toUpperCase()
            const lines: string[] = []
            for (let i = 0; i < hex.length; i += width) lines.push(hex.slice(i, i + width))
            cases.push({ name: `width=${width} upper=${upper} offset=${offset}`, lines, value })
          }
    const text = cases.map((c, i) => `[case ${i}]\n${c.lines.join('\n')}\n`).join('')
    const out = await stderrLogged(text, [TOKEN, NON_ASCII])
    let at = 0
    for (const [i, c] of cases.entries()) {
      assert.equal(out[at], `[case ${i}]`)
      const lines = out.slice(at + 1, at + 1 + c.lines.length)
      at += 1 + c.lines.length
      // What shows of consecutive lines, read as one hex text at either nibble.
      const texts = lines.join('').split('[redacted]')
      const own = Buffer.from(c.value)
      for (const t of texts)
        for (let k = 0; k < 2; k++) {
          const decoded = Buffer.from(t.slice(k).replace(/[^0-9A-Fa-f]/g, ''), 'hex')
          for (let j = 0; j + 4 <= own.length; j++)
            assert.ok(
              !decoded.includes(own.subarray(j, j + 4)),
              `${c.name}: ${own.subarray(j, j + 4)} shows in\n${lines.join('\n')}`,
            )
        }
    }
    // A hex dump with no value in it is logged as written.
    let x = 3
    const random = Buffer.from(
      Array.from({ length: 3000 }, () => (x = (x * 1103515245 + 12345) & 0x7fffffff) & 0xff),
    )
      .toString('hex')
      .match(/.{1,60}/g)!
    assert.deepEqual(await stderrLogged(`${random.join('\n')}\n`, [TOKEN, NON_ASCII]), random)
  })
})

describe('redact35: a quoted-printable soft line break inside a value', () => {
  it('`=` ending a line (RFC 2045 §6.7) is read past: the rest is blotted, and the first 8', async () => {
    const value = 'sk-live-0123456789abcdef'
    const lines: string[] = []
    for (let k = 1; k < value.length; k++)
      lines.push(`token=3D${value.slice(0, k)}=`, `${value.slice(k)} u${k}`)
    const out = await stderrLogged(`${lines.join('\n')}\n`, [value])
    assert.equal(out.length, lines.length, out.join('\n'))
    for (let k = 1; k < value.length; k++) {
      const first = out[2 * (k - 1)]!
      const second = out[2 * k - 1]!
      assert.equal(second, `[redacted] u${k}`, `split after ${k}: ${first} / ${second}`)
      assert.equal(first, k >= 8 ? 'token=3D[redacted]' : `token=3D${value.slice(0, k)}=`)
    }
  })
})

describe('redact35: base64 of JSON that escaped the value, wrapped over lines', () => {
  it("Python's json.dumps (\\u00e4), PHP's json_encode (\\/) and Go's (\\u0026) then base64 wrapped", async () => {
    const slash = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
    const amp = 'tok&en<0123456789>abcdef'
    const u = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
    const python = (o: unknown) => JSON.stringify(o).replace(/[\u0080-\uffff]/g, u)
    const php = (o: unknown) => python(o).replace(/\//g, '\\/')
    const go = (o: unknown) => JSON.stringify(o).replace(/[<>&]/g, u)
    const cases: { name: string; lines: string[]; escaped: string }[] = []
    for (const width of [76, 40, 16])
      for (const [name, json] of [
        ['python', python({ password: NON_ASCII, n: 1 })],
        ['php', php({ key: slash, n: 1 })],
        ['go', go({ token: amp, n: 1 })],
      ] as const)
        cases.push({
          name: `${name} ${width}`,
          lines: wrapped(json, 'base64', true, width),
          // The value as the encoder escaped it: between `":"` and `","`.
          escaped: json.slice(json.indexOf('":"') + 3, json.indexOf('","')),
        })
    const text = cases.map((c, i) => `[case ${i}]\n${c.lines.join('\n')}\n`).join('')
    const out = await stderrLogged(text, [NON_ASCII, slash, amp])
    let at = 0
    for (const [i, c] of cases.entries()) {
      assert.equal(out[at], `[case ${i}]`)
      const lines = out.slice(at + 1, at + 1 + c.lines.length)
      at += 1 + c.lines.length
      assert.ok(
        lines.some((l) => l.includes('[redacted]')),
        `${c.name}: ${lines.join('\n')}`,
      )
      // No piece of the value as escaped, past its first 7 bytes, decodes from what shows.
      const piece = shown(lines, c.escaped)
      assert.equal(piece, undefined, `${c.name}: ${piece} shows in\n${lines.join('\n')}`)
    }
  })
})
