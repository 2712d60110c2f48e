import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { createLocalJWKSet, importJWK, exportJWK, type JWK, type JWTVerifyGetKey } from 'jose'
import { ConfigError } from '../config/errors.js'
import type { SecretRef } from '../config/secrets.js'

/** Algorithms the broker signs with, by key type. */
const ALG_BY_KTY: Record<string, string> = { EC: 'ES256', RSA: 'RS256', OKP: 'EdDSA' }

/** The broker's keys: the private JWKS that signs its tokens, its public half, and cookie keys. */
export interface BrokerKeys {
  /** Private JWKS for oidc-provider (`jwks`); the first key signs. */
  jwks: { keys: JWK[] }
  /** The algorithm of the signing key. */
  alg: string
  /** The public keys, for the gateway's own verification of the broker's tokens. */
  getKey: JWTVerifyGetKey
  /** Keys that sign the broker's cookies; the first signs, all verify. */
  cookieKeys: string[]
  /** Whether the keys were generated at start (one replica only: others would not know them). */
  generated: boolean
}

/**
 * Loads the broker's keys from their secrets, or generates them (ES256, random cookie keys)
 * when none are configured, which suits one replica: tokens and cookies of a restarted or
 * other replica would not verify. Every key must have a `kid` and a private part.
 * @throws ConfigError naming the secret and what is wrong with it, never its value
 */
export async function brokerKeys(
  config: { signingKeys?: SecretRef; cookieKeys?: SecretRef },
  readSecret: (ref: SecretRef, path: string) => string,
): Promise<BrokerKeys> {
  const problems: ConfigError[] = []
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn()
    } catch (err) {
      if (err instanceof ConfigError) problems.push(err)
      else throw err
      return undefined
    }
  }
  const jwks = attempt(() =>
    config.signingKeys
      ? parseJwks(readSecret(config.signingKeys, 'auth.broker.signingKeys'))
      : { keys: [generated()] },
  )
  const cookieKeys = attempt(() =>
    config.cookieKeys
      ? parseCookieKeys(readSecret(config.cookieKeys, 'auth.broker.cookieKeys'))
      : [randomBytes(32).toString('base64url')],
  )
  if (jwks === undefined || cookieKeys === undefined)
    throw new ConfigError(problems.flatMap((e) => e.problems))
  const first = jwks.keys[0]!
  const alg = first.alg ?? ALG_BY_KTY[first.kty ?? '']!
  const publicKeys = await Promise.all(
    jwks.keys.map(async (k) => {
      const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k
      // Round-trip through jose: an unusable key fails here, at start-up.
      const key = await importJWK(
        { ...pub, alg: k.alg ?? ALG_BY_KTY[k.kty ?? ''] },
        k.alg ?? ALG_BY_KTY[k.kty ?? ''],
      )
      return {
        ...(await exportJWK(key)),
        kid: k.kid,
        alg: k.alg ?? ALG_BY_KTY[k.kty ?? ''],
        use: 'sig',
      }
    }),
  )
  return {
    jwks: {
      keys: jwks.keys.map((k) => ({ ...k, alg: k.alg ?? ALG_BY_KTY[k.kty ?? ''], use: 'sig' })),
    },
    alg,
    getKey: createLocalJWKSet({ keys: publicKeys }),
    cookieKeys,
    generated: config.signingKeys === undefined || config.cookieKeys === undefined,
  }
}

function generated(): JWK {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { ...(privateKey.export({ format: 'jwk' }) as JWK), kid: randomUUID(), alg: 'ES256' }
}

function parseJwks(text: string): { keys: JWK[] } {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw problem('auth.broker.signingKeys', 'is not JSON (a private JWKS: {"keys":[…]})')
  }
  const keys = (value as { keys?: unknown })?.keys
  if (!Array.isArray(keys) || keys.length === 0)
    throw problem('auth.broker.signingKeys', 'has no keys (a private JWKS: {"keys":[…]})')
  keys.forEach((k: JWK, i) => {
    if (typeof k !== 'object' || k === null)
      throw problem(`auth.broker.signingKeys.keys.${i}`, 'is not a JWK')
    if (typeof k.kid !== 'string' || k.kid === '')
      throw problem(`auth.broker.signingKeys.keys.${i}`, 'needs a kid')
    if (ALG_BY_KTY[k.kty ?? ''] === undefined)
      throw problem(`auth.broker.signingKeys.keys.${i}`, 'must be an EC, RSA or OKP key')
    if (typeof k.d !== 'string')
      throw problem(`auth.broker.signingKeys.keys.${i}`, 'must be a private key (no "d")')
  })
  return { keys: keys as JWK[] }
}

function parseCookieKeys(text: string): string[] {
  let keys: unknown
  try {
    keys = text.trim().startsWith('[') ? JSON.parse(text) : [text]
  } catch {
    throw problem('auth.broker.cookieKeys', 'is not a JSON list of strings')
  }
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    !keys.every((k) => typeof k === 'string' && k.length >= 32)
  ) {
    throw problem(
      'auth.broker.cookieKeys',
      'must be a string of at least 32 characters, or a JSON list of such strings',
    )
  }
  return keys as string[]
}

function problem(path: string, message: string): ConfigError {
  return new ConfigError([{ file: 'configuration', path, message }])
}
