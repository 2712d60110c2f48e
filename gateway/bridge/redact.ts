/**
 * Blots known secret values (a user's credentials) out of a text a server process wrote: its
 * stderr lines, its error messages. A process may print a value as written, or as any
 * language's JSON, repr, URL or form encoding, hex or base64 would write it, so besides the
 * value as written the line is read seven more ways, each in one pass over it:
 * - backslash escapes decoded (JSON of every language, `\/` of PHP, `\'` and `\xNN` of a
 *   Python repr and its `b'…'`, Go's `%q`), upper- or lower-case hex; twice where once leaves
 *   some (JSON inside JSON), and in each base64 reading below (base64 of JSON);
 * - percent escapes decoded (`%2B` or `%2b`, `+` for a space), whichever characters an
 *   encoder left as they are; twice where once leaves some (a URL inside a URL);
 * - HTML and XML character references decoded (`&#39;`, `&#x41;`, `&quot;` …); twice where
 *   once leaves some (a page escaped twice);
 * - quoted-printable escapes decoded (`=3D`, `=C3=A4`), where a value has a character that
 *   encoding escapes;
 * - each run of base64 characters decoded at its four alignments, either alphabet (RFC 4648
 *   §4, §5): a value inside a longer encoding (`Basic base64(user:token)`) is found wherever
 *   it sits; a run goes on through a `+` or `/` a URL encoder or PHP's json_encode escaped,
 *   and through an escaped line break after 60 characters or more (MIME's 76-character lines);
 *   wrapped over stderr lines as written, it is read on from the lines before ({@link WrappedBase64});
 * - each run of base32 characters (RFC 4648 §6, §7, either case) at its eight alignments;
 * - each list of byte values, as a byte array prints: decimal (Go's `%v`, Rust's `{:?}`) or
 *   two hex digits each (Node's `<Buffer …>`, Go's `% x`).
 * In base64, base32 and hex, a value's UTF-16 (either byte order) is looked for too.
 * Its hex, and a value that is itself hex, is searched for in any case (Go's `%X`, mixed), and
 * split over stream lines as the value as written is ({@link splitOver}; `xxd -p`).
 * A value is searched for as bytes in each decoding, and the characters that encode it are
 * blotted; a short value only where it stands alone ({@link MIN_ANYWHERE}). Linear in the
 * line: each search is `indexOf`, then a KMP scan while a match may go on overlapping
 * ({@link Needle}), or a fixed text between one-character look-arounds (nothing to backtrack
 * into).
 */
export type Redactor = ((line: string, upTo?: number) => string) & {
  longest: number
  /** How many of a line's last characters `lines()` reads for the next line (at most `longest`). */
  tail: number
  /**
   * A redacting function for the lines of one stream, one after the other: it also blots a
   * value split over two lines or more ({@link splitOver}); it holds the stream's last
   * characters, over the lines before (fewer than the longest value). `end`: the last `tail`
   * characters of a line handed over cut (its end as written, joined to the next line).
   */
  lines(): StreamRedactor
}

/** Redacts one stream's lines in turn ({@link Redactor.lines}). */
export type StreamRedactor = ((line: string, upTo?: number, end?: string) => string) & {
  /** A line not logged (dropped by a rate limit): only its end is kept, for the next line. */
  skip(line: string, end?: string): void
}

/**
 * A value shorter than this (in characters) is blotted only where it stands alone: not next
 * to a letter or digit on a side where it starts or ends with one. A 3-letter value blotted
 * inside every word would ruin the log and hides nothing an attacker could not guess.
 */
const MIN_ANYWHERE = 8

/**
 * Fewest characters (code points) of a value blotted at all. A one-character value cannot be
 * hidden: whoever reads the log finds it in under a hundred guesses. Blotting it would take
 * that character (a `-`, a `1`) out of every line the process writes. It is not refused when
 * set: a server may take a one-character setting through a user's secret, and exchanged or
 * upstream tokens do not pass through that check; the redactor has to decide either way.
 */
const MIN_VALUE = 2

/**
 * Fewest bytes of a value looked for inside base64 and hex: 3 bytes (4 characters of base64)
 * turn up by chance in any blob of a few kB; 4 bytes in about one of 4·10⁹ positions.
 */
const MIN_ENCODED_BYTES = 4

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

