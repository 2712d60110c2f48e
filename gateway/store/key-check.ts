import { KEY_ID, type Sealer } from './sealed.js'
import type { Store } from './store.js'

/** Where a gateway leaves a constant sealed with its active key: no one's data. */
const KEY_CHECK = 'secrets-keycheck'
const KEY_CHECK_TEXT = 'mcp-edge sealing key check'

/**
 * Leaves a constant sealed with the active key in the store, so that a command run with the
 * gateway's config (`mcp-edge secrets purge`) can tell it holds the same keys: store names
 * are keyed hashes, and with other keys it would find no one and say so. One that opens under
 * these keys is left (a replica mid-rotation leaves another replica's).
 */
export async function markKeys(store: Store, sealer: Sealer): Promise<void> {
  const sealed = await store.get(KEY_CHECK)
  if (sealed !== undefined && opens(sealer, sealed)) return
  await store.set(KEY_CHECK, sealer.seal(KEY_CHECK_TEXT, KEY_CHECK))
}

/**
 * Whether `sealer`'s keys are the gateway's: they open what {@link markKeys} left; `unknown`
 * when nothing is there (no gateway of this version has run on the store).
 * @throws Error naming the key id that does not open it (never key material)
 */
export async function checkKeys(store: Store, sealer: Sealer): Promise<'match' | 'unknown'> {
  const sealed = await store.get(KEY_CHECK)
  if (sealed === undefined) return 'unknown'
  if (opens(sealer, sealed)) return 'match'
  const kid = sealed.split('.')[1] ?? ''
  throw new Error(
    `the gateway seals with key "${KEY_ID.test(kid) ? kid : '?'}", which these secrets.keys do not hold (or hold with other bytes): with other keys no user's secrets are found`,
  )
}

function opens(sealer: Sealer, sealed: string): boolean {
  try {
    return sealer.open(sealed, KEY_CHECK) === KEY_CHECK_TEXT
  } catch {
    return false
  }
}
