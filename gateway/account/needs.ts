import type { Principal } from '../auth/principal.js'
import type { ServerConfig } from '../config/schema.js'
import type { SecretInfo } from '../credentials/secrets.js'
import { decideAccess } from '../policy/evaluate.js'
import type { Policy } from '../policy/policy.js'

/** One credential a server's process gets, as the user sees it: never a value. */
export type CredentialNeed =
  /**
   * A secret the user sets: its name, what it is, when it was set and when it expires unused
   * (undefined: not set; expiresAt null: never).
   */
  | {
      env: string
      kind: 'secret'
      secret: string
      describe: string | undefined
      setAt: number | undefined
      expiresAt: number | null | undefined
    }
  /** Supplied automatically: the user's token exchanged at the identity provider (RFC 8693). */
  | {
      env: string
      kind: 'exchange'
      audience: string | undefined
      resource: string | undefined
      scope: string | undefined
    }
  /**
   * Supplied automatically: the token of the user's sign-in at the broker's upstream. `held`:
   * whether the broker keeps one for this user (undefined: the user did not sign in through it).
   */
  | {
      env: string
      kind: 'upstreamToken'
      token: 'access_token' | 'id_token'
      upstream: string | undefined
      held: boolean | undefined
    }

/** A server the user may use, and what it needs from them. */
export interface ServerNeeds {
  name: string
  description: string | undefined
  credentials: CredentialNeed[]
}

/** What the account page and its API show one user. */
export interface AccountNeeds {
  /** The servers the user may use now (the live policy), in configuration order. */
  servers: ServerNeeds[]
  /** Secret names the user may set: those some server of `servers` takes. */
  settable: ReadonlySet<string>
  /** What the gateway holds for the user: names and dates, nothing else. */
  held: readonly SecretInfo[]
}

/**
 * What `principal` may use and what each of those servers needs from them. A server the policy
 * does not open to the principal is left out entirely (its secrets are not settable), so the
 * page never offers storage no process of theirs would read.
 */
export function accountNeeds(o: {
  servers: Readonly<Record<string, ServerConfig>>
  policy: Policy
  principal: Principal
  held: readonly SecretInfo[]
  /** The broker's upstream (its host) and whether it holds a token for this user, when the user signed in through it. */
  upstream?: { name: string; held: boolean | undefined }
}): AccountNeeds {
  const held = new Map(o.held.map((s) => [s.name, s]))
  const servers: ServerNeeds[] = []
  const settable = new Set<string>()
  for (const [name, server] of Object.entries(o.servers)) {
    if (decideAccess(o.policy, o.principal, name).effect !== 'allow') continue
    const credentials = Object.entries(server.credentials).map(([env, c]): CredentialNeed => {
      if ('secret' in c) {
        settable.add(c.secret)
        return {
          env,
          kind: 'secret',
          secret: c.secret,
          describe: c.describe,
          setAt: held.get(c.secret)?.setAt,
          expiresAt: held.get(c.secret)?.expiresAt,
        }
      }
      if ('exchange' in c)
        return {
          env,
          kind: 'exchange',
          audience: c.exchange.audience,
          resource: c.exchange.resource,
          scope: c.exchange.scope,
        }
      return {
        env,
        kind: 'upstreamToken',
        token: c.upstreamToken,
        upstream: o.upstream?.name,
        held: o.upstream?.held,
      }
    })
    servers.push({ name, description: server.description, credentials })
  }
  return { servers, settable, held: o.held }
}

/** The first server of `needs` that takes secret `name` (where a set or delete is audited). */
export function serverTaking(needs: AccountNeeds, name: string, preferred?: string): string {
  const takes = (s: ServerNeeds) =>
    s.credentials.some((c) => c.kind === 'secret' && c.secret === name)
  const preferredServer = needs.servers.find((s) => s.name === preferred)
  if (preferredServer && takes(preferredServer)) return preferredServer.name
  return needs.servers.find(takes)?.name ?? ''
}
