/** A value split over the lines of one stream as written (or as its hex), blotted from state carried between lines. */
import type { Hits } from './redact-hits.js'
import type { Needle } from './redact-needle.js'
import { MIN_ANYWHERE } from './redact-secret.js'

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
export function splitOver(
  split: readonly Needle[],
  state: Int32Array,
  line: string,
  hits: Hits,
): void {
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
