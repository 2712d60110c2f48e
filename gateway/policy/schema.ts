import { z } from 'zod'

// RFC 6749 §3.3 scope-token characters, plus `*` as a wildcard.
const scope = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes')

/** A rule's right-hand side: the scopes it needs (all of them), or a flat allow or deny. */
export const ruleSchema = z.union([
  z.literal('allow'),
  z.literal('deny'),
  z.array(scope).min(1, 'a scope list needs at least one scope; use allow or deny instead'),
], { error: 'a rule is allow, deny, or a list of scopes' })

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

/** One policy file. */
export const policyFileSchema = z.strictObject({
  roles: z.record(z.string().min(1), z.array(scope)).default({}),
  servers: z.record(z.string().min(1), serverPolicySchema).default({}),
})

export type PolicyFile = z.infer<typeof policyFileSchema>
export type RuleValue = z.infer<typeof ruleSchema>
