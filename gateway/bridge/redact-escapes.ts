/**
 * A line read with its escapes decoded: backslash (JSON, repr, `%q`), percent (URL, form),
 * quoted-printable and HTML/XML character references; twice where once leaves some.
 */
import { hexAt } from './redact-hex.js'
import type { Secret } from './redact-secret.js'
import { decode, findInView, rawByte, rawChar, utf8, type View } from './redact-view.js'

/**
 * Each value found in `text` with its backslash escapes decoded, once and, where that leaves
 * some, twice: JSON inside JSON (a JSON log line's message quoting a JSON body) escapes a
 * value's `"`, `\`, PHP's `/` or Python's non-ASCII characters twice.
 */
export function findUnescaped(
  text: string,
  raw: typeof rawChar,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  findTwice(unescapeView, '\\', text, raw, secrets, found)
}

/**
 * Each value found in `text` with its percent escapes decoded, once and, where that leaves
 * some, twice: a URL carried in another URL's query (`next=…%253D…`) is encoded twice.
 */
export function findUnpercented(
  text: string,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  findTwice(percentView, '%', text, rawChar, secrets, found)
}

/**
 * Each value found in `text` with its HTML and XML character references decoded, once and,
 * where that leaves some, twice (`&amp;#39;`: a page escaped twice).
 */
export function findUnentitied(
  text: string,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  findTwice(entityView, '&', text, rawChar, secrets, found)
}

/**
 * Each value found in `text` read through `view`, and where what that decodes still holds
 * `mark` (an escape's first character), read through it again; `found` hears the range of
 * `text` that encodes each.
 */
function findTwice(
  view: (line: string, raw: typeof rawChar) => View,
  mark: string,
  text: string,
  raw: typeof rawChar,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  const once = view(text, raw)
  findInView(once, secrets, found)
  const decoded = once.bytes.toString('latin1')
  if (decoded.includes(mark))
    findInView(view(decoded, rawByte), secrets, (s, e) =>
      found(once.from[s]!, once.end(once.from[e - 1]!)),
    )
}

/** One-letter escapes of JSON, Python, Go and C: the byte each stands for. */
const SIMPLE_ESCAPES: Record<string, number> = {
  '\\': 0x5c,
  '"': 0x22,
  "'": 0x27,
  '/': 0x2f,
  '`': 0x60,
  n: 0x0a,
  r: 0x0d,
  t: 0x09,
  b: 0x08,
  f: 0x0c,
  v: 0x0b,
  a: 0x07,
}

/**
 * Backslash escapes decoded: `\xNN` is a byte (a Python `b'…'`, Go's `%q` of invalid UTF-8;
 * so a Python str's repr of a non-printable U+0080–U+00FF as `\xNN` is not matched), and so is
 * `\NNN`, one to three octal digits (C, strace, git's quoted paths, PostgreSQL's bytea);
 * `\uXXXX` (a surrogate pair as one), `\u{X…}` (JavaScript, Rust, Ruby, Swift) and
 * `\UXXXXXXXX` a code point; an unknown escape is left as written.
 */
function unescapeView(line: string, raw = rawChar): View {
  return decode(line, (p, emit) => {
    if (line.charCodeAt(p) !== 0x5c || p + 1 >= line.length) return raw(line, p, emit)
    const d = line[p + 1]!
    const octal = octalAt(line, p + 1)
    if (octal >= 0) {
      emit(octal & 0xff)
      return p + 1 + (octal >> 8)
    }
    if (d === 'u' && line.charCodeAt(p + 2) === 0x7b) {
      // At most 6 digits looked at: a line of `\u{` stays one pass.
      let close = p + 3
      while (close < line.length && close <= p + 9 && line.charCodeAt(close) !== 0x7d) close++
      const cp =
        close > p + 3 && line.charCodeAt(close) === 0x7d ? hexAt(line, p + 3, close - p - 3) : -1
      if (cp >= 0 && cp <= 0x10ffff) {
        utf8(cp, emit)
        return close + 1
      }
    }
    const simple = SIMPLE_ESCAPES[d]
    if (simple !== undefined) {
      emit(simple)
      return p + 2
    }
    if (d === 'x') {
      const b = hexAt(line, p + 2, 2)
      if (b >= 0) {
        emit(b)
        return p + 4
      }
    } else if (d === 'u') {
      const unit = hexAt(line, p + 2, 4)
      if (unit >= 0) {
        if (unit >= 0xd800 && unit < 0xdc00 && line.startsWith('\\u', p + 6)) {
          const low = hexAt(line, p + 8, 4)
          if (low >= 0xdc00 && low < 0xe000) {
            utf8(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), emit)
            return p + 12
          }
        }
        utf8(unit, emit)
        return p + 6
      }
    } else if (d === 'U') {
      const cp = hexAt(line, p + 2, 8)
      if (cp >= 0 && cp <= 0x10ffff) {
        utf8(cp, emit)
        return p + 10
      }
    }
    emit(0x5c)
    return p + 1
  })
}

