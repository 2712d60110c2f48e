/**
 * Base32 in a line (RFC 4648 §6, §7, either case): runs decoded at their eight alignments
 * and searched for a value.
 */
import type { Hits } from './redact-hits.js'
import { findIn, type Secret } from './redact-secret.js'

/** Quintet of each base32 character (RFC 4648 §6, §7 as `BASE32_HEX`), either case; -1 for any other. */
const BASE32 = new Int8Array(128).fill(-1)
const BASE32_HEX = new Int8Array(128).fill(-1)
for (let i = 0; i < 32; i++) {
  const c = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.charCodeAt(i)
  const h = '0123456789ABCDEFGHIJKLMNOPQRSTUV'.charCodeAt(i)
  BASE32[c] = BASE32[c | (c >= 0x41 ? 0x20 : 0)] = i
  BASE32_HEX[h] = BASE32_HEX[h | (h >= 0x41 ? 0x20 : 0)] = i
}

/**
 * Each run of base32 characters long enough to hold a value (TOTP seeds, Go's and Python's
 * b32encode, onion-style lower case), either alphabet, decoded from each of its first eight
 * characters (one is where the encoding's 8-character groups start); as {@link findBase64}.
 */
export function findBase32(line: string, secrets: readonly Secret[], hits: Hits): void {
  let least = Number.POSITIVE_INFINITY
  for (const s of secrets) least = Math.min(least, s.bytes.length)
  const shortest = Math.ceil((least * 8) / 5)
  // Any run long enough, in either alphabet? Most lines have none, and pay one pass.
  let plain = false
  let hex = false
  for (let i = 0, run = 0, runHex = 0; i < line.length; i++) {
    const c = line.charCodeAt(i)
    run = c < 128 && BASE32[c]! >= 0 ? run + 1 : 0
    runHex = c < 128 && BASE32_HEX[c]! >= 0 ? runHex + 1 : 0
    plain ||= run >= shortest
    hex ||= runHex >= shortest
  }
  if (!plain && !hex) return
  const bytes = Buffer.allocUnsafe(line.length)
  // For each byte, the first and the last character holding its bits; -1 for a NUL.
  const from = new Int32Array(line.length)
  const to = new Int32Array(line.length)
  const quintet = (table: Int8Array, i: number) => {
    const c = line.charCodeAt(i)
    return c < 128 ? table[c]! : -1
  }
  for (const table of [plain ? BASE32 : undefined, hex ? BASE32_HEX : undefined]) {
    if (table === undefined) continue
    for (let k = 0; k < 8; k++) {
      let n = 0
      for (let i = 0; i < line.length; ) {
        let end = i
        while (end < line.length && quintet(table, end) >= 0) end++
        if (end - i - k >= shortest) {
          let bits = 0
          let acc = 0
          let first = i + k
          for (let j = i + k; j < end; j++) {
            acc = ((acc << 5) | quintet(table, j)) & 0xfff
            bits += 5
            if (bits >= 8) {
              bits -= 8
              bytes[n] = (acc >> bits) & 0xff
              from[n] = first
              to[n++] = j + 1
              first = bits > 0 ? j : j + 1
            }
          }
          bytes[n] = 0
          from[n++] = -1
        }
        i = end + 1
      }
      findIn(bytes.toString('latin1', 0, n), secrets, (s, e) => {
        const start = from[s]! >= 0 ? from[s]! : from[s + 1]!
        let end = from[e - 1]! >= 0 ? to[e - 1]! : to[e - 2]!
        // A value ending the encoding takes its padding along.
        for (let pad = 0; pad < 6 && line.charCodeAt(end) === 0x3d; pad++) end++
        hits.add(start, end)
      })
    }
  }
}
