import { KEY_ID, type Sealer } from './sealed.js'
import type { Store } from './store.js'

/**
 * Where gateways leave a constant sealed with their active key: no one's data. One per active
 * key, named by its keyed hash (`secrets-keycheck:<mac>`) and listed in {@link MARKS} (no scan
 * of the store at start); earlier builds left one at this name itself.
 */
const KEY_CHECK = 'secrets-keycheck'
const MARKS = 'secrets-keychecks'
const KEY_CHECK_TEXT = 'mcp-edge sealing key check'

/**
 * Leaves a constant sealed with the active key in the store, so that a command run with the
 * gateway's config (`mcp-edge secrets purge`) can tell it holds the same keys: store names
 * are keyed hashes, and without a key some gateway seals with it would miss what that key
 * named, and say nothing was there. One per active key, so replicas mid-rotation (and those
 * after it) each leave theirs; one that does not open under these keys is of a key retired
 * here (a gateway without it cannot read what it sealed either) and goes.
 */
export async function markKeys(store: Store, sealer: Sealer): Promise<void> {
  const own = markerName(sealer)
  for (const name of await marks(store)) {
    if (name === own) continue
    const sealed = await store.get(name)
    if (sealed !== undefined && opens(sealer, sealed, name)) continue
    await store.del([name])
    await store.srem(MARKS, name)
  }
  const sealed = await store.get(own)
  if (sealed === undefined || !opens(sealer, sealed, own))
    await store.set(own, sealer.seal(KEY_CHECK_TEXT, own))
  await store.sadd(MARKS, own)
}

/**
 * Whether `sealer`'s keys are the gateway's: they open every mark {@link markKeys} left (each
 * active key of a gateway); `unknown` when there is none (no gateway of this version has run
 * on the store).
 * @throws Error naming the key id of one that does not open (never key material)
 */
export async function checkKeys(store: Store, sealer: Sealer): Promise<'match' | 'unknown'> {
  let found = 0
  for (const name of (await marks(store)).sort()) {
    const sealed = await store.get(name)
    if (sealed === undefined) continue
    found++
    if (opens(sealer, sealed, name)) continue
    const kid = sealed.split('.')[1] ?? ''
    throw new Error(
      `the gateway seals with key "${KEY_ID.test(kid) ? kid : '?'}", which these secrets.keys do not hold (or hold with other bytes): with other keys no user's secrets are found`,
    )
  }
  return found === 0 ? 'unknown' : 'match'
}

/** The names of the marks left: the listed ones, and an earlier build's. */
async function marks(store: Store): Promise<string[]> {
  return [KEY_CHECK, ...(await store.smembers(MARKS))]
}

/** The mark of `sealer`'s active key: its keyed hash names it (no key id in store names). */
function markerName(sealer: Sealer): string {
  return `${KEY_CHECK}:${sealer.macs(KEY_CHECK_TEXT)[0]}`
}

function opens(sealer: Sealer, sealed: string, name: string): boolean {
  try {
    return sealer.open(sealed, name) === KEY_CHECK_TEXT
  } catch {
    return false
  }
}
