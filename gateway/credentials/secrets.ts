import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import {
  DEFAULT_SECRET_MAX_LENGTH,
  DEFAULT_SECRET_UNUSED_TTL_MS,
  DEFAULT_SECRETS_PER_USER,
} from '../config/schema.js'
import { withLock } from '../store/lock.js'
import { type Fields, parseRecord } from '../store/record.js'
import type { Sealer } from '../store/sealed.js'
import type { Store } from '../store/store.js'

/**
 * How long one user's secret lock lives, in ms. Not a setting: it only frees the lock of a
 * replica that died holding it; a holder makes at most three store calls.
 */
const SECRET_LOCK_TTL_MS = 10_000

/**
 * A used secret's time to live is pushed out at most once per this part of it (a tenth: with
 * 90 days, once in 9 days per user and secret on each replica), not with a store write on every
 * process start; so an unused secret goes between 9/10 of `secretUnusedTtl` and all of it after
 * its last use.
 */
const TOUCH_EVERY_PART = 10

/**
 * Secrets whose last push-out this replica remembers, at most. Not a setting: one forgotten
 * costs a single store write at its next use.
 */
const TOUCHED_MAX = 10_000

/** What the gateway says of a secret: never its value. */
export interface SecretInfo {
  name: string
  /** When it was set, epoch ms. */
  setAt: number
  /**
   * When it expires unless used or set again before, epoch ms, from the store's own time to
   * live of its value (`credentials.secretUnusedTtl`); null: never (0, or set so).
   */
  expiresAt: number | null
}

/** Whose secrets: the issuer and subject of a verified token, never the token. */
export interface SecretOwner {
  iss: string
  sub: string
}

/**
 * Each user's own secrets (API tokens, passwords) for the servers that need them, in the shared
 * store, sealed at rest (AES-256-GCM, bound to their key so records cannot be swapped). Write
 * only: a value goes in and, apart from the process it is handed to, never comes out — the
 * account page and the API show a name and when it was set. Keys name the user by a keyed
 * hash (the sealer's `macs`), so a store listing shows no subjects and reading the store does
 * not let anyone test a guess of whose secrets it holds. Records made under a former sealing
 * key, or under the unkeyed hash earlier versions used, are still found, and move to the
 * active key's name when the user changes that secret. A secret no process was started with,
 * nor set again, for `unusedTtl` expires in the store itself (no sweeper); a use pushes it out.
 */
export class UserSecrets {
  /** Longest value and most secrets per user (`credentials.secretMaxLength`, `secretsPerUser`). */
  readonly maxLength: number
  readonly perUser: number
  /** How long a secret lives unused, in ms; 0: for ever (`credentials.secretUnusedTtl`). */
  readonly unusedTtl: number
  /** When this replica last pushed each secret's expiry out (its store key → epoch ms). */
  private readonly touched = new LRUCache<string, number>({ max: TOUCHED_MAX })

  constructor(
    private readonly o: {
      store: Store
      sealer: Sealer
      now?: () => number
      maxLength?: number
      perUser?: number
      unusedTtl?: number
      /** How long a set or delete waits for another of the user's (`store.lockWait`). */
      lockWait?: number
      /** Told of a stored secret that does not open or parse (never its value nor its owner). */
      log?: Logger
    },
  ) {
    this.maxLength = o.maxLength ?? DEFAULT_SECRET_MAX_LENGTH
    this.perUser = o.perUser ?? DEFAULT_SECRETS_PER_USER
    this.unusedTtl = o.unusedTtl ?? DEFAULT_SECRET_UNUSED_TTL_MS
  }

  private now(): number {
    return (this.o.now ?? Date.now)()
  }

