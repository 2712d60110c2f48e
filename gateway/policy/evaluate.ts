import { claimValues, type Principal } from '../auth/principal.js'
import type { ScopeHierarchy } from './implies.js'
import type { Conditions, Feature, Policy, Rule, ServerPolicy, Source } from './policy.js'
import { scopesOfRoles } from './role-scopes.js'
import { stepUpScopes } from './step-up.js'

/** The outcome of one policy question, with the reason the audit log and explain print. */
export type Decision =
  | { effect: 'allow'; reason: string; source: Source | undefined }
  /** Refused outright: a deny rule, no rule, or no policy for the server. */
  | { effect: 'deny'; reason: string; source: Source | undefined }
  /** Refused for missing scopes: the caller may step up to `required`. */
  | {
      effect: 'challenge'
      reason: string
      source: Source | undefined
      required: readonly string[]
      missing: readonly string[]
    }

/**
 * How a principal's effective scopes were formed (README "Scopes and roles"):
 * - `scopes within roles`: the token carries a scope claim, so its scopes are what the user
 *   delegated to this client, and only those the user's roles allow count (a read-only token of
 *   a user who could write can only read; a token claiming `mcp:admin` without the role gets
 *   nothing for it);
 * - `roles`: the token carries no scope claim at all (some IdPs issue none): the roles decide;
 * - `scopes`: the policy maps no roles, so there is no ceiling: the token's scopes decide;
 * - `all`: the --insecure-no-auth identity.
 */
export type ScopeBasis = 'scopes within roles' | 'roles' | 'scopes' | 'all'

/** The scopes a principal may use under a policy, and how they were formed. */
export interface Grants {
  /** The effective scopes as held: role grants as written (wildcards kept), else literal scopes. */
  scopes: ReadonlySet<string>
  /**
   * Scopes held only because a held scope implies them (`implies:`), each with the scope it
   * comes from (a token scope, or a role grant), for explanations.
   */
  implied: ReadonlyMap<string, string>
  basis: ScopeBasis
  has(scope: string): boolean
  /**
   * Whether a new token could carry `scope`: the user's roles grant it though this token does
   * not (a step-up can succeed). False whenever the token's scopes are not what limits it.
   */
  reachable(scope: string): boolean
}

const grantsCache = new WeakMap<Principal, { policy: Policy; grants: Grants }>()

/** A principal's effective scopes under a policy (cached per principal and policy). */
export function grantsOf(policy: Policy, principal: Principal): Grants {
  const hit = grantsCache.get(principal)
  if (hit?.policy === policy) return hit.grants
  const grants = computeGrants(policy, principal)
  grantsCache.set(principal, { policy, grants })
  return grants
}

function computeGrants(policy: Policy, principal: Principal): Grants {
  const never = () => false
  const { implies } = policy
  if (principal.allScopes === true) {
    const scopes = new Set(principal.scopes)
    return { scopes, implied: new Map(), basis: 'all', has: () => true, reachable: never }
  }
  const token = principal.scopes
  if (policy.roles.size === 0) {
    const implied = impliedBy(token, implies, (s) => !token.has(s))
    const has = (s: string) => token.has(s) || implied.has(s)
    return { scopes: new Set(token), implied, basis: 'scopes', has, reachable: never }
  }
  // The ceiling: what the user's roles grant through the role map and the hierarchy. A granted
  // scope may be a pattern (`*`, `tools:*`), but only there: a token's own scopes are literal.
  const ceiling = scopesOfRoles(policy.roles, principal.roles, implies)
  const withinRoles = (s: string) => ceiling.has(s)
  if (!principal.hasScopeClaim) {
    const { granted, implied } = ceiling
    return { scopes: granted, implied, basis: 'roles', has: withinRoles, reachable: never }
  }
  // What the token was granted, with what that implies, within what the roles allow: a token
  // for `mcp:admin` whose user's roles grant only `mcp:write` may use `mcp:write` (delegated
  // through the hierarchy, and allowed), never `mcp:admin` itself.
  const effective = new Set([...token].filter(withinRoles))
  const implied = impliedBy(
    [...effective, ...token],
    implies,
    (s) => !effective.has(s) && withinRoles(s),
  )
  const has = (s: string) => effective.has(s) || implied.has(s)
  return {
    scopes: effective,
    implied,
    basis: 'scopes within roles',
    has,
    reachable: (s) => !has(s) && withinRoles(s),
  }
}

/** The scopes `held` imply and `keep` accepts, each with the first held scope implying it. */
function impliedBy(
  held: Iterable<string>,
  implies: ScopeHierarchy,
  keep: (s: string) => boolean,
): Map<string, string> {
  const out = new Map<string, string>()
  for (const from of held)
    for (const s of implies.below(from)) if (!out.has(s) && keep(s)) out.set(s, from)
  return out
}

/** A principal's access decisions under a policy, by server (cached per principal and policy). */
const accessCache = new WeakMap<Principal, { policy: Policy; byServer: Map<string, Decision> }>()

/** May this principal open a session on (or keep using) `server`? */
export function decideAccess(policy: Policy, principal: Principal, server: string): Decision {
  const sp = policy.servers.get(server)
  // No policy for the server: nothing is allowed there.
  if (sp === undefined)
    return { effect: 'deny', reason: `no policy for server ${server}`, source: undefined }
  // Asked on every request: a decision depends only on the policy, the principal (one object
  // while its token is cached) and the server, so it is made once (the policy's servers bound it).
  let hit = accessCache.get(principal)
  if (hit?.policy !== policy) accessCache.set(principal, (hit = { policy, byServer: new Map() }))
  let decision = hit.byServer.get(server)
  if (decision === undefined) hit.byServer.set(server, (decision = accessOf(policy, principal, sp)))
  return decision
}

