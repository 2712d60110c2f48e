import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import { ConfigError, type ConfigProblem } from '../config/errors.js'
import type { GatewayConfig } from '../config/schema.js'
import type { readSecret as ReadSecret } from '../config/secrets.js'
import { StoreError } from './errors.js'

/** Key ids: they are written into every sealed value, so `.`-free and short. */
export const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/
/** AES-256: a key is exactly this many bytes. */
export const KEY_BYTES = 32
/** GCM's recommended 96-bit nonce (NIST SP 800-38D §8.2), random per value. */
const NONCE_BYTES = 12
/** The full 128-bit tag; shorter tags are refused, not accepted as GCM would by default. */
const TAG_BYTES = 16
/** Format version, first part of every sealed value. */
const VERSION = 's1'

/** Seals text at rest (upstream tokens, users' secrets), bound to where it is stored. */
export interface Sealer {
  /**
   * Encrypts `plaintext` with the active key into `s1.<key id>.<nonce>.<ciphertext>.<tag>`
   * (base64url parts). `aad` (the store key) is authenticated, not stored: the value opens
   * only under the same `aad`, so two records cannot be swapped.
   */
  seal(plaintext: string, aad: string): string
  /**
   * Decrypts a sealed value with the key it names (any configured key, so values sealed
   * before a rotation still open).
   * @throws StoreError seal_malformed, seal_unknown_key, seal_forged (tampered or wrong aad)
   */
  open(sealed: string, aad: string): string
  /**
   * Keyed hashes of `data` (HMAC-SHA256, base64url) under a key derived from each sealing key,
   * the active key's first: what names a user in store keys, so that reading the store does
   * not let anyone test a guess of who has something stored (an unkeyed hash would). Each
   * configured key gives one, so names made before a rotation are still found.
   */
  macs(data: string): string[]
}

/**
 * A sealer over AES-256-GCM (node:crypto). `active` seals; every key in `keys` opens. Keys are
 * copied into KeyObjects; neither they nor plaintexts ever appear in an error message.
 * @throws StoreError invalid_argument when a key id is not {@link KEY_ID}, a key is not
 *   {@link KEY_BYTES} bytes, or `active` is not among the keys
 */
export function createSealer(keys: Record<string, Uint8Array>, active: string): Sealer {
  const ring = new Map<string, KeyObject>()
  for (const [kid, key] of Object.entries(keys)) {
    if (!KEY_ID.test(kid))
      throw new StoreError('invalid_argument', 'a sealing key id is not 1 to 64 of A-Z a-z 0-9 _ -')
    if (key.length !== KEY_BYTES)
      throw new StoreError('invalid_argument', `sealing key "${kid}" is not ${KEY_BYTES} bytes`)
    ring.set(kid, createSecretKey(key))
  }
  const activeKey = ring.get(active)
  if (activeKey === undefined)
    throw new StoreError('invalid_argument', `the active sealing key "${active}" is not configured`)
  // Store names: a key of their own per sealing key (never the AES key itself), active first.
  const namers = [active, ...[...ring.keys()].filter((kid) => kid !== active)].map((kid) =>
    createSecretKey(createHmac('sha256', ring.get(kid)!).update('mcp-edge store names').digest()),
  )
  // The header is authenticated with the caller's aad: no part of a value can be moved.
  const additional = (kid: string, aad: string) => Buffer.from(`${VERSION}.${kid}.${aad}`, 'utf8')

  return {
    seal(plaintext, aad) {
      const nonce = randomBytes(NONCE_BYTES)
      const cipher = createCipheriv('aes-256-gcm', activeKey, nonce, { authTagLength: TAG_BYTES })
      cipher.setAAD(additional(active, aad))
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return [VERSION, active, b64u(nonce), b64u(ciphertext), b64u(cipher.getAuthTag())].join('.')
    },

    macs(data) {
      return namers.map((k) => createHmac('sha256', k).update(data, 'utf8').digest('base64url'))
    },

    open(sealed, aad) {
      const parts = sealed.split('.')
      const [version, kid, nonceText, ciphertextText, tagText] = parts
      if (parts.length !== 5 || version !== VERSION || kid === undefined || !KEY_ID.test(kid)) {
        throw malformed('not a sealed value')
      }
      const nonce = fromB64u(nonceText)
      const ciphertext = fromB64u(ciphertextText)
      const tag = fromB64u(tagText)
      if (nonce?.length !== NONCE_BYTES || ciphertext === undefined || tag?.length !== TAG_BYTES) {
        throw malformed('a part is not base64url of the right length')
      }
      const key = ring.get(kid)
      if (key === undefined)
        throw new StoreError(
          'seal_unknown_key',
          `sealed with key "${kid}", which is not configured`,
        )
      const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
      decipher.setAAD(additional(kid, aad))
      decipher.setAuthTag(tag)
      try {
        return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
      } catch {
        // GCM cannot tell a flipped bit from a wrong aad or key: both are a forgery here.
        throw new StoreError(
          'seal_forged',
          'the sealed value does not authenticate (tampered, or stored under another key)',
        )
      }
    },
  }
}