interface Secret {
  /** The value's UTF-8 bytes, one character per byte (as decoded text is searched). */
  readonly bytes: string
  readonly needle: Needle
  /** Set for a value blotted only where it stands alone (see {@link MIN_ANYWHERE}). */
  readonly alone: RegExp | undefined
  /** Looked for in base64 and byte lists. */
  readonly encoded: boolean
}

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
  // JSON-escaped forms of each value, looked for in base64 and base32 only ({@link jsonForms}).
  const json: Secret[] = []
  // Looked for split over two lines of a stream ({@link splitOver}).
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
    if (!short && !/[\r\n]/.test(v)) splitting.push(v)
    // UTF-16 (.NET's Encoding.Unicode, PowerShell's -EncodedCommand, Java's UTF_16BE) then
    // base64, base32 or hex: looked for in those only.
    // Not of mojibake: a process that decoded a value wrongly does not then write it so.
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
  const hexForms = [...hex].map((f) => new Needle(f))
  const inBytes = secrets.filter((s) => s.encoded)
  const inBase64 = [...inBytes, ...utf16, ...json]
  // Quoted-printable leaves a value of printable ASCII without `=` as it is (found as written).
  const quoted = secrets.some((s) => /[^ -<>-~]/.test(s.bytes))
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
  /** Collects the line's hits; gives back its base64 characters where values are looked for there. */
  const collect = (line: string, hits: Hits): Units | undefined => {
    for (const f of anywhere) f.each(line, (s, e) => hits.add(s, e))
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
    if (quoted && line.includes('=') && QUOTED.test(line))
      findInView(quotedView(line), secrets, (s, e) => hits.add(s, e))
    if (inBase64.length === 0) return undefined
    const units = base64Units(line)
    findBase64(line, units, inBase64, hits)
    findBase32(line, inBase64, hits)
    if (inBytes.length > 0) {
      findByteList(line, 10, inBytes, hits)
      findByteList(line, 16, inBytes, hits)
    }
    return units
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
        // Per value, how many of its first characters the stream ends with now, over as many
        // lines as they span (a KMP state carried from line to line, the line breaks left
        // out): a value wrapped over three lines or more has a line wholly inside it, and the
        // line after that one starts with the rest. A line cut before its end: its end as
        // written (`end`) sets it. A line not logged sets it too. Likewise the base64 the
        // stream ends with, for base64 wrapped over lines.
        const state = new Int32Array(split.length)
        const stateHex = new Int32Array(splitHex.length)
        if (inBase64.length > 0) openings ??= new Openings(inBase64)
        const wrapped = openings === undefined ? undefined : new WrappedBase64(openings, wrapKeep)
        const skip = (line: string, end?: string) => {
          split.forEach((n, i) => {
            const text = end ?? line
            const q = end === undefined ? state[i]! : 0
            // A quoted-printable soft line break, as in splitOver.
            state[i] = text.endsWith('=')
              ? Math.max(n.after(q, text), n.after(q, text.slice(0, -1)))
              : n.after(q, text)
          })
          if (splitHex.length > 0) {
            const lower = hexLower(end ?? line)
            splitHex.forEach((n, i) => {
              stateHex[i] = n.after(end === undefined ? stateHex[i]! : 0, lower)
            })
          }
          if (wrapped === undefined) return
          // Its last characters, enough for `wrapKeep` base64 ones: the line's run before
          // them does not change what is held.
          const text = (end ?? line).slice(-wrapRead)
          wrapped.read(text, base64Units(text))
        }
        return Object.assign(
          (line: string, upTo = line.length, end?: string) => {
            const hits = new Hits()
            const units = collect(line, hits)
            splitOver(split, state, line, hits)
            if (splitHex.length > 0) splitOver(splitHex, stateHex, hexLower(line), hits)
            if (units !== undefined) wrapped?.read(line, units, hits)
            if (end !== undefined) skip(line, end)
            return hits.blot(line, upTo)
          },
          { skip },
        )
      },
    },
  )
}

/**
 * A value split over two lines or more, as written (a server wrapping long lines, or printing
 * in two writes with a line break between): the line ending with its first characters, the
 * next ones with the rest. The lines before are logged already when the next comes (holding
 * every line back for the next would hold the log), so each line is read after the end of
 * the ones before (a KMP state per value, `state`, the line breaks left out):
 * - a line ending with the value's first half, or its first {@link MIN_ANYWHERE} characters
 *   if fewer, has them blotted (those on it): a line ending with that much of a value by
 *   chance is rare; a line wholly inside a value wrapped over three lines or more is so;
 * - a line starting with the rest of a value the lines before ended with is blotted there,
 *   however few characters that is.
 * A line ending with `=` is read with and without it (a quoted-printable soft line break:
 * a mail body wraps at 76 columns inside a word). What is left showing: fewer than
 * {@link MIN_ANYWHERE} of a value's first characters (and less than its half), where the line
 * break fell among them. Each value costs two scans of
 * the line, each at most the value's length.
 */
function splitOver(split: readonly Needle[], state: Int32Array, line: string, hits: Hits): void {
  split.forEach((n, i) => {
    const length = n.text.length
    const begun = state[i]!
    // The rest of a value the lines before began: a match ending among the line's first
    // characters that started before it.
    if (begun > 0)
      n.after(begun, line.slice(0, length - 1), (e) => {
        if (e < length) hits.add(0, e)
      })
    // Counted with the lines before: a line wholly inside the value (its middle, wrapped over
    // three lines or more) ends with its first characters once those before are counted.
    // RFC 2045 §6.7: a quoted-printable soft line break (`=` ending a line) is not in the
    // text; read without it too, the longer wins.
    const soft = line.endsWith('=') ? 1 : 0
    let ends = n.after(begun, line)
    if (soft) ends = Math.max(ends, n.after(begun, line.slice(0, -1)))
    state[i] = ends
    if (line.length > 0 && ends >= Math.min(MIN_ANYWHERE, Math.ceil(length / 2)))
      hits.add(Math.max(0, line.length - ends - soft), line.length)
  })
}

/**
 * A text to find, overlapping occurrences too: a value that repeats itself (`abab…`, a
 * doubled key) may be printed overlapping itself, and searching on from where a match ended
 * left the second copy's tail showing. `indexOf` finds a first match; a KMP scan then goes on
 * while a match may still continue, and hands back to `indexOf` once none can: linear.
 */
class Needle {
  /** For each prefix of the text, the length of its longest proper border. */
  private readonly fail: Int32Array
  constructor(readonly text: string) {
    this.fail = new Int32Array(text.length)
    for (let i = 1, k = 0; i < text.length; i++) {
      while (k > 0 && text.charCodeAt(i) !== text.charCodeAt(k)) k = this.fail[k - 1]!
      if (text.charCodeAt(i) === text.charCodeAt(k)) k++
      this.fail[i] = k
    }
  }

