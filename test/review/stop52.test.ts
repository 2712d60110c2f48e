// Stop 52: an outsider's attack on users' secrets expiring unused, `mcp-edge secrets purge`
// and its sealing-key check, with a real redis-server, the built CLI and the gateway's own
// config and key file.
// Finding (a failing test first, then the fix):
// - purge found a user's values only through their list of names, and the list lives as long
//   as its newest value: a value with a longer life than the list's (set before this version
//   or with `secretUnusedTtl: 0`, both kept with no expiry; or set before the setting was
//   lowered) outlived its list, and the purge said `no secrets held` (exit 0) while it stayed
//   at rest for good and the next process of that user was started with it.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { UserSecrets, type SecretOwner } from '../../gateway/credentials/secrets.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { runCli } from '../helpers/cli-run.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait-for.js'

const ISS = 'https://idp.example'
const alice: SecretOwner = { iss: ISS, sub: 'alice' }
const bob: SecretOwner = { iss: ISS, sub: 'bob' }
const MINUTE = 60_000
const DAY = 24 * 3600 * 1000

describe('secrets purge: a value its list no longer names (real Redis, the built CLI)', {
  skip: NO_REDIS,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'stop52-'))
  const REDIS_ENV = 'MCP_EDGE_TEST_STOP52_REDIS'
  const PREFIX = 'stop52:'
  const key = randomBytes(32)
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 })
    return join(dir, name)
  }
  const keysFile = file('keys.json', JSON.stringify({ k1: key.toString('base64url') }))
  const policy = file('policy.yaml', 'servers:\n  vault:\n    access: ["mcp:read"]\n')
  const gatewayYaml = file(
    'gateway.yaml',
    JSON.stringify({
      store: { kind: 'redis', url: { env: REDIS_ENV }, keyPrefix: PREFIX, connectTimeout: 500 },
      secrets: { keys: { file: keysFile }, active: 'k1' },
      servers: { vault: { command: process.execPath, args: ['-e', ''] } },
      policies: policy,
    }),
  )
  const sealer = createSealer({ k1: key }, 'k1')
  let redis: RedisServer
  let store: Store
  /** The gateway's secrets under a `secretUnusedTtl`. */
  const secretsWith = (unusedTtl: number) => new UserSecrets({ store, sealer, unusedTtl })
  const purge = (sub: string) =>
    runCli(['secrets', 'purge', '--subject', sub, '--issuer', ISS, '--config', gatewayYaml])

  before(async () => {
    redis = await startRedis()
    process.env[REDIS_ENV] = redis.url
    store = await createRedisStore({
      url: redis.url,
      keyPrefix: PREFIX,
      log: pino({ level: 'silent' }),
    })
  })
  after(async () => {
    await store?.close()
    await redis?.close()
    delete process.env[REDIS_ENV]
  })

  /** Redis expires the list of alice's names and the value named (as it does once their time is up). */
  const expire = async (...keys: string[]) => {
    for (const k of keys) await store.expire(k, 1)
    await waitFor(
      async () =>
        (await store.getMany(keys)).every((v) => v === undefined) &&
        (await store.smembers(keys[0]!)).length === 0,
      'the list and the value expired',
    )
  }

  for (const [name, earlierTtl] of [
    ['set with secretUnusedTtl 0 (or before this version: no expiry)', 0],
    ['set before secretUnusedTtl was lowered (90 days to a minute)', 90 * DAY],
  ] as const)
    it(`a value ${name} outlives its list: the purge deletes it all the same`, async () => {
      const earlier = secretsWith(earlierTtl)
      const now = secretsWith(MINUTE)
      const user = now.userKey(alice)
      await earlier.set(alice, 'old_token', 'old-secret-value')
      await earlier.set(bob, 'old_token', 'bob-secret-value')
      // A later set gives alice's list the current setting's life; that set goes unused.
      await now.set(alice, 'new_token', 'new-secret-value')
      await expire(`secrets:${user}`, `secrets:${user}:new_token`)
      assert.notEqual(await store.get(`secrets:${user}:old_token`), undefined, 'at rest, unlisted')

      const r = await purge('alice')
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `purged 1 secret of subject alice of ${ISS}: old_token\n`)
      assert.ok(!`${r.stdout}${r.stderr}`.includes('secret-value'))
      assert.equal(
        await store.get(`secrets:${user}:old_token`),
        undefined,
        'nothing of alice at rest',
      )
      // Her next process gets nothing; bob's is left.
      assert.equal(await now.value(alice, 'old_token'), undefined)
      assert.equal(await now.value(bob, 'old_token'), 'bob-secret-value')
      await now.purge(bob)
    })
})
