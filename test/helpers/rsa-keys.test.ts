// rsaSigningKey: the keys a process is handed are each its own (one test IdP's tokens never
// verify with another's key), whether made now or read from the cache, and sign RS256.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { exportJWK, jwtVerify, SignJWT } from 'jose'
import { rsaSigningKey } from './rsa-keys.js'

describe('rsaSigningKey', () => {
  it('hands each caller of a process a key of its own, even side by side', async () => {
    const keys = await Promise.all([rsaSigningKey(), rsaSigningKey(), rsaSigningKey()])
    keys.push(await rsaSigningKey())
    const moduli = await Promise.all(keys.map(async (k) => (await exportJWK(k)).n))
    assert.equal(new Set(moduli).size, keys.length)
  })

  it("signs RS256 tokens that verify with its own public part and not with another key's", async () => {
    const [key, other] = [await rsaSigningKey(), await rsaSigningKey()]
    const jwt = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'RS256' }).sign(key)
    const publicOf = async (k: CryptoKey) => {
      const { kty, n, e } = await exportJWK(k)
      return { kty, n, e }
    }
    assert.equal((await jwtVerify(jwt, await publicOf(key))).payload.sub, 'a')
    await assert.rejects(jwtVerify(jwt, await publicOf(other)), /signature verification failed/)
  })
})
