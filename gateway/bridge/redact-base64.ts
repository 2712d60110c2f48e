/**
 * Base64 in a line (either alphabet, through escaped `+`, `/` and wrapped line breaks):
 * its characters in runs, decoded at the four alignments and searched for a value.
 */
import { findUnescaped } from './redact-escapes.js'
import { hexAt } from './redact-hex.js'
import type { Hits } from './redact-hits.js'
import { findIn, type Secret } from './redact-secret.js'
import { rawByte } from './redact-view.js'

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
export interface Units {
  /** Each character's sextet; -1 ends a run (one after the last run too). */
  sextets: Int8Array
  /** Where in the line each character starts and ends (escaped ones take 2 or 3). */
  starts: Int32Array
  ends: Int32Array
  count: number
}

/** The line's base64 characters, in runs (a run goes on through an escaped wrap, see {@link base64At}). */
export function base64Units(line: string): Units {
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
export function findBase64(
  line: string,
  units: Units,
  secrets: readonly Secret[],
  hits: Hits,
): void {
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
export class Decoded {
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

/** A value ending an encoding takes its padding along (`=`, or `%3D` in a URL). */
export function padded(line: string, end: number): number {
  for (let pad = 0; pad < 2; pad++)
    if (line.charCodeAt(end) === 0x3d) end++
    else if (line.charCodeAt(end) === 0x25 && hexAt(line, end + 1, 2) === 0x3d) end += 3
    else break
  return end
}
