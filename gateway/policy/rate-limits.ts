import { basename } from 'node:path'
import { z } from 'zod'
import { compileGlob } from './glob.js'
import type { Conditions, Source } from './policy.js'
import { whenSchema } from './when-schema.js'

/**
 * Rate limits, written in the policy files beside the rules they go with and hot-reloaded with
 * them: who (`when`), what (`servers`, `tools`, `methods`), how many per interval (`limit`,
 * `interval`), with an optional `burst` above it, counted separately `per` subject, client,
 * server and/or tool. Every rule that matches a request counts it; one refusing is enough.
 */

/** What a rule counts separately: each distinct combination has its own count. */
export type PerKey = 'subject' | 'client' | 'server' | 'tool'

/** How a refusal reaches a client inside a session: a JSON-RPC error, or a tool result the model reads. */
export type RefuseAs = 'error' | 'toolResult'

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }
/** Longest interval: a month. Counters live that long in the store at most. */
const MAX_INTERVAL_S = 31 * 86_400

/** `30s`, `1m`, `2h`, `1d`, or a whole number of seconds: whole seconds (the counters' resolution). */
const duration = z
  .union(
    [
      z.number().int('a whole number of seconds'),
      z
        .string()
        .regex(/^[1-9][0-9]{0,6}[smhd]$/, 'a duration like 30s, 1m, 2h or 1d')
        .transform((v) => Number(v.slice(0, -1)) * UNITS[v.slice(-1)]!),
    ],
    { error: 'a duration like 30s, 1m, 2h or 1d, or a whole number of seconds' },
  )
  .pipe(z.number().min(1, 'at least one second').max(MAX_INTERVAL_S, 'at most 31 days'))

const pattern = z.string().min(1, 'an empty pattern matches nothing').max(256)

const perKey = z.enum(['subject', 'client', 'server', 'tool'])

/** One `rateLimits:` entry of a policy file. */
export const rateLimitSchema = z
  .strictObject({
    /** Names the rule in refusals, the audit log and metrics; default `<file>:<line>`. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a name of letters, digits and _ . : - (64 at most)')
      .optional(),
    /** Counted separately per each of these (default: per subject). */
    per: z.union([perKey.transform((k) => [k]), z.array(perKey).min(1)]).default(['subject']),
    /** Server name patterns (default: every server). */
    servers: z.array(pattern).min(1).optional(),
    /** Tool name patterns: only `tools/call` of a matching tool counts (default: every request). */
    tools: z.array(pattern).min(1).optional(),
    /** Methods counted (default: every request; with `tools`, `tools/call`). */
    methods: z.array(z.string().min(1).max(128)).min(1).optional(),
    /** Only callers matching these conditions (the policy rules' `when`). */
    when: whenSchema.optional(),
    /** Requests allowed per interval. */
    limit: z.number().int().min(1).max(1_000_000_000),
    interval: duration,
    /** Requests allowed above `limit`, from a reserve that refills every `burstInterval`. */
    burst: z.number().int().min(0).max(1_000_000_000).default(0),
    /** Default: ten intervals (at most 31 days). */
    burstInterval: duration.optional(),
    /** Inside a session: a JSON-RPC error (default), or for `tools/call` an error result. */
    refuseAs: z.enum(['error', 'toolResult']).default('error'),
  })
  .refine(
    (r) => r.tools === undefined || r.methods === undefined || r.methods.includes('tools/call'),
    {
      message: 'tools patterns only count tools/call: add it to methods or drop methods',
      path: ['methods'],
    },
  )

export const rateLimitsSchema = z.array(rateLimitSchema).default([])

export type RateLimitEntry = z.infer<typeof rateLimitSchema>

/** One compiled rate-limit rule. */
export interface RateRule {
  /** The rule's name, or `<file>:<line>`. */
  id: string
  /**
   * What identifies its counters: the id with the numbers, so an edited limit starts afresh
   * while an unchanged rule keeps counting across reloads (and replicas agree on it).
   */
  key: string
  per: readonly PerKey[]
  servers: ((name: string) => boolean) | undefined
  tools: ((name: string) => boolean) | undefined
  methods: ReadonlySet<string> | undefined
  when: Conditions | undefined
  limit: number
  intervalSec: number
  burst: number
  burstIntervalSec: number
  refuseAs: RefuseAs
  source: Source
}

/** A request as rate limits see it. */
export interface Counted {
  server: string
  method: string
  /** The tool, prompt or resource it names, if any. */
  name: string | undefined
}

/** Compiles one entry; `source` is where it was written. */
export function compileRateRule(entry: RateLimitEntry, source: Source): RateRule {
  const id = entry.name ?? `${basename(source.file)}:${source.line ?? '?'}`
  const any = (patterns: readonly string[] | undefined) => {
    if (patterns === undefined) return undefined
    const matchers = patterns.map(compileGlob)
    return (name: string) => matchers.some((m) => m(name))
  }
  const burstIntervalSec = entry.burstInterval ?? Math.min(entry.interval * 10, MAX_INTERVAL_S)
  const methods = entry.methods ?? (entry.tools ? ['tools/call'] : undefined)
  return {
    id,
    key: `${id}/${entry.limit}/${entry.interval}/${entry.burst}/${burstIntervalSec}`,
    per: [...new Set(entry.per)],
    servers: any(entry.servers),
    tools: any(entry.tools),
    methods: methods && new Set(methods),
    when:
      entry.when &&
      new Map(
        Object.entries(entry.when).map(([k, v]) => [k, new Set(typeof v === 'string' ? [v] : v)]),
      ),
    limit: entry.limit,
    intervalSec: entry.interval,
    burst: entry.burst,
    burstIntervalSec,
    refuseAs: entry.refuseAs,
    source,
  }
}

/** Whether a rule counts a request (its caller conditions are the caller's to check). */
export function ruleCounts(rule: RateRule, r: Counted): boolean {
  if (rule.servers && !rule.servers(r.server)) return false
  if (rule.methods && !rule.methods.has(r.method)) return false
  if (rule.tools && (r.method !== 'tools/call' || r.name === undefined || !rule.tools(r.name)))
    return false
  return true
}
