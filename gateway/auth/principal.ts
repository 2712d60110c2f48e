import type { JWTPayload } from 'jose'

/** Who is calling, as the gateway sees it after verification. Never holds the token itself. */
export interface Principal {
  iss: string
  sub: string
  /** `azp`, else `client_id`, else undefined. */
  clientId: string | undefined
  /** Scopes from `scope` (space separated) and `scp` (string or list). */
  scopes: ReadonlySet<string>
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
 * Reads a verified payload into a Principal. `roleClaims` are dotted paths; a `*` segment
 * matches every key at that level (`resource_access.*.roles` gathers all client roles).
 */
export function toPrincipal(payload: JWTPayload, roleClaims: readonly string[]): Principal {
  const scopes = new Set<string>()
  for (const claim of [payload.scope, payload.scp]) {
    const list = typeof claim === 'string' ? claim.split(' ') : Array.isArray(claim) ? claim : []
    for (const s of list) if (typeof s === 'string' && s !== '') scopes.add(s)
  }
  const roles = new Set<string>()
  for (const path of roleClaims) {
    for (const value of walk(payload, path.split('.'))) {
      const list = Array.isArray(value) ? value : typeof value === 'string' ? [value] : []
      for (const r of list) if (typeof r === 'string' && r !== '') roles.add(r)
    }
  }
  const clientId = str(payload.azp) ?? str(payload.client_id)
  return { iss: payload.iss!, sub: payload.sub!, clientId, scopes, roles, exp: payload.exp, claims: payload }
}

/** The values at a dotted claim path (`*` matches any key), flattened to strings. */
export function claimValues(claims: unknown, path: string): string[] {
  const out: string[] = []
  for (const value of walk(claims, path.split('.'))) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out.push(String(v))
    }
  }
  return out
}

function* walk(node: unknown, path: string[]): Generator<unknown> {
  if (path.length === 0) {
    yield node
    return
  }
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return
  const [head, ...rest] = path
  const obj = node as Record<string, unknown>
  // A claim name may itself hold dots (Auth0's `https://example.com/roles`): try it whole.
  const whole = path.join('.')
  if (path.length > 1 && Object.hasOwn(obj, whole)) yield obj[whole]
  if (head === '*') for (const key of Object.keys(obj)) yield* walk(obj[key], rest)
  else if (Object.hasOwn(obj, head!)) yield* walk(obj[head!], rest)
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}
