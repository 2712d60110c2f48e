import type { JWTPayload } from 'jose'
import { toPrincipal, type Principal, type RoleClaim } from '../auth/principal.js'
import { configSchema } from '../config/schema.js'
import { conditionsHold, decide, grantsOf, type ScopeBasis } from './evaluate.js'
import type { Feature, Policy, Rule } from './policy.js'

/** Where the deciding rule (or the server's `access`, which has no pattern) was written. */
export interface ExplainedRule {
  pattern?: string
  file: string
  line: number | undefined
}

/** Why the gateway would allow, deny or challenge one operation: the decision plus its context. */
export interface Explanation {
  decision: 'allow' | 'deny' | 'challenge'
  reason: string
  /** undefined when no rule decided: no policy for the server, or no rule matched. */
  rule: ExplainedRule | undefined
  /** Scopes the caller may use (see `basis`), sorted; role grants keep their wildcards. */
  has: string[]
  /** How `has` was formed: the token's scopes within its roles, the roles alone, or the scopes alone. */
  basis: ScopeBasis
  /** What the deciding rule or `access` needs (a challenge's `scope`); empty for a deny. */
  required: string[]
  /** The part of `required` the caller does not hold. */
  lacks: string[]
  /** Rules before the deciding one whose pattern matched but whose `when` did not hold. */
  skipped: ExplainedRule[]
  /** Scopes the decision needed that the caller holds only through `implies:`, and how. */
  implied: ImpliedScope[]
}

/** A needed scope held through the hierarchy: the held scope it comes from, and each step. */
export interface ImpliedScope {
  scope: string
  /** The held scope (a token scope, or a role's grant) that implies it. */
  from: string
  /** Each written implication from `from` down to `scope`, with where it was written. */
  chain: { from: string; to: string; file: string; line: number | undefined }[]
}

/**
 * Explains `decide` for one operation. The decision is `decide`'s own, never recomputed; the
 * rest only locates the rule it came from (by identity of its source) and lists scopes.
 */
export function explain(
  policy: Policy,
  principal: Principal,
  server: string,
  feature: Feature,
  name: string,
): Explanation {
  const d = decide(policy, principal, server, feature, name)
  const grants = grantsOf(policy, principal)
  const sp = policy.servers.get(server)
  const rules = sp?.rules[feature] ?? []
  const at = d.source === undefined ? -1 : rules.findIndex((r) => r.source === d.source)
  // No rule but a source: the server's `access` decided.
  const rule: ExplainedRule | undefined =
    at >= 0 ? located(rules[at]!) : d.source && { file: d.source.file, line: d.source.line }
  // Rules that would have matched but for their conditions, up to the deciding one (or all).
  const skipped =
    sp === undefined || (d.source !== undefined && at < 0)
      ? []
      : rules
          .slice(0, at >= 0 ? at : rules.length)
          .filter(
            (r) =>
              r.when !== undefined && r.matches(name) && !conditionsHold(r.when, principal, grants),
          )
          .map(located)
  let required: string[] = []
  // What the deciding rule (or access) needs, before the challenge names it its own way.
  let needed: string[] = []
  if (d.effect !== 'deny' && sp !== undefined) {
    const effect = at >= 0 ? rules[at]!.effect : undefined
    needed = [...new Set([...sp.access, ...(effect?.kind === 'scopes' ? effect.scopes : [])])]
  }
  if (d.effect === 'challenge') required = [...d.required]
  else if (d.effect === 'allow') required = needed
  const implied = needed.flatMap((scope): ImpliedScope[] => {
    const from = grants.implied.get(scope)
    if (from === undefined) return []
    const chain = (policy.implies.chain(from, scope) ?? []).map((step) => ({
      from: step.from,
      to: step.to,
      file: step.source.file,
      line: step.source.line,
    }))
    return [{ scope, from, chain }]
  })
  return {
    decision: d.effect,
    reason: d.reason,
    rule,
    has: [...grants.scopes].sort(),
    basis: grants.basis,
    required,
    lacks: d.effect === 'challenge' ? [...d.missing] : [],
    skipped,
    implied,
  }
}

function located(r: Rule): ExplainedRule {
  return { pattern: r.pattern, file: r.source.file, line: r.source.line }
}

/** The role claim paths the gateway uses when the config names none. */
export const DEFAULT_ROLE_CLAIMS: readonly RoleClaim[] =
  configSchema.shape.auth.parse(undefined).roleClaims

/**
 * A principal from a token's claims, as the gateway would build it after verification.
 * `iss` and `sub` default to '' when absent, which no `when` condition accepts.
 */
export function principalFromClaims(
  claims: Record<string, unknown>,
  roleClaims: readonly RoleClaim[] = DEFAULT_ROLE_CLAIMS,
): Principal {
  const payload: JWTPayload = {
    ...claims,
    iss: typeof claims.iss === 'string' ? claims.iss : '',
    sub: typeof claims.sub === 'string' ? claims.sub : '',
  }
  return toPrincipal(payload, roleClaims)
}
