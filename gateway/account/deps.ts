import type { Authenticator } from '../auth/authenticator.js'
import type { Principal } from '../auth/principal.js'
import type { Resources } from '../auth/resources.js'
import type { GatewayConfig } from '../config/schema.js'
import type { UserSecrets } from '../credentials/secrets.js'
import type { OriginPolicy } from '../http/origin.js'
import type { AuditLog } from '../observability/audit.js'
import type { PolicyStore } from '../policy/store.js'
import type { Sealer } from '../store/sealed.js'
import type { Store } from '../store/store.js'
import type { BrokerClientDeps } from './sign-in.js'

/** The broker as the account page needs it: to sign users in, and to know them afterwards. */
export interface AccountBroker extends Omit<BrokerClientDeps, 'timeoutMs'> {
  /** The user as the broker knows them now (roles, a name to show); undefined once forgotten. */
  account(sub: string): Promise<{ roles: readonly string[]; label: string } | undefined>
  /** Whether the broker keeps upstream tokens for the user (the `upstreamToken` credentials). */
  holdsUpstreamToken(sub: string): Promise<boolean>
  /** The upstream identity provider as users know it (its host). */
  upstream: string
  /** Ends this browser's sign-in at the broker (`cookie` reads the request's cookies), at sign-out. */
  endBrowserSession(cookie: (name: string) => string | undefined): Promise<void>
}

/** What the account page and its API need from the gateway. */
export interface AccountDeps {
  config: GatewayConfig
  publicUrl: string
  secrets: UserSecrets
  policy: PolicyStore
  /** Verifies the API's bearer tokens, for any of the gateway's servers. */
  authenticator: Authenticator
  resources: Resources
  audit: AuditLog
  origin: OriginPolicy
  /** Seals the page's cookies (the gateway's sealing keys: every replica opens them). */
  sealer: Sealer
  /** The shared store: sessions signed out are remembered there until they would have expired. */
  store: Store
  /** The broker, when it runs: without it the page cannot sign anyone in (the API still works). */
  broker?: AccountBroker
  /** Epoch ms, for the page session's expiry (tests move it). */
  now: () => number
}

/** The principal the page decides with: the user's roles now, no token, so the role ceiling is what counts. */
export function pagePrincipal(
  iss: string,
  sub: string,
  roles: readonly string[],
  clientId: string,
): Principal {
  return {
    iss,
    sub,
    clientId,
    scopes: new Set(),
    hasScopeClaim: false,
    roles: new Set(roles),
    exp: undefined,
    claims: { sub, roles: [...roles] },
  }
}
