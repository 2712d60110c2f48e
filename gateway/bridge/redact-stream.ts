/**
 * The lines of one stream redacted in turn: a value split over two lines or more, as written
 * or as its hex, and base64 wrapped over lines, blotted from state carried between lines.
 */
import { base64Units, type Units } from './redact-base64.js'
import { type Dump, DumpStream, parseDump } from './redact-dump.js'
import { hexLower } from './redact-hex.js'
import { Hits } from './redact-hits.js'
import type { Needle } from './redact-needle.js'
import { MIN_ANYWHERE } from './redact-secret.js'
import { type Openings, WrappedBase64 } from './redact-wrapped.js'

/** Redacts one stream's lines in turn ({@link Redactor.lines}). */
export type StreamRedactor = ((line: string, upTo?: number, end?: string) => string) & {
  /** A line not logged (dropped by a rate limit): only its end is kept, for the next line. */
  skip(line: string, end?: string): void
}

/** What a redactor hands each of its streams (built once for all of them, see `redactor`). */
export interface StreamReading {
  /** Values looked for split over lines as written ({@link splitOver}). */
  readonly split: readonly Needle[]
  /** Values' hex, looked for split over lines in the line with its A to F lower-cased. */
  readonly splitHex: readonly Needle[]
  /** The values looked for in base64, by their first bytes; undefined where none is. */
  readonly openings: Openings | undefined
  /** Base64 characters of a stream's end held for its next line ({@link WrappedBase64}). */
  readonly wrapKeep: number
  /** The line characters that hold them. */
  readonly wrapRead: number
  /** Collects the line's hits; gives back what it read of the line that the next lines go on from. */
  readonly collect: (line: string, hits: Hits) => LineRead
}

/** What `collect` read of a line: its base64 characters and its hex dump, where values are looked for there. */
export interface LineRead {
  readonly units?: Units
  readonly dump?: Dump
}

/** A redacting function for the lines of one stream, one after the other ({@link Redactor.lines}). */
export function streamRedactor(reading: StreamReading): StreamRedactor {
  const { split, splitHex, openings, wrapKeep, wrapRead, collect } = reading
  // Per value, how many of its first characters the stream ends with now, over as many
  // lines as they span (a KMP state carried from line to line, the line breaks left
  // out): a value wrapped over three lines or more has a line wholly inside it, and the
  // line after that one starts with the rest. A line cut before its end: its end as
  // written (`end`) sets it. A line not logged sets it too. Likewise the base64 the
  // stream ends with, for base64 wrapped over lines.
  const state = new Int32Array(split.length)
  const stateHex = new Int32Array(splitHex.length)
  const wrapped = openings === undefined ? undefined : new WrappedBase64(openings, wrapKeep)
  // A hex dump's bytes, read on over its lines (the values looked for in base64).
  const dumps = openings === undefined ? undefined : new DumpStream(openings.secrets)
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
    dumps?.read(end === undefined ? parseDump(line) : undefined)
    if (wrapped === undefined) return
    // Its last characters, enough for `wrapKeep` base64 ones: the line's run before
    // them does not change what is held.
    const text = (end ?? line).slice(-wrapRead)
    wrapped.read(text, base64Units(text))
  }
  return Object.assign(
    (line: string, upTo = line.length, end?: string) => {
      const hits = new Hits()
      const { units, dump } = collect(line, hits)
      splitOver(split, state, line, hits)
      if (splitHex.length > 0) splitOver(splitHex, stateHex, hexLower(line), hits)
      if (units !== undefined) wrapped?.read(line, units, hits)
      if (end !== undefined) skip(line, end)
      else dumps?.read(dump, hits)
      return hits.blot(line, upTo)
    },
    { skip },
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
