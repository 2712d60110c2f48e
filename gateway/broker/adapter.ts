import type { Adapter, AdapterPayload } from 'oidc-provider'
import type { Store } from '../store/store.js'

/** What the adapter needs besides the store. */
export interface AdapterOptions {
  store: Store
  /** A registered client unused this long is forgotten (its record expires; each use renews it), in s. */
  clientTtl: number
  /** How long a consumed marker outlives its token at most, in s (refresh tokens' lifetime). */
  consumedTtl: number
  /** Called when a second use of a code or refresh token is seen: the grant must be revoked. */
  onReuse: (model: string, grantId: string | undefined) => Promise<void>
  /** oidc-provider's error a reused token becomes (errors.InvalidGrant). */
  reused: () => Error
}

/** The set of every registered (DCR) client id: its size is the client count. */
export const CLIENTS_SET = 'broker:clients'

/** Where a registered client's record is kept. */
export const clientKey = (id: string) => `oidc:Client:${id}`

/**
 * How many members of {@link CLIENTS_SET} still have a record. Records expire unused in the
 * store, but the set forgets a member only when someone looks its client up, which nobody
 * may ever do again: the members whose record is gone are removed here.
 */
export async function liveClients(store: Store): Promise<number> {
  const ids = await store.smembers(CLIENTS_SET)
  const records = await store.getMany(ids.map(clientKey))
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
 * interleave, on any replica.
 */
export function storeAdapter(o: AdapterOptions): new (name: string) => Adapter {
  const { store } = o
  return class StoreAdapter implements Adapter {
    constructor(private readonly name: string) {}

    private key(id: string): string {
      return `oidc:${this.name}:${id}`
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const ttl = this.name === 'Client' ? o.clientTtl : expiresIn
      const ttlMs = ttl > 0 ? ttl * 1000 : undefined
      await store.set(this.key(id), JSON.stringify(payload), { ttlMs })
      if (this.name === 'Client') await store.sadd(CLIENTS_SET, id)
      if (payload.grantId) await store.sadd(`oidc:${this.name}:grant:${payload.grantId}`, id, ttlMs)
      if (payload.uid) await store.set(`oidc:${this.name}:uid:${payload.uid}`, id, { ttlMs })
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const [value, consumed] = await store.getMany([this.key(id), `${this.key(id)}:consumed`])
      if (value === undefined) {
        if (this.name === 'Client') await store.srem(CLIENTS_SET, id)
        return undefined
      }
      // An unused registration expires; a used one lives on.
      if (this.name === 'Client') await store.expire(this.key(id), o.clientTtl * 1000)
      const payload = JSON.parse(value) as AdapterPayload
      return consumed === undefined ? payload : { ...payload, consumed: Number(consumed) }
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const id = await store.get(`oidc:${this.name}:uid:${uid}`)
      return id === undefined ? undefined : this.find(id)
    }

    async findByUserCode(): Promise<undefined> {
      // The device flow is off.
      return undefined
    }

    async consume(id: string): Promise<void> {
      const won = await store.set(`${this.key(id)}:consumed`, String(Math.floor(Date.now() / 1000)), { ifAbsent: true, ttlMs: o.consumedTtl * 1000 })
      if (won) return
      // Another request consumed it first (a replay, or a race between replicas).
      const value = await store.get(this.key(id))
      const grantId = value === undefined ? undefined : (JSON.parse(value) as AdapterPayload).grantId
      await o.onReuse(this.name, grantId)
      throw o.reused()
    }

    async destroy(id: string): Promise<void> {
      const value = await store.get(this.key(id))
      await store.del([this.key(id), `${this.key(id)}:consumed`])
      if (this.name === 'Client') await store.srem(CLIENTS_SET, id)
      const uid = value === undefined ? undefined : (JSON.parse(value) as AdapterPayload).uid
      if (uid) await store.del([`oidc:${this.name}:uid:${uid}`])
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const set = `oidc:${this.name}:grant:${grantId}`
      const ids = await store.smembers(set)
      await store.del([...ids.map((id) => this.key(id)), set])
    }
  }
}
