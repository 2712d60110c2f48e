import type { Source } from './policy.js'

/** One `implies:` entry as written: `scope` implies each of `scopes`. */
export interface Implication {
  scope: string
  scopes: readonly string[]
  /** Where the entry's key was written. */
  source: Source
  /** Where each of `scopes` was written (same order). */
  itemSources: readonly Source[]
}

/** One written step of a chain of implications. */
export interface ImpliesStep {
  from: string
  to: string
  source: Source
}

/**
 * A policy's scope hierarchy (MCP 2026-07-28 authorization: "Servers MUST account for scope
 * hierarchies, where a broader scope implies narrower ones"), compiled once: each scope's
 * transitive closure is a set, so every question below is a lookup.
 */
export interface ScopeHierarchy {
  /** The entries as written, by implying scope. */
  readonly written: ReadonlyMap<string, Implication>
  /** Every scope `scope` implies, directly or through others; never `scope` itself. */
  below(scope: string): ReadonlySet<string>
  /** The shortest chain of written implications from `broad` down to `narrow`, if any. */
  chain(broad: string, narrow: string): ImpliesStep[] | undefined
  /** `scopes` without repeats and without any scope another of them implies, in their order. */
  withoutImplied(scopes: Iterable<string>): string[]
}

/** A problem found compiling `implies:`, located to the entry or item that causes it. */
export interface ImpliesProblem {
  source: Source
  message: string
}

const NOTHING: ReadonlySet<string> = new Set()

/**
 * Compiles `implies:` entries (already merged across files) into a hierarchy. A wildcard on
 * either side, a scope implying itself, and a cycle are problems: a hierarchy names scopes,
 * and a cycle would make two different scopes one.
 */
export function compileImplies(entries: readonly Implication[]): {
  hierarchy: ScopeHierarchy
  problems: ImpliesProblem[]
} {
  const problems: ImpliesProblem[] = []
  const edges = new Map<string, string[]>()
  const written = new Map<string, Implication>()
  for (const e of entries) {
    written.set(e.scope, e)
    // `*` is the role map's wildcard; here it would mean "every scope", which no token should
    // reach by holding one scope.
    if (e.scope.includes('*')) {
      problems.push({ source: e.source, message: wildcard(e.scope) })
      continue
    }
    const to: string[] = []
    e.scopes.forEach((s, i) => {
      const source = e.itemSources[i] ?? e.source
      if (s.includes('*')) problems.push({ source, message: wildcard(s) })
      else if (s === e.scope) problems.push({ source, message: `${s} implies itself` })
      else if (!to.includes(s)) to.push(s)
    })
    edges.set(e.scope, to)
  }
  problems.push(...cycles(edges, written))
  // Closures only on an acyclic graph: with problems the policy is refused anyway.
  const closure = new Map<string, ReadonlySet<string>>()
  if (problems.length === 0) {
    const walk = (s: string): ReadonlySet<string> => {
      const known = closure.get(s)
      if (known !== undefined) return known
      const out = new Set<string>()
      for (const t of edges.get(s) ?? []) {
        out.add(t)
        for (const u of walk(t)) out.add(u)
      }
      closure.set(s, out)
      return out
    }
    for (const s of edges.keys()) walk(s)
  }
  const below = (s: string) => closure.get(s) ?? NOTHING
  return {
    problems,
    hierarchy: {
      written,
      below,
      chain: (broad, narrow) => shortestChain(broad, narrow, written, below),
      withoutImplied(scopes) {
        const list = [...new Set(scopes)]
        return list.filter((s) => !list.some((t) => t !== s && below(t).has(s)))
      },
    },
  }
}

/** The hierarchy of a policy with no `implies:`: every scope stands alone. */
export const NO_IMPLICATIONS: ScopeHierarchy = compileImplies([]).hierarchy

function wildcard(s: string): string {
  return `${s}: implies names scopes, not patterns (wildcards belong to roles:)`
}

/** One problem per cycle, at the entry closing it, naming each step and where it was written. */
function cycles(
  edges: ReadonlyMap<string, readonly string[]>,
  written: ReadonlyMap<string, Implication>,
): ImpliesProblem[] {
  const problems: ImpliesProblem[] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (s: string) => {
    state.set(s, 'open')
    path.push(s)
    for (const t of edges.get(s) ?? []) {
      if (state.get(t) === 'open') {
        const loop = [...path.slice(path.indexOf(t)), t]
        const steps = loop
          .slice(1)
          .map((to, i) => `${to} (${where(written.get(loop[i]!)!.source)})`)
          .join(' → ')
        problems.push({
          source: written.get(s)!.source,
          message: `implies cycle: ${loop[0]} → ${steps}`,
        })
      } else if (state.get(t) === undefined) visit(t)
    }
    path.pop()
    state.set(s, 'done')
  }
  for (const s of edges.keys()) if (state.get(s) === undefined) visit(s)
  return problems
}

function shortestChain(
  broad: string,
  narrow: string,
  written: ReadonlyMap<string, Implication>,
  below: (s: string) => ReadonlySet<string>,
): ImpliesStep[] | undefined {
  if (!below(broad).has(narrow)) return undefined
  // Breadth first over the written entries, remembering how each scope was reached.
  const via = new Map<string, ImpliesStep>()
  const queue = [broad]
  for (let i = 0; i < queue.length; i++) {
    const from = queue[i]!
    const e = written.get(from)
    if (e === undefined) continue
    e.scopes.forEach((to, j) => {
      if (to === broad || via.has(to)) return
      via.set(to, { from, to, source: e.itemSources[j] ?? e.source })
      queue.push(to)
    })
    if (via.has(narrow)) break
  }
  const steps: ImpliesStep[] = []
  for (let s = narrow; s !== broad; s = via.get(s)!.from) steps.unshift(via.get(s)!)
  return steps
}

/** `file:line` of a source. */
export function where(s: Source): string {
  return s.line === undefined ? s.file : `${s.file}:${s.line}`
}
