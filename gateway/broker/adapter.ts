import { createHash, randomBytes } from 'node:crypto'
import type { Adapter, AdapterPayload } from 'oidc-provider'
import type { Logger } from 'pino'
import type { StoreError } from '../store/errors.js'
import { type Fields, parseRecord } from '../store/record.js'
import type { Store } from '../store/store.js'
import { isStoreOutage } from './errors.js'

/** What the adapter needs besides the store. */
export interface AdapterOptions {
  store: Store
  /** A registered client unused this long is forgotten (its record expires; each use renews it), in s. */
  clientTtl: number
  /** How long a consumed marker outlives its token at most, in s (refresh tokens' lifetime). */
  consumedTtl: number
  /** Told when a second use of a code or refresh token was seen and its grant revoked (log, audit). */
  onReuse: (
    model: string,
    grantId: string | undefined,
    accountId: string | undefined,
  ) => Promise<void>
  /** oidc-provider's error a reused token becomes (errors.InvalidGrant). */
  reused: () => Error
  /**
   * Told of every grant revoked, by any path (a reused code or refresh token here; a /revoke, a
   * failed re-check or oidc-provider's own reuse check destroying the grant), before its
   * records go: its access tokens must be refused from now on.
   */
  grantRevoked: (grant: { grantId: string; accountId?: string; clientId?: string }) => Promise<void>
  /**
   * oidc-provider's error a store outage becomes (errors.storeUnavailable: 503
   * temporarily_unavailable), instead of a 500 server_error logged at every request.
   */
  unavailable?: (cause: StoreError) => Error
  /** Told once per outage (its cause), and when the store answers again. */
  log?: Logger
}

/**
 * What the adapter reads of a record oidc-provider wrote, and the field every model's payload
 * has (its `kind`); the rest is oidc-provider's to check.
 */
const PAYLOAD: Fields = {
  kind: 'string',
  grantId: 'string?',
  accountId: 'string?',
  clientId: 'string?',
  uid: 'string?',
}
/** A client's record is its metadata, which names it. */
const CLIENT: Fields = { client_id: 'string' }

/** The set of every registered (DCR) client id: its size is the client count. */
export const CLIENTS_SET = 'broker:clients'

/** The models whose records belong to a grant and end with it (oidc-provider's helpers/revoke.js, the flows enabled here). */
const GRANT_MODELS = ['AccessToken', 'AuthorizationCode', 'RefreshToken'] as const

/**
 * Models whose id is a credential a client presents (a refresh token, a code, an opaque access
 * token): stored under a SHA-256 of it and without it in the payload (`jti`), so a copy of the
 * store (a dump, a backup, a Redis replica) holds none that could be used. The other ids are
 * public (clients), name nothing usable (grants), or need a signed cookie too (sessions,
 * interactions).
 */
const CREDENTIALS: ReadonlySet<string> = new Set(GRANT_MODELS)

/** The name a record is stored under. */
function storedName(model: string, id: string): string {
  return CREDENTIALS.has(model) ? createHash('sha256').update(id).digest('base64url') : id
}

const recordKey = (model: string, stored: string) => `oidc:${model}:${stored}`
const keyOf = (model: string, id: string) => recordKey(model, storedName(model, id))
/** Where a registered client's record is stored. */
export const clientKey = (id: string): string => keyOf('Client', id)
const grantIndex = (model: string, grantId: string) => `oidc:${model}:grant:${grantId}`

/** Deletes every record of `model` issued under a grant, and the grant's index of them (stored names). */
async function revokeModelByGrant(store: Store, model: string, grantId: string): Promise<void> {
  const names = await store.smembers(grantIndex(model, grantId))
  await store.del([...names.map((name) => recordKey(model, name)), grantIndex(model, grantId)])
}

/**
 * Revokes a grant in the store, on every replica at once: its codes and tokens, then the grant
 * itself, so a token saved by a request still in flight finds no grant and is refused.
 */
export async function revokeGrantRecords(store: Store, grantId: string): Promise<void> {
  await Promise.all(GRANT_MODELS.map((model) => revokeModelByGrant(store, model, grantId)))
  await store.del([keyOf('Grant', grantId)])
}

/**
 * Forgets the clients whose registration expired unused (their record expires; their place in
 * {@link CLIENTS_SET} cannot, and no one looks an abandoned client up again), and resolves how
 * many are left. One read of every record: worth it only when the cap seems reached.
 */
export async function pruneClients(store: Store): Promise<number> {
  const ids = await store.smembers(CLIENTS_SET)
  const records = ids.length === 0 ? [] : await store.getMany(ids.map((id) => keyOf('Client', id)))
  // A registration writes its record before it joins the set, so a member without one is gone.
  const gone = ids.filter((_, i) => records[i] === undefined)
  for (const id of gone) await store.srem(CLIENTS_SET, id)
  return ids.length - gone.length
}

/**
 * oidc-provider's storage over the shared Store, so a user who logs in through one replica
 * refreshes through another. One instance per model (`Grant`, `RefreshToken`, `Client`, …).
 *
 * `consume` is atomic across replicas: oidc-provider checks `consumed` and then consumes, and
 * between the two it may look the account up (an upstream re-check), so two concurrent uses
 * of one refresh token could both pass. Here the first `consume` wins (set-if-absent) and the
 * second revokes the grant and fails with invalid_grant: reuse is detected however the uses
 * interleave, on any replica. oidc-provider revokes the grant only when it sees `consumed`
 * itself; when the adapter's `consume` refuses, the grant is revoked here.
 */
