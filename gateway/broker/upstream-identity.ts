import { rolesAt, type RoleClaim } from '../auth/principal.js'
import { UpstreamError } from './errors.js'

/** Who the upstream says the user is, before tokens are attached. */
export interface UpstreamClaims {
  /** The subject claim's value: a non-empty string (an integer id becomes its decimal text). */
  subject: string
  /** ID token claims over userinfo claims; protocol values (nonce, token hashes) left out. */
  claims: Record<string, unknown>
  /** Values at the role claims, then the roleMap names those values map to. Sorted, unique. */
  roles: string[]
  /** The email claim, unless the upstream says it is unverified. */
  email?: string
}

/** How upstream claims become an identity: the upstream section of the config. */
export interface IdentityRules {
  subjectClaim: string
  roleClaims: readonly RoleClaim[]
  roleMap: Readonly<Record<string, readonly string[]>>
  allowedDomains?: readonly string[]
}

// ID token claims that describe the token exchange, not the user.
const PROTOCOL_CLAIMS = ['nonce', 'at_hash', 'c_hash', 's_hash']
/** Longest subject accepted, in characters. Not a setting: OIDC Core §2 caps sub at 255 ASCII characters. */
export const MAX_SUBJECT_LENGTH = 255

/**
 * Reads the identity out of verified ID token claims and/or userinfo claims; `previous` (the
 * login's ID token, at a re-check without a new one) only fills gaps and never adds roles. The
 * subject claim is looked up in the ID token first, then userinfo, then `previous` (GitHub's
 * numeric `id` becomes "123"); roles are the union of both documents' role claims, plus what
 * `roleMap` adds for each value found. With `allowedDomains`, the user's domain must be listed: Google's `hd`
 * (the Workspace the account belongs to) when present, else the email's domain; an email the
 * upstream marks `email_verified: false` proves no domain.
 * @throws UpstreamError no_subject, domain_not_allowed
 */
export function identityOf(
  idToken: Record<string, unknown> | undefined,
  userinfo: Record<string, unknown> | undefined,
  rules: IdentityRules,
  previous?: Record<string, unknown>,
): UpstreamClaims {
  const claims: Record<string, unknown> = { ...previous, ...userinfo, ...idToken }
  for (const name of PROTOCOL_CLAIMS) delete claims[name]

  const subject = subjectOf(
    own(idToken, rules.subjectClaim) ??
      own(userinfo, rules.subjectClaim) ??
      own(previous, rules.subjectClaim),
  )
  if (subject === undefined) {
    throw new UpstreamError(
      'no_subject',
      `the upstream names no usable user id in the ${rules.subjectClaim} claim`,
    )
  }

  const found = new Set([
    ...rolesAt(idToken ?? {}, rules.roleClaims),
    ...rolesAt(userinfo ?? {}, rules.roleClaims),
  ])
  const roles = new Set(found)
  for (const value of found) {
    if (Object.hasOwn(rules.roleMap, value))
      for (const role of rules.roleMap[value]!) roles.add(role)
  }

  const email =
    typeof claims.email === 'string' &&
    claims.email.includes('@') &&
    claims.email_verified !== false
      ? claims.email
      : undefined
  if (rules.allowedDomains !== undefined) {
    const domain =
      typeof claims.hd === 'string' ? claims.hd : email?.slice(email.lastIndexOf('@') + 1)
    const allowed = rules.allowedDomains.map((d) => d.toLowerCase())
    if (domain === undefined || !allowed.includes(domain.toLowerCase())) {
      throw new UpstreamError(
        'domain_not_allowed',
        "the user's domain is not in upstream.allowedDomains",
      )
    }
  }
  return { subject, claims, roles: [...roles].sort(), ...(email !== undefined ? { email } : {}) }
}

function own(doc: Record<string, unknown> | undefined, name: string): unknown {
  return doc !== undefined && Object.hasOwn(doc, name) ? doc[name] : undefined
}

function subjectOf(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  if (typeof value === 'string' && value !== '' && value.length <= MAX_SUBJECT_LENGTH) return value
  return undefined
}
