/**
 * Wildcard matching for redirect URI patterns: `*` is any run of characters, everything else
 * (`?` included, which starts a URL's query) is literal. No regular expression: each literal
 * part is found once, left to right (leftmost is always right), so many stars never backtrack.
 */

/** Whether `s` matches `pattern` (`*`: any run of characters, possibly empty). */
export function glob(pattern: string, s: string): boolean {
  const parts = pattern.split('*')
  if (parts.length === 1) return pattern === s
  const first = parts[0]!
  const last = parts[parts.length - 1]!
  if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last))
    return false
  let at = first.length
  const end = s.length - last.length
  for (const part of parts.slice(1, -1)) {
    const found = s.indexOf(part, at)
    if (found === -1 || found + part.length > end) return false
    at = found + part.length
  }
  return true
}
