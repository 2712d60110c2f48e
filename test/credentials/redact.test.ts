// The stderr redactor of processes started with users' credentials: every known value blotted
// out as written and as JSON, URL, hex and base64 encodings write it (whichever language's
// encoder wrote it), whatever characters it holds; a short value only where it stands alone.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { inspect } from 'node:util'
import { redactor } from '../../gateway/bridge/redact.js'

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
    'a/b/c-path~x',
    'ünï/cøde',
    `it's a "q"`,
    "p+s%2B'\\",
    'line1\nline2\ttab\u0001\u007f',
  ]
  for (const value of hostile) {
    it(`blots out ${JSON.stringify(value).slice(0, 30)} in every form`, () => {
      const r = redactor([value])
      for (const [how, form] of forms(value)) {
        const out = r(`before ${form} after ${form}`)
        assert.equal(out, 'before [redacted] after [redacted]', `${how}: ${form} → ${out}`)
      }
    })
  }

  it('a value that contains another is blotted whole; empty values are ignored; other text is untouched', () => {
    const r = redactor(['abc', 'xxabcxx', ''])
    assert.equal(r('1 xxabcxx 2 abc 3'), '1 [redacted] 2 [redacted] 3')
    assert.equal(r('nothing secret here'), 'nothing secret here')
    assert.equal(redactor([])('as is'), 'as is')
  })

  it('a value of fewer than 8 characters is blotted only where it stands alone', () => {
    const r = redactor(['abc', 'hunter2', '(x|y)'])
    assert.equal(r('abcdef xabc abc'), 'abcdef xabc [redacted]')
    assert.equal(r('hunter22 xhunter2 pw=hunter2&'), 'hunter22 xhunter2 pw=[redacted]&')
    assert.equal(r('a(x|y)b'), 'a[redacted]b', 'a value that ends in punctuation has its own edge')
    // Escaped and percent-encoded alike: the decoded text decides where a word ends.
    assert.equal(r('"pw":"hunter2\\n" q=hunter2%21'), '"pw":"[redacted]\\n" q=[redacted]%21')
  })

  it('a value of 4 to 7 bytes inside a longer base64 text is blotted at every alignment, either alphabet', () => {
    for (const value of ['pa5s', 'pa55w', 'pa55wd', 'pa55wd!', 'é😀']) {
      const r = redactor([value])
      for (const prefix of ['u:', 'us:', 'usr:'])
        for (const encoded of [
          Buffer.from(`${prefix}${value}`).toString('base64'),
          Buffer.from(`{"u":"${prefix}","t":"${value}","x":1}`).toString('base64url'),
          Buffer.from(`{"u":"${prefix}","t":"${value}","x":1}`)
            .toString('base64')
            .replace(/=+$/, ''),
        ]) {
          const out = r(`Authorization: Basic ${encoded}`)
          assert.ok(out.includes('[redacted]'), `${value} in ${encoded} → ${out}`)
          const left = out.slice('Authorization: Basic '.length).split('[redacted]')
          for (const part of left)
            assert.ok(!Buffer.from(part, 'base64').includes(Buffer.from(value)), `${value}: ${out}`)
        }
    }
  })

  it('base64 whose + and / were escaped (a URL, a form, PHP json_encode) is blotted at every alignment', () => {
    // `?`, `~`, `>` and any non-ASCII character put a + or / inside the value's base64, which
    // encodeURIComponent, Java's URLEncoder and PHP's json_encode (`\/`) then escape.
    for (const value of ['Tr0ub4dor?horse~battery>staple', 'pässwörd-ünïcode', 'k?~>']) {
      const r = redactor([value])
      for (const prefix of ['u:', 'us:', 'usr:']) {
        const encoded = Buffer.from(`${prefix}${value}`).toString('base64')
        for (const line of [
          `GET /cb?auth=${encodeURIComponent(encoded)}`,
          `GET /cb?auth=${encodeURIComponent(encoded).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`,
          `{"auth":"${encoded.replace(/\//g, '\\/')}"}`,
        ]) {
          const out = r(line)
          assert.ok(out.includes('[redacted]'), `${value} in ${line} → ${out}`)
          for (const part of out.split('[redacted]'))
            for (const run of decodeURIComponent(part.replace(/\\\//g, '/')).split(
              /[^A-Za-z0-9+/]/,
            ))
              for (let k = 0; k < 4; k++)
                assert.ok(!Buffer.from(run.slice(k), 'base64').includes(Buffer.from(value)), out)
        }
      }
    }
  })

  it('a value printed as a byte array (Go %v, Rust {:?}, Node Buffer, Go % x) is blotted', () => {
    for (const value of ['sk-live-0123456789abcdef', 'pässwörd?1', 'pa5s']) {
      const r = redactor([value])
      const bytes = [...Buffer.from(`{"key":"${value}"}`)]
      const hex = bytes.map((b) => b.toString(16).padStart(2, '0'))
      for (const line of [
        `body: [${bytes.join(' ')}]`,
        `body: [${bytes.join(', ')}]`,
        `body: Some([${bytes.join(', ')}])`,
        `body: ${inspect(Buffer.from(`{"key":"${value}"}`))}`,
        `body: ${hex.join(' ')}`,
        `body: ${hex.join(' ').toUpperCase()}`,
      ]) {
        const out = r(line)
        assert.ok(out.includes('[redacted]'), `${value}: ${line} → ${out}`)
        const left = out.split('[redacted]').join(' ')
        const own = [...Buffer.from(value)]
        for (const radix of [10, 16]) {
          const seen = (left.match(radix === 10 ? /\d+/g : /\b[0-9A-Fa-f]{2}\b/g) ?? []).map((t) =>
            Number.parseInt(t, radix),
          )
          const at = seen.findIndex((_, i) => own.every((b, j) => seen[i + j] === b))
          assert.equal(at, -1, `${value} (radix ${radix}): ${out}`)
        }
      }
    }
    // Numbers in ordinary text are left as they are.
    const r = redactor(['pa5s', 'sk-live-0123456789abcdef'])
    for (const line of ['took 112 97 115 ms', '[1, 2, 3, 4, 5]', 'ids 70 61 35 74 x'])
      assert.equal(r(line), line)
  })

  it('a value escaped twice (JSON in JSON) or escaped inside base64 (base64 of JSON) is blotted', () => {
    // An AWS-style secret with `/` (escaped by PHP), one with a quote and a backslash (escaped
    // by every JSON), one with non-ASCII characters (escaped by Python's json.dumps).
    const php = (s: unknown) => JSON.stringify(s).replace(/\//g, '\\/')
    const py = (s: unknown) =>
      JSON.stringify(s).replace(
        /[\u0080-\uffff]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
      )
    for (const [value, enc] of [
      ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', php],
      ['say "hi" \\ bye-0123', JSON.stringify],
      ['pässwörd-ünïcode', py],
    ] as const) {
      const r = redactor([value])
      const inner = enc({ secret: value, n: 1 })
      for (const line of [
        `log ${enc(inner)}`,
        `log ${enc(`{"msg":${enc(`error: ${value}`)}}`)}`,
        ...['', 'x', 'xy'].map((p) => `blob=${Buffer.from(p + inner).toString('base64')}`),
        ...['', 'x', 'xy'].map((p) => `blob=${Buffer.from(p + inner).toString('base64url')}`),
      ]) {
        const out = r(line)
        assert.ok(out.includes('[redacted]'), `${value}: ${line} → ${out}`)
        assert.ok(!out.includes(value.slice(-4)), `its last characters are blotted too: ${out}`)
      }
    }
  })

  it('a value percent-encoded twice (a URL inside a URL) is blotted', () => {
    for (const value of ['p@ss/wörd"+1\\zz', 'p@ss word&x=1']) {
      const r = redactor([value])
      const inner = `https://app.example/cb?pw=${encodeURIComponent(value)}&n=1`
      for (const line of [
        `GET /login?next=${encodeURIComponent(inner)}`,
        `GET /login?next=${encodeURIComponent(inner).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`,
        `POST body next=${new URLSearchParams({ u: inner }).toString().slice(2)}`,
      ]) {
        const out = r(line)
        assert.ok(out.includes('[redacted]'), `${value}: ${line} → ${out}`)
        assert.match(out, /\[redacted\]%26n%3D1$/i)
      }
    }
  })

  it('base64 wrapped at 76 characters (MIME, Python encodebytes) inside JSON or a URL is blotted', () => {
    const value = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2Gi'
    const r = redactor([value])
    for (let pad = 0; pad < 60; pad += 7) {
      const blob = Buffer.from(`{"config":"${'x'.repeat(pad)}","token":"${value}"}`).toString(
        'base64',
      )
      const wrapped = `${blob.replace(/.{76}/g, '$&\n')}\n`
      for (const line of [
        `payload ${JSON.stringify(wrapped)}`,
        `payload=${encodeURIComponent(wrapped)}`,
        `payload ${JSON.stringify(wrapped.replace(/\n/g, '\r\n'))}`,
      ]) {
        const out = r(line)
        assert.ok(out.includes('[redacted]'), `${pad}: ${line} → ${out}`)
      }
    }
  })

  it('a value shorter than 4 bytes is not looked for in base64 or hex, nor blotted inside a word there', () => {
    const r = redactor(['abc', 'abcd'])
    // base64 of "x:abc" and hex of "abc": left alone (4 characters of base64 occur by chance).
    assert.equal(r('eDphYmM= 616263'), 'eDphYmM= 616263')
    // A 4-byte value is found in base64 only where it stands alone in the decoded text.
    assert.ok(!r(Buffer.from('xabcdx').toString('base64')).includes('[redacted]'))
    assert.ok(r(Buffer.from('x abcd').toString('base64')).includes('[redacted]'))
  })

  it('ordinary text, base64 and hex with no value in them are left as they are', () => {
    const r = redactor(['pa55wd', 'a-much-longer-secret-value'])
    const text = [
      'GET /api/v1/items?limit=10&offset=20 HTTP/1.1 took 12ms',
      Buffer.from('the quick brown fox jumps over the lazy dog, 0123456789'.repeat(20)).toString(
        'base64',
      ),
      Buffer.from('the quick brown fox').toString('hex'),
      'C:\\path\\to\\file \\u00e9\\x41 %zz %4 100%',
    ]
    for (const line of text) assert.equal(r(line), line)
  })

  it('a hostile line of 1 MB is redacted (each scan is one pass over the line)', () => {
    const r = redactor(['aaaaaaa', 'hunter22hunter22', 'pa5s'])
    for (const line of [
      'a'.repeat(1 << 20),
      '%'.repeat(1 << 20),
      '%2'.repeat(1 << 19),
      '\\u'.repeat(1 << 19),
      '\\ud83d'.repeat(1 << 17),
      '\\u{'.repeat(1 << 18),
      '\\1'.repeat(1 << 19),
      '=4'.repeat(1 << 19),
      '00 '.repeat(1 << 18),
      'A'.repeat(1 << 20),
      'hunter22'.repeat(1 << 17),
      'ab '.repeat(1 << 18),
      'é'.repeat(1 << 20),
    ]) {
      const out = r(`${line} aaaaaaa`)
      assert.ok(out.endsWith(' [redacted]'), out.slice(-40))
    }
  })
})

