import type { Rule } from './policy.js'

/** Finds the first rule matching a name whose conditions hold. */
export type RuleFinder = (name: string, holds: (rule: Rule) => boolean) => Rule | undefined

/**
 * Indexes rules for first-match lookup without scanning them all: unconditional exact names
 * go in a map, and only the glob or conditional rules written before the exact hit are tried,
 * in order. Same answer as `rules.find(...)`, in a few steps instead of up to N.
 */
export function ruleFinder(rules: readonly Rule[]): RuleFinder {
  const exact = new Map<string, number>()
  const scanned: number[] = []
  rules.forEach((rule, i) => {
    const literal = !rule.pattern.includes('*') && !rule.pattern.includes('?')
    if (literal && rule.when === undefined) {
      if (!exact.has(rule.pattern)) exact.set(rule.pattern, i)
    } else {
      scanned.push(i)
    }
  })
  return (name, holds) => {
    const hit = exact.get(name) ?? Infinity
    for (const i of scanned) {
      if (i > hit) break
      const rule = rules[i]!
      if (rule.matches(name) && (rule.when === undefined || holds(rule))) return rule
    }
    return hit === Infinity ? undefined : rules[hit]
  }
}