/** The byte of one to three octal digits at `p` (at most 0o377) and how many (`digits << 8 | byte`), or -1. */
function octalAt(line: string, p: number): number {
  let v = 0
  let q = p
  for (; q < p + 3 && q < line.length; q++) {
    const c = line.charCodeAt(q) - 0x30
    if (c < 0 || c > 7 || v * 8 + c > 0o377) break
    v = v * 8 + c
  }
  return q === p ? -1 : ((q - p) << 8) | v
}

/** Percent escapes decoded, either case (RFC 3986 §2.1), and `+` as a space (a form body). */
function percentView(line: string, raw = rawChar): View {
  return decode(line, (p, emit) => {
    const c = line.charCodeAt(p)
    if (c === 0x2b) {
      emit(0x20)
      return p + 1
    }
    if (c === 0x25) {
      const b = hexAt(line, p + 1, 2)
      if (b >= 0) {
        emit(b)
        return p + 3
      }
    }
    return raw(line, p, emit)
  })
}

/**
 * Whether the line has a quoted-printable escape (upper-case hex, as RFC 2045 §6.7 has it) of
 * a byte some value holds (`used`, a bit a byte): `status=200` (a space) or `limit=10` (a
 * control character) mostly stand for none, and the line is not decoded.
 */
export function quotedHolds(line: string, used: Uint32Array): boolean {
  for (let p = line.indexOf('='); p !== -1; p = line.indexOf('=', p + 1)) {
    const b = upperHex(line.charCodeAt(p + 1)) * 16 + upperHex(line.charCodeAt(p + 2))
    if (b >= 0 && (used[b >> 5]! & (1 << (b & 31))) !== 0) return true
  }
  return false
}

/** The value of an upper-case hex digit, or -256 (making any byte of it negative). */
const upperHex = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -256

/** A bit for each byte that some of `secrets` holds (see {@link quotedHolds}). */
export function bytesUsed(secrets: readonly Secret[]): Uint32Array {
  const used = new Uint32Array(8)
  for (const s of secrets)
    for (let i = 0; i < s.bytes.length; i++) {
      const b = s.bytes.charCodeAt(i)
      used[b >> 5]! |= 1 << (b & 31)
    }
  return used
}

/**
 * Quoted-printable escapes decoded (`=3D`, `=C3=A4`: a mail body or MIME part a process logs).
 * Upper-case hex only, as encoders write it: `id=ab` is not an escape. A soft line break (`=`
 * ending a line) is a line break of stderr: not joined here.
 */
export function quotedView(line: string): View {
  return decode(line, (p, emit) => {
    if (line.charCodeAt(p) === 0x3d) {
      const b = hexAt(line, p + 1, 2)
      if (b >= 0 && QUOTED_HEX.test(line.slice(p + 1, p + 3))) {
        emit(b)
        return p + 3
      }
    }
    return rawChar(line, p, emit)
  })
}

const QUOTED_HEX = /^[0-9A-F]{2}$/

/** A line with a character reference in it (a `&` alone, as in a query, is not one). */
export const REFERENCE = /&(?:#|amp;|lt;|gt;|quot;|apos;|nbsp;)/

/** The named references HTML and XML escapers write (Python's html.escape, PHP, Java, .NET). */
const ENTITIES = new Map([
  ['amp', 0x26],
  ['lt', 0x3c],
  ['gt', 0x3e],
  ['quot', 0x22],
  ['apos', 0x27],
  ['nbsp', 0xa0],
])

/**
 * HTML and XML character references decoded: `&#NNN;` and `&#xHH;` (either case, leading
 * zeros as PHP writes `&#039;`) a code point, `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&nbsp;`;
 * anything else is left as written. A reference is at most 12 characters.
 */
function entityView(line: string, raw = rawChar): View {
  return decode(line, (p, emit) => {
    if (line.charCodeAt(p) !== 0x26) return raw(line, p, emit)
    // Only the next 12 characters are looked at: a line of `&` stays one pass.
    let semi = p + 2
    while (semi < line.length && semi - p < 12 && line.charCodeAt(semi) !== 0x3b) semi++
    if (line.charCodeAt(semi) === 0x3b) {
      const name = line.slice(p + 1, semi)
      let cp = -1
      if (/^#[0-9]{1,8}$/.test(name)) cp = Number(name.slice(1))
      else if (/^#[xX][0-9A-Fa-f]{1,8}$/.test(name)) cp = Number.parseInt(name.slice(2), 16)
      else cp = ENTITIES.get(name) ?? -1
      if (cp >= 0 && cp <= 0x10ffff) {
        utf8(cp, emit)
        return semi + 1
      }
    }
    emit(0x26)
    return p + 1
  })
}
