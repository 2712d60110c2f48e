import { nonCanonicalUri } from '../policy/resource-uri.js'
import { ClientPolicyError } from './client-errors.js'
import { glob } from './glob.js'

/**
 * Redirect URIs a client may register: what kind each is (RFC 8252 loopback, private-use
 * scheme, https) and whether it matches the operator's patterns. A URI is judged only in its
 * one canonical spelling, by its parsed parts (scheme, host, port, path, query), never by a
 * regular expression over the raw string; every other spelling is refused.
 */

/**
 * Longest redirect URI accepted, in characters. Not a setting: the URI travels inside the
 * authorization URL the browser follows, and browsers and proxies cut URLs not much longer.
 */
export const REDIRECT_URI_MAX_LENGTH = 2048

/** RFC 8252 §7.1 private-use schemes of desktop MCP clients that are not reverse domain names. */
export const KNOWN_APP_SCHEMES: ReadonlySet<string> = new Set([
  'cursor',
  'vscode',
  'vscode-insiders',
])

/**
 * Loopback hosts (RFC 8252 §7.3), the same three oidc-provider lets vary their port for
 * native clients. `localhost` is accepted for compatibility (RFC 8252 §8.3 prefers the IP):
 * any local process can answer it, so the consent page warns ({@link isLocalhostByName}).
 */
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]', 'localhost'])

/** Schemes that are never a redirect target: script, inline or local content, other protocols. */
const FORBIDDEN_SCHEMES: ReadonlySet<string> = new Set([
  'javascript',
  'vbscript',
  'data',
  'blob',
  'file',
  'filesystem',
  'about',
  'view-source',
  'ws',
  'wss',
  'ftp',
  'mailto',
  'tel',
  'sms',
  'intent',
  'jar',
  'chrome',
  'chrome-extension',
  'moz-extension',
  'resource',
])

/** RFC 8252 §7.1: a reverse domain name, e.g. `com.example.app`. */
const REVERSE_DOMAIN = /^[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)+$/
/** Printable ASCII without space and backslash: anything else is a spelling trick. */
const PLAIN = /^[\x21-\x5b\x5d-\x7e]*$/
/** A percent-encoded control character (C0 or DEL). */
const ENCODED_CONTROL = /%(?:[01][0-9A-Fa-f]|7[Ff])/

/** What a redirect URI is, for registration policy and the consent page. */
export type RedirectKind = 'loopback' | 'private-scheme' | 'https' | 'invalid'

/**
 * Why `uri` cannot be a redirect URI at all, or undefined: not a string, too long,
 * non-printable or non-ASCII characters, backslashes, not canonical (see
 * `policy/resource-uri.ts`), a fragment, userinfo, percent-encoded control characters.
 */
export function redirectProblem(uri: unknown): string | undefined {
  return problemOf(uri, false)
}

/** {@link redirectProblem}; `echo` names a non-canonical URI's canonical form (operators only). */
function problemOf(uri: unknown, echo: boolean): string | undefined {
  if (typeof uri !== 'string') return 'a redirect URI must be a string'
  if (uri.length > REDIRECT_URI_MAX_LENGTH) {
    return `a redirect URI must be at most ${REDIRECT_URI_MAX_LENGTH} characters`
  }
  if (!PLAIN.test(uri))
    return 'a redirect URI must be printable ASCII without spaces or backslashes'
  const canonical = nonCanonicalUri(uri)
  if (canonical !== undefined) {
    const why = canonical.replace('the resource URI', 'the redirect URI')
    // A registrant's own string is never sent back to it.
    return echo ? why : why.replace(/ \(canonical: .*\)$/s, '')
  }
  const u = new URL(uri)
  // Fragments (RFC 6749 §3.1.2) went with the non-canonical forms above. Userinfo is how
  // `https://claude.ai@evil.com/` reads as claude.ai to a person and as evil.com to a browser.
  const userinfo = u.username !== '' || u.password !== '' || authorityOf(uri).includes('@')
  if (userinfo) return 'the redirect URI has userinfo'
  if (ENCODED_CONTROL.test(uri)) return 'the redirect URI percent-encodes a control character'
  return undefined
}

/**
 * The kind of a redirect URI (RFC 8252): `loopback` (http on 127.0.0.1, [::1] or localhost,
 * any port, §7.3), `private-scheme` (a reverse-domain scheme or one of `appSchemes`, §7.1),
 * `https` (a claimed or hosted https URL, not on a loopback host), else `invalid` (including
 * every URI {@link redirectProblem} refuses and http to any other host).
 */
