import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto'
import path from 'node:path'
import type { Logger } from 'pino'
import { readStateFile, writeFileAtomic } from './state-dir.js'

/** Private signing keys as a JWKS (the provider publishes their public parts). */
export interface Jwks {
  keys: object[]
}

/** File in the state folder holding the signing keys. */
export const KEYS_FILE = 'keys.json'

/** One fresh RS256 key. */
export function generateJwks(): Jwks {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = privateKey.export({ format: 'jwk' })
  return { keys: [{ ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' }] }
}

/**
 * The signing keys kept in `<dir>/keys.json`, created there on first use, so tokens issued
 * before a restart still verify after it. A corrupt file is set aside and replaced (it only
 * costs clients a new login); when two instances start at once, the first key written wins.
 */
export async function persistentJwks(dir: string, log: Logger): Promise<Jwks> {
  const file = path.join(dir, KEYS_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    const found = await readStateFile(file, validJwks)
    if (found.kind === 'ok') return found.value
    if (found.kind === 'corrupt') {
      log.warn(
        { file, reason: found.reason, movedTo: found.aside },
        'dev IdP signing keys unreadable; new keys made, clients must log in again',
      )
    }
    const jwks = generateJwks()
    if (await writeFileAtomic(file, `${JSON.stringify(jwks)}\n`, { exclusive: true })) return jwks
  }
  throw new Error(`dev IdP signing keys ${file} keep changing under us`)
}

function validJwks(value: unknown): Jwks {
  const keys = (value as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) throw new Error('no "keys" array')
  for (const key of keys as Record<string, unknown>[]) {
    if (typeof key?.kid !== 'string' || typeof key.d !== 'string') {
      throw new Error('each key needs a kid and its private part')
    }
    try {
      createPrivateKey({ key: key as never, format: 'jwk' })
    } catch (err) {
      throw new Error(`key ${key.kid} is not a private JWK (${(err as Error).message})`)
    }
  }
  return { keys: keys as object[] }
}
