/**
 * The forms a value is written in before any encoding: NFC, NFD, `?` for non-ASCII, mojibake,
 * reversed, and JSON's escapes of it (searched in base64 and base32).
 */
import { MIN_ANYWHERE } from './redact-secret.js'

/**
 * Each value and, for one with non-ASCII characters, the other forms a process may print it
 * in: composed and decomposed (NFC, NFD: macOS file names, a library that normalizes), with
 * each non-ASCII character as `?` (Java's and Python's ASCII encoders, a `?` a code point,
 * NFC and NFD) where that leaves at least {@link MIN_ANYWHERE} other characters, and its UTF-8
 * read as Latin-1 or Windows-1252 and written again (mojibake: `pÃ¤sswÃ¶rd`, a process or
 * library that decoded its input with the wrong charset): each form, and whether it is mojibake.
 */
export function writtenForms(values: readonly string[]): Map<string, boolean> {
  const forms = new Map<string, boolean>()
  const add = (form: string, mojibake = false) =>
    forms.set(form, forms.get(form) === false ? false : mojibake)
  for (const v of values) {
    add(v)
    if (!/[\u0080-\u{10ffff}]/u.test(v)) continue
    for (const n of [v.normalize('NFC'), v.normalize('NFD')]) {
      add(n)
      const ascii = n.replace(/[\u0080-\u{10ffff}]/gu, '?')
      if (ascii.length - (ascii.match(/\?/g)?.length ?? 0) >= MIN_ANYWHERE) add(ascii)
      const latin1 = Buffer.from(n).toString('latin1')
      add(latin1, true)
      add(
        latin1.replace(/[\u0080-\u009f]/g, (c) => WINDOWS_1252[c.charCodeAt(0) - 0x80]!),
        true,
      )
    }
  }
  return forms
}

/**
 * Bytes 0x80 to 0x9F as Windows-1252 reads them (the WHATWG Encoding table; the five it leaves
 * undefined as their Latin-1 code point). Node's TextDecoder reads them as Latin-1.
 */
const WINDOWS_1252 = [
  ...'\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f',
  ...'\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178',
]

/**
 * A value inside a JSON string, where that is not the value as written: as JavaScript and
 * Java write it (`\"`, `\\`, control characters), as Python's json.dumps (`\u00e4` for each
 * non-ASCII character, a surrogate pair beyond U+FFFF), PHP's json_encode (that, and `\/`) and
 * Go's encoding/json (`\u003c` for `<`, `>`, `&`) write it. A line's base64 of JSON is read
 * unescaped too ({@link findUnescaped}), but only a form held whole is read on over base64
 * wrapped over lines ({@link WrappedBase64}).
 */
export function jsonForms(v: string): Set<string> {
  const plain = JSON.stringify(v).slice(1, -1)
  const u = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  const python = plain.replace(/[\u0080-\uffff]/g, u)
  const forms = new Set([plain, python, python.replace(/\//g, '\\/'), plain.replace(/[<>&]/g, u)])
  forms.delete(v)
  return forms
}

/**
 * The value's characters (code points) in reverse order, where that is not the value: a
 * process printing a value backwards hides it from a search as written and from nobody who
 * reads the log. Searched as written only.
 */
export function reversedForm(v: string): string | undefined {
  const reversed = [...v].reverse().join('')
  return reversed === v ? undefined : reversed
}
