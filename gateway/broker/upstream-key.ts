import { createPrivateKey, type JsonWebKey } from 'node:crypto'
import { importJWK } from 'jose'

/** The gateway's private_key_jwt signing key at the upstream, ready for WebCrypto. */
export interface ClientKey {
  key: CryptoKey
  alg: string
  /** From the JWK, if it had one; the configured privateKeyId wins. */
  kid: string | undefined
}

/**
 * Imports the private key of private_key_jwt (RFC 7523 §2.2) from a PEM (PKCS#8, or the
 * PKCS#1 / SEC1 forms openssl writes) or a JSON JWK, as a non-extractable CryptoKey:
 * oauth4webapi signs with WebCrypto, and Node 20 has no KeyObject.toCryptoKey, so the key
 * goes through a JWK and jose. The algorithm is the JWK's `alg`, else RS256 for RSA (what
 * Entra ID and Okta accept), ES256/384/512 by curve, EdDSA for Ed25519.
 * @throws Error with a message that never quotes the key
 */
export async function importClientKey(text: string): Promise<ClientKey> {
  const trimmed = text.trim()
  let jwk: JsonWebKey & { kid?: string; alg?: string }
  try {
    if (trimmed.startsWith('{')) {
      const given = JSON.parse(trimmed) as JsonWebKey
      jwk = { ...given, ...exportPrivate(given) } // keeps the JWK's kid and alg
    } else {
      jwk = exportPrivate(trimmed)
    }
  } catch {
    throw new Error('not a private key: expected a PEM private key or a private JWK')
  }
  const alg = jwk.alg ?? algOf(jwk)
  if (alg === undefined)
    throw new Error(`unsupported key type ${jwk.kty}${jwk.crv ? ` (${jwk.crv})` : ''}`)
  const { kid, alg: _alg, use: _use, key_ops: _ops, ...material } = jwk as Record<string, unknown>
  try {
    const key = await importJWK(material as JsonWebKey, alg, { extractable: false })
    return { key: key as CryptoKey, alg, kid: typeof kid === 'string' ? kid : undefined }
  } catch {
    throw new Error(`the key cannot sign with ${alg}`)
  }
}

/** The private JWK of a PEM or JWK, through node:crypto so a public key is refused here. */
function exportPrivate(key: string | JsonWebKey): JsonWebKey {
  const k =
    typeof key === 'string' ? createPrivateKey(key) : createPrivateKey({ key, format: 'jwk' })
  return k.export({ format: 'jwk' })
}

const EC_ALG: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }

function algOf(jwk: JsonWebKey): string | undefined {
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'EC') return EC_ALG[jwk.crv ?? '']
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  return undefined
}
