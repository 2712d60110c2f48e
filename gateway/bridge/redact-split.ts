/**
 * Values split over the lines of one stream as written, or their hex: a KMP state per value
 * carried from line to line.
 */
import type { Hits } from './redact-hits.js'
import type { Needle } from './redact-needle.js'
import { MIN_ANYWHERE } from './redact-secret.js'

/**
 * A value split over two lines or more, as written (a server wrapping long lines, or printing
 * in two writes with a line break between): the line ending with its first characters, the
 * next ones with the rest. The lines before are logged already when the next comes (holding
 * every line back for the next would hold the log), so each line is read after the end of
 * the ones before (a KMP state per value, the line breaks left out):
 * - a line ending with the value's first half, or its first characters of
 *   {@link MIN_ANYWHERE} bytes if fewer, has them blotted (those on it): a line ending with
 *   that much of a value by chance is rare; a line wholly inside a value wrapped over three
 *   lines or more is so;
 * - a line starting with the rest of a value the lines before ended with is blotted there,
 *   however few characters that is, and so is one starting with it after blanks (an
 *   indented continuation line).
 * A line ending with `=` (a quoted-printable soft line break: a mail body wraps at 76 columns
 * inside a word) or `\` (a continued line: a shell command, a C macro, a Python or Makefile
 * line) is read with and without it: both states are kept (a value may hold `=` or `\`, and
 * the break fall just before it), the two longest. What is left showing: fewer than
 * {@link MIN_ANYWHERE} bytes of a value's first characters (and less than its half), where
 * the line break fell among them. Each value costs at most two scans of the line per state,
 * each at most the value's length.
 */
export class SplitOver {
  /** Per value, the most of its first characters the stream ends with, and another reading's. */
  private readonly state: Int32Array
  private readonly other: Int32Array
  /** Per value, the fewest of its first characters a line's end is blotted for. */
  private readonly least: Int32Array
  constructor(private readonly values: readonly Needle[]) {
    this.state = new Int32Array(values.length)
    this.other = new Int32Array(values.length)
    this.least = new Int32Array(values.map((n) => fewest(n.text)))
  }

  /**
   * Reads `line` after the lines before (none where `fresh`: the end of a line cut, read on
   * its own), blotting into `hits` where given.
   */
  read(line: string, hits?: Hits, fresh = false): void {
    const last = line.charCodeAt(line.length - 1)
    const soft = last === 0x3d || last === 0x5c
    let lead = 0
    while (lead < line.length && isBlank(line.charCodeAt(lead))) lead++
    if (lead === line.length) lead = 0
    this.values.forEach((n, i) => {
      const length = n.text.length
      const a = fresh ? 0 : this.state[i]!
      const b = fresh ? 0 : this.other[i]!
      const states = b > 0 && b !== a ? [a, b] : [a]
      // The rest of a value the lines before began: a match ending among the line's first
      // characters (after its blanks, or not) that started before it.
      if (hits !== undefined)
        for (const begun of states)
          if (begun > 0)
            for (const start of lead > 0 ? [0, lead] : [0])
              n.after(begun, line.slice(start, start + length - 1), (e) => hits.add(0, start + e))
      // Counted with the lines before: a line wholly inside the value (its middle, wrapped over
      // three lines or more) ends with its first characters once those before are counted.
      let best = 0
      let second = 0
      const end = (q: number, from: number, to: number) => {
        const ends = n.after(q, line.slice(from, to))
        if (hits !== undefined && to > 0 && ends >= this.least[i]!)
          hits.add(Math.max(0, to - ends), line.length)
        if (ends > best) [best, second] = [ends, best]
        else if (ends > second && ends !== best) second = ends
      }
      for (const q of states) {
        end(q, 0, line.length)
        if (soft) end(q, 0, line.length - 1)
        // Indented, and shorter than the value: the blanks may not be in it.
        if (lead > 0 && line.length - lead < length - 1) {
          end(q, lead, line.length)
          if (soft) end(q, lead, line.length - 1)
        }
      }
      this.state[i] = best
      this.other[i] = second
    })
  }
}

/**
 * The fewest of a value's first characters a line's end is blotted for: its half, or as many
 * as make {@link MIN_ANYWHERE} bytes if fewer (a non-ASCII character is 2 to 4).
 */
function fewest(text: string): number {
  let bytes = 0
  let k = 0
  while (k < text.length && bytes < MIN_ANYWHERE) bytes += Buffer.byteLength(text[k++]!)
  return Math.min(k, Math.ceil(text.length / 2))
}

const isBlank = (c: number) => c === 0x20 || c === 0x09
