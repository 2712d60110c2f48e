import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { RevocationMarks, Revocations } from '../auth/revocation.js'
import type { GatewayConfig } from '../config/schema.js'
import type { Store } from '../store/store.js'

/** The store key of the list (an expiring set) and the channel replicas tell each other on. */
export const REVOKED_SET = 'broker:revoked'
export const REVOKED_CHANNEL = 'broker:revoked'
/** The prefix of each user's count of access tokens revoked (a hash of the subject follows). */
const REVOKED_BY = 'broker:revoked-by:'

/** What the list reports (a metric's `event` label). */
export type RevocationEvent =
  | 'revoked' // this replica listed a revoked grant or token
  | 'learned' // another replica's, by message or reload
  | 'overflow' // the list was full: every token issued until now is refused
  | 'subscription_lost'
  | 'resynced' // the subscription is back and the list was reloaded

/** Who and what a revocation was about, for the audit line. */
export interface RevokedGrant {
  grantId: string
  accountId?: string
  clientId?: string
}

/** The client-facing descriptions of a refusal (RFC 6750 error_description). */
const GRANT_REVOKED = "the token's grant was revoked"
const TOKEN_REVOKED = 'the token was revoked'
const OVERFLOWED = 'the token may have been revoked; get a new one'
const SIGNED_OUT = 'the user was signed out everywhere; sign in again'

/**
 * A list message or store member: `g.<grant tag>`, `t.<jti>` or `s.<subject hash>.<cutoff, epoch
 * s>` (every token of the subject issued until then), then (messages) the ms left.
 */
const ENTRY = /^(?:[gt]\.[A-Za-z0-9_-]{1,128}|s\.[A-Za-z0-9_-]{43}\.\d{1,12})$/
/** A replica's heartbeat on the channel: `hb.<its nonce>` (others' are ignored). */
const HEARTBEAT = 'hb.'

/**
 * Revoked grants (by their tag) and access tokens (by jti), until the tokens they name have
 * expired: in this replica's memory, where every verification looks (no I/O on the request
 * path); in the store, where a replica (re)starting or resubscribing loads them; and told to
 * every replica at once (pub/sub). Bounded: past `maxEntries` nothing is evicted; the list
 * refuses every broker token issued until then instead, until the newest entry would have
 * expired, so it fails closed. With Redis, a subscription that is down makes `problem()` say
 * so (readiness): the local list may miss other replicas' revocations until it is back.
 */
export class RevocationList implements Revocations {
  private readonly entries = new Map<string, number>()
  /** Signed-out subjects (by hash): every token issued at or before `iat` is refused until `until`. */
  private readonly cutoffs = new Map<string, { iat: number; until: number }>()
  private readonly keys: Buffer[]
  private overflow: { iat: number; until: number } | undefined
  private subscribed: boolean | undefined
  private unsubscribe: (() => Promise<void>) | undefined
  /** This replica's heartbeat message, and when it was last heard back. */
  private readonly beat = `${HEARTBEAT}${randomBytes(12).toString('base64url')}`
  private heard = 0
  private beating: NodeJS.Timeout | undefined
  private resubscribing = false

  private constructor(
    private readonly o: {
      store: Store
      /** How long an entry lives, in ms: the access token TTL plus the clock tolerance. */
      ttlMs: number
      /** The verifier's clock tolerance, in ms (a token is accepted this long past its exp). */
      toleranceMs: number
      maxEntries: number
      /** Access tokens one user may revoke within `ttlMs`. */
      tokensPerUser: number
      /** The broker's cookie keys: the first tags grants, each names them in the list. */
      cookieKeys: readonly string[]
      log: Logger
      onEvent?: (event: RevocationEvent) => void
      now?: () => number
      /**
       * With a shared store: how often this replica publishes its heartbeat and checks it heard
       * the last ones, in ms (a subscription dropped silently raises no error). 0: never.
       */
      heartbeatMs?: number
    },
  ) {
    // Tags are keyed by a key derived for them alone; every cookie key is one, so a grant
    // revoked after a key rotation is found under the key its tokens were tagged with.
    this.keys = o.cookieKeys.map((k) =>
      Buffer.from(hkdfSync('sha256', k, '', 'mcp-edge grant tag', 32)),
    )
  }

