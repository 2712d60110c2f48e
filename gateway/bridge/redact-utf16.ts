/**
 * A value written to stderr as UTF-16 text (a Windows process, .NET's `Console.Error` with
 * `Encoding.Unicode`, PowerShell redirected, Java's `UTF_16LE` writer): what the gateway reads
 * of it, its bytes taken as UTF-8.
 */
import { MIN_ANYWHERE } from './redact-secret.js'

/**
 * The value in UTF-16, little- then big-endian, as the gateway's UTF-8 decoder reads those
 * bytes: an ASCII character and a NUL (`t\0o\0k\0`), a byte that is no UTF-8 as U+FFFD. The
 * NUL before or after it is left out (it stands on the line's edge where the value does).
 * Only where at least {@link MIN_ANYWHERE} characters are neither NUL nor U+FFFD: a value of
 * accented letters only reads as U+FFFD and NUL, which any such text does too.
 */
export function rawUtf16Forms(v: string): string[] {
  const le = Buffer.from(v, 'utf16le')
  const forms = [
    le.toString('utf8').replace(/\0$/, ''),
    Buffer.from(le).swap16().toString('utf8').replace(/^\0/, ''),
  ]
  return forms.filter((f) => f.replace(/[\0\ufffd]/g, '').length >= MIN_ANYWHERE)
}
