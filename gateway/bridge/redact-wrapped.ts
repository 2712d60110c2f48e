/**
 * Base64 wrapped over the lines of one stream: the stream's last base64 characters carried
 * from line to line, a value's rest or beginning blotted where the break fell.
 */
import { Decoded, padded, type Units } from './redact-base64.js'
import { findUnescaped } from './redact-escapes.js'
import type { Hits } from './redact-hits.js'
import { MIN_ANYWHERE, MIN_ENCODED_BYTES, type Secret, standsAlone } from './redact-secret.js'
import { rawByte } from './redact-view.js'

/**
 * Base64 wrapped over stderr lines as written (MIME's 76 columns, PEM's 64, any width; a
 * `Basic` header or a JSON blob encoded then wrapped), for the lines of one stream: the stream's
 * last base64 characters are held (the run its last line ended with, over as many lines as it
 * spans, at most `keep` characters: the longest value's encoding and an alignment's 3), and
 * - a line starting (after spaces or tabs) with base64 is read on from them, decoded at the
 *   four alignments as {@link findBase64} does: the rest of a value the lines before began is
 *   blotted there, however little of it;
 * - a line ending with base64 (spaces or tabs, or a continued line's `\`, after it aside) whose decoding, read on from the
 *   lines before, ends with a value's first half or first {@link MIN_ANYWHERE} bytes (at
 *   least {@link MIN_ENCODED_BYTES}), has the characters holding them blotted to its end: a
 *   line wholly inside a value's encoding, wrapped over three lines or more, is so.
 * What is left showing, as with a value split as written ({@link SplitOver}): fewer than that
 * many of a value's first bytes, where the break fell among them. Each line costs a bounded
 * number of reads of at most `2 * keep` characters, however long it is: a value can start only
 * where its first two bytes stand, looked up in a table.
 */
export class WrappedBase64 {
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
    // A continued line's `\` (a shell command, a C string) is no end of the run.
    if (trail > lead && line.charCodeAt(trail - 1) === 0x5c) trail--
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
export class Openings {
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

const isBlank = (c: number) => c === 0x20 || c === 0x09
