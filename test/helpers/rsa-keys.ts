// RS256 signing keys for the test IdPs, made once per machine rather than once per IdP. An
// RSA-2048 key costs ~250 ms of CPU to make, and the suite made hundreds (one per stack and per
// key rotation, one per upstream IdP), nearly all in files whose other set-up costs about as much.
//
// The n-th key a test process asks for is the n-th key kept in the temp folder, made and kept
// there by the first process that needed it: keys stay distinct within a process (one IdP's
// tokens never verify at another IdP of the same file), and test processes never exchange
// tokens. An unreadable key file is made again.
import { generateKeyPair } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { importPKCS8 } from 'jose'

const DIR = join(tmpdir(), 'mcp-edge-test-rsa-keys')
const generate = promisify(generateKeyPair)
let taken = 0

/** This process's next RS256 private key (extractable, so its JWK can be published). */
export async function rsaSigningKey(): Promise<CryptoKey> {
  const file = join(DIR, `${taken++}.pem`)
  try {
    return await importPKCS8(await readFile(file, 'utf8'), 'RS256', { extractable: true })
  } catch {
    const { privateKey } = await generate('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    })
    // Written whole, then renamed: a process reading it at once never sees half a key. A folder
    // this user may not write to only costs the next processes their own keys.
    const part = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`
    await mkdir(DIR, { recursive: true, mode: 0o700 })
      .then(() => writeFile(part, privateKey, { mode: 0o600 }))
      .then(() => rename(part, file))
      .catch(() => {})
    return importPKCS8(privateKey, 'RS256', { extractable: true })
  }
}
