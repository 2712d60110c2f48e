import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider'
import type { Logger } from 'pino'
import { readStateFile, writeFileAtomic } from './state-dir.js'

/** Models kept across restarts: a registered client keeps its id, grant and refresh token. */
export const PERSISTED_MODELS: ReadonlySet<string> = new Set([
  'Client',
  'Grant',
  'RefreshToken',
  'RegistrationAccessToken',
])
// The dev IdP's bounds are not settings: it runs only on loopback for development, never with
// an external issuer, and stands in for the company IdP, whose own settings are the real ones.
/** Entries held at most (registration is open, if only on loopback); past it the oldest go. */
export const DEFAULT_MAX_ENTRIES = 10_000
/** Seconds an entry outlives its expiry, as oidc-provider's own memory adapter allows. */
export const DEFAULT_CLOCK_TOLERANCE_S = 15
/** File in the state folder holding the persisted models. */
export const MODELS_FILE = 'models.json'

interface Entry {
  payload: AdapterPayload
  expiresAt: number | undefined
}
type Snapshot = { version: 1; entries: Record<string, Entry> }

/** oidc-provider storage for one dev IdP: every model in memory, some also in a file. */
export interface ModelStore {
  adapter: AdapterFactory
  /** Resolves once every change made so far is on disk. */
  flushed(): Promise<void>
}

/**
 * Storage implementing oidc-provider's adapter interface. Entries expire `expiresIn` seconds
 * after each upsert; with `file`, the {@link PERSISTED_MODELS} are loaded from it and every
 * change to them is written back (atomically) before the call returns, so a token response
 * is only sent once its refresh token is on disk. A corrupt file is set aside and the store
 * starts empty: clients register and log in again, as they did before persistence existed.
 */
export async function createModelStore(
  o: {
    file?: string
    log?: Logger
    /** Clock in ms (tests); default Date.now. */
    now?: () => number
    maxEntries?: number
  } = {},
): Promise<ModelStore> {
  const now = o.now ?? Date.now
  const max = o.maxEntries ?? DEFAULT_MAX_ENTRIES
  const entries = new Map<string, Entry>()
  const live = (e: Entry) => e.expiresAt === undefined || e.expiresAt > now()
  const modelOf = (key: string) => key.slice(0, key.indexOf(':'))

  if (o.file) {
    const found = await readStateFile(o.file, validSnapshot)
    if (found.kind === 'ok') {
      for (const [key, e] of Object.entries(found.value.entries)) if (live(e)) entries.set(key, e)
    } else if (found.kind === 'corrupt') {
      o.log?.warn(
        { file: o.file, reason: found.reason, movedTo: found.aside },
        'dev IdP registrations unreadable; starting without them, clients must register again',
      )
    }
  }

  // One write at a time; changes made while one runs go in the next, which all their callers await.
  let previous: Promise<void> = Promise.resolve()
  let queued: Promise<void> | undefined
  const save = (): Promise<void> => {
    const file = o.file
    if (!file) return Promise.resolve()
    queued ??= previous.then(async () => {
      queued = undefined
      const snapshot: Snapshot = { version: 1, entries: {} }
      for (const [key, e] of entries) {
        if (PERSISTED_MODELS.has(modelOf(key)) && live(e)) snapshot.entries[key] = e
      }
      await writeFileAtomic(file, JSON.stringify(snapshot))
    })
    const mine = queued
    previous = mine.catch(() => {})
    return mine
  }
  const changed = (model: string) => (PERSISTED_MODELS.has(model) ? save() : Promise.resolve())

  const get = (key: string): Entry | undefined => {
    const e = entries.get(key)
    if (e && !live(e)) entries.delete(key)
    return e && live(e) ? e : undefined
  }
  const scan = (model: string, match: (p: AdapterPayload) => boolean) => {
    for (const [key, e] of entries) {
      if (modelOf(key) === model && live(e) && match(e.payload)) return structuredClone(e.payload)
    }
    return undefined
  }

  const adapter = (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`
    return {
      async upsert(id, payload, expiresIn) {
        entries.delete(key(id)) // re-inserted last: the cap drops the least recently written
        const expiresAt =
          typeof expiresIn === 'number'
            ? now() + (expiresIn + DEFAULT_CLOCK_TOLERANCE_S) * 1000
            : undefined
        entries.set(key(id), { payload: structuredClone(payload), expiresAt })
        if (entries.size > max) evict(entries, max, live)
        await changed(model)
      },
      async find(id) {
        const e = get(key(id))
        return e && structuredClone(e.payload)
      },
      async findByUid(uid) {
        return scan(model, (p) => p.uid === uid)
      },
      async findByUserCode(userCode) {
        return scan(model, (p) => p.userCode === userCode)
      },
      async consume(id) {
        const e = get(key(id))
        if (!e) return
        e.payload.consumed = Math.floor(now() / 1000)
        await changed(model)
      },
      async destroy(id) {
        if (entries.delete(key(id))) await changed(model)
      },
      async revokeByGrantId(grantId) {
        let removed = false
        for (const [k, e] of entries) {
          if (modelOf(k) === model && e.payload.grantId === grantId) removed = entries.delete(k)
        }
        if (removed) await changed(model)
      },
    }
  }
  return { adapter, flushed: () => previous }
}

/** Drops expired entries, then the oldest, until `max` remain. */
function evict(entries: Map<string, Entry>, max: number, live: (e: Entry) => boolean): void {
  for (const [key, e] of entries) if (!live(e)) entries.delete(key)
  for (const key of entries.keys()) {
    if (entries.size <= max) break
    entries.delete(key)
  }
}

function validSnapshot(value: unknown): Snapshot {
  const s = value as Partial<Snapshot> | null
  if (s?.version !== 1) throw new Error('not a version 1 models file')
  if (typeof s.entries !== 'object' || s.entries === null) throw new Error('no "entries" object')
  for (const [key, e] of Object.entries(s.entries)) {
    const model = key.slice(0, key.indexOf(':'))
    if (!PERSISTED_MODELS.has(model)) throw new Error(`entry ${key} is not a persisted model`)
    const ok =
      typeof e?.payload === 'object' &&
      e.payload !== null &&
      (e.expiresAt === undefined || typeof e.expiresAt === 'number')
    if (!ok) throw new Error(`entry ${key} has no payload or a bad expiresAt`)
  }
  return s as Snapshot
}
