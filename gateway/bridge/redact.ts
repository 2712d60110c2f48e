/**
 * Blots known secret values (a user's credentials) out of a text a server process wrote: its
 * stderr lines, its error messages. A process may print a value as written, or as any
 * language's JSON, repr, URL or form encoding, hex or base64 would write it, so besides the
 * value as written the line is read eight more ways, each in one pass over it:
 * - backslash escapes decoded (JSON of every language, `\/` of PHP, `\'` and `\xNN` of a
 *   Python repr and its `b'…'`, Go's `%q`), upper- or lower-case hex; twice where once leaves
 *   some (JSON inside JSON), and in each base64 reading below (base64 of JSON);
 * - percent escapes decoded (`%2B` or `%2b`, `+` for a space), whichever characters an
 *   encoder left as they are; twice where once leaves some (a URL inside a URL);
 * - HTML and XML character references decoded (`&#39;`, `&#x41;`, `&quot;` …); twice where
 *   once leaves some (a page escaped twice);
 * - quoted-printable escapes decoded (`=3D`, `=C3=A4`; every byte of a value escaped, too);
 * - each run of base64 characters decoded at its four alignments, either alphabet (RFC 4648
 *   §4, §5): a value inside a longer encoding (`Basic base64(user:token)`) is found wherever
 *   it sits; a run goes on through a `+` or `/` a URL encoder or PHP's json_encode escaped,
 *   and through an escaped line break after 60 characters or more (MIME's 76-character lines);
 *   wrapped over stderr lines as written, it is read on from the lines before ({@link WrappedBase64});
 * - each run of base32 characters (RFC 4648 §6, §7, either case) at its eight alignments;
 * - each list of byte values, as a byte array prints: decimal (Go's `%v`, Rust's `{:?}`) or
 *   two hex digits each (Node's `<Buffer …>`, Go's `% x`);
 * - a formatted hex dump's line (`xxd`, `hexdump -C`, `od`: offset, groups, text column), its
 *   bytes read on over a stream's lines (redact-dump's `DumpStream`).
 * Reversed, and in base85 (its whole 4-byte groups, {@link base85Forms}), it is searched as
 * written. In base64, base32, hex and byte lists, a value's UTF-16 (either byte order) is looked for
 * too, and in a line with a NUL, the value written as UTF-16 text ({@link rawUtf16Forms}).
 * Its hex, and a value that is itself hex, is searched for in any case (Go's `%X`, mixed), and
 * split over stream lines as the value as written is ({@link SplitOver}; `xxd -p`).
 * A value is searched for as bytes in each decoding, and the characters that encode it are
 * blotted; a short value only where it stands alone ({@link MIN_ANYWHERE}). Linear in the
 * line: each search is `indexOf`, then a KMP scan while a match may go on overlapping
 * ({@link Needle}), or a fixed text between one-character look-arounds (nothing to backtrack
 * into).
 *
 * This file builds the forms and needles and reads a line each way; each reading has its file:
 * redact-escapes (backslash, percent, HTML, quoted-printable), redact-base64, redact-base32,
 * redact-hex (byte lists), redact-dump (hex dumps), redact-forms (written forms), redact-stream
 * and redact-wrapped (values split or wrapped over a stream's lines).
 */
import { base64Units, findBase64 } from './redact-base64.js'
import { base85Forms } from './redact-base85.js'
import { findBase32 } from './redact-base32.js'
import {
  findUnentitied,
  findUnescaped,
  findUnpercented,
  bytesUsed,
  quotedHolds,
  quotedView,
  REFERENCE,
} from './redact-escapes.js'
import { findInDump, parseDump } from './redact-dump.js'
import { jsonForms, reversedForm, writtenForms } from './redact-forms.js'
import { findByteList, hexLower } from './redact-hex.js'
import { Hits } from './redact-hits.js'
import { Needle } from './redact-needle.js'
import { MIN_ANYWHERE, MIN_ENCODED_BYTES, type Secret, standingAlone } from './redact-secret.js'
import { type LineRead, type StreamRedactor, streamRedactor } from './redact-stream.js'
import { findInView, rawChar } from './redact-view.js'
import { rawUtf16Forms } from './redact-utf16.js'
import { Openings } from './redact-wrapped.js'

export type { StreamRedactor } from './redact-stream.js'

/** Blots a user's values out of a line (see {@link redactor}). */
export type Redactor = ((line: string, upTo?: number) => string) & {
  longest: number
  /** How many of a line's last characters `lines()` reads for the next line (at most `longest`). */
  tail: number
  /**
   * A redacting function for the lines of one stream, one after the other: it also blots a
   * value split over two lines or more ({@link SplitOver}); it holds the stream's last
   * characters, over the lines before (fewer than the longest value). `end`: the last `tail`
   * characters of a line handed over cut (its end as written, joined to the next line).
   */
  lines(): StreamRedactor
}

