// Brief redact36: more forms an attacker who controls a server's output could use to leak a
// user's secret into the log, each written by a real process and read back from the log the
// gateway writes: UTF-16 text and byte arrays, lines continued with a backslash, a value split
// at a line break, each byte escaped (quoted-printable, octal, `\u{…}`), reversed, base85.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { scriptStderrLogged, stderrLogged } from '../helpers/stderr-log.js'

const TOKEN = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2Gi'
const NON_ASCII = 'pässwörd-ünïcode-42'

/** Whether `text` holds any `n` characters in a row of `value`. */
function holdsPiece(text: string, value: string, n: number): string | undefined {
  const chars = [...value]
  for (let i = 0; i + n <= chars.length; i++) {
    const piece = chars.slice(i, i + n).join('')
    if (text.includes(piece)) return piece
  }
  return undefined
}

describe('redact36: a value in UTF-16', () => {
  it('written to stderr as UTF-16 text, either byte order (every other byte a NUL)', async () => {
    const lines = [`token=${TOKEN}`, `{"password":"${NON_ASCII}","token":"${TOKEN}"}`]
    for (const order of ['le', 'be']) {
      const script = `const b = Buffer.from(${JSON.stringify(`${lines.join('\n')}\n`)}, 'utf16le');${order === 'be' ? 'b.swap16();' : ''}process.stderr.write(b)`
      // Little-endian, the last line break's NUL is a line of its own.
      const out = (await scriptStderrLogged(script, [TOKEN, NON_ASCII])).filter((l) => l !== '\0')
      assert.equal(out.length, lines.length, out.join('\n'))
      for (const line of out) {
        const text = line.replaceAll('\0', '')
        assert.ok(line.includes('[redacted]'), `${order}: ${JSON.stringify(line)}`)
        // The non-ASCII value as it reads here: each accented letter a U+FFFD.
        for (const value of [TOKEN, NON_ASCII.replace(/[^ -~]/g, '\ufffd')])
          assert.equal(holdsPiece(text, value, 8), undefined, `${order}: ${JSON.stringify(line)}`)
      }
      // The text around the value is left as it is.
      assert.ok(out[0]!.replaceAll('\0', '').startsWith('token='), JSON.stringify(out[0]))
    }
  })

  it('its bytes as a byte array: comma-separated, decimal, 0x, little- or big-endian', async () => {
    const lines: string[] = []
    for (const value of [TOKEN, NON_ASCII])
      for (const be of [false, true]) {
        const b = Buffer.from(value, 'utf16le')
        if (be) b.swap16()
        const bytes = [...b]
        lines.push(
          `C#: ${bytes.join(', ')}`,
          `Go: [${bytes.join(' ')}]`,
          `C: { ${bytes.map((x) => `0x${x.toString(16).padStart(2, '0')}`).join(', ')} }`,
          `BitConverter: ${bytes.map((x) => x.toString(16).padStart(2, '0').toUpperCase()).join('-')}`,
        )
      }
    const out = await stderrLogged(`${lines.join('\n')}\n`, [TOKEN, NON_ASCII])
    assert.equal(out.length, lines.length)
    for (const [i, line] of out.entries()) {
      assert.ok(line.includes('[redacted]'), `${lines[i]} → ${line}`)
      // What is left holds a few numbers at most (the list's edges), no 8 of the value's bytes.
      const left = line.split('[redacted]').map((p) => p.replace(/^\w+: ?[[{]? ?/, ''))
      for (const part of left) assert.ok(part.length < 40, `${lines[i]} → ${line}`)
    }
  })
})

describe('redact36: a value split at a line break', () => {
  it('a continued line (`\\` ending it), the next indented or not: the rest is blotted, and the first 8', async () => {
    for (const indent of ['', '    ']) {
      const lines: string[] = []
      for (let k = 1; k < TOKEN.length; k++)
        lines.push(
          `curl -H "Authorization: Bearer ${TOKEN.slice(0, k)}\\`,
          `${indent}${TOKEN.slice(k)}" u${k}`,
        )
      const out = await stderrLogged(`${lines.join('\n')}\n`, [TOKEN])
      assert.equal(out.length, lines.length, out.join('\n'))
      for (let k = 1; k < TOKEN.length; k++) {
        const first = out[2 * (k - 1)]!
        const second = out[2 * k - 1]!
        assert.equal(second, `[redacted]" u${k}`, `split after ${k}: ${first} / ${second}`)
        assert.equal(
          first,
          k >= 8
            ? 'curl -H "Authorization: Bearer [redacted]'
            : `curl -H "Authorization: Bearer ${TOKEN.slice(0, k)}\\`,
        )
      }
    }
  })

  it('fewer than 8 bytes of a non-ASCII value show on the first line, not 7 characters', async () => {
    const chars = [...NON_ASCII]
    const lines: string[] = []
    for (let k = 1; k < chars.length; k++)
      lines.push(`pw=${chars.slice(0, k).join('')}`, `${chars.slice(k).join('')} u${k}`)
    const out = await stderrLogged(`${lines.join('\n')}\n`, [NON_ASCII])
    for (let k = 1; k < chars.length; k++) {
      const first = out[2 * (k - 1)]!
      assert.equal(out[2 * k - 1], `[redacted] u${k}`)
      const shown = first === 'pw=[redacted]' ? '' : first.slice(3)
      assert.ok(Buffer.byteLength(shown) < 8, `split after ${k}: ${first}`)
    }
  })

  it('a value holding `=` or `\\`, the break just before it: both readings go on', async () => {
    const value = 'Zm9vYmFy=cXV4\\0123456789'
    const lines: string[] = []
    for (const k of [8, 13])
      lines.push(`k=${value.slice(0, k)}${value[k]}`, `${value.slice(k)} end`)
    const out = await stderrLogged(`${lines.join('\n')}\n`, [value])
    assert.deepEqual(out, ['k=[redacted]', '[redacted] end', 'k=[redacted]', '[redacted] end'])
  })

  it('base64 wrapped over continued lines (`\\` ending each) is read on', async () => {
    const blob = Buffer.from(`{"token":"${TOKEN}","n":1}`).toString('base64')
    const lines = (blob.match(/.{1,20}/g) ?? []).map((l, i, all) =>
      i < all.length - 1 ? `${l}\\` : l,
    )
    const out = await stderrLogged(`${lines.join('\n')}\n`, [TOKEN])
    const left = out
      .join('')
      .split('[redacted]')
      .map((p) => p.replace(/[^A-Za-z0-9+/]/g, ''))
    for (const part of left)
      for (let k = 0; k < 4; k++)
        assert.equal(
          holdsPiece(Buffer.from(part.slice(k), 'base64').toString('latin1'), TOKEN, 8),
          undefined,
          out.join('\n'),
        )
  })
})

describe('redact36: every byte of a value escaped', () => {
  it('quoted-printable of every byte, octal escapes (C, strace), \\u{…} (JavaScript, Rust)', async () => {
    const hex = (b: number) => b.toString(16).padStart(2, '0').toUpperCase()
    const lines: string[] = []
    for (const value of [TOKEN, NON_ASCII]) {
      const bytes = [...Buffer.from(value)]
      lines.push(
        `qp: token=${bytes.map((b) => `=${hex(b)}`).join('')} end`,
        `C: "${bytes.map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('')}" end`,
        `strace: write(2, "${bytes.map((b) => (b < 0x80 ? String.fromCharCode(b) : `\\${b.toString(8)}`)).join('')}", 42) end`,
        `short octal: "${bytes.map((b) => `\\${b.toString(8)}`).join('')}" end`,
        `rust: "${[...value].map((c) => `\\u{${c.codePointAt(0)!.toString(16)}}`).join('')}" end`,
      )
    }
    const out = await stderrLogged(`${lines.join('\n')}\n`, [TOKEN, NON_ASCII])
    assert.equal(out.length, lines.length)
    for (const [i, line] of out.entries())
      assert.match(
        line,
        /^[A-Za-z ]+: [^[]{0,20}\[redacted\][^[]{0,10} end$/,
        `${lines[i]} → ${line}`,
      )
    // Octal-looking text with no value in it is left as it is.
    const text = ['path C:\\101\\102 and \\0 and \\777', 'a=10 b=20 c=3D d=FF']
    assert.deepEqual(await stderrLogged(`${text.join('\n')}\n`, [TOKEN, NON_ASCII]), text)
  })
})

/** `bytes` in base85 (`alphabet`), a last group of n bytes as n + 1 characters (Python's a85encode, b85encode; Z85). */
function base85(bytes: Buffer, alphabet: string): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 4) {
    const group = Buffer.alloc(4)
    bytes.copy(group, 0, i, i + 4)
    let v = group.readUInt32BE(0)
    const chars: string[] = []
    for (let k = 0; k < 5; k++) {
      chars.unshift(alphabet[v % 85]!)
      v = Math.floor(v / 85)
    }
    out += chars.slice(0, Math.min(4, bytes.length - i) + 1).join('')
  }
  return out
}

describe('redact36: a value reversed, or in base85', () => {
  it('reversed, and Ascii85, RFC 1924 (Python b85encode, git) and Z85 at each offset: at most 3 bytes at an end show', async () => {
    const alphabets = {
      ascii85: Array.from({ length: 85 }, (_, i) => String.fromCharCode(33 + i)).join(''),
      b85: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~',
      z85: '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#',
    }
    // As Python's base64.a85encode and b85encode write them.
    assert.equal(base85(Buffer.from('x{"t":"abc'), alphabets.ascii85), 'G^CWV,!$oV@Uf')
    assert.equal(base85(Buffer.from('x{"t":"abc'), alphabets.b85), 'czYsrB03^rVq*')
    const lines: string[] = []
    for (const value of [TOKEN, NON_ASCII]) {
      lines.push(`reversed: ${[...value].reverse().join('')} end`)
      for (const [name, alphabet] of Object.entries(alphabets))
        for (let offset = 0; offset < 4; offset++)
          lines.push(
            `${name}: ${base85(Buffer.from(`${'x'.repeat(offset)}{"t":"${value}"}`), alphabet)} end`,
          )
    }
    const out = await stderrLogged(`${lines.join('\n')}\n`, [TOKEN, NON_ASCII])
    assert.equal(out.length, lines.length)
    // What is left each side is the text around the value and at most one group (5 characters).
    for (const [i, line] of out.entries())
      assert.match(line, /^[a-z0-9]+: .{0,15}\[redacted\].{0,10} end$/, `${lines[i]} → ${line}`)
  })
})