  /**
   * Starts the list: loads what the store holds and, with a shared store, subscribes.
   * @throws StoreError when the store cannot be read or subscribed to
   */
  static async start(o: RevocationList['o']): Promise<RevocationList> {
    const list = new RevocationList(o)
    const { broadcast } = o.store
    // Subscribed before loading: an entry listed in between arrives by message.
    if (broadcast !== undefined) await list.subscribe()
    try {
      await list.reload()
    } catch (err) {
      await list.close()
      throw err
    }
    if (broadcast !== undefined) {
      list.subscribed = true
      list.heard = list.now()
      const every = o.heartbeatMs ?? 0
      if (every > 0) {
        list.beating = setInterval(() => void list.heartbeat(every), every)
        list.beating.unref()
      }
    }
    return list
  }

  private async subscribe(): Promise<void> {
    this.unsubscribe = await this.o.store.broadcast!.subscribe(REVOKED_CHANNEL, {
      message: (m) => this.receive(m),
      ready: () => void this.resync(),
      down: () => this.down('error'),
    })
  }

  private down(why: 'error' | 'silent'): void {
    if (this.subscribed === false) return
    this.subscribed = false
    this.o.onEvent?.('subscription_lost')
    if (why === 'silent')
      this.o.log.warn(
        'revocation list: own heartbeat not heard; polling the store and subscribing again',
      )
  }

  /**
   * One heartbeat: its last ones not heard back for two intervals, the subscription counts as
   * down (readiness) even without an error, is made anew, and meanwhile the list is polled from
   * the store, so a revocation another replica made is refused here within an interval.
   */
  private async heartbeat(every: number): Promise<void> {
    if (this.now() - this.heard > 2 * every) {
      this.down('silent')
      if (!this.resubscribing) void this.renew()
    }
    // Not trusted (silent, or an error the client is reconnecting from): poll the store.
    if (this.subscribed === false)
      await this.reload().catch(() => {
        // the store is away too: readiness already says the list cannot be trusted
      })
    await this.o.store.broadcast?.publish(REVOKED_CHANNEL, this.beat).catch(() => {})
  }

  /** Drops the subscription that went silent and makes a new one (next heartbeat retries). */
  private async renew(): Promise<void> {
    this.resubscribing = true
    try {
      await this.unsubscribe?.().catch(() => {})
      this.unsubscribe = undefined
      await this.subscribe()
    } catch (err) {
      this.o.log.debug({ err }, 'revocation list: subscribing again failed; retrying')
    } finally {
      this.resubscribing = false
    }
  }

  private now(): number {
    return (this.o.now ?? Date.now)()
  }

  /** The claim a token of `grantId` carries. */
  grantTag(grantId: string, key = this.keys[0]!): string {
    return createHmac('sha256', key).update(grantId).digest().subarray(0, 16).toString('base64url')
  }

  /** Entries held now (grants, tokens, signed-out subjects), expired ones not yet swept included. */
  get size(): number {
    return this.entries.size + this.cutoffs.size
  }

  /** Why the list cannot be trusted to hold every replica's revocations, if it cannot. */
  problem(): string | undefined {
    return this.subscribed === false
      ? 'revocations from other replicas are not being received (Redis subscription down)'
      : undefined
  }

