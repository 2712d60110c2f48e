/**
 * Formatted hex dumps (`xxd`, `hexdump -C`, `od -A x -t x1z`, `hexdump`, `od -x`, tcpdump's
 * `-X`, Python's hexdump): a line's bytes read from its hex groups, past its offset column and
 * its text column, and read on over the lines of a stream; a value's hex and its text-column
 * characters are blotted together.
 */
import { hexAt } from './redact-hex.js'
import type { Hits } from './redact-hits.js'
import { findIn, MIN_ENCODED_BYTES, type Secret } from './redact-secret.js'

/** Longest line read as a dump's (`xxd -c 256` writes about 900 characters a line). */
const MAX_DUMP_LINE = 1024

/**
 * Most places in a line a dump is looked for at (see {@link parseDump}): a line of decoys costs
 * at most so many parses of at most {@link MAX_DUMP_LINE} characters.
 */
const MAX_TRIES = 32

/** A dump line's bytes read one way: as written, or each group's bytes reversed. */
export interface Reading {
  /** The bytes, one character each. */
  readonly text: string
  /** For each byte, where its two hex digits start in the line. */
  readonly hex: Int32Array
  /** For each byte, its character in the line's text column, or -1 where it has none. */
  readonly column: Int32Array
}

/**
 * A line of a hex dump: its bytes as written and, where a group holds more than one byte,
 * each group's bytes reversed (`hexdump` and `od -x` print 16-bit little-endian words,
 * `xxd -e` 32-bit ones). A text column is in the bytes' order in memory, either reading's.
 */
export type Dump = readonly Reading[]

/**
 * The line read as a hex dump's, or undefined: an offset (hex or decimal digits, `0x` before
 * them or not, `:` after them or not; none at all where every token is a group), then groups
 * of hex digits, two a byte (`7b`, `7b22`, `7b22746f`), a blank or more between two, then
 * nothing, or a text column of one character a byte after two blanks or more (`xxd`, Python),
 * or between `|` (`hexdump -C`) or `>` and `<` (`od -t x1z`). Any prefix may come before (a
 * timestamp, a logger's name, hex-looking words): the dump is looked for at each token that
 * may be an offset (digits and `:`; digits of another width than the group before), and at
 * each run of groups' first; at most {@link MAX_TRIES} of them.
 */
export function parseDump(line: string): Dump | undefined {
  if (line.length > MAX_DUMP_LINE) return undefined
  let tries = 0
  // The width of the token before, where it was a group (hex digits, an even number).
  let before = 0
  for (let p = 0; p < line.length && tries < MAX_TRIES; ) {
    let e = p
    while (e < line.length && !isBlank(line.charCodeAt(e))) e++
    if (e === p) {
      p++
      continue
    }
    let q = line.startsWith('0x', p) || line.startsWith('0X', p) ? p + 2 : p
    const digits = q
    while (q < e && hexDigit(line.charCodeAt(q)) >= 0) q++
    const width = q - digits
    const colon = width > 0 && q === e - 1 && line.charCodeAt(q) === 0x3a
    const group = width > 0 && q === e && digits === p && width % 2 === 0 && width <= 16
    // An offset, or a run's first group: not a group inside a run of groups as wide.
    if (colon || (width > 0 && q === e && (!group || width !== before))) {
      tries++
      const dump = parseAt(line, p)
      if (dump !== undefined) return dump
    }
    before = group ? width : 0
    p = e
  }
  return undefined
}

function parseAt(line: string, p: number): Dump | undefined {
  // Tokens: runs of non-blank characters, as long as they are hex.
  const starts: number[] = []
  const ends: number[] = []
  let i = p
  // The offset: `0x` before it or not, `:` after it or not.
  let q = line.startsWith('0x', i) || line.startsWith('0X', i) ? i + 2 : i
  const digits = q
  while (q < line.length && hexDigit(line.charCodeAt(q)) >= 0) q++
  const colon = line.charCodeAt(q) === 0x3a
  if (q === digits || (!colon && q < line.length && !isBlank(line.charCodeAt(q)))) return undefined
  const offsetLength = q - digits
  const offsetEnd = colon ? q + 1 : q
  i = offsetEnd
  for (;;) {
    let s = i
    while (s < line.length && isBlank(line.charCodeAt(s))) s++
    if (s === i || s === line.length) break
    let e = s
    while (e < line.length && hexDigit(line.charCodeAt(e)) >= 0) e++
    if (e < line.length && !isBlank(line.charCodeAt(e))) break
    if ((e - s) % 2 !== 0 || e - s > 16) break
    starts.push(s)
    ends.push(e)
    i = e
  }
  // No `:` and the same width as the groups: it is a group too (no offset column).
  const withOffset =
    colon || (offsetLength >= 4 && (starts.length === 0 || ends[0]! - starts[0]! !== offsetLength))
  if (!withOffset) {
    if (offsetLength % 2 !== 0 || offsetLength > 16 || digits !== p) return undefined
    starts.unshift(p)
    ends.unshift(q)
  }
  if (starts.length === 0) return undefined
  let bytes = 0
  for (let j = 0; j < starts.length; j++) bytes += (ends[j]! - starts[j]!) / 2
  // The hex area is groups 0 to j; what follows, the text column. Text-column characters may
  // look like groups (`abcd`, `0008000000000000`): tried from the last group back, and only
  // where none is one, the line taken to have no text column.
  const all = bytes
  for (let j = starts.length - 1; j >= 0; j--) {
    const at = textColumn(line, ends[j]!, bytes)
    if (at !== undefined) return readings(line, starts.slice(0, j + 1), ends, bytes, at)
    bytes -= (ends[j]! - starts[j]!) / 2
  }
  return blanks(line, ends.at(-1)!, line.length, 0)
    ? readings(line, starts, ends, all, -1)
    : undefined
}