export function redirectKind(
  uri: unknown,
  appSchemes: ReadonlySet<string> = KNOWN_APP_SCHEMES,
): RedirectKind {
  if (redirectProblem(uri) !== undefined) return 'invalid'
  const u = new URL(uri as string)
  const scheme = u.protocol.slice(0, -1)
  if (scheme === 'http') return LOOPBACK_HOSTS.has(u.hostname) ? 'loopback' : 'invalid'
  // RFC 8252 §7.3 loopback redirects are http; a claimed https URI on loopback claims nothing.
  if (scheme === 'https') return LOOPBACK_HOSTS.has(u.hostname) ? 'invalid' : 'https'
  if (FORBIDDEN_SCHEMES.has(scheme)) return 'invalid'
  if (!REVERSE_DOMAIN.test(scheme) && !appSchemes.has(scheme)) return 'invalid'
  return u.host === '' && u.pathname === '' ? 'invalid' : 'private-scheme'
}

/** Whether a loopback redirect URI names `localhost` rather than an IP (the consent page warns). */
export function isLocalhostByName(uri: string): boolean {
  return redirectKind(uri) === 'loopback' && new URL(uri).hostname === 'localhost'
}

/**
 * Whether a client with these redirect URIs is a native app: at least one, and every one
 * loopback or a private-use scheme. oidc-provider lets the loopback port vary only for
 * `application_type: native` clients, so the broker marks such clients native.
 */
export function isNativeClient(
  redirectUris: readonly unknown[],
  appSchemes: ReadonlySet<string> = KNOWN_APP_SCHEMES,
): boolean {
  return (
    redirectUris.length > 0 &&
    redirectUris.every((u) => {
      const kind = redirectKind(u, appSchemes)
      return kind === 'loopback' || kind === 'private-scheme'
    })
  )
}

/** The schemes `patterns` name besides http(s): the operator's own app schemes. */
export function patternSchemes(patterns: readonly string[]): Set<string> {
  const schemes = new Set(KNOWN_APP_SCHEMES)
  for (const p of patterns) {
    const scheme = /^([a-z][a-z0-9+.-]*):/.exec(p)?.[1]
    if (scheme === undefined || scheme === 'http' || scheme === 'https') continue
    if (!FORBIDDEN_SCHEMES.has(scheme)) schemes.add(scheme)
  }
  return schemes
}

/** One compiled pattern: a test on a URI already known to be a valid redirect URI. */
type Matcher = (u: URL, raw: string) => boolean

/**
 * Compiles the operator's redirect URI patterns into one test. A pattern is a canonical URI
 * in which `*` stands for any run of characters, only where it cannot move the host:
 * - http(s): `*.` before a host name (one or more whole labels, never the bare suffix),
 *   `:*` as the port (any port, or none), and anywhere in the path or the query;
 * - other schemes (private-use, RFC 8252 §7.1): anywhere after `scheme:` and in the query;
 *   the operating system hands such a URI to whichever app owns the scheme, whatever its host.
 * A pattern without `?` matches only URIs without a query. A URI matches when it is a valid
 * redirect URI ({@link redirectKind} not `invalid`) and some pattern accepts its parts.
 * @throws ClientPolicyError `bad_redirect_pattern`, listing every bad pattern at once
 */
export function compileRedirectPatterns(patterns: readonly string[]): (uri: string) => boolean {
  const appSchemes = patternSchemes(patterns)
  const matchers: Matcher[] = []
  const problems: string[] = []
  for (const pattern of patterns) {
    const compiled = compilePattern(pattern, appSchemes)
    if (typeof compiled === 'string') problems.push(`${JSON.stringify(pattern)}: ${compiled}`)
    else matchers.push(compiled)
  }
  if (problems.length > 0) {
    const list = problems.join('\n  ')
    throw new ClientPolicyError('bad_redirect_pattern', `invalid redirect URI patterns:\n  ${list}`)
  }
  return function redirectAllowed(uri: string): boolean {
    if (redirectKind(uri, appSchemes) === 'invalid') return false
    const u = new URL(uri)
    return matchers.some((m) => m(u, uri))
  }
}