  refusal(marks: RevocationMarks): string | undefined {
    const t = this.now()
    if (this.live(`g.${marks.grant}`, t)) return GRANT_REVOKED
    if (marks.jti !== undefined && this.live(`t.${marks.jti}`, t)) return TOKEN_REVOKED
    // One hash per request, and only while someone is signed out.
    if (this.cutoffs.size > 0 && marks.sub !== undefined) {
      const c = this.cutoffs.get(subjectHash(marks.sub))
      if (c !== undefined && t < c.until && (marks.iat ?? 0) <= c.iat) return SIGNED_OUT
    }
    const o = this.overflow
    if (o !== undefined && t < o.until && (marks.iat ?? 0) <= o.iat) return OVERFLOWED
    return undefined
  }

  /** Lists a grant (under every key's tag) here, then in the store and to every replica. */
  async revokeGrant(grantId: string): Promise<void> {
    await this.add(this.keys.map((key) => `g.${this.grantTag(grantId, key)}`))
  }

  /**
   * Signs a user out everywhere: every broker access token of `subject` issued until now (this
   * second included) is refused, whatever its grant or client, on every replica, until the
   * newest could have expired. One entry per subject (a later sign-out moves its cutoff).
   * @throws StoreError when the store cannot list it (this replica refuses them already)
   */
  async revokeSubject(subject: string): Promise<void> {
    await this.add([subjectEntry(subject, this.now())])
  }

  /**
   * Counts one revocation a user asked for (an access token, or a grant by its refresh token)
   * against their share, `tokensPerUser` within a token lifetime, in the store (every replica
   * together); false past it. So one user cannot fill the list and make it refuse everyone's
   * tokens.
   * @throws StoreError when the store cannot count
   */
  async spend(subject: string): Promise<boolean> {
    const key = `${REVOKED_BY}${subjectHash(subject)}`
    return (await this.o.store.incr(key, this.o.ttlMs)) <= this.o.tokensPerUser
  }

  /**
   * Lists one access token by its jti, until it expires (`exp`, epoch s) plus the tolerance.
   * Counted against the user's share ({@link spend}): past it the token is not listed and this
   * resolves false.
   * @throws StoreError when the store cannot count or list it
   */
  async revokeToken(jti: string, exp: number, subject: string): Promise<boolean> {
    const left = Math.min(this.o.ttlMs, exp * 1000 - this.now() + this.o.toleranceMs)
    if (left <= 0) return true
    if (!(await this.spend(subject))) return false
    await this.add([`t.${jti}`], left)
    return true
  }

  async close(): Promise<void> {
    clearInterval(this.beating)
    await this.unsubscribe?.()
  }

  private async add(entries: string[], ttlMs = this.o.ttlMs): Promise<void> {
    for (const e of entries) this.note(e, ttlMs)
    this.o.onEvent?.('revoked')
    // Here first, so this replica refuses at once; then where the others look.
    for (const e of entries) await listEntry(this.o.store, e, ttlMs)
  }

  private live(entry: string, t: number): boolean {
    const end = this.entries.get(entry)
    if (end === undefined) return false
    if (end > t) return true
    this.entries.delete(entry)
    return false
  }

  /** Holds an entry for `leftMs`; resolves whether it was new (or moved a subject's cutoff). */
  private note(entry: string, leftMs: number): boolean {
    const t = this.now()
    const end = t + leftMs
    if (entry.startsWith('s.')) return this.noteSubject(entry, t, end)
    const held = this.entries.get(entry)
    if (held !== undefined) {
      this.entries.set(entry, Math.max(held, end))
      return held <= t
    }
    if (this.room(t)) {
      this.entries.set(entry, end)
      return true
    }
    return this.overflowed(t, end)
  }

  /** `s.<hash>.<iat>`: the subject's one entry, its cutoff and end the latest heard. */
  private noteSubject(entry: string, t: number, end: number): boolean {
    const dot = entry.lastIndexOf('.')
    const hash = entry.slice(2, dot)
    const iat = Number(entry.slice(dot + 1))
    const held = this.cutoffs.get(hash)
    if (held !== undefined && held.until > t) {
      this.cutoffs.set(hash, { iat: Math.max(held.iat, iat), until: Math.max(held.until, end) })
      return iat > held.iat
    }
    if (held === undefined && !this.room(t)) return this.overflowed(t, end)
    this.cutoffs.set(hash, { iat, until: end })
    return true
  }