  /**
   * The most of the text's first characters (fewer than all of it) a stream ends with after
   * `hay`, when it ended with `q` of them before; `found` hears where in `hay` each match of
   * the whole text ends (exclusive). Reads no more of `hay` than the text's length before its
   * end: what came earlier cannot end a prefix of it.
   */
  after(q: number, hay: string, found?: (end: number) => void): number {
    const f = this.text
    let j = 0
    if (hay.length >= f.length - 1 && found === undefined) {
      q = 0
      j = hay.length - (f.length - 1)
    }
    for (; j < hay.length; j++) {
      const c = hay.charCodeAt(j)
      while (q > 0 && c !== f.charCodeAt(q)) q = this.fail[q - 1]!
      if (c === f.charCodeAt(q)) q++
      if (q === f.length) {
        found?.(j + 1)
        q = this.fail[q - 1]!
      }
    }
    return q
  }

  each(hay: string, found: (start: number, end: number) => void): void {
    const f = this.text
    const n = f.length
    // Without a border, two matches cannot overlap.
    if (this.fail[n - 1] === 0) {
      for (let i = hay.indexOf(f); i !== -1; i = hay.indexOf(f, i + n)) found(i, i + n)
      return
    }
    for (let i = hay.indexOf(f); i !== -1; ) {
      let q = 0
      let j = i
      for (; j < hay.length; j++) {
        const c = hay.charCodeAt(j)
        while (q > 0 && c !== f.charCodeAt(q)) q = this.fail[q - 1]!
        if (c === f.charCodeAt(q)) q++
        if (q === n) {
          found(j + 1 - n, j + 1)
          q = this.fail[n - 1]!
        } else if (q === 0) break
      }
      i = j + 1 >= hay.length ? -1 : hay.indexOf(f, j + 1)
    }
  }
}

/** `line` with its A to F lower-cased, each character where it was. */
function hexLower(line: string): string {
  const lower = line.toLowerCase()
  // toLowerCase writes a few characters (`İ`) as two: then A to F alone.
  return lower.length === line.length ? lower : line.replace(/[A-F]/g, (c) => c.toLowerCase())
}

/**
 * Each value and, for one with non-ASCII characters, the other forms a process may print it
 * in: composed and decomposed (NFC, NFD: macOS file names, a library that normalizes), with
 * each non-ASCII character as `?` (Java's and Python's ASCII encoders, a `?` a code point,
 * NFC and NFD) where that leaves at least {@link MIN_ANYWHERE} other characters, and its UTF-8
 * read as Latin-1 or Windows-1252 and written again (mojibake: `pÃ¤sswÃ¶rd`, a process or
 * library that decoded its input with the wrong charset): each form, and whether it is mojibake.
 */
function writtenForms(values: readonly string[]): Map<string, boolean> {
  const forms = new Map<string, boolean>()
  const add = (form: string, mojibake = false) =>
    forms.set(form, forms.get(form) === false ? false : mojibake)
  for (const v of values) {
    add(v)
    if (!/[\u0080-\u{10ffff}]/u.test(v)) continue
    for (const n of [v.normalize('NFC'), v.normalize('NFD')]) {
      add(n)
      const ascii = n.replace(/[\u0080-\u{10ffff}]/gu, '?')
      if (ascii.length - (ascii.match(/\?/g)?.length ?? 0) >= MIN_ANYWHERE) add(ascii)
      const latin1 = Buffer.from(n).toString('latin1')
      add(latin1, true)
      add(
        latin1.replace(/[\u0080-\u009f]/g, (c) => WINDOWS_1252[c.charCodeAt(0) - 0x80]!),
        true,
      )
    }
  }
  return forms
}

/**
 * Bytes 0x80 to 0x9F as Windows-1252 reads them (the WHATWG Encoding table; the five it leaves
 * undefined as their Latin-1 code point). Node's TextDecoder reads them as Latin-1.
 */
const WINDOWS_1252 = [
  ...'\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f',
  ...'\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178',
]

/**
 * A value inside a JSON string, where that is not the value as written: as JavaScript and
 * Java write it (`\"`, `\\`, control characters), as Python's json.dumps (`\u00e4` for each
 * non-ASCII character, a surrogate pair beyond U+FFFF), PHP's json_encode (that, and `\/`) and
 * Go's encoding/json (`\u003c` for `<`, `>`, `&`) write it. A line's base64 of JSON is read
 * unescaped too ({@link findUnescaped}), but only a form held whole is read on over base64
 * wrapped over lines ({@link WrappedBase64}).
 */
