import type { Principal } from '../../gateway/auth/principal.js'

/**
 * A verified caller as the bridge and policy see one, for tests that drive them without a
 * token: issuer `https://idp.test`, no scope claim, no roles unless given.
 */
export function principal(sub = 'alice', o: Partial<Principal> = {}): Principal {
  return {
    iss: 'https://idp.test',
    sub,
    clientId: 'app',
    scopes: new Set(),
    hasScopeClaim: false,
    roles: new Set(),
    exp: undefined,
    claims: {},
    ...o,
  }
}
