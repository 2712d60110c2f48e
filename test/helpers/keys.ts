import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
} from 'jose'
import { AuthError } from '../../gateway/auth/errors.js'

/** A real signing key pair with its JWKs, for tokens a test controls. */
export interface TestKey {
  kid: string
  alg: string
  privateKey: CryptoKey
  publicKey: CryptoKey
  /** Public JWK with `kid`, `alg` and `use: sig`, as a JWKS serves it. */
  publicJwk: JWK
  /** Private JWK with `kid` and `alg`, as the dev IdP's `jwks` option takes it. */
  privateJwk: JWK
}

/** Generates a key pair for `alg` (RS256, ES256, EdDSA ...) with a fresh `kid`. */
export async function makeKey(
  alg = 'RS256',
  kid = `${alg.toLowerCase()}-${randomUUID()}`,
): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  return {
    kid,
    alg,
    privateKey,
    publicKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg },
  }
}

/** Claims of an access token for `issuer`, valid one hour from `nowMs`; `over` replaces any. */
export function claims(issuer: string, over: JWTPayload = {}, nowMs = Date.now()): JWTPayload {
  const now = Math.floor(nowMs / 1000)
  return {
    iss: issuer,
    sub: 'user-1',
    aud: 'http://127.0.0.1:8080/mcp/echo',
    iat: now,
    exp: now + 3600,
    scope: 'mcp:read',
    ...over,
  }
}

/**
 * Signs `payload` with `key`. The header is `{ alg, kid, typ: 'at+jwt' }` merged with
 * `header`; a header value of `undefined` drops that parameter (no `kid`, no `typ`).
 */
export function signToken(
  key: TestKey,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const merged = { alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header }
  // A JSON round trip drops the parameters set to undefined.
  const protectedHeader = JSON.parse(JSON.stringify(merged)) as JWTHeaderParameters
  return new SignJWT(payload).setProtectedHeader(protectedHeader).sign(key.privateKey)
}

/** base64url of a JSON value, for hand-built tokens. */
export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A hand-built unsecured JWT (RFC 7519 §6): header.payload. with an empty signature. */
export function unsecuredJwt(header: Record<string, unknown>, payload: JWTPayload): string {
  return `${b64json(header)}.${b64json(payload)}.`
}

/** The token with one bit of its signature flipped (in the middle, so it always changes a byte). */
export function flipSignatureBit(token: string): string {
  const [h, p, s = ''] = token.split('.')
  const sig = Buffer.from(s, 'base64url')
  sig[Math.floor(sig.length / 2)]! ^= 0x01
  return `${h}.${p}.${sig.toString('base64url')}`
}

/** Asserts `promise` rejects with an AuthError of exactly `code` and `status`. */
export async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  status = 401,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AuthError, `expected AuthError, got ${err}`)
    assert.deepEqual({ code: err.code, status: err.status }, { code, status })
    return true
  })
}
