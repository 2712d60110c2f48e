// More forms of a user's secret in a process's stderr (brief redact31): each written by a real
// process and read back from the log the gateway writes, as an operator would see it.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { redactor } from '../../gateway/bridge/redact.js'
import { scriptStderrLogged, stderrLogged } from '../helpers/stderr-log.js'

/** Asserts each line was logged with a `[redacted]` and without `leak` (a part of the value). */
async function blotted(lines: string[], secrets: string[], leaks: string[]): Promise<void> {
  const out = await stderrLogged(lines.map((l) => `${l}\n`).join(''), secrets)
  assert.equal(out.length, lines.length, out.join('\n'))
  for (const [i, line] of out.entries()) {
    assert.ok(line.includes('[redacted]'), `${lines[i]} → ${line}`)
    for (const leak of leaks) assert.ok(!line.includes(leak), `${lines[i]} → ${line}`)
  }
}

describe('redact31: more written forms of a value', () => {
  it('hex in any case: a hex value printed upper- or mixed-case, the hex of a value in mixed case', async () => {
    const hexKey = '9f2c81d7e4a6b3095c1d8e7f2a4b6c8d'
    const token = 'sk-live-0123456789abcdef'
    const hex = Buffer.from(token).toString('hex')
    let flip = false
    const mixed = (s: string) => s.replace(/[a-f]/g, (c) => ((flip = !flip) ? c.toUpperCase() : c))
    await blotted(
      [
        `key=${hexKey.toUpperCase()}`,
        `key=${mixed(hexKey)} (as Go's %X or a .NET ToString("X") prints it)`,
        `token bytes ${mixed(hex)}`,
        `token bytes 0x${hex.toUpperCase()}`,
      ],
      [hexKey, token],
      [hexKey.slice(8, 16).toUpperCase(), hex.slice(8, 16).toUpperCase()],
    )
    // Other text keeps its case and is not blotted.
    const r = redactor([hexKey, token])
    assert.equal(r('DEADBEEF ABCDEF012345 Hello'), 'DEADBEEF ABCDEF012345 Hello')
  })

  it('HTML and XML character references: numeric, hex, named, escaped twice', async () => {
    const value = `p<w>"d'&ä-0123`
    const numeric = (hexa: boolean, pad: boolean) =>
      [...value]
        .map((c) => {
          const cp = c.codePointAt(0)!
          if (/[A-Za-z0-9-]/.test(c)) return c
          return hexa
            ? `&#x${cp.toString(16).toUpperCase()};`
            : `&#${pad ? String(cp).padStart(3, '0') : cp};`
        })
        .join('')
    const named = (s: string) =>
      s
        .replace(/&/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;')
        .replace(/"/g, '&quot;')
        .replace(/'/g, '&#x27;')
    await blotted(
      [
        `<input value="${named(value)}">`,
        `<pw>${numeric(false, false)}</pw>`,
        `<pw>${numeric(false, true)}</pw>`,
        `<pw>${numeric(true, false)}</pw>`,
        `<pre>${named(named(value))}</pre>`,
        `<e a='${value.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;')}'/>`,
      ],
      [value],
      ['0123'],
    )
    const r = redactor([value, 'another-value-here'])
    for (const line of [
      'a &amp; b &lt;c&gt; &#65;&#x42; &bogus; &#99999999999; &',
      '&'.repeat(1 << 20),
    ])
      assert.equal(r(line), line)
  })

  it('a value that repeats itself is blotted where two copies overlap', async () => {
    // Copies overlapping by 6 characters (its border), as a doubled key or a repeated pattern.
    const value = 'Qw3rTy-Qw3rTy'
    const twice = 'Qw3rTy-Qw3rTy-Qw3rTy'
    const thrice = 'Qw3rTy-Qw3rTy-Qw3rTy-Qw3rTy'
    const out = await stderrLogged(
      [
        `k=${twice} end`,
        `k=${thrice} end`,
        `k=${Buffer.from(twice).toString('hex')} end`,
        `k=${twice.replace(/y/g, '\\u0079')} end`,
        `k=${encodeURIComponent(twice).replace(/-/g, '%2D')} end`,
        `k=${twice.replace(/-/g, '&#45;')} end`,
      ]
        .map((l) => `${l}\n`)
        .join(''),
      [value],
    )
    assert.equal(out.length, 6)
    for (const line of out) assert.equal(line, 'k=[redacted] end')
    // Each of its overlapping copies, on a line of a thousand of them: still one pass.
    const r = redactor(['ab'.repeat(20), 'aaaaaaaaaaaaaaaaaaaa'])
    assert.equal(
      r(`x ${'ab'.repeat(1 << 18)} y ${'a'.repeat(1 << 18)} z`),
      'x [redacted] y [redacted] z',
    )
  })

  it('a one-character value is not blotted anywhere (it hides nothing and would blot that character in every line)', async () => {
    const out = await stderrLogged('a - b -- c 1 x-1 é 😀 real-secret-value\nplain line - 1\n', [
      '-',
      '1',
      'é',
      '😀',
      'real-secret-value',
    ])
    assert.deepEqual(out, ['a - b -- c 1 x-1 é 😀 [redacted]', 'plain line - 1'])
    assert.equal(redactor(['-']).longest, 0, 'no longer a line is held for it')
    // Two characters are blotted (where they stand alone).
    assert.equal(redactor(['-1', 'ab'])('x -1 ab abc'), 'x [redacted] [redacted] abc')
  })

  it('a non-ASCII value composed or decomposed (NFC, NFD), or with ? for each non-ASCII character', async () => {
    const nfc = 'pässwörd-ünïcode'.normalize('NFC')
    const nfd = nfc.normalize('NFD')
    assert.notEqual(nfc, nfd)
    const u = (s: string) =>
      s.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    for (const set of [nfc, nfd])
      await blotted(
        [
          `pw=${nfd}`,
          `pw=${nfc}`,
          `{"pw":"${u(nfd)}"}`,
          `pw=${encodeURIComponent(nfd)}`,
          // Java's getBytes("US-ASCII"), Python's encode('ascii', 'replace').
          `pw=${nfc.replace(/[^ -~]/g, '?')}`,
          `pw=${nfd.replace(/[^ -~]/g, '?')}`,
        ],
        [set],
        ['ss', 'code'],
      )
    // Mostly non-ASCII: its ?-form would blot runs of ? anywhere, so it is not looked for.
    assert.equal(redactor(['пароль-секрет'])('??????-?????? ok'), '??????-?????? ok')
  })

  it('a value split over two lines: the rest on the next line is blotted, and a line ending with its first half', async () => {
    const value = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2Gi'
    const lines: string[] = []
    for (let k = 1; k < value.length; k++)
      lines.push(`t${k}=${value.slice(0, k)}`, `${value.slice(k)} u${k}`)
    // A line break as \r\n, and a line that starts like a value's end with no start before it.
    const text = `${lines.join('\n')}\r\nseparate\n${value.slice(-6)} is not split\n`
    const out = await stderrLogged(text, [value])
    assert.equal(out.length, lines.length + 2, out.join('\n'))
    for (let k = 1; k < value.length; k++) {
      const first = out[2 * (k - 1)]!
      const second = out[2 * k - 1]!
      assert.equal(second, `[redacted] u${k}`, `split after ${k}: ${first} / ${second}`)
      // Its first half (8 characters here) is blotted on its own; fewer is left showing.
      assert.equal(first, k >= 8 ? `t${k}=[redacted]` : `t${k}=${value.slice(0, k)}`)
    }
    assert.deepEqual(out.slice(-2), ['separate', `${value.slice(-6)} is not split`])
  })

  it('a value split over two writes of a process, a while apart', async () => {
    const value = 'sk-live-0123456789abcdef'
    const seen = await scriptStderrLogged(
      `process.stderr.write('key=sk-li\\n'); setTimeout(() => process.stderr.write('ve-0123456789abcdef ok\\n'), 50)`,
      [value],
    )
    assert.deepEqual(
      seen.filter((l) => l !== ''),
      ['key=sk-li', '[redacted] ok'],
    )
    // Each stream has its own line before: a redactor's lines() do not share it.
    const r = redactor([value])
    const a = r.lines()
    const b = r.lines()
    a('key=sk-live-01')
    assert.equal(b('23456789abcdef'), '23456789abcdef')
    assert.equal(a('23456789abcdef'), '[redacted]')
  })

  it('a value in UTF-16 (little or big endian) then base64 or hex', async () => {
    const value = 'Tr0ub4dor&3-horse-ä'
    const le = (s: string) => Buffer.from(s, 'utf16le')
    const be = (s: string) => Buffer.from(s, 'utf16le').swap16()
    const lines: string[] = []
    for (const prefix of ['', 'x', '$env:KEY="'])
      for (const enc of [le, be]) {
        const b = enc(`${prefix}${value}"; Start-Job`)
        lines.push(
          `powershell -EncodedCommand ${b.toString('base64')}`,
          `blob=${b.toString('base64url')}`,
          `bytes ${b.toString('hex').toUpperCase()}`,
        )
      }
    await blotted(lines, [value], ['horse'])
    const out = await stderrLogged(`${lines.join('\n')}\n`, [value])
    for (const line of out) {
      const left = line.split('[redacted]').map((p) => p.replace(/^.* /, ''))
      for (const part of left)
        for (let k = 0; k < 4; k++) {
          const decoded = Buffer.from(part.slice(k), 'base64')
          assert.ok(!decoded.includes(le('horse')) && !decoded.includes(be('horse')), line)
        }
    }
  })

  it('a value in quoted-printable (a mail body or MIME part): =3D, =C3=A4, =09', async () => {
    const qp = (s: string) =>
      [...Buffer.from(s)]
        .map((b) =>
          b === 0x3d || b < 0x20 || b > 0x7e
            ? `=${b.toString(16).toUpperCase().padStart(2, '0')}`
            : String.fromCharCode(b),
        )
        .join('')
    const values = ['c2VjcmV0LXRva2Vu==', 'pässwörd-ünïcode', 'tab\tin-the-middle']
    await blotted(
      values.map((v) => `Content-Transfer-Encoding: quoted-printable; body: key=${qp(v)}; x=1`),
      values,
      ['VjcmV0', 'code', 'middle'],
    )
    // An ordinary k=v line is read as it is.
    const r = redactor(values)
    assert.equal(r('id=AB x=3D y=C3 =ZZ'), 'id=AB x=3D y=C3 =ZZ')
  })

  it('a value in base32 (RFC 4648 §6 and §7, either case), inside a longer encoding at any alignment', async () => {
    const base32 = (b: Buffer, alphabet: string) => {
      let out = ''
      let acc = 0
      let bits = 0
      for (const byte of b) {
        acc = (acc << 8) | byte
        bits += 8
        while (bits >= 5) out += alphabet[(acc >> (bits -= 5)) & 31]
        acc &= 0xff
      }
      if (bits > 0) out += alphabet[(acc << (5 - bits)) & 31]
      return out.padEnd(Math.ceil(out.length / 8) * 8, '=')
    }
    const value = 'sk-live-0123456789abcdef'
    const lines: string[] = []
    const kept: number[] = []
    for (const alphabet of ['ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', '0123456789ABCDEFGHIJKLMNOPQRSTUV'])
      for (let p = 0; p < 5; p++) {
        const prefix = `${'u:'.slice(0, p % 3)}${'x'.repeat(p)}`
        const encoded = base32(Buffer.from(`${prefix}${value}`), alphabet)
        lines.push(`seed=${encoded}`, `seed=${encoded.toLowerCase()}`)
        // The characters holding only the prefix's bits are left; the rest and its padding go.
        const left = Math.floor((prefix.length * 8) / 5)
        kept.push(left, left)
      }
    const out = await stderrLogged(`${lines.join('\n')}\n`, [value])
    assert.equal(out.length, lines.length)
    for (const [i, line] of out.entries())
      assert.equal(line, `${lines[i]!.slice(0, 5 + kept[i]!)}[redacted]`, lines[i])
    const r = redactor([value, 'pa5s'])
    for (const line of [
      'INFO ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 the quick brown fox jumps',
      'A'.repeat(1 << 16),
    ])
      assert.equal(r(line), line)
  })

  it('a value escaped twice as HTML (10 characters a byte) across the cut at lineMax is blotted whole', async () => {
    const value = 'sk-live-0123'
    const twice = [...value].map((c) => `&amp;#x${c.charCodeAt(0).toString(16)};`).join('')
    const lineMax = 100
    for (const at of [lineMax - 30, lineMax - 60, lineMax - 1]) {
      const out = await stderrLogged(`${'x'.repeat(at)}${twice} end\n`, [value], { lineMax })
      assert.deepEqual(out, [`${'x'.repeat(at)}[redacted]`.slice(0, lineMax)])
    }
  })
})
