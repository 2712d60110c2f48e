/**
 * Hex in a line: its digits read either case, and lists of byte values (decimal, or hex with
 * or without separators) decoded and searched for a value.
 */
import type { Hits } from './redact-hits.js'
import { findIn, isWordChar, MIN_ENCODED_BYTES, type Secret } from './redact-secret.js'

/** `line` with its A to F lower-cased, each character where it was. */
export function hexLower(line: string): string {
  const lower = line.toLowerCase()
  // toLowerCase writes a few characters (`İ`) as two: then A to F alone.
  return lower.length === line.length ? lower : line.replace(/[A-F]/g, (c) => c.toLowerCase())
}

/** The value of `count` hex digits at `p`, or -1. */
export function hexAt(line: string, p: number, count: number): number {
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

/**
 * Each list of at least 4 byte values, a comma, a space or two, or both between two, decoded:
 * `radix` 10, numbers of 1 to 3 digits up to 255 (Go's `%v` of a `[]byte`, Rust's `{:?}` of a
 * `Vec<u8>`); 16, numbers of 2 hex digits (Node's `<Buffer 70 61>`, Go's `% x`), or 1 or 2
 * after `0x` (a C array, Python's `hex()` of each byte), and a `:` or `-` between two too
 * (.NET's `BitConverter.ToString`, Python's `bytes.hex(':')`, OpenSSL and Java's
 * `HexFormat.ofDelimiter`). A number is a whole word. The lists are decoded into one text, a
 * NUL between two, and searched once.
 */
export function findByteList(
  line: string,
  radix: 10 | 16,
  secrets: readonly Secret[],
  hits: Hits,
): void {
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
