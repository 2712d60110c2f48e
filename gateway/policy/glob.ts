/**
 * Compiles a name pattern: `*` matches any run of characters, `?` exactly one, everything
 * else itself. A pattern without wildcards compares by string equality.
 *
 * The name is the caller's (a tool name, a resource URI, up to a whole request body long), so
 * matching must not backtrack: a regular expression such as `^.*_admin_.*_v2$` takes time
 * quadratic in the name, and one long name held the gateway's event loop for minutes. The
 * wildcard match below retries only from the last `*` it passed, so it reads the name at most
 * once per pattern character.
 */
export function compileGlob(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return (name) => name === pattern
  if (pattern === '*') return () => true
  return (name) => wildcardMatch(pattern, name)
}

const STAR = 0x2a
const ANY = 0x3f

/** `*` and `?` wildcard match, per UTF-16 code unit, in O(pattern × name) at worst. */
function wildcardMatch(p: string, s: string): boolean {
  let pi = 0
  let si = 0
  let star = -1
  let resume = 0
  while (si < s.length) {
    const c = pi < p.length ? p.charCodeAt(pi) : -1
    if (c === STAR) {
      // Let the star match nothing for now; on a mismatch it takes one more character.
      star = pi++
      resume = si
    } else if (c !== -1 && (c === ANY || c === s.charCodeAt(si))) {
      pi++
      si++
    } else if (star !== -1) {
      pi = star + 1
      si = ++resume
    } else {
      return false
    }
  }
  while (pi < p.length && p.charCodeAt(pi) === STAR) pi++
  return pi === p.length
}

/** A granted scope with `*` wildcards (`tools:*`); unlike name patterns, `?` is literal here. */
export function scopePattern(scope: string): (s: string) => boolean {
  if (scope === '*') return () => true
  const re = new RegExp(
    `^${scope.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '.*')}$`,
    's',
  )
  return (s) => re.test(s)
}
