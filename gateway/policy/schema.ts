import { z } from 'zod'
import { rateLimitsSchema } from './rate-limits.js'
import { whenSchema } from './when-schema.js'

export { whenSchema }

// RFC 6749 §3.3 scope-token characters, plus `*` as a wildcard.
const scope = z
  .string()
  .regex(
    /^[\x21\x23-\x5B\x5D-\x7E]+$/,
    'a scope is printable ASCII without spaces, quotes or backslashes',
  )

const scopeList = z
  .array(scope)
  .min(1, 'a scope list needs at least one scope; use allow or deny instead')

/** The long form of a rule: what it does, and only for callers matching `when`. */
const ruleObject = z
  .strictObject({
    scopes: scopeList.optional(),
    effect: z.enum(['allow', 'deny']).optional(),
    when: whenSchema,
  })
  .refine(
    (r) => (r.scopes === undefined) !== (r.effect === undefined),
    'a rule has either scopes or an effect (allow or deny), not both',
  )

/** A rule's right-hand side: the scopes it needs (all of them), a flat allow or deny, or the long form with conditions. */
export const ruleSchema = z.union([z.literal('allow'), z.literal('deny'), scopeList, ruleObject], {
  error: 'a rule is allow, deny, a list of scopes, or { scopes | effect, when }',
})

const rules = z.record(z.string().min(1, 'an empty pattern matches nothing'), ruleSchema)

/** The rules for one server. */
export const serverPolicySchema = z.strictObject({
  /** Scopes needed to open a session at all. */
  access: z.array(scope).default([]),
  tools: rules.default({}),
  prompts: rules.default({}),
  /** Keyed by resource URI pattern. */
  resources: rules.default({}),
})

/**
 * Scope hierarchy: a scope → the narrower scopes it implies (`mcp:admin: [mcp:write]`),
 * transitively. Scopes only: wildcards, a scope implying itself and cycles are refused at load.
 */
const impliesSchema = z.record(
  scope,
  z.array(scope, { error: 'implies maps a scope to a list of the scopes it implies' }).min(1, {
    error: 'an implies entry lists at least one scope; remove it instead',
  }),
  { error: 'implies is a mapping of scope → list of scopes' },
)

/** One policy file. */
export const policyFileSchema = z.strictObject({
  roles: z.record(z.string().min(1), z.array(scope)).default({}),
  implies: impliesSchema.default({}),
  servers: z.record(z.string().min(1), serverPolicySchema).default({}),
  /** Rate limits (policy/rate-limits.ts). */
  rateLimits: rateLimitsSchema,
})

export type PolicyFile = z.infer<typeof policyFileSchema>
export type RuleValue = z.infer<typeof ruleSchema>
