import type { JWTPayload } from 'jose'

/** Who is calling, as the gateway sees it after verification. Never holds the token itself. */
export interface Principal {
  iss: string
  sub: string
  /** `azp`, else `client_id`, else undefined. */
  clientId: string | undefined
  /** Scopes from `scope` (space separated) and `scp` (string or list). */
  scopes: ReadonlySet<string>
  /**
   * Whether the token has a `scope` or `scp` claim at all (even an empty one): then its scopes
   * are the delegation the user granted this client, within what the user's roles allow.
   */
  hasScopeClaim: boolean
  /** Roles found at the configured claim paths. */
  roles: ReadonlySet<string>
  /** Token expiry, seconds since the epoch. */
  exp: number | undefined
  /** Holds every scope. Only the --insecure-no-auth identity has it; no token can set it. */
  allScopes?: true
  /** The verified token's claims, for policy conditions. */
  claims: Readonly<Record<string, unknown>>
}

/**
 * Where roles are read from: a claim path and the form its value must have. A path is dotted
 * segments walked through nested objects (`*` matches any key); a path holding `://` is one
 * top-level claim name taken literally (Auth0's `https://example.com/roles`). The value must be
 * an array of strings, or with `format: space-separated` one string of space-separated roles;
 * a value of any other shape grants nothing.
 */
export type RoleClaim = string | { path: string; format?: 'array' | 'space-separated' }

/**
 * Reads a verified payload into a Principal. `scope` (a space-separated string, or a list) and
 * `scp` (a string or a list) give the scopes; `hasScopeClaim` records whether either claim is
 * there at all, which decides how roles and scopes combine (policy/evaluate.ts).
 */
export function toPrincipal(payload: JWTPayload, roleClaims: readonly RoleClaim[]): Principal {
  const scopes = new Set<string>()
  for (const claim of [payload.scope, payload.scp]) {
    const list = typeof claim === 'string' ? claim.split(' ') : Array.isArray(claim) ? claim : []
    for (const s of list) if (typeof s === 'string' && s !== '') scopes.add(s)
  }
  const roles = rolesAt(payload, roleClaims)
  const clientId = str(payload.azp) ?? str(payload.client_id)
  const hasScopeClaim = Object.hasOwn(payload, 'scope') || Object.hasOwn(payload, 'scp')
  return {
    iss: payload.iss!,
    sub: payload.sub!,
    clientId,
    scopes,
    hasScopeClaim,
    roles,
    exp: payload.exp,
    claims: payload,
  }
}

/** The roles found at the configured claim paths of `claims` (a token's, or userinfo's). */
export function rolesAt(claims: unknown, roleClaims: readonly RoleClaim[]): Set<string> {
  const roles = new Set<string>()
  for (const spec of roleClaims) {
    const { path, format } =
      typeof spec === 'string' ? { path: spec, format: 'array' as const } : spec
    for (const value of walk(claims, claimPath(path))) {
      for (const r of roleList(value, format ?? 'array')) roles.add(r)
    }
  }
  return roles
}

/** The roles in one claim value, if it has the configured form; nothing otherwise. */
function roleList(value: unknown, format: 'array' | 'space-separated'): string[] {
  if (format === 'space-separated')
    return typeof value === 'string' ? value.split(' ').filter((r) => r !== '') : []
  if (!Array.isArray(value) || !value.every((r) => typeof r === 'string')) return []
  return (value as string[]).filter((r) => r !== '')
}

/** The segments of a claim path: dotted, or one literal claim name when it holds `://`. */
export function claimPath(path: string): string[] {
  return path.includes('://') ? [path] : path.split('.')
}

/** The values at a claim path (`*` matches any key), flattened to strings. */
export function claimValues(claims: unknown, path: string): string[] {
  const out: string[] = []
  for (const value of walk(claims, claimPath(path))) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
        out.push(String(v))
    }
  }
  return out
}

/** Walks nested objects only: a key that merely holds dots is never read as a path. */
function* walk(node: unknown, path: string[]): Generator<unknown> {
  if (path.length === 0) {
    yield node
    return
  }
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return
  const [head, ...rest] = path
  const obj = node as Record<string, unknown>
  if (head === '*') for (const key of Object.keys(obj)) yield* walk(obj[key], rest)
  else if (Object.hasOwn(obj, head!)) yield* walk(obj[head!], rest)
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}