  /** Sets or replaces a secret. @throws Error with a user-facing message when refused */
  async set(owner: SecretOwner, name: string, value: string): Promise<SecretInfo> {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
      throw new Error('a secret name is 1 to 64 letters, digits, _ . -')
    if (value === '' || value.length > this.maxLength)
      throw new Error(`a secret value is 1 to ${this.maxLength} characters`)
    // Values end up in a process's environment: no NUL (it would cut the variable).
    if (value.includes('\0')) throw new Error('a secret value cannot hold a NUL character')
    // One change of the user's at a time, on any replica: two sets of new names at once would
    // each find room under the cap, and a set racing a delete could leave a value unlisted.
    return this.locked(owner, async () => {
      const [user, ...older] = this.users(owner)
      const listed = await this.held(owner)
      const names = new Set(listed.flat())
      if (!names.has(name) && names.size >= this.perUser)
        throw new Error(`at most ${this.perUser} secrets per user`)
      const setAt = this.now()
      const key = valueKey(user!, name)
      const ttl = this.unusedTtl
      // Listed first: a set cut short leaves a listed name with no value (not shown, not
      // used), never a value handed to processes that the user's page does not show. The list
      // lives as long as its newest value (each set and use pushes both out).
      await this.listName(user!, name)
      await this.o.store.set(key, this.o.sealer.seal(JSON.stringify({ value, setAt }), key), {
        ...(ttl === 0 ? {} : { ttlMs: ttl }),
      })
      this.touched.set(key, setAt)
      // Moved: the same name under a former key's name (or the unkeyed hash) goes.
      for (const [i, u] of older.entries())
        if (listed[i + 1]!.includes(name)) await this.drop(u, name)
      return { name, setAt, expiresAt: ttl === 0 ? null : setAt + ttl }
    })
  }

  /**
   * Deletes every secret of the user, under every name their records may have: an operator's
   * `mcp-edge secrets purge` (someone who left). Resolves the names that held a value.
   */
  async purge(owner: SecretOwner): Promise<string[]> {
    return this.locked(owner, async () => {
      const users = this.users(owner)
      const listed = await this.listed(owner)
      const purged = new Set<string>()
      for (const [i, user] of users.entries()) {
        // Listed or not: a value can outlive its list (one set with no expiry, by an earlier
        // version or with 0, or before the setting was lowered), and is still handed out.
        const prefix = valueKey(user, '')
        const atRest = (await this.o.store.keysWithPrefix(prefix)).map((k) =>
          k.slice(prefix.length),
        )
        const names = [...new Set([...listed[i]!, ...atRest])]
        const keys = names.map((name) => valueKey(user, name))
        const values = keys.length === 0 ? [] : await this.o.store.getMany(keys)
        for (const [j, name] of names.entries()) if (values[j] !== undefined) purged.add(name)
        // The values first, as in drop.
        await this.o.store.del(keys)
        await this.o.store.del([indexKey(user)])
        for (const key of keys) this.touched.delete(key)
      }
      return [...purged].sort()
    })
  }

  /** Deletes a secret (absent is fine), under every name the user's records may have. */
  async remove(owner: SecretOwner, name: string): Promise<void> {
    await this.locked(owner, async () => {
      for (const u of this.users(owner)) await this.drop(u, name)
    })
  }

  /** The user's part of the keys its records are written under now (a keyed hash). */
  userKey(owner: SecretOwner): string {
    return this.users(owner)[0]!
  }

  /** The user's parts of keys, the one records are written under first (secrets.ts header). */
  private users(owner: SecretOwner): string[] {
    return [...this.o.sealer.macs(JSON.stringify([owner.iss, owner.sub])), legacyUserKey(owner)]
  }

  /** The names listed under each of the user's parts of keys, in {@link users} order. */
  private listed(owner: SecretOwner): Promise<string[][]> {
    return Promise.all(this.users(owner).map((u) => this.o.store.smembers(indexKey(u))))
  }

  /**
   * The names that hold a value, as {@link listed}: a name whose value expired unused (or whose
   * set was cut short) leaves its list, so it no longer counts against `secretsPerUser`.
   */
  private async held(owner: SecretOwner): Promise<string[][]> {
    const users = this.users(owner)
    const listed = await this.listed(owner)
    return Promise.all(
      users.map(async (user, i) => {
        const names = listed[i]!
        if (names.length === 0) return names
        const values = await this.o.store.getMany(names.map((n) => valueKey(user, n)))
        const gone = names.filter((_, j) => values[j] === undefined)
        for (const name of gone) await this.o.store.srem(indexKey(user), name)
        return names.filter((_, j) => values[j] !== undefined)
      }),
    )
  }

  /** Deletes one record: the value first, for the same reason as in set. */
  private async drop(user: string, name: string): Promise<void> {
    await this.o.store.del([valueKey(user, name)])
    await this.o.store.srem(indexKey(user), name)
  }

  /** Runs `fn` holding the user's secret lock. @throws StoreError lock_timeout */
  private locked<T>(owner: SecretOwner, fn: () => Promise<T>): Promise<T> {
    // Not under `secrets:<user>:`, where a secret named `lock` would live. Named by the unkeyed
    // hash: replicas whose sealing keys differ mid-rotation must take the same lock (it exists
    // only while a change is under way).
    return withLock(this.o.store, `secrets-lock:${legacyUserKey(owner)}`, SECRET_LOCK_TTL_MS, fn, {
      waitMs: this.o.lockWait,
    })
  }

