/**
 * A line decoded to bytes that remember where in the line they came from (a view), and the
 * search of a view for values, giving back the line's characters that encode each.
 */
import { findIn, type Secret } from './redact-secret.js'

/** A line decoded to bytes, each byte remembering where in the line its escape or character starts. */
export interface View {
  bytes: Buffer
  from: Int32Array
  /** Where in the line the escape or character starting at `p` ends. */
  end(p: number): number
}

/** Each value found in a view's bytes: the range of the view's text that encodes it. */
export function findInView(
  view: View,
  secrets: readonly Secret[],
  found: (start: number, end: number) => void,
): void {
  findIn(view.bytes.toString('latin1'), secrets, (s, e) =>
    found(view.from[s]!, view.end(view.from[e - 1]!)),
  )
}

/** Builds a view: `step(p, emit)` decodes the escape or character at `p` and returns where it ends. */
export function decode(line: string, step: (p: number, emit: (b: number) => void) => number): View {
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
export function rawByte(text: string, p: number, emit: (b: number) => void): number {
  emit(text.charCodeAt(p))
  return p + 1
}

/** The character (code point) at `p` as UTF-8; returns where it ends. */
export function rawChar(line: string, p: number, emit: (b: number) => void): number {
  const cp = line.codePointAt(p)!
  utf8(cp, emit)
  return p + (cp > 0xffff ? 2 : 1)
}

export function utf8(cp: number, emit: (b: number) => void): void {
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