function accessOf(policy: Policy, principal: Principal, sp: ServerPolicy): Decision {
  const grants = grantsOf(policy, principal)
  const missing = policy.implies.withoutImplied(sp.access.filter((s) => !grants.has(s)))
  // The server's access scopes are missing: step up to them.
  if (missing.length > 0) {
    return {
      effect: 'challenge',
      reason: `missing access scope ${missing.join(' ')}`,
      source: sp.accessSource,
      required: stepUpScopes(sp.access, grants, policy.implies),
      missing,
    }
  }
  return { effect: 'allow', reason: 'access scopes held', source: sp.accessSource }
}

/** May this principal use the tool, prompt or resource `name` of `server`? First matching rule wins. */
export function decide(
  policy: Policy,
  principal: Principal,
  server: string,
  feature: Feature,
  name: string,
): Decision {
  const access = decideAccess(policy, principal, server)
  // Without access to the server, nothing on it is usable.
  if (access.effect === 'deny') return access
  const byRules = decideByRules(policy, principal, server, feature, name)
  if (access.effect === 'allow') return byRules
  // Access is missing, and the rule asks for more: one challenge naming both (MCP 2026-07-28
  // §Runtime Insufficient Scope Errors: all scopes the operation needs, not one by one).
  if (byRules.effect !== 'challenge') return access
  const missing = policy.implies.withoutImplied([...access.missing, ...byRules.missing])
  return { ...access, required: byRules.required, missing }
}

/** The rules' verdict on `name`, for a principal already known to have access to `server`. */
export function decideByRules(
  policy: Policy,
  principal: Principal,
  server: string,
  feature: Feature,
  name: string,
): Decision {
  const sp = policy.servers.get(server)!
  const grants = grantsOf(policy, principal)
  const rule = sp.find[feature](name, (r) => conditionsHold(r.when!, principal, grants))
  // Unmatched names are denied.
  if (rule === undefined)
    return { effect: 'deny', reason: `no ${feature} rule matches ${name}`, source: undefined }
  return ruleDecision(rule, grants, sp.access, policy.implies)
}

/**
 * Every `when` key has a value the caller holds. `scope` and `scp` mean the scopes `grants`
 * gives (the token's within its roles, as every other scope check): a scope the token claims
 * but no role grants holds no condition.
 */
export function conditionsHold(when: Conditions, p: Principal, grants: Grants): boolean {
  for (const [key, accepted] of when) {
    if (key === 'scope' || key === 'scp') {
      if (![...accepted].some((s) => grants.has(s))) return false
      continue
    }
    const held =
      key === 'sub'
        ? [p.sub]
        : key === 'client_id'
          ? p.clientId
            ? [p.clientId]
            : []
          : key === 'roles'
            ? [...p.roles]
            : claimValues(p.claims, key)
    if (!held.some((v) => accepted.has(v))) return false
  }
  return true
}

function ruleDecision(
  rule: Rule,
  grants: Grants,
  access: readonly string[],
  implies: ScopeHierarchy,
): Decision {
  const { effect, source } = rule
  // An explicit deny is final.
  if (effect.kind === 'deny')
    return { effect: 'deny', reason: `denied by rule ${rule.pattern}`, source }
  // An explicit allow needs nothing beyond server access.
  if (effect.kind === 'allow')
    return { effect: 'allow', reason: `allowed by rule ${rule.pattern}`, source }
  // Held means held as written or through an implication (MCP 2026-07-28 authorization).
  const missing = implies.withoutImplied(effect.scopes.filter((s) => !grants.has(s)))
  // Every listed scope held: allowed.
  if (missing.length === 0)
    return { effect: 'allow', reason: `scopes held for rule ${rule.pattern}`, source }
  // MCP 2025-11-25 step-up: challenge with everything the operation needs, in one list.
  const required = stepUpScopes([...access, ...effect.scopes], grants, implies)
  return {
    effect: 'challenge',
    reason: `missing scope ${missing.join(' ')} for rule ${rule.pattern}`,
    source,
    required,
    missing,
  }
}

/** What one rule means for one caller: its pattern and the effect it would have. */
export interface RuleVerdict {
  pattern: string
  effect: Decision['effect']
  /** Scopes the caller lacks for it (challenge only). */
  missing?: readonly string[]
}

/**
 * The rules of one feature of a server as this caller would meet them, in order, leaving out
 * rules whose conditions the caller does not meet (for /whoami and explanations).
 */
export function ruleVerdicts(
  policy: Policy,
  principal: Principal,
  server: string,
  feature: Feature,
): RuleVerdict[] {
  const sp = policy.servers.get(server)
  if (sp === undefined) return []
  const grants = grantsOf(policy, principal)
  return sp.rules[feature]
    .filter((r) => r.when === undefined || conditionsHold(r.when, principal, grants))
    .map((r) => {
      const d = ruleDecision(r, grants, sp.access, policy.implies)
      return d.effect === 'challenge'
        ? { pattern: r.pattern, effect: d.effect, missing: d.missing }
        : { pattern: r.pattern, effect: d.effect }
    })
}