function jsonForms(v: string): Set<string> {
  const plain = JSON.stringify(v).slice(1, -1)
  const u = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  const python = plain.replace(/[\u0080-\uffff]/g, u)
  const forms = new Set([plain, python, python.replace(/\//g, '\\/'), plain.replace(/[<>&]/g, u)])
  forms.delete(v)
  return forms
}

/** Character ranges to blot; overlapping ones are blotted as one. */
class Hits {
  private readonly starts: number[] = []
  private readonly ends: number[] = []
  add(start: number, end: number): void {
    this.starts.push(start)
    this.ends.push(end)
  }
  /** The line's first `upTo` characters, each range starting among them blotted whole. */
  blot(line: string, upTo: number): string {
    if (this.starts.length === 0) return line.slice(0, upTo)
    const order = this.starts.map((_, i) => i).sort((a, b) => this.starts[a]! - this.starts[b]!)
    let out = ''
    let at = 0
    let i = 0
    while (i < order.length) {
      const start = this.starts[order[i]!]!
      if (start >= upTo) break
      let end = this.ends[order[i]!]!
      for (i++; i < order.length && this.starts[order[i]!]! < end; i++)
        end = Math.max(end, this.ends[order[i]!]!)
      out += `${line.slice(at, Math.max(at, start))}[redacted]`
      at = Math.max(at, end)
    }
    return out + line.slice(at, Math.max(at, upTo))
  }
}

/**
 * `text` where it stands alone: not after a letter or digit if it starts with one, not before
 * one if it ends with one. A fixed text between two one-character look-arounds: nothing to
 * backtrack into, so the scan is linear in the line.
 */
function standingAlone(text: string): RegExp {
  const word = /[A-Za-z0-9]/
  return new RegExp(
    (word.test(text[0]!) ? '(?<![A-Za-z0-9])' : '') +
      text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') +
      (word.test(text.at(-1)!) ? '(?![A-Za-z0-9])' : ''),
    'g',
  )
}

/** Each value found in `text` (decoded bytes, one character each): its start and end (exclusive). */
function findIn(
  text: string,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  for (const s of secrets) {
    if (s.alone !== undefined)
      for (const m of text.matchAll(s.alone)) found(m.index, m.index + m[0].length)
    else s.needle.each(text, found)
  }
}

/** A line decoded to bytes, each byte remembering where in the line its escape or character starts. */
interface View {
  bytes: Buffer
  from: Int32Array
  /** Where in the line the escape or character starting at `p` ends. */
  end(p: number): number
}

/** Each value found in a view's bytes: the range of the view's text that encodes it. */
function findInView(
  view: View,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  findIn(view.bytes.toString('latin1'), secrets, (s, e) =>
    found(view.from[s]!, view.end(view.from[e - 1]!)),
  )
}

/**
 * Each value found in `text` with its backslash escapes decoded, once and, where that leaves
 * some, twice: JSON inside JSON (a JSON log line's message quoting a JSON body) escapes a
 * value's `"`, `\`, PHP's `/` or Python's non-ASCII characters twice.
 */
function findUnescaped(
  text: string,
  raw: typeof rawChar,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  const once = unescapeView(text, raw)
  findInView(once, secrets, found)
  const decoded = once.bytes.toString('latin1')
  if (decoded.includes('\\'))
    findInView(unescapeView(decoded, rawByte), secrets, (s, e) =>
      found(once.from[s]!, once.end(once.from[e - 1]!)),
    )
}

/**
 * Each value found in `text` with its percent escapes decoded, once and, where that leaves
 * some, twice: a URL carried in another URL's query (`next=…%253D…`) is encoded twice.
 */
function findUnpercented(
  text: string,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  const once = percentView(text)
  findInView(once, secrets, found)
  const decoded = once.bytes.toString('latin1')
  if (decoded.includes('%'))
    findInView(percentView(decoded, rawByte), secrets, (s, e) =>
      found(once.from[s]!, once.end(once.from[e - 1]!)),
    )
}

/**
 * Each value found in `text` with its HTML and XML character references decoded, once and,
 * where that leaves some, twice (`&amp;#39;`: a page escaped twice).
 */
function findUnentitied(
  text: string,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  const once = entityView(text)
  findInView(once, secrets, found)
  const decoded = once.bytes.toString('latin1')
  if (decoded.includes('&'))
    findInView(entityView(decoded, rawByte), secrets, (s, e) =>
      found(once.from[s]!, once.end(once.from[e - 1]!)),
    )
}

/** Builds a view: `step(p, emit)` decodes the escape or character at `p` and returns where it ends. */
function decode(line: string, step: (p: number, emit: (b: number) => void) => number): View {
  // Every decoding here writes at most 3 bytes per character of the line (UTF-8 of a BMP one).
  const bytes = Buffer.allocUnsafe(line.length * 3)
  const from = new Int32Array(line.length * 3)
  let n = 0
  let p = 0
  const emit = (b: number) => {
    bytes[n] = b
    from[n++] = p
  }
  while (p < line.length) p = step(p, emit)
  return {
    bytes: bytes.subarray(0, n),
    from: from.subarray(0, n),
    end: (q) => step(q, () => {}),
  }
}

/** The byte at `p` of a text of bytes (one character each); returns where it ends. */
function rawByte(text: string, p: number, emit: (b: number) => void): number {
  emit(text.charCodeAt(p))
  return p + 1
}

/** The character (code point) at `p` as UTF-8; returns where it ends. */
function rawChar(line: string, p: number, emit: (b: number) => void): number {
  const cp = line.codePointAt(p)!
  utf8(cp, emit)
  return p + (cp > 0xffff ? 2 : 1)
}

function utf8(cp: number, emit: (b: number) => void): void {
  if (cp < 0x80) emit(cp)
  else if (cp < 0x800) {
    emit(0xc0 | (cp >> 6))
    emit(0x80 | (cp & 0x3f))
  } else if (cp < 0x10000) {
    emit(0xe0 | (cp >> 12))
    emit(0x80 | ((cp >> 6) & 0x3f))
    emit(0x80 | (cp & 0x3f))
  } else {
    emit(0xf0 | (cp >> 18))
    emit(0x80 | ((cp >> 12) & 0x3f))
    emit(0x80 | ((cp >> 6) & 0x3f))
    emit(0x80 | (cp & 0x3f))
  }
}

/** The value of `count` hex digits at `p`, or -1. */
function hexAt(line: string, p: number, count: number): number {
  if (p + count > line.length) return -1
  let v = 0
  for (let i = p; i < p + count; i++) {
    const c = line.charCodeAt(i)
    const d =
      c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
          ? c - 0x57
          : c >= 0x41 && c <= 0x46
            ? c - 0x37
            : -1
    if (d < 0) return -1
    v = v * 16 + d
  }
  return v
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
  '0': 0x00,
}

/**
 * Backslash escapes decoded: `\xNN` is a byte (a Python `b'…'`, Go's `%q` of invalid UTF-8;
 * so a Python str's repr of a non-printable U+0080–U+00FF as `\xNN` is not matched),
 * `\uXXXX` (a surrogate pair as one) and `\UXXXXXXXX` a code point; an unknown escape is left
 * as written.
 */
function unescapeView(line: string, raw = rawChar): View {
  return decode(line, (p, emit) => {
    if (line.charCodeAt(p) !== 0x5c || p + 1 >= line.length) return raw(line, p, emit)
    const d = line[p + 1]!
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

/** A line with a quoted-printable escape in it (upper-case hex, as RFC 2045 §6.7 has it). */
const QUOTED = /=[0-9A-F]{2}/

/**
 * Quoted-printable escapes decoded (`=3D`, `=C3=A4`: a mail body or MIME part a process logs).
 * Upper-case hex only, as encoders write it: `id=ab` is not an escape. A soft line break (`=`
 * ending a line) is a line break of stderr: not joined here.
 */
function quotedView(line: string): View {
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
const REFERENCE = /&(?:#|amp;|lt;|gt;|quot;|apos;|nbsp;)/

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

/** Sextet of each base64 character, either alphabet; -1 for any other. */
const SEXTET = new Int8Array(128).fill(-1)
for (let i = 0; i < 64; i++)
  SEXTET['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i
SEXTET[0x2d] = 62 // -
SEXTET[0x5f] = 63 // _

/** What {@link base64At} says of an escaped line break (`\n`, `%0A`, either with `\r`). */
const WRAP = 64

/** Fewest base64 characters before an escaped line break that make it a wrapped encoding's. */
const WRAPPED_RUN = 60

/**
 * The base64 character at `i`: its sextet (or {@link WRAP}) plus 128 times the characters it
 * takes, or -1. A `+` or `/` may be escaped, as a URL or form encoder (`%2B`, `%2F`, either
 * case) or PHP's json_encode (`\/`) writes base64 text: the run goes on through the escape.
 */
function base64At(line: string, i: number): number {
  const c = line.charCodeAt(i)
  if (c < 128 && SEXTET[c]! >= 0) return SEXTET[c]! + 128
  if (c === 0x25) {
    const b = hexAt(line, i + 1, 2)
    if (b === 0x2b) return 62 + 3 * 128
    if (b === 0x2f) return 63 + 3 * 128
    if (b === 0x0a || b === 0x0d) return WRAP + 3 * 128
  } else if (c === 0x5c) {
    const d = line.charCodeAt(i + 1)
    if (d === 0x2f) return 63 + 2 * 128
    if (d === 0x6e || d === 0x72) return WRAP + 2 * 128
  }
  return -1
}

/** A line's base64 characters ({@link base64Units}): runs of them, each ended by a -1. */
interface Units {
  /** Each character's sextet; -1 ends a run (one after the last run too). */
  sextets: Int8Array
  /** Where in the line each character starts and ends (escaped ones take 2 or 3). */
  starts: Int32Array
  ends: Int32Array
  count: number
}

/** The line's base64 characters, in runs (a run goes on through an escaped wrap, see {@link base64At}). */
function base64Units(line: string): Units {
  const sextets = new Int8Array(line.length + 1)
  const starts = new Int32Array(line.length + 1)
  const ends = new Int32Array(line.length + 1)
  let count = 0
  // Where the run being read starts.
  let run = 0
  for (let i = 0; i < line.length; ) {
    const at = base64At(line, i)
    // A run of base64 wrapped (MIME and Python's encodebytes every 76 characters) and then
    // escaped goes on past the line break.
    if (at >= 0 && (at & 127) === WRAP && count - run >= WRAPPED_RUN) {
      i += at >> 7
      continue
    }
    if (at < 0 || (at & 127) === WRAP) {
      if (count > 0 && sextets[count - 1]! >= 0) sextets[count++] = -1
      run = count
      i++
      continue
    }
    sextets[count] = at & 127
    starts[count] = i
    i += at >> 7
    ends[count++] = i
  }
  if (count === 0 || sextets[count - 1]! >= 0) sextets[count++] = -1
  return { sextets, starts, ends, count }
}

/**
 * Each run of base64 characters long enough to hold a value, decoded from each of its first
 * four characters (one of them is where the encoding's 4-character groups start); a value
 * found is blotted with the characters that hold any of its bits. Per alignment, the runs are
 * decoded into one text, a NUL between two (a word's edge), and searched once.
 */
function findBase64(line: string, units: Units, secrets: readonly Secret[], hits: Hits): void {
  searchUnits(units, secrets, (start, end) => hits.add(start, padded(line, end)))
}

/**
 * Decodes each run of `units` at its four alignments and searches the text for `secrets`
 * (and, where it holds a backslash, its escapes decoded: base64 of JSON); `found` hears the
 * first and the end of the characters holding a value's bits.
 */
function searchUnits(
  units: Units,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  let least = Number.POSITIVE_INFINITY
  for (const s of secrets) least = Math.min(least, s.bytes.length)
  const decoded = new Decoded(units.count)
  for (let k = 0; k < 4; k++) {
    const text = decoded.read(units, k, Math.ceil((least * 8) / 6))
    const { from, to } = decoded
    const at = (s: number, e: number) =>
      found(from[s]! >= 0 ? from[s]! : from[s + 1]!, from[e - 1]! >= 0 ? to[e - 1]! : to[e - 2]!)
    findIn(text, secrets, at)
    // Base64 of JSON: a value with escaped characters (see findUnescaped).
    if (text.includes('\\')) findUnescaped(text, rawByte, secrets, at)
  }
}

/** Bytes decoded from base64 runs, each remembering the characters that hold its bits. */
class Decoded {
  private readonly bytes: Buffer
  /** For each byte, the first and the end of the characters holding its bits; -1 for a NUL between runs. */
  readonly from: Int32Array
  readonly to: Int32Array
  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size)
    this.from = new Int32Array(size)
    this.to = new Int32Array(size)
  }

  /**
   * Each run of at least `shortest` characters past its first `k`, decoded from there (a NUL
   * after each): the text, one character a byte.
   */
  read(units: Units, k: number, shortest: number): string {
    const { sextets, starts, ends, count } = units
    const { bytes, from, to } = this
    let n = 0
    for (let i = 0; i < count; ) {
      let end = i
      while (sextets[end]! >= 0) end++
      if (end - i - k >= shortest) {
        let bits = 0
        let acc = 0
        for (let j = i + k; j < end; j++) {
          acc = ((acc << 6) | sextets[j]!) & 0xfff
          bits += 6
          if (bits >= 8) {
            bits -= 8
            bytes[n] = (acc >> bits) & 0xff
            from[n] = starts[j - 1]!
            to[n++] = ends[j]!
          }
        }
        bytes[n] = 0
        from[n++] = -1
      }
      i = end + 1
    }
    return bytes.toString('latin1', 0, n)
  }
}

/**
 * Base64 wrapped over stderr lines as written (MIME's 76 columns, PEM's 64, any width; a
 * `Basic` header or a JSON blob encoded then wrapped), for the lines of one stream: the stream's
 * last base64 characters are held (the run its last line ended with, over as many lines as it
 * spans, at most `keep` characters: the longest value's encoding and an alignment's 3), and
 * - a line starting (after spaces or tabs) with base64 is read on from them, decoded at the
 *   four alignments as {@link findBase64} does: the rest of a value the lines before began is
 *   blotted there, however little of it;
 * - a line ending with base64 (spaces or tabs after it aside) whose decoding, read on from the
 *   lines before, ends with a value's first half or first {@link MIN_ANYWHERE} bytes (at
 *   least {@link MIN_ENCODED_BYTES}), has the characters holding them blotted to its end: a
 *   line wholly inside a value's encoding, wrapped over three lines or more, is so.
 * What is left showing, as with a value split as written ({@link splitOver}): fewer than that
 * many of a value's first bytes, where the break fell among them. Each line costs a bounded
 * number of reads of at most `2 * keep` characters, however long it is: a value can start only
 * where its first two bytes stand, looked up in a table.
 */
class WrappedBase64 {
  /**
   * The stream's last base64 characters as sextets (its first `held`), when its last line
   * ended inside a run.
   */
  private readonly carry: Int8Array
  private held = 0
  private readonly decoded: Decoded
  /** A run read: held characters, then the line's. */
  private readonly run: Units
  constructor(
    private readonly openings: Openings,
    private readonly keep: number,
  ) {
    this.carry = new Int8Array(keep)
    this.decoded = new Decoded(2 * keep + 2)
    this.run = {
      sextets: new Int8Array(2 * keep + 2),
      starts: new Int32Array(2 * keep + 2),
      ends: new Int32Array(2 * keep + 2),
      count: 0,
    }
  }

  /** Reads `line` (`units`, its base64 characters) after the lines before; blots into `hits`. */
  read(line: string, units: Units, hits?: Hits): void {
    const { sextets, starts, ends, count } = units
    let lead = 0
    while (lead < line.length && isBlank(line.charCodeAt(lead))) lead++
    let trail = line.length
    while (trail > lead && isBlank(line.charCodeAt(trail - 1))) trail--
    // The line's first run, where it opens the line; its last, where it closes it.
    const opens = sextets[0]! >= 0 && starts[0] === lead
    let first = 0
    if (opens) while (sextets[first]! >= 0 && first < this.keep) first++
    const closes = count > 1 && sextets[count - 2]! >= 0 && ends[count - 2] === trail
    let last = count - 1
    if (closes) while (last > 0 && sextets[last - 1]! >= 0 && count - 1 - last < this.keep) last--
    // The line is one run: the stream's run goes on.
    const whole = opens && closes && last === 0
    if (hits !== undefined && this.held > 0 && opens) this.rest(line, lead, units, first, hits)
    if (!closes) {
      this.held = 0
      return
    }
    const tail = this.joined(lead, units, last, count - 1, whole)
    if (hits !== undefined) this.begins(line, tail, hits)
    const from = Math.max(0, tail.count - 1 - this.keep)
    this.carry.set(tail.sextets.subarray(from, tail.count - 1))
    this.held = tail.count - 1 - from
  }

  /** The rest of a value the lines before began: a match starting in them, ending in the line. */
  private rest(line: string, lead: number, units: Units, first: number, hits: Hits): void {
    const run = this.joined(lead, units, 0, first)
    const { from, to } = this.decoded
    for (let k = 0; k < 4; k++) {
      const text = this.decoded.read(run, k, 0).slice(0, -1)
      // Bytes starting among the held characters are placed at `lead` (and so is the line's first).
      for (let p = 0; p + 1 < text.length && from[p] === lead; p++)
        if (this.openings.may(text, p))
          this.openings.at(text, p, (s) => {
            const e = p + s.bytes.length
            if (text.startsWith(s.bytes, p) && to[e - 1]! > lead && standsAlone(s, text, p, e))
              hits.add(lead, padded(line, to[e - 1]!))
          })
      // Base64 of JSON: a value with escaped characters (see findUnescaped).
      if (/\\["\\/u]/.test(text))
        findUnescaped(text, rawByte, this.openings.secrets, (s, e) => {
          if (from[s] === lead && to[e - 1]! > lead) hits.add(lead, padded(line, to[e - 1]!))
        })
    }
  }

  /** A line ending with a value's first bytes: those on it blotted (see the class). */
  private begins(line: string, tail: Units, hits: Hits): void {
    for (let k = 0; k < 4; k++) {
      const text = this.decoded.read(tail, k, 0).slice(0, -1)
      const o = this.openings
      for (let p = Math.max(0, text.length - o.longest + 1); p + 1 < text.length; p++)
        if (o.may(text, p))
          o.at(text, p, (s, begun) => {
            const q = text.length - p
            if (q < s.bytes.length && q >= begun && s.bytes.startsWith(text.slice(p)))
              hits.add(this.decoded.from[p]!, line.length)
          })
    }
  }

  /**
   * Units `from` to `to` of the line, after the carried ones when `after` (these placed at
   * `lead`, where the line's run starts): one run.
   */
  private joined(lead: number, units: Units, from: number, to: number, after = true): Units {
    const out = this.run
    const held = after ? this.held : 0
    out.sextets.set(this.carry.subarray(0, held))
    out.starts.fill(lead, 0, held)
    out.ends.fill(lead, 0, held)
    out.sextets.set(units.sextets.subarray(from, to), held)
    out.starts.set(units.starts.subarray(from, to), held)
    out.ends.set(units.ends.subarray(from, to), held)
    out.count = held + (to - from) + 1
    out.sextets[out.count - 1] = -1
    return out
  }
}

/** Secrets by their first two bytes: where in a decoded text one may start, in a step a byte. */
class Openings {
  /** A bit for each pair of first bytes (`b0 << 8 | b1`) some secret opens with. */
  private readonly bits = new Uint32Array(2048)
  private readonly by = new Map<number, { s: Secret; begun: number }[]>()
  /** Most bytes of a secret. */
  readonly longest: number
  constructor(readonly secrets: readonly Secret[]) {
    for (const s of secrets) {
      const pair = (s.bytes.charCodeAt(0) << 8) | s.bytes.charCodeAt(1)
      this.bits[pair >> 5]! |= 1 << (pair & 31)
      // The fewest of its first bytes a line's end is blotted for (see WrappedBase64).
      const begun = Math.max(
        MIN_ENCODED_BYTES,
        Math.min(MIN_ANYWHERE, Math.ceil(s.bytes.length / 2)),
      )
      this.by.set(pair, [...(this.by.get(pair) ?? []), { s, begun }])
    }
    this.longest = Math.max(...secrets.map((s) => s.bytes.length))
  }

  /** Whether some secret may start at `p` of `text` (its first two bytes stand there). */
  may(text: string, p: number): boolean {
    const pair = (text.charCodeAt(p) << 8) | text.charCodeAt(p + 1)
    return (this.bits[pair >> 5]! & (1 << (pair & 31))) !== 0
  }

  /** Each secret whose first two bytes stand at `p` of `text`, with its `begun`. */
  at(text: string, p: number, found: (s: Secret, begun: number) => void): void {
    const pair = (text.charCodeAt(p) << 8) | text.charCodeAt(p + 1)
    if ((this.bits[pair >> 5]! & (1 << (pair & 31))) === 0) return
    for (const { s, begun } of this.by.get(pair)!) found(s, begun)
  }
}

/**
 * Whether bytes `p` to `e` of `text` holding `s` count: anywhere for a value of
 * {@link MIN_ANYWHERE} characters or more, else where it stands alone ({@link standingAlone}).
 */
function standsAlone(s: Secret, text: string, p: number, e: number): boolean {
  if (s.alone === undefined) return true
  const word = (i: number) => i >= 0 && i < text.length && isWordChar(text.charCodeAt(i))
  return !(
    (word(p) && word(p - 1)) ||
    (isWordChar(s.bytes.charCodeAt(s.bytes.length - 1)) && word(e))
  )
}

const isBlank = (c: number) => c === 0x20 || c === 0x09

/** A value ending an encoding takes its padding along (`=`, or `%3D` in a URL). */
function padded(line: string, end: number): number {
  for (let pad = 0; pad < 2; pad++)
    if (line.charCodeAt(end) === 0x3d) end++
    else if (line.charCodeAt(end) === 0x25 && hexAt(line, end + 1, 2) === 0x3d) end += 3
    else break
  return end
}

/** Quintet of each base32 character (RFC 4648 §6, §7 as `BASE32_HEX`), either case; -1 for any other. */
const BASE32 = new Int8Array(128).fill(-1)
const BASE32_HEX = new Int8Array(128).fill(-1)
for (let i = 0; i < 32; i++) {
  const c = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.charCodeAt(i)
  const h = '0123456789ABCDEFGHIJKLMNOPQRSTUV'.charCodeAt(i)
  BASE32[c] = BASE32[c | (c >= 0x41 ? 0x20 : 0)] = i
  BASE32_HEX[h] = BASE32_HEX[h | (h >= 0x41 ? 0x20 : 0)] = i
}

/**
 * Each run of base32 characters long enough to hold a value (TOTP seeds, Go's and Python's
 * b32encode, onion-style lower case), either alphabet, decoded from each of its first eight
 * characters (one is where the encoding's 8-character groups start); as {@link findBase64}.
 */
function findBase32(line: string, secrets: readonly Secret[], hits: Hits): void {
  let least = Number.POSITIVE_INFINITY
  for (const s of secrets) least = Math.min(least, s.bytes.length)
  const shortest = Math.ceil((least * 8) / 5)
  // Any run long enough, in either alphabet? Most lines have none, and pay one pass.
  let plain = false
  let hex = false
  for (let i = 0, run = 0, runHex = 0; i < line.length; i++) {
    const c = line.charCodeAt(i)
    run = c < 128 && BASE32[c]! >= 0 ? run + 1 : 0
    runHex = c < 128 && BASE32_HEX[c]! >= 0 ? runHex + 1 : 0
    plain ||= run >= shortest
    hex ||= runHex >= shortest
  }
  if (!plain && !hex) return
  const bytes = Buffer.allocUnsafe(line.length)
  // For each byte, the first and the last character holding its bits; -1 for a NUL.
  const from = new Int32Array(line.length)
  const to = new Int32Array(line.length)
  const quintet = (table: Int8Array, i: number) => {
    const c = line.charCodeAt(i)
    return c < 128 ? table[c]! : -1
  }
  for (const table of [plain ? BASE32 : undefined, hex ? BASE32_HEX : undefined]) {
    if (table === undefined) continue
    for (let k = 0; k < 8; k++) {
      let n = 0
      for (let i = 0; i < line.length; ) {
        let end = i
        while (end < line.length && quintet(table, end) >= 0) end++
        if (end - i - k >= shortest) {
          let bits = 0
          let acc = 0
          let first = i + k
          for (let j = i + k; j < end; j++) {
            acc = ((acc << 5) | quintet(table, j)) & 0xfff
            bits += 5
            if (bits >= 8) {
              bits -= 8
              bytes[n] = (acc >> bits) & 0xff
              from[n] = first
              to[n++] = j + 1
              first = bits > 0 ? j : j + 1
            }
          }
          bytes[n] = 0
          from[n++] = -1
        }
        i = end + 1
      }
      findIn(bytes.toString('latin1', 0, n), secrets, (s, e) => {
        const start = from[s]! >= 0 ? from[s]! : from[s + 1]!
        let end = from[e - 1]! >= 0 ? to[e - 1]! : to[e - 2]!
        // A value ending the encoding takes its padding along.
        for (let pad = 0; pad < 6 && line.charCodeAt(end) === 0x3d; pad++) end++
        hits.add(start, end)
      })
    }
  }
}

const isWordChar = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)

/**
 * Each list of at least 4 byte values, a comma, a space or two, or both between two, decoded:
 * `radix` 10, numbers of 1 to 3 digits up to 255 (Go's `%v` of a `[]byte`, Rust's `{:?}` of a
 * `Vec<u8>`); 16, numbers of 2 hex digits (Node's `<Buffer 70 61>`, Go's `% x`), or 1 or 2
 * after `0x` (a C array, Python's `hex()` of each byte), and a `:` or `-` between two too
 * (.NET's `BitConverter.ToString`, Python's `bytes.hex(':')`, OpenSSL and Java's
 * `HexFormat.ofDelimiter`). A number is a whole word. The lists are decoded into one text, a
 * NUL between two, and searched once.
 */
function findByteList(line: string, radix: 10 | 16, secrets: readonly Secret[], hits: Hits): void {
  const bytes = Buffer.allocUnsafe(line.length)
  // For each byte, where its number starts and ends in the line.
  const from = new Int32Array(line.length)
  const to = new Int32Array(line.length)
  let n = 0
  // The number at `p` (a whole word): its value and end, or undefined.
  const numberAt = (p: number): { value: number; end: number } | undefined => {
    if (p > 0 && isWordChar(line.charCodeAt(p - 1))) return undefined
    let end = p
    while (end < line.length && isWordChar(line.charCodeAt(end))) end++
    let value = -1
    if (radix === 16) {
      const prefixed = line.charCodeAt(p) === 0x30 && (line.charCodeAt(p + 1) | 0x20) === 0x78
      if (end - p === 2) value = hexAt(line, p, 2)
      else if (prefixed && end - p >= 3 && end - p <= 4) value = hexAt(line, p + 2, end - p - 2)
    } else if (end - p <= 3)
      for (let i = p; i < end; i++) {
        const d = line.charCodeAt(i) - 0x30
        if (d < 0 || d > 9) return undefined
        value = (value < 0 ? 0 : value * 10) + d
      }
    return value >= 0 && value <= 255 ? { value, end } : undefined
  }
  for (let p = 0; p < line.length; ) {
    let at = numberAt(p)
    if (at === undefined) {
      p++
      continue
    }
    const first = n
    for (;;) {
      bytes[n] = at.value
      from[n] = p
      to[n++] = at.end
      p = at.end
      // A comma (or in hex a colon or a hyphen), a space or two, or both between two numbers
      // (at most WIDEST_ENCODING characters a byte, as a caller cutting a line counts on).
      let q = p
      const c = line.charCodeAt(q)
      if (c === 0x2c || (radix === 16 && (c === 0x3a || c === 0x2d))) q++
      for (let k = 0; k < 2 && line.charCodeAt(q) === 0x20; k++) q++
      const next = q > p ? numberAt(q) : undefined
      if (next === undefined) break
      at = next
      p = q
    }
    if (n - first < MIN_ENCODED_BYTES) n = first
    else {
      bytes[n] = 0
      from[n++] = -1
    }
  }
  findIn(bytes.toString('latin1', 0, n), secrets, (s, e) => {
    const start = from[s]! >= 0 ? from[s]! : from[s + 1]!
    hits.add(start, from[e - 1]! >= 0 ? to[e - 1]! : to[e - 2]!)
  })
}
