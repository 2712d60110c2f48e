/**
 * The lines of one stream redacted in turn: a value split over two lines or more, as written
 * or as its hex, and base64 wrapped over lines, blotted from state carried between lines.
 */
import { base64Units, type Units } from './redact-base64.js'
import { type Dump, DumpStream, parseDump } from './redact-dump.js'
import { hexLower } from './redact-hex.js'
import { Hits } from './redact-hits.js'
import type { Needle } from './redact-needle.js'
import { SplitOver } from './redact-split.js'
import { type Openings, WrappedBase64 } from './redact-wrapped.js'

/** Redacts one stream's lines in turn ({@link Redactor.lines}). */
export type StreamRedactor = ((line: string, upTo?: number, end?: string) => string) & {
  /** A line not logged (dropped by a rate limit): only its end is kept, for the next line. */
  skip(line: string, end?: string): void
}

/** What a redactor hands each of its streams (built once for all of them, see `redactor`). */
export interface StreamReading {
  /** Values looked for split over lines as written ({@link SplitOver}). */
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
  const state = new SplitOver(split)
  const stateHex = new SplitOver(splitHex)
  const wrapped = openings === undefined ? undefined : new WrappedBase64(openings, wrapKeep)
  // A hex dump's bytes, read on over its lines (the values looked for in base64).
  const dumps = openings === undefined ? undefined : new DumpStream(openings.secrets)
  const skip = (line: string, end?: string) => {
    state.read(end ?? line, undefined, end !== undefined)
    if (splitHex.length > 0) stateHex.read(hexLower(end ?? line), undefined, end !== undefined)
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
      state.read(line, hits)
      if (splitHex.length > 0) stateHex.read(hexLower(line), hits)
      if (units !== undefined) wrapped?.read(line, units, hits)
      if (end !== undefined) skip(line, end)
      else dumps?.read(dump, hits)
      return hits.blot(line, upTo)
    },
    { skip },
  )
}