  /** The user's secrets: names and dates only (when set, when they expire unused). */
  async list(owner: SecretOwner): Promise<SecretInfo[]> {
    const names = [...new Set((await this.listed(owner)).flat())].sort()
    const out: SecretInfo[] = []
    for (const name of names) {
      const got = await this.read(owner, name)
      if (got === undefined) continue
      // The store's own clock of the value read: gone meanwhile, it is not listed.
      const left = await this.o.store.timeToLive(valueKey(got.user, name))
      if (left === undefined) continue
      out.push({ name, setAt: got.setAt, expiresAt: left === null ? null : this.now() + left })
    }
    return out
  }

  /**
   * A secret's value, for the process it is handed to; undefined when not set (or gone unused).
   * Its use pushes its expiry out (at most once per {@link TOUCH_EVERY_PART} of it here).
   */
  async value(owner: SecretOwner, name: string): Promise<string | undefined> {
    const got = await this.read(owner, name)
    if (got !== undefined) await this.touch(got.user, name)
    return got?.value
  }

  /**
   * `name` in `user`'s list, which lives `unusedTtl` from now (or for ever with 0), or longer if
   * it already did: a value set under a longer `secretUnusedTtl` (lowered since) lives that long,
   * and a list gone first hid it from the user while processes still got it.
   */
  private async listName(user: string, name: string): Promise<void> {
    const ttl = this.unusedTtl
    const left = ttl === 0 ? null : await this.o.store.timeToLive(indexKey(user))
    await this.o.store.sadd(
      indexKey(user),
      name,
      left === null ? undefined : Math.max(ttl, left ?? 0),
    )
    if (ttl === 0) await this.o.store.persist(indexKey(user))
  }

  /** A used secret lives `unusedTtl` from now (or for ever with 0), listed as long. */
  private async touch(user: string, name: string): Promise<void> {
    const key = valueKey(user, name)
    const t = this.now()
    const last = this.touched.get(key)
    const every = this.unusedTtl === 0 ? Infinity : this.unusedTtl / TOUCH_EVERY_PART
    if (last !== undefined && t - last < every) return
    const ttl = this.unusedTtl
    try {
      // The value first: one deleted meanwhile is not listed again.
      if (await (ttl === 0 ? this.o.store.persist(key) : this.o.store.expire(key, ttl))) {
        // Listed again too: a list that expired first (a shorter ttl since) shows it again.
        await this.listName(user, name)
      }
      this.touched.set(key, t)
    } catch (err) {
      // The value was read: the process gets it; its next use tries again.
      this.o.log?.warn(
        { kind: 'secret', name, err: String(err) },
        "a user's secret's expiry could not be pushed out",
      )
    }
  }

  /**
   * A secret, opened. One that no longer opens (sealed with a key since removed from
   * `secrets.keys`, or tampered with) counts as not set: the user is asked for it again, rather
   * than every call failing.
   */
  private async read(
    owner: SecretOwner,
    name: string,
  ): Promise<{ value: string; setAt: number; user: string } | undefined> {
    let unopened = false
    for (const user of this.users(owner)) {
      const key = valueKey(user, name)
      const sealed = await this.o.store.get(key)
      if (sealed === undefined) continue
      let opened: string
      try {
        opened = this.o.sealer.open(sealed, key)
      } catch {
        // Not opening under this name: perhaps under an older one.
        unopened = true
        continue
      }
      // Sealed under our key, so not another writer's: another version's, at most.
      const record = parseRecord<{ value: string; setAt: number }>(
        opened,
        'secret',
        SECRET,
        this.o.log,
      )
      return record && { ...record, user }
    }
    // Sealed values are found by names derived from the keys that sealed them, so one found
    // that does not open was moved or altered in the store: the operator is told.
    if (unopened)
      this.o.log?.warn(
        { kind: 'secret', name },
        "a user's stored secret does not open (moved from another user or name, or altered in the store); treated as not set",
      )
    return undefined
  }
}

/** A secret's record as {@link UserSecrets.set} seals it. */
const SECRET: Fields = { value: 'string', setAt: 'number' }

/** The user's part of a key before keyed hashes: an unkeyed hash of issuer and subject. */
function legacyUserKey(owner: SecretOwner): string {
  return createHash('sha256')
    .update(JSON.stringify([owner.iss, owner.sub]))
    .digest('base64url')
}

function indexKey(user: string): string {
  return `secrets:${user}`
}

function valueKey(user: string, name: string): string {
  return `secrets:${user}:${name}`
}
