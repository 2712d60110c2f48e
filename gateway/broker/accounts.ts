import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { type Fields, parseRecord } from '../store/record.js'
import type { Store } from '../store/store.js'
import type { UpstreamIdentity, UpstreamTokens } from './upstream.js'

/** What the broker knows of a user between logins: never tokens (those are sealed apart). */
export interface Account {
  /** The subject of the broker's tokens: the upstream user's stable id. */
  sub: string
  /** Roles from the upstream (roles, groups, through upstream.roleMap). */
  roles: string[]
  email?: string
  name?: string
  /** When the upstream last confirmed the user (login or re-check), epoch s. */
  checkedAt: number
}

/** The upstream side the accounts need: a re-check from the kept tokens. */
export interface UpstreamRecheck {
  refresh(tokens: UpstreamTokens): Promise<UpstreamIdentity>
}

/** Seals values at rest, bound to their key (additional authenticated data). */
export interface Sealer {
  seal(plaintext: string, aad: string): string
  open(sealed: string, aad: string): string
}

/** Where the upstream refused a user: a grant's re-check, or a refresh of a server's upstream token. */
export type SignOutCause = 'recheck' | 'upstreamToken'

/** Why a re-check ended a user's access, or kept it. */
export type RecheckOutcome = 'fresh' | 'rechecked' | 'revoked' | 'unavailable'

/**
 * Users the broker has logged in, in the shared store: their account (roles, when last
 * checked) and their upstream tokens, sealed so a store dump reveals none. A refresh re-checks
 * the user upstream once `recheckInterval` has passed: a user removed or disabled at the IdP
 * loses access then (the refresh fails and the grant is revoked); roles that changed upstream
 * take effect at once. Re-checks of one user are serialised across replicas, so a rotating
 * upstream refresh token is never used twice.
 */
export class Accounts {
  constructor(
    private readonly o: {
      store: Store
      sealer: Sealer
      upstream: UpstreamRecheck
      /** Seconds between re-checks; 0 = at every refresh. */
      recheckInterval: number
      /** How long an account and its tokens are kept without a login or refresh, in s. */
      ttl: number
      /** Serialises work on one key across replicas. */
      withLock: <T>(key: string, fn: () => Promise<T>) => Promise<T>
      log: Logger
      now?: () => number
      /**
       * Told when the upstream refused the user (`cause`: where), before the account is
       * forgotten: every access token of theirs, of every grant and client, must be refused from
       * now on.
       */
      signedOut?: (sub: string, cause: SignOutCause) => Promise<void>
    },
  ) {}

  private now(): number {
    return Math.floor((this.o.now ?? Date.now)() / 1000)
  }

  /** Records a login: the account from the upstream's identity, its tokens sealed. */
  async login(identity: UpstreamIdentity): Promise<Account> {
    const account: Account = {
      sub: identity.subject,
      roles: [...new Set(identity.roles)].sort(),
      ...(identity.email ? { email: identity.email } : {}),
      ...(typeof identity.claims.name === 'string' ? { name: identity.claims.name } : {}),
      checkedAt: this.now(),
    }
    await this.save(account, identity.tokens)
    return account
  }

  async find(sub: string): Promise<Account | undefined> {
    return parseRecord<Account>(
      await this.o.store.get(accountKey(sub)),
      'account',
      ACCOUNT,
      this.o.log,
    )
  }

  /** The user's upstream tokens, opened; undefined when none are kept (or they do not open). */
  async tokens(sub: string): Promise<UpstreamTokens | undefined> {
    const sealed = await this.o.store.get(tokensKey(sub))
    if (sealed === undefined) return undefined
    try {
      const opened = this.o.sealer.open(sealed, tokensKey(sub))
      return parseRecord<UpstreamTokens>(opened, 'upstream tokens', TOKENS, this.o.log)
    } catch {
      this.o.log.warn(
        { sub },
        'kept upstream tokens did not open (key removed?); the user must log in again',
      )
      return undefined
    }
  }

  /** Whether upstream tokens are kept for the user (without opening them: the account page says so). */
  async holdsTokens(sub: string): Promise<boolean> {
    return (await this.o.store.get(tokensKey(sub))) !== undefined
  }