  /** Whether one more entry fits, expired ones swept when the list seems full. */
  private room(t: number): boolean {
    if (this.size < this.o.maxEntries) return true
    for (const [e, until] of this.entries) if (until <= t) this.entries.delete(e)
    for (const [h, c] of this.cutoffs) if (c.until <= t) this.cutoffs.delete(h)
    return this.size < this.o.maxEntries
  }

  private overflowed(t: number, end: number): boolean {
    // Full of live entries: refuse every token issued until now rather than forget one.
    this.overflow = {
      iat: Math.floor(t / 1000),
      until: Math.max(this.overflow?.until ?? 0, end),
    }
    this.o.onEvent?.('overflow')
    this.o.log.error(
      { max: this.o.maxEntries },
      'revocation list full: every broker token issued until now is refused until it expires',
    )
    return true
  }

  private receive(message: string): void {
    if (message.startsWith(HEARTBEAT)) {
      if (message !== this.beat) return
      this.heard = this.now()
      // Heard again after going silent: what was missed is loaded, then the list is trusted.
      if (this.subscribed === false) void this.resync()
      return
    }
    const [entry, left] = message.split(' ')
    const ms = Number(left)
    if (entry === undefined || !ENTRY.test(entry) || !Number.isSafeInteger(ms) || ms <= 0) {
      this.o.log.warn('revocation list: a malformed message was ignored')
      return
    }
    if (this.note(entry, Math.min(ms, this.o.ttlMs))) this.o.onEvent?.('learned')
  }

  /** Loads every live entry of the store (after a restart, or anything missed while unsubscribed). */
  private async reload(): Promise<void> {
    for (const [entry, left] of await this.o.store.liveMembers(REVOKED_SET))
      if (ENTRY.test(entry) && this.note(entry, Math.min(left, this.o.ttlMs)))
        this.o.onEvent?.('learned')
  }

  private async resync(): Promise<void> {
    try {
      await this.reload()
      if (this.subscribed === false) this.o.onEvent?.('resynced')
      this.subscribed = true
    } catch (err) {
      // Subscribed but the list could not be read: still not trusted; the next ready retries.
      this.subscribed = false
      this.o.log.warn({ err }, 'revocation list: reload after subscribing failed')
    }
  }
}

/**
 * How long an entry lives, in ms, with `config`'s broker: the access token TTL plus the clock
 * tolerance, plus a minute: a refresh already in flight when its grant is revoked may mint a
 * token a little later, and that token must be refused to its end too (the outside review).
 */
export function revocationTtlMs(
  config: GatewayConfig,
  broker: NonNullable<GatewayConfig['auth']['broker']>,
): number {
  return (broker.accessTokenTtl + config.auth.clockTolerance + 60) * 1000
}

/** The entry signing `subject` out everywhere: every token of theirs issued until `nowMs`'s second. */
export function subjectEntry(subject: string, nowMs: number): string {
  return `s.${subjectHash(subject)}.${Math.floor(nowMs / 1000)}`
}

/**
 * Lists `entry` for `ttlMs` in the store, where a replica (re)starting loads it, and tells every
 * subscribed replica (a list, or an operator's command that holds none).
 * @throws StoreError when the store cannot list it
 */
export async function listEntry(store: Store, entry: string, ttlMs: number): Promise<void> {
  await store.addExpiring(REVOKED_SET, entry, ttlMs)
  await store.broadcast?.publish(REVOKED_CHANNEL, `${entry} ${ttlMs}`)
}

/** How a subject is named in the list, the store and messages (never as itself). */
function subjectHash(subject: string): string {
  return createHash('sha256').update(subject).digest('base64url')
}