/** Whether `line` from `from` to `to` is blanks, at least `least` of them. */
function blanks(line: string, from: number, to: number, least: number): boolean {
  if (to - from < least) return false
  for (let k = from; k < to; k++) if (!isBlank(line.charCodeAt(k))) return false
  return true
}

/** Where the text column of `bytes` characters after `after` starts, or undefined where none is. */
function textColumn(line: string, after: number, bytes: number): number | undefined {
  const last = line.charCodeAt(line.length - 1)
  const open = line.length - bytes - 2
  if (
    open >= after &&
    ((last === 0x7c && line.charCodeAt(open) === 0x7c) ||
      (last === 0x3c && line.charCodeAt(open) === 0x3e)) &&
    blanks(line, after, open, 1)
  )
    return open + 1
  if (line.length - bytes >= after && blanks(line, after, line.length - bytes, 2))
    return line.length - bytes
  return undefined
}

function readings(
  line: string,
  starts: readonly number[],
  ends: readonly number[],
  bytes: number,
  column: number,
): Dump {
  const read = (reversed: boolean): Reading => {
    const text = Buffer.allocUnsafe(bytes)
    const hex = new Int32Array(bytes)
    const col = new Int32Array(bytes)
    let n = 0
    for (let j = 0; j < starts.length; j++) {
      const count = (ends[j]! - starts[j]!) / 2
      for (let k = 0; k < count; k++) {
        const at = starts[j]! + 2 * (reversed ? count - 1 - k : k)
        text[n] = hexAt(line, at, 2)
        hex[n] = at
        col[n] = column < 0 ? -1 : column + n
        n++
      }
    }
    return { text: text.toString('latin1'), hex, column: col }
  }
  const wide = starts.some((s, j) => ends[j]! - s > 2)
  return wide ? [read(false), read(true)] : [read(false)]
}

/** Each value found in a dump line on its own: its hex and its text-column characters blotted. */
export function findInDump(dump: Dump, secrets: readonly Secret[], hits: Hits): void {
  for (const reading of dump)
    findIn(reading.text, secrets, (s, e) => blotBytes(reading, s, e, hits))
}

/** Blots bytes `from` to `to` of a reading: their hex digits, their text-column characters. */
function blotBytes(reading: Reading, from: number, to: number, hits: Hits): void {
  let first = Number.POSITIVE_INFINITY
  let last = -1
  for (let b = from; b < to; b++) {
    first = Math.min(first, reading.hex[b]!)
    last = Math.max(last, reading.hex[b]! + 2)
  }
  hits.add(first, last)
  if (reading.column[from]! >= 0) hits.add(reading.column[from]!, reading.column[to - 1]! + 1)
}

/**
 * A hex dump over the lines of one stream (16 bytes a line, a value's bytes over two lines or
 * more, its text column showing it in pieces): the dump's bytes read on from line to line,
 * per value and reading a KMP state of how many of its first bytes the dump ended with (the
 * offsets and text columns left out), as {@link SplitOver} reads a value split as written:
 * - a dump line starting with the rest of a value the lines before began is blotted there,
 *   however little of it;
 * - a dump line ending with a value's first {@link MIN_ENCODED_BYTES} bytes or more (counted
 *   over the lines before) has them blotted, hex and text column: fewer than 4 of a value's
 *   first bytes may show, where the line break fell among them.
 * A line that is no dump's ends the dump. Each line costs two scans per value of at most its
 * length; a value shorter than 8 characters (blotted only standing alone) is not read on.
 */
export class DumpStream {
  private readonly states: Int32Array[]
  private readonly secrets: readonly Secret[]
  constructor(secrets: readonly Secret[]) {
    this.secrets = secrets.filter((s) => s.alone === undefined)
    this.states = [new Int32Array(this.secrets.length), new Int32Array(this.secrets.length)]
  }

  /** Reads a line (`dump`, undefined where it is none) after the ones before; blots into `hits`. */
  read(dump: Dump | undefined, hits?: Hits): void {
    for (let r = 0; r < this.states.length; r++) {
      const state = this.states[r]!
      const reading = dump?.[r]
      if (reading === undefined) {
        state.fill(0)
        continue
      }
      const text = reading.text
      this.secrets.forEach((s, i) => {
        const length = s.bytes.length
        const begun = state[i]!
        if (hits !== undefined && begun > 0)
          s.needle.after(begun, text.slice(0, length - 1), (e) => {
            if (e < length) blotBytes(reading, 0, e, hits)
          })
        const ends = s.needle.after(begun, text)
        state[i] = ends
        if (hits !== undefined && text.length > 0 && ends >= MIN_ENCODED_BYTES)
          blotBytes(reading, Math.max(0, text.length - ends), text.length, hits)
      })
    }
  }
}

const isBlank = (c: number) => c === 0x20 || c === 0x09

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  return -1
}
