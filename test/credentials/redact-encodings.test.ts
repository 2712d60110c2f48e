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