const HTTP_PATTERN = /^(https?):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/
const OTHER_PATTERN = /^([a-z][a-z0-9+.-]*):([^?#]*)(?:\?([^#]*))?$/

/** A pattern's matcher, or why it cannot be one. */
function compilePattern(pattern: string, appSchemes: ReadonlySet<string>): Matcher | string {
  if (!PLAIN.test(pattern)) return 'must be printable ASCII without spaces or backslashes'
  if (pattern.includes('#')) return 'must not have a fragment'
  if (/^[a-z0-9+.-]*[A-Z][a-zA-Z0-9+.-]*:/.test(pattern)) return 'the scheme must be lower case'
  const http = HTTP_PATTERN.exec(pattern)
  if (http !== null) return compileHttp(http[1]!, http[2]!, http[3]!, http[4], appSchemes)
  if (/^https?:/.test(pattern)) return 'http(s) patterns start with scheme://host'
  const other = OTHER_PATTERN.exec(pattern)
  if (other === null) return 'not an absolute URI (scheme:…)'
  const [, scheme, rest, query] = other as unknown as [string, string, string, string | undefined]
  const sample = `${scheme}:${filled(rest)}${filledQuery(query)}`
  const why = problemOf(sample, true)
  if (why !== undefined) return why
  if (redirectKind(sample, appSchemes) !== 'private-scheme') {
    return `the ${scheme}: scheme is never a redirect target`
  }
  return (u, raw) =>
    u.protocol === `${scheme}:` && glob(rest, afterScheme(raw)) && queryMatches(query, raw)
}

function compileHttp(
  scheme: string,
  authority: string,
  path: string,
  query: string | undefined,
  appSchemes: ReadonlySet<string>,
): Matcher | string {
  const bracket = authority.startsWith('[') ? authority.indexOf(']') + 1 : 0
  const colon = authority.indexOf(':', bracket)
  const host = colon === -1 ? authority : authority.slice(0, colon)
  const port = colon === -1 ? undefined : authority.slice(colon + 1)
  if (port !== undefined && port !== '*' && !/^\d{1,5}$/.test(port))
    return 'the port must be digits or *'
  const suffix = host.startsWith('*.') ? host.slice(2) : undefined
  const exactHost = suffix ?? host
  if (exactHost.includes('*')) return 'a host may only start with *. (whole labels), nowhere else'
  const numericTld = suffix !== undefined && /^\d+$/.test(suffix.slice(suffix.lastIndexOf('.') + 1))
  if (suffix !== undefined && (!suffix.includes('.') || numericTld)) {
    return '*. must precede a domain name of two labels or more'
  }
  const sampleHost = suffix === undefined ? host : `x.${suffix}`
  const samplePort = port === undefined ? '' : port === '*' ? ':1' : `:${port}`
  const sample = `${scheme}://${sampleHost}${samplePort}${filled(path)}${filledQuery(query)}`
  const why = problemOf(sample, true)
  if (why !== undefined) return why
  const kind = redirectKind(sample, appSchemes)
  if (kind === 'invalid') {
    return scheme === 'http'
      ? 'http is for loopback hosts only (127.0.0.1, [::1], localhost)'
      : 'https on a loopback host is not a redirect target'
  }
  return (u, raw) =>
    u.protocol === `${scheme}:` &&
    (suffix === undefined ? u.hostname === host : u.hostname.endsWith(`.${suffix}`)) &&
    (port === '*' || u.port === (port ?? '')) &&
    glob(path, u.pathname) &&
    queryMatches(query, raw)
}

/** A pattern part with each `*` filled in, to check the rest is canonical. */
const filled = (part: string) => part.replaceAll('*', 'x')
const filledQuery = (query: string | undefined) => (query === undefined ? '' : `?${filled(query)}`)

/** A URI's query as written (without `?`), or undefined when it has no `?` at all. */
function queryOf(raw: string): string | undefined {
  const q = raw.indexOf('?')
  return q === -1 ? undefined : raw.slice(q + 1)
}

function queryMatches(pattern: string | undefined, raw: string): boolean {
  const query = queryOf(raw)
  return pattern === undefined ? query === undefined : query !== undefined && glob(pattern, query)
}

/** Everything between `scheme:` and the query. */
function afterScheme(raw: string): string {
  const start = raw.indexOf(':') + 1
  const q = raw.indexOf('?')
  return raw.slice(start, q === -1 ? undefined : q)
}

/** The authority as written (between `//` and the path), or '' when there is none. */
function authorityOf(raw: string): string {
  const start = raw.indexOf('//')
  if (start === -1 || start !== raw.indexOf(':') + 1) return ''
  const rest = raw.slice(start + 2)
  const end = rest.search(/[/?#]/)
  return end === -1 ? rest : rest.slice(0, end)
}
