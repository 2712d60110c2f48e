/**
 * What a secret is to the redactor (its bytes, its needle, whether it counts only standing
 * alone) and how one is found in a decoded text: the thresholds every reading shares.
 */
import type { Needle } from './redact-needle.js'

/**
 * A value shorter than this (in characters) is blotted only where it stands alone: not next
 * to a letter or digit on a side where it starts or ends with one. A 3-letter value blotted
 * inside every word would ruin the log and hides nothing an attacker could not guess.
 */
export const MIN_ANYWHERE = 8

/**
 * Fewest bytes of a value looked for inside base64 and hex: 3 bytes (4 characters of base64)
 * turn up by chance in any blob of a few kB; 4 bytes in about one of 4·10⁹ positions.
 */
export const MIN_ENCODED_BYTES = 4

export interface Secret {
  /** The value's UTF-8 bytes, one character per byte (as decoded text is searched). */
  readonly bytes: string
  readonly needle: Needle
  /** Set for a value blotted only where it stands alone (see {@link MIN_ANYWHERE}). */
  readonly alone: RegExp | undefined
  /** Looked for in base64 and byte lists. */
  readonly encoded: boolean
}

/**
 * `text` where it stands alone: not after a letter or digit if it starts with one, not before
 * one if it ends with one. A fixed text between two one-character look-arounds: nothing to
 * backtrack into, so the scan is linear in the line.
 */
export function standingAlone(text: string): RegExp {
  const word = /[A-Za-z0-9]/
  return new RegExp(
    (word.test(text[0]!) ? '(?<![A-Za-z0-9])' : '') +
      text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') +
      (word.test(text.at(-1)!) ? '(?![A-Za-z0-9])' : ''),
    'g',
  )
}

/** Each value found in `text` (decoded bytes, one character each): its start and end (exclusive). */
export function findIn(
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

/**
 * Whether bytes `p` to `e` of `text` holding `s` count: anywhere for a value of
 * {@link MIN_ANYWHERE} characters or more, else where it stands alone ({@link standingAlone}).
 */
export function standsAlone(s: Secret, text: string, p: number, e: number): boolean {
  if (s.alone === undefined) return true
  const word = (i: number) => i >= 0 && i < text.length && isWordChar(text.charCodeAt(i))
  return !(
    (word(p) && word(p - 1)) ||
    (isWordChar(s.bytes.charCodeAt(s.bytes.length - 1)) && word(e))
  )
}

export const isWordChar = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