export function storeAdapter(o: AdapterOptions): new (name: string) => Adapter {
  const store = o.unavailable ? outagesMapped(o.store, o.unavailable, o.log) : o.store
  return class StoreAdapter implements Adapter {
    constructor(private readonly name: string) {}

    /** A record of this model as stored, or undefined when absent or not as written. */
    private parse(value: string | undefined): AdapterPayload | undefined {
      const fields = this.name === 'Client' ? CLIENT : PAYLOAD
      return parseRecord<AdapterPayload>(value, `oidc ${this.name}`, fields, o.log)
    }

    private key(id: string): string {
      return keyOf(this.name, id)
    }

    /** The record under `key`, with its id (when known) and consumed mark. */
    private async read(key: string, id?: string): Promise<AdapterPayload | undefined> {
      const [value, consumed] = await store.getMany([key, `${key}:consumed`])
      const payload = this.parse(value)
      if (payload === undefined) return undefined
      if (id !== undefined && CREDENTIALS.has(this.name)) payload.jti = id
      // The mark is `<epoch s>.<nonce>` (consume): its time is what oidc-provider is told.
      return consumed === undefined
        ? payload
        : { ...payload, consumed: Number.parseInt(consumed, 10) }
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const ttl = this.name === 'Client' ? o.clientTtl : expiresIn
      const ttlMs = ttl > 0 ? ttl * 1000 : undefined
      const { jti: _jti, ...rest } = payload
      await store.set(this.key(id), JSON.stringify(CREDENTIALS.has(this.name) ? rest : payload), {
        ttlMs,
      })
      if (this.name === 'Client') await store.sadd(CLIENTS_SET, id)
      if (payload.grantId)
        await store.sadd(grantIndex(this.name, payload.grantId), storedName(this.name, id), ttlMs)
      if (payload.uid)
        await store.set(`oidc:${this.name}:uid:${payload.uid}`, storedName(this.name, id), {
          ttlMs,
        })
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const payload = await this.read(this.key(id), id)
      if (this.name === 'Client') {
        // An unused registration expires; a used one lives on.
        if (payload === undefined) await store.srem(CLIENTS_SET, id)
        else await store.expire(this.key(id), o.clientTtl * 1000)
      }
      return payload
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const stored = await store.get(`oidc:${this.name}:uid:${uid}`)
      return stored === undefined ? undefined : this.read(recordKey(this.name, stored))
    }

    async findByUserCode(): Promise<undefined> {
      // The device flow is off.
      return undefined
    }

    async consume(id: string): Promise<void> {
      const key = `${this.key(id)}:consumed`
      // This consume's own mark, so that only it is ever undone.
      const mark = `${Math.floor(Date.now() / 1000)}.${randomBytes(9).toString('base64url')}`
      let won: boolean
      try {
        won = await store.set(key, mark, { ifAbsent: true, ttlMs: o.consumedTtl * 1000 })
      } catch (err) {
        // Redis too slow (the client is told 503): the write may still run once it answers,
        // and the client's retry would be taken for a replay and end the grant. Undone then:
        // sent after it on the same connection, so run after it.
        o.store.delIf(key, mark).catch(() => {})
        throw err
      }
      if (won) return
      // Another request consumed it first (a replay, or a race between replicas): RFC 9700
      // §4.14.2, the grant ends, whichever request got there first.
      const payload = this.parse(await store.get(this.key(id)))
      if (payload?.grantId) {
        const { grantId, accountId, clientId } = payload
        // The grant's records go even when listing it fails (a store write timing out): the
        // tokens already issued are then refused only until they expire, but no refresh
        // token of the grant can mint another.
        try {
          await o.grantRevoked({ grantId, accountId, clientId })
        } finally {
          await revokeGrantRecords(store, grantId)
        }
      }
      await o.onReuse(this.name, payload?.grantId, payload?.accountId)
      throw o.reused()
    }

    async destroy(id: string): Promise<void> {
      const value = await store.get(this.key(id))
      const payload = this.parse(value)
      // oidc-provider destroys a grant only to revoke it (helpers/revoke.js; ours in provider.ts).
      // One stored unreadable is revoked too, by its id.
      try {
        if (this.name === 'Grant' && value !== undefined) {
          await o.grantRevoked({
            grantId: id,
            accountId: payload?.accountId ?? undefined,
            clientId: payload?.clientId ?? undefined,
          })
        }
      } finally {
        // Destroyed even when listing the grant failed: nothing of it can mint a token again.
        await store.del([this.key(id), `${this.key(id)}:consumed`])
      }
      if (this.name === 'Client') await store.srem(CLIENTS_SET, id)
      const uid = payload?.uid
      if (uid) await store.del([`oidc:${this.name}:uid:${uid}`])
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await revokeModelByGrant(store, this.name, grantId)
    }
  }
}

/**
 * The store, its outages (StoreError 503) rethrown as `unavailable` makes them; the first of a
 * run is logged with its cause, the next success ends the run.
 */
function outagesMapped(
  store: Store,
  unavailable: (cause: StoreError) => Error,
  log: Logger | undefined,
): Store {
  let down = false
  return new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args)
        if (!(result instanceof Promise)) return result
        return result.then(
          (v: unknown) => {
            if (down) log?.info('broker store reachable again')
            down = false
            return v
          },
          (err: unknown) => {
            if (!isStoreOutage(err)) throw err
            if (!down)
              log?.warn({ err }, 'broker store unavailable: answering 503 until it is back')
            down = true
            throw unavailable(err)
          },
        )
      }
    },
  })
}