/** A value as each encoder writes it (the content of a quoted string; no quotes). */
function forms(value: string): [string, string][] {
  const json = JSON.stringify(value).slice(1, -1)
  const bytes = Buffer.from(value)
  const upper = (s: string) => s.replace(/%[0-9a-f]{2}/g, (m) => m.toUpperCase())
  const lower = (s: string) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())
  const pct = (keep: RegExp, space: string) =>
    [...bytes]
      .map((b) => {
        const c = String.fromCharCode(b)
        if (b === 0x20) return space
        return b < 0x80 && keep.test(c) ? c : `%${b.toString(16).padStart(2, '0').toUpperCase()}`
      })
      .join('')
  let toggle = false
  const mixed = (s: string) =>
    s.replace(/%[0-9A-F]{2}/g, (m) => ((toggle = !toggle) ? m.toLowerCase() : m))
  const u = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  return [
    ['raw', value],
    ['JavaScript JSON', json],
    ['Python json.dumps', json.replace(/[\u0080-\uffff]/g, u)],
    ['Go json', json.replace(/[<>&\u2028\u2029]/g, u)],
    ['PHP json_encode', json.replace(/[\u0080-\uffff]/g, u).replace(/\//g, '\\/')],
    ['PHP JSON_UNESCAPED_UNICODE', json.replace(/\//g, '\\/')],
    [
      'Java (upper-case \\u)',
      json.replace(/[\u0080-\uffff]/g, (c) => u(c).toUpperCase().replace('\\U', '\\u')),
    ],
    ['Python repr', pyRepr(value, false)],
    ["Python repr b''", pyRepr(value, true)],
    ['encodeURIComponent', encodeURIComponent(value)],
    ['encodeURIComponent, lower-case hex', lower(encodeURIComponent(value))],
    ['URLSearchParams', new URLSearchParams({ v: value }).toString().slice(2)],
    [
      'URLSearchParams, lower-case hex',
      lower(new URLSearchParams({ v: value }).toString().slice(2)),
    ],
    ['Python quote (safe /)', pct(/[A-Za-z0-9_.~/-]/, '%20')],
    ['Python quote_plus, lower-case hex', lower(pct(/[A-Za-z0-9_.~-]/, '+'))],
    ['PHP urlencode', pct(/[A-Za-z0-9_.-]/, '+')],
    ['PHP rawurlencode', pct(/[A-Za-z0-9_.~-]/, '%20')],
    ['encodeURIComponent with + for space', encodeURIComponent(value).replace(/%20/g, '+')],
    ['mixed-case hex', mixed(upper(pct(/[A-Za-z0-9]/, '%20')))],
    ['hex', bytes.toString('hex')],
    ['HEX', bytes.toString('hex').toUpperCase()],
    ['base64', bytes.toString('base64')],
    ['base64url', bytes.toString('base64url')],
  ]
}

/** Python's repr of a str (printable non-ASCII kept) or of its UTF-8 bytes, without the quotes. */
function pyRepr(value: string, asBytes: boolean): string {
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'"
  const units = asBytes ? [...Buffer.from(value)].map((b) => String.fromCharCode(b)) : [...value]
  return units
    .map((c) => {
      const b = c.codePointAt(0)!
      if (c === '\\' || c === quote) return `\\${c}`
      if (c === '\n') return '\\n'
      if (c === '\r') return '\\r'
      if (c === '\t') return '\\t'
      if (b < 0x20 || b === 0x7f || (asBytes && b >= 0x80))
        return `\\x${b.toString(16).padStart(2, '0')}`
      return c
    })
    .join('')
}
