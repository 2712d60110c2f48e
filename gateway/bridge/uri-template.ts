/**
 * Could this URI be an expansion of this RFC 6570 URI template? A matcher for routing, not an
 * expander: it says yes or no, never which values the variables had.
 *
 * Every expression of levels 1–4 is read as "nothing, or its operator's lead character followed
 * by characters its expansion may produce" (RFC 6570 §3.2.2–3.2.9: simple and `+` lead with
 * nothing, `#` `.` `/` `;` `?` `&` with themselves; a list's separators are among the allowed
 * characters). That is a superset of the real expansions: it ignores `:n` prefix lengths, where
 * `=` may fall, and whether `%` starts a valid escape, and it lets non-ASCII through (clients
 * send IRIs unescaped). Leniency only widens what matches, so in an endpoint it can make a URI
 * ambiguous (refused), never route it to a backend whose template could not have made it.
 *
 * Matching keeps the positions each token can end at and walks each expression's runs once, so
 * it takes time linear in the URI per token: a backend's template cannot make the gateway
 * backtrack (`{+a}x{+b}x{+c}` against a long URI costs what `{a}` does, times three).
 */

/** A parsed template: literal text and expressions, in order. */
export type Template = readonly Token[]
type Token = { readonly literal: string } | { readonly lead: string; readonly allowed: Uint8Array }

const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%'
const RESERVED = ":/?#[]@!$&'()*+,;="
/** What each operator's expansion may hold besides unreserved characters and its lead (RFC 6570 §3.2.1, appendix A). */
const EXTRA: Record<string, string> = {
  '': ',',
  '+': RESERVED,
  '#': RESERVED,
  '.': ',',
  '/': ',',
  ';': ',=',
  '?': ',&=',
  '&': ',=',
}
/** RFC 6570 §2.3 varspec: a varname (dotted, pct-encoded allowed) and an optional modifier. */
const VARSPEC =
  /^(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*(?::[1-9][0-9]{0,3}|\*)?$/

/** Parses a template; undefined when malformed (unclosed brace, reserved operator, bad varspec). */
export function parseTemplate(text: string): Template | undefined {
  const tokens: Token[] = []
  let at = 0
  while (at < text.length) {
    const open = text.indexOf('{', at)
    const end = open < 0 ? text.length : open
    if (end > at) {
      const literal = text.slice(at, end)
      if (literal.includes('}')) return undefined
      tokens.push({ literal })
    }
    if (open < 0) break
    const close = text.indexOf('}', open)
    if (close < 0) return undefined
    const expression = parseExpression(text.slice(open + 1, close))
    if (expression === undefined) return undefined
    tokens.push(expression)
    at = close + 1
  }
  return tokens
}

function parseExpression(body: string): Token | undefined {
  const first = body[0]
  const operator = first !== undefined && '+#./;?&'.includes(first) ? first : ''
  const specs = body.slice(operator.length).split(',')
  if (!specs.every((s) => VARSPEC.test(s))) return undefined // also refuses the reserved operators = , ! @ |
  const explode = specs.some((s) => s.endsWith('*'))
  const lead = operator === '+' ? '' : operator
  const chars = UNRESERVED + EXTRA[operator]! + lead + (explode ? '=' : '')
  const allowed = new Uint8Array(128)
  for (const c of chars) allowed[c.charCodeAt(0)] = 1
  return { lead, allowed }
}

/** True when `uri` could be an expansion of `template` (see the module comment for how loosely). */
export function matchesTemplate(template: Template, uri: string): boolean {
  const n = uri.length
  let at = [0] // where the tokens so far can end, ascending, each once
  for (const token of template) {
    const next: number[] = []
    if ('literal' in token) {
      for (const p of at) if (uri.startsWith(token.literal, p)) next.push(p + token.literal.length)
    } else {
      let last = -1
      for (const p of at) {
        if (p > last) next.push((last = p)) // the expression expanded to nothing
        let i = token.lead === '' ? p : uri[p] === token.lead ? p + 1 : -1
        // A run that started earlier and passed i already holds everything a run from i holds.
        if (i < 0 || i < last) continue
        if (i > last) next.push((last = i))
        while (i < n && allows(token.allowed, uri.charCodeAt(i))) next.push((last = ++i))
      }
    }
    if (next.length === 0) return false
    at = next
  }
  return at[at.length - 1] === n
}

/** The literal text every expansion of `template` starts with ('' when it starts with an expression). */
export function leadingLiteral(template: Template): string {
  const first = template[0]
  return first !== undefined && 'literal' in first ? first.literal : ''
}

function allows(allowed: Uint8Array, code: number): boolean {
  return code >= 128 || allowed[code] === 1
}
