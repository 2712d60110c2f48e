import type { RateRule } from './rate-limits.js'
import type { ScopeHierarchy } from './implies.js'

/** Where a rule was written, for explanations and audit. */
export interface Source {
  file: string
  line: number | undefined
}

/** What a matching rule does. */
export type Effect =
  | { kind: 'allow' }
  | { kind: 'deny' }
  | { kind: 'scopes'; scopes: readonly string[] }

/** A compiled `when`: each key's accepted values; all keys must match. */
export type Conditions = ReadonlyMap<string, ReadonlySet<string>>

/** One compiled rule: a name pattern, optional caller conditions, and its effect. */
export interface Rule {
  pattern: string
  matches: (name: string) => boolean
  when: Conditions | undefined
  effect: Effect
  source: Source
}

/** The kinds of thing a rule can name. */
export type Feature = 'tools' | 'prompts' | 'resources'

/** A server's compiled rules. */
export interface ServerPolicy {
  access: readonly string[]
  accessSource: Source
  rules: Record<Feature, readonly Rule[]>
  /** First-match lookup over `rules`, indexed at load. */
  find: Record<Feature, (name: string, holds: (rule: Rule) => boolean) => Rule | undefined>
}

/** A whole policy, compiled once, swapped atomically on reload. */
export interface Policy {
  /** Role → scopes it grants. */
  roles: ReadonlyMap<string, readonly string[]>
  /** Broader scopes → the narrower ones they imply (`implies:`), compiled with the role map. */
  implies: ScopeHierarchy
  servers: ReadonlyMap<string, ServerPolicy>
  /** Rate limits of every file, in file order. */
  rateLimits: readonly RateRule[]
  /** Files it was loaded from. */
  files: readonly string[]
}
