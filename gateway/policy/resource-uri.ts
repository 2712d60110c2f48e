/**
 * Resource URIs are decided in the one form a server will read, or refused.
 *
 * A policy rule names a URI as a string; a server looks a URI up after normalizing it (the
 * MCP SDK reads `new URL(uri).toString()`: tabs and line breaks removed, surrounding spaces
 * and control characters stripped, the scheme lower-cased, dot segments resolved, characters
 * percent-encoded). A rule matched against the raw string while the server reads another
 * form is a bypass (`"fixture://hello "` past a `fixture://hello` deny). So a URI is accepted
 * only when it is already canonical: exactly what WHATWG URL parsing gives back, with no
 * percent-encoded unreserved character (RFC 3986 §6.2.2.2 normalizers decode those) and
 * percent-encodings and no letter of the host in upper case (§6.2.2.1). Everything else is
 * refused before any decision.
 */

// RFC 3986 §2.3 unreserved characters, percent-encoded: ALPHA, DIGIT, "-", ".", "_", "~".
const ENCODED_UNRESERVED = /%(?:4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2[DE]|5F|7E)/i
const LOWERCASE_PERCENT = /%(?:[0-9a-f][a-f]|[a-f][0-9a-f])/
/** A URI template expression (RFC 6570 §2.2), checked as if it were one plain character. */
const TEMPLATE_EXPRESSION = /\{[^{}]*\}/g

/**
 * Why `uri` is not a canonical resource URI, or undefined when it is. `template`: the string
 * is an RFC 6570 URI template (`completion/complete` names templates), whose `{…}`
 * expressions are left alone and whose rest must be canonical.
 */
export function nonCanonicalUri(uri: string, template = false): string | undefined {
  if (uri === '') return 'the resource URI is empty'
  const plain = template ? uri.replace(TEMPLATE_EXPRESSION, 'x') : uri
  let parsed: URL
  try {
    parsed = new URL(plain)
  } catch {
    return 'the resource URI is not an absolute URI'
  }
  if (parsed.href !== plain) {
    const canonical = template ? '' : ` (canonical: ${JSON.stringify(parsed.href)})`
    return `the resource URI is not in canonical form: no whitespace or control characters, a lower-case scheme, no dot segments, non-ASCII percent-encoded${canonical}`
  }
  // RFC 3986 §3.5: a fragment is resolved by the reader, not the server; some servers drop it.
  if (parsed.hash !== '' || plain.endsWith('#')) return 'the resource URI has a fragment'
  // RFC 3986 §6.2.2.1: the host is case-insensitive, so a server may fold it. WHATWG folds it
  // for http(s) only; for every other scheme it must already be lower case.
  if (/[A-Z]/.test(parsed.host.replace(/%[0-9A-F]{2}/g, '')))
    return 'the resource URI has upper-case letters in its host'
  if (ENCODED_UNRESERVED.test(uri))
    return 'the resource URI percent-encodes characters that need no encoding'
  if (LOWERCASE_PERCENT.test(uri))
    return 'the resource URI has lower-case percent-encodings (use upper case)'
  return undefined
}