/**
 * Fewest characters (code points) of a value blotted at all. A one-character value cannot be
 * hidden: whoever reads the log finds it in under a hundred guesses. Blotting it would take
 * that character (a `-`, a `1`) out of every line the process writes. It is not refused when
 * set: a server may take a one-character setting through a user's secret, and exchanged or
 * upstream tokens do not pass through that check; the redactor has to decide either way.
 */
const MIN_VALUE = 2

/**
 * Shortest line of a multi-line value blotted out on its own: a shorter one (a PEM's `==`, a
 * value's one-letter last line) would blot that text out of every line the process writes,
 * and says next to nothing of the value.
 */
const MIN_LINE = 8

/**
 * Most characters one byte of a value takes once encoded: `&amp;#x7E;` (a page escaped twice;
 * `\\u0000`, JSON inside JSON, takes 7).
 */
const WIDEST_ENCODING = 10

/**
 * A redacting function for `values`, and the length of the longest text it may blot (a
 * caller cutting a line reads that much past the cut, so no half secret is left showing).
 * With `upTo`, only the line's first `upTo` characters are given back (a value starting before
 * them blotted whole): cutting the redacted text instead would let text from past the cut,
 * where a value may stand cut in half, move up as each `[redacted]` shortens the line.
 */
export function redactor(values: readonly string[]): Redactor {
  const secrets: Secret[] = []
  // Searched as written, anywhere in the line.
  const plain = new Set<string>()
  // Searched as written, only where they stand alone.
  const alone: RegExp[] = []
  // UTF-16 forms of each value, looked for in base64, base32 and hex only.
  const utf16: Secret[] = []
  // Each value written as UTF-16 text, as the gateway reads it: in a line with a NUL only.
  const wideText = new Set<string>()
  // JSON-escaped forms of each value, looked for in base64 and base32 only ({@link jsonForms}).
  const json: Secret[] = []
  // Looked for split over two lines of a stream ({@link SplitOver}).
  const splitting: string[] = []
  // Its hex, looked for split over two lines of a stream (see `splitHex` below).
  const hexSplitting = new Set<string>()
  // Searched lower-case, in the line with its A to F lower-cased: hex is either case, and a
  // printer may change it (Go's `%X`, .NET's `ToString("X")`, a value that is itself hex).
  const hex = new Set<string>()
  let longest = 0
  for (const [v, mojibake] of writtenForms(values)) {
    if (v === '' || [...v.slice(0, 4)].length < MIN_VALUE) continue
    const bytes = Buffer.from(v)
    const short = v.length < MIN_ANYWHERE
    const latin1 = bytes.toString('latin1')
    secrets.push({
      bytes: latin1,
      needle: new Needle(latin1),
      alone: short ? standingAlone(latin1) : undefined,
      encoded: bytes.length >= MIN_ENCODED_BYTES,
    })
    if (short) alone.push(standingAlone(v))
    else plain.add(v)
    // Reversed, and in base85: searched as written (see reversedForm, base85Forms).
    if (!short && !mojibake) {
      const reversed = reversedForm(v)
      if (reversed !== undefined) plain.add(reversed)
      for (const f of base85Forms(bytes)) plain.add(f)
    }
    if (!short && !/[\r\n]/.test(v)) splitting.push(v)
    // UTF-16 (.NET's Encoding.Unicode, PowerShell's -EncodedCommand, Java's UTF_16BE) then
    // base64, base32 or hex: looked for in those only.
    // Not of mojibake: a process that decoded a value wrongly does not then write it so.
    if (!short && !mojibake) for (const f of rawUtf16Forms(v)) wideText.add(f)
    if (!short && !mojibake)
      for (const b of [Buffer.from(v, 'utf16le'), Buffer.from(v, 'utf16le').swap16()]) {
        const wide = b.toString('latin1')
        utf16.push({ bytes: wide, needle: new Needle(wide), alone: undefined, encoded: true })
        hex.add(b.toString('hex'))
        // Two hex digits a byte is its widest form here.
        longest = Math.max(longest, b.length * 2)
      }
    if (!short && !mojibake)
      for (const form of jsonForms(v)) {
        const b = Buffer.from(form).toString('latin1')
        json.push({ bytes: b, needle: new Needle(b), alone: undefined, encoded: true })
      }
    // A value of several lines (a PEM key) is printed over several stderr lines.
    const lines = v.split(/\r\n|\r|\n/)
    if (lines.length > 1) for (const line of lines) if (line.length >= MIN_LINE) plain.add(line)
    if (bytes.length >= MIN_ENCODED_BYTES) hex.add(bytes.toString('hex'))
    if (!short && !mojibake) hexSplitting.add(bytes.toString('hex'))
    if (!short && /^[0-9A-Fa-f]+$/.test(v)) hex.add(v.toLowerCase())
    longest = Math.max(longest, v.length, bytes.length * WIDEST_ENCODING)
  }
  if (secrets.length === 0) {
    const none = (line: string, upTo?: number) => line.slice(0, upTo)
    const lines = () =>
      Object.assign((line: string, upTo?: number) => none(line, upTo), { skip() {} })
    return Object.assign(none, { longest: 0, tail: 0, lines })
  }
  const anywhere = [...plain].map((f) => new Needle(f))
  const wide = [...wideText].map((f) => new Needle(f))
  const hexForms = [...hex].map((f) => new Needle(f))
  const inBytes = secrets.filter((s) => s.encoded)
  const inBase64 = [...inBytes, ...utf16, ...json]
  const inLists = [...inBytes, ...utf16]
  // The bytes values hold: a quoted-printable escape of none of them is no value's.
  const used = bytesUsed(secrets)
  const split = splitting.map((v) => new Needle(v))
  // Hex wrapped over lines (`xxd -p` at 60 columns, OpenSSL): a value's hex split as written,
  // read in the line with its A to F lower-cased. Not a short value's (its first half, 4 hex
  // digits, would end a line of hex by chance); its UTF-16's is not either (two scans of 4
  // characters a character for each line, for a form no dump of a stream is likely to show).
  const splitHex = [...hexSplitting].map((f) => new Needle(f))
  // What of a line's end the lines() function reads for the next line.
  const held = Math.max(0, ...[...split, ...splitHex].map((n) => n.text.length - 1))
  // Base64 characters of a stream's end held for its next line ({@link WrappedBase64}), and
  // the line characters that hold them (3 for an escaped `+` or `/`).
  const wrapKeep = Math.max(0, ...inBase64.map((s) => Math.ceil((s.bytes.length * 8) / 6) + 4))
  const wrapRead = inBase64.length > 0 ? 3 * wrapKeep + 3 : 0
  // Built for the first stream read (a one-off error text has no lines before).
  let openings: Openings | undefined
  /** Collects the line's hits; gives back its base64 characters and hex dump where values are looked for there. */
  const collect = (line: string, hits: Hits): LineRead => {
    for (const f of anywhere) f.each(line, (s, e) => hits.add(s, e))
    if (wide.length > 0 && line.includes('\0'))
      for (const f of wide) f.each(line, (s, e) => hits.add(s, e))
    for (const pattern of alone)
      for (const m of line.matchAll(pattern)) hits.add(m.index, m.index + m[0].length)
    if (hexForms.length > 0) {
      const lower = hexLower(line)
      for (const f of hexForms) f.each(lower, (s, e) => hits.add(s, e))
    }
    if (line.includes('\\')) findUnescaped(line, rawChar, secrets, (s, e) => hits.add(s, e))
    if (line.includes('%') || line.includes('+'))
      findUnpercented(line, secrets, (s, e) => hits.add(s, e))
    if (line.includes('&') && REFERENCE.test(line))
      findUnentitied(line, secrets, (s, e) => hits.add(s, e))
    // Not only where a value has a character the encoding escapes: a process may escape every
    // byte (`=67=68=70`), and an encoder of printable ASCII leaves nothing to find as written.
    if (quotedHolds(line, used)) findInView(quotedView(line), secrets, (s, e) => hits.add(s, e))
    if (inBase64.length === 0) return {}
    const units = base64Units(line)
    findBase64(line, units, inBase64, hits)
    findBase32(line, inBase64, hits)
    // A byte array of the value's UTF-16 (`116, 0, 111, 0`) too.
    if (inBytes.length > 0) {
      findByteList(line, 10, inLists, hits)
      findByteList(line, 16, inLists, hits)
    }
    const dump = parseDump(line)
    if (dump !== undefined) findInDump(dump, inBase64, hits)
    return { units, dump }
  }
  return Object.assign(
    (line: string, upTo = line.length) => {
      const hits = new Hits()
      collect(line, hits)
      return hits.blot(line, upTo)
    },
    {
      longest,
      tail: Math.min(longest, Math.max(held, wrapRead)),
      lines: () => {
        if (inBase64.length > 0) openings ??= new Openings(inBase64)
        return streamRedactor({ split, splitHex, openings, wrapKeep, wrapRead, collect })
      },
    },
  )
}
