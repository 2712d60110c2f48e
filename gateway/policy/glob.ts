/**
 * Compiles a name pattern: `*` matches any run of characters, `?` exactly one, everything
 * else itself. A pattern without wildcards compares by string equality.
 */
export function compileGlob(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return (name) => name === pattern
  if (pattern === '*') return () => true
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  const re = new RegExp(`^${source}$`, 's')
  return (name) => re.test(name)
}

/** A granted scope with `*` wildcards (`tools:*`); unlike name patterns, `?` is literal here. */
export function scopePattern(scope: string): (s: string) => boolean {
  if (scope === '*') return () => true
  const re = new RegExp(`^${scope.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '.*')}$`, 's')
  return (s) => re.test(s)
}