  /**
   * The account for a refresh of a grant first issued at `issuedAt` (epoch s: the refresh
   * token's `iiat`): re-checked upstream when due. `revoked` (the upstream refused the user)
   * forgets the account and signs the user out everywhere: a grant issued until then is refused
   * at its refresh for as long as a refresh token lives, even once the user has logged in
   * again. `unavailable` (the upstream could not be reached) keeps the account unchanged and
   * refuses this refresh, so a client retries rather than keep a stale role.
   */
  async forRefresh(
    sub: string,
    issuedAt?: number,
  ): Promise<{ account: Account | undefined; outcome: RecheckOutcome }> {
    const account = await this.unlessSignedOut(sub, issuedAt)
    if (account === undefined) return { account: undefined, outcome: 'revoked' }
    if (this.now() - account.checkedAt < this.o.recheckInterval)
      return { account, outcome: 'fresh' }
    return this.o.withLock(`broker:recheck:${sub}`, async () => {
      // Another replica may have re-checked (or signed the user out) while this one waited.
      const current = await this.unlessSignedOut(sub, issuedAt)
      if (current === undefined) return { account: undefined, outcome: 'revoked' as const }
      if (this.now() - current.checkedAt < this.o.recheckInterval)
        return { account: current, outcome: 'fresh' as const }
      const tokens = await this.tokens(sub)
      if (tokens === undefined) {
        await this.forget(sub)
        return { account: undefined, outcome: 'revoked' as const }
      }
      try {
        const identity = await this.o.upstream.refresh(tokens)
        if (identity.subject !== sub)
          throw Object.assign(new Error('the upstream names another user'), {
            code: 'upstream_revoked',
          })
        return { account: await this.login(identity), outcome: 'rechecked' as const }
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'upstream_unavailable')
          return { account: undefined, outcome: 'unavailable' as const }
        this.o.log.info({ sub, code }, 'the upstream no longer vouches for the user; access ends')
        await this.signOut(sub)
        return { account: undefined, outcome: 'revoked' as const }
      }
    })
  }

  /** The account, unless there is none or the grant (first issued at `issuedAt`) predates a sign-out. */
  private async unlessSignedOut(sub: string, issuedAt?: number): Promise<Account | undefined> {
    const [value, out] = await this.o.store.getMany([accountKey(sub), signedOutKey(sub)])
    if (value === undefined || (out !== undefined && (issuedAt ?? 0) <= Number(out)))
      return undefined
    return parseRecord<Account>(value, 'account', ACCOUNT, this.o.log)
  }

  /**
   * The user's upstream token of `kind`, for a server process that acts as them upstream
   * (the `upstreamToken` credential source). An access token within `minValidity` s of its
   * expiry is refreshed with the upstream first (serialised with re-checks across replicas,
   * as the upstream may rotate its refresh token). Undefined when none is kept, or the kept
   * one has expired and cannot be refreshed: the user must log in again. A refresh the
   * upstream refuses (`upstream_revoked`: the user disabled, their grant revoked) signs the user
   * out everywhere, as a re-check does; an upstream out of reach changes nothing.
   */
  async upstreamToken(
    sub: string,
    kind: 'access_token' | 'id_token',
    minValidity: number,
  ): Promise<string | undefined> {
    const stale = (t: UpstreamTokens) =>
      t.expiresAt !== undefined && t.expiresAt - this.now() < minValidity
    let tokens = await this.tokens(sub)
    if (tokens !== undefined && stale(tokens) && tokens.refreshToken !== undefined) {
      tokens = await this.o.withLock(`broker:recheck:${sub}`, async () => {
        const current = await this.tokens(sub)
        if (current === undefined || !stale(current) || current.refreshToken === undefined)
          return current
        try {
          const identity = await this.o.upstream.refresh(current)
          if (identity.subject !== sub)
            throw Object.assign(new Error('the upstream names another user'), {
              code: 'upstream_revoked',
            })
          await this.login(identity)
          return identity.tokens
        } catch (err) {
          const code = (err as { code?: string }).code
          if (code === 'upstream_revoked') {
            // As at a re-check (forRefresh): the upstream refused the user, so every token ends.
            this.o.log.info(
              { sub, code },
              'the upstream no longer vouches for the user; access ends',
            )
            await this.signOut(sub, 'upstreamToken')
            return undefined
          }
          this.o.log.info(
            { sub, code },
            'the upstream token could not be refreshed for a server process',
          )
          return current
        }
      })
    }
    if (tokens === undefined || (tokens.expiresAt !== undefined && tokens.expiresAt <= this.now()))
      return undefined
    return kind === 'id_token' ? tokens.idToken : tokens.accessToken
  }

  async forget(sub: string): Promise<void> {
    await this.o.store.del([accountKey(sub), tokensKey(sub)])
  }

  /**
   * Signs the user out everywhere: forgets the account, refuses every grant issued until now at
   * its next refresh (the mark lives as long as a refresh token), and has every access token
   * refused at once (`signedOut`). `cause`: where the upstream refused the user.
   */
  async signOut(sub: string, cause: SignOutCause = 'recheck'): Promise<void> {
    const at = this.now()
    // The access tokens first (this replica refuses them at once); the rest even if that fails.
    try {
      await this.o.signedOut?.(sub, cause)
    } finally {
      await this.forget(sub)
      await this.o.store.set(signedOutKey(sub), String(at), { ttlMs: this.o.ttl * 1000 })
    }
  }

  private async save(account: Account, tokens: UpstreamTokens): Promise<void> {
    const ttlMs = this.o.ttl * 1000
    await this.o.store.set(accountKey(account.sub), JSON.stringify(account), { ttlMs })
    await this.o.store.set(
      tokensKey(account.sub),
      this.o.sealer.seal(JSON.stringify(tokens), tokensKey(account.sub)),
      { ttlMs },
    )
  }
}

/** An account as {@link Accounts.login} writes it. */
const ACCOUNT: Fields = {
  sub: 'string',
  roles: 'string[]',
  email: 'string?',
  name: 'string?',
  checkedAt: 'number',
}

/** Upstream tokens as {@link Accounts.login} seals them. */
const TOKENS: Fields = {
  accessToken: 'string',
  refreshToken: 'string?',
  idToken: 'string?',
  expiresAt: 'number?',
  scope: 'string?',
}

/** The store keys of a user's account and upstream tokens (`mcp-edge secrets purge` deletes them). */
export function accountKeys(sub: string): string[] {
  return [accountKey(sub), tokensKey(sub)]
}

function accountKey(sub: string): string {
  return `broker:account:${encodeURIComponent(sub)}`
}

/** When the user was last signed out everywhere (epoch s): keyed by a hash, as it outlives the account. */
function signedOutKey(sub: string): string {
  return `broker:signed-out:${createHash('sha256').update(sub).digest('base64url')}`
}

function tokensKey(sub: string): string {
  return `broker:upstream:${encodeURIComponent(sub)}`
}