/**
 * The sealer of `config.secrets`: its `keys` secret is JSON `{ "<key id>": "<32 bytes,
 * base64url>" }`, `active` names the key that seals. Undefined when the section is absent.
 * Every problem is reported at once; messages name key ids and lengths, never key material
 * (JSON.parse's own message would quote the text, so it is not passed on).
 * @throws ConfigError
 */
export function sealerFromConfig(
  secrets: GatewayConfig['secrets'],
  readSecret: typeof ReadSecret,
): Sealer | undefined {
  if (secrets === undefined) return undefined
  const text = readSecret(secrets.keys, 'secrets.keys')
  const at = (path: string, message: string): ConfigProblem => ({
    file: 'configuration',
    path,
    message,
  })
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new ConfigError([
      at('secrets.keys', 'not JSON: expected { "<key id>": "<32 random bytes, base64url>" }'),
    ])
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError([
      at('secrets.keys', 'expected a JSON object { "<key id>": "<32 random bytes, base64url>" }'),
    ])
  }
  const problems: ConfigProblem[] = []
  const keys: Record<string, Uint8Array> = {}
  for (const [kid, value] of Object.entries(json)) {
    if (!KEY_ID.test(kid)) {
      problems.push(
        at('secrets.keys', 'a key id is not 1 to 64 of A-Z a-z 0-9 _ - (it is not shown)'),
      )
      continue
    }
    // RFC 4648 §5: base64url, padding optional.
    const key = typeof value === 'string' ? fromB64u(value.replace(/={1,2}$/, '')) : undefined
    if (key === undefined) {
      problems.push(at('secrets.keys', `key "${kid}" is not a base64url string (A-Z a-z 0-9 - _)`))
    } else if (key.length !== KEY_BYTES) {
      problems.push(
        at(
          'secrets.keys',
          `key "${kid}" is ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES}`,
        ),
      )
    } else {
      keys[kid] = key
    }
  }
  if (Object.keys(json).length === 0) problems.push(at('secrets.keys', 'no keys'))
  if (!Object.hasOwn(json, secrets.active)) {
    problems.push(at('secrets.active', `"${secrets.active}" is not a key id in secrets.keys`))
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return createSealer(keys, secrets.active)
}

const b64u = (b: Buffer) => b.toString('base64url')

/** Strict base64url: its alphabet only, no padding, and the canonical encoding of its bytes. */
function fromB64u(text: string | undefined): Buffer | undefined {
  if (text === undefined || !/^[A-Za-z0-9_-]*$/.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64url')
  return bytes.toString('base64url') === text ? bytes : undefined
}

function malformed(why: string): StoreError {
  return new StoreError('seal_malformed', `malformed sealed value: ${why}`)
}

/**
 * The gateway's sealer: from `secrets` when configured; with the in-memory store (one replica,
 * nothing written anywhere) an ephemeral key otherwise. A shared store needs configured keys:
 * every replica must open what the others sealed.
 * @throws ConfigError
 */
export function sealerForStore(
  config: Pick<GatewayConfig, 'secrets' | 'store'>,
  readSecret: typeof ReadSecret,
): Sealer {
  const configured = sealerFromConfig(config.secrets, readSecret)
  if (configured) return configured
  if (config.store.kind !== 'memory') {
    throw new ConfigError([
      {
        file: 'configuration',
        path: 'secrets',
        message:
          "required with a shared store: upstream tokens and users' secrets are sealed at rest with these keys",
      },
    ])
  }
  return createSealer({ ephemeral: randomBytes(KEY_BYTES) }, 'ephemeral')
}
