// Stop 52: an outsider's attack on users' secrets expiring unused, `mcp-edge secrets purge`
// and its sealing-key check, with a real redis-server, the built CLI and the gateway's own
// config and key file.
// Finding (a failing test first, then the fix):
// - purge found a user's values only through their list of names, and the list lives as long
//   as its newest value: a value with a longer life than the list's (set before this version
//   or with `secretUnusedTtl: 0`, both kept with no expiry; or set before the setting was
//   lowered) outlived its list, and the purge said `no secrets held` (exit 0) while it stayed
//   at rest for good and the next process of that user was started with it.
// - the sealing-key check was one value, left by the first gateway and kept by every later one
//   whose keys open it: after a rotation (k2 made active, k1 still held) it was still k1's, so
//   a purge with a copy of the config from before the rotation (k1 alone) matched and found
//   nothing under k2's names: `no secrets held`, exit 0. One mark per active key now; a gateway
//   that no longer holds a key removes that key's.
// - purge printed the names it found raw: one a store writer planted (an escape sequence, a
//   line break) redrew the operator's terminal or faked a line. Quoted as other commands do.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import { UserSecrets, type SecretOwner } from '../../gateway/credentials/secrets.js'
import { type Gateway, startGateway } from '../../gateway/gateway.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { runCli } from '../helpers/cli-run.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ISS = 'https://idp.example'
const alice: SecretOwner = { iss: ISS, sub: 'alice' }
const bob: SecretOwner = { iss: ISS, sub: 'bob' }
const MINUTE = 60_000
const DAY = 24 * 3600 * 1000
const dir = mkdtempSync(join(tmpdir(), 'stop52-'))
const REDIS_ENV = 'MCP_EDGE_TEST_STOP52_REDIS'
const PREFIX = 'stop52:'
const k1 = randomBytes(32)
const k2 = randomBytes(32)
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text, { mode: 0o600 })
  return join(dir, name)
}
const policy = file(
  'policy.yaml',
  'servers:\n  vault:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n',
)
let configs = 0
/** A gateway's config (JSON is YAML) sealing with `keys` (the first one active), as a file. */
const configOf = (keys: Record<string, Buffer>) => {
  const n = ++configs
  const keyFile = file(
    `keys-${n}.json`,
    JSON.stringify(
      Object.fromEntries(Object.entries(keys).map(([id, k]) => [id, k.toString('base64url')])),
    ),
  )
  const config = {
    store: { kind: 'redis', url: { env: REDIS_ENV }, keyPrefix: PREFIX, connectTimeout: 500 },
    secrets: { keys: { file: keyFile }, active: Object.keys(keys)[0] },
    servers: {
      vault: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'fixture.js')],
        credentials: { VAULT_TOKEN: { secret: 'vault_token' } },
      },
    },
    policies: policy,
  }
  return { config, path: file(`gateway-${n}.yaml`, JSON.stringify(config)) }
}
/** `mcp-edge secrets purge` of `sub` with the config file at `path`. */
const purge = (sub: string, path: string) =>
  runCli(['secrets', 'purge', '--subject', sub, '--issuer', ISS, '--config', path])

let redis: RedisServer
let store: Store
before(async () => {
  if (NO_REDIS) return
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

describe('secrets purge: a value its list no longer names (real Redis, the built CLI)', {
  skip: NO_REDIS,
}, () => {
  const gatewayYaml = configOf({ k1 }).path
  const sealer = createSealer({ k1 }, 'k1')
  /** The gateway's secrets under a `secretUnusedTtl`. */
  const secretsWith = (unusedTtl: number) => new UserSecrets({ store, sealer, unusedTtl })

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

      const r = await purge('alice', gatewayYaml)
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

describe('secrets purge and the sealing-key check across a key rotation (real gateways)', {
  skip: NO_REDIS,
}, () => {
  /** Starts a gateway on the shared store with `config`, runs `fn` with it, and stops it. */
  const withGateway = async (
    config: Record<string, unknown>,
    fn: (g: Gateway) => Promise<void>,
  ) => {
    const g = await startGateway(
      validateConfig(
        { ...config, listen: { host: '127.0.0.1', port: 0 } },
        { file: 'test', baseDir: dir },
      ),
      { log: pino({ level: 'silent' }), insecureNoAuth: true },
    )
    try {
      await fn(g)
    } finally {
      await g.close()
    }
  }

  it("a config without the key the gateways seal with now (a copy from before the rotation) is refused, not 'no secrets held'", async () => {
    const before = configOf({ k1 })
    const rotated = configOf({ k2, k1 })
    // Before the rotation: the gateway marks k1. Then k2 is made active (k1 still held).
    await withGateway(before.config, async () => {})
    await withGateway(rotated.config, async (g) => {
      await g.secrets!.set(alice, 'vault_token', 'rotated-secret-value')
    })
    const stale = await purge('alice', before.path)
    assert.equal(stale.code, 1, stale.stdout)
    assert.equal(stale.stdout, '')
    assert.match(
      stale.stderr,
      /^mcp-edge secrets purge: the gateway seals with key "k2", which these secrets\.keys do not hold/,
    )
    assert.ok(!`${stale.stdout}${stale.stderr}`.includes('secret-value'))
    assert.ok(!stale.stderr.includes(k2.toString('base64url')))
    const secrets = new UserSecrets({ store, sealer: createSealer({ k2, k1 }, 'k2') })
    assert.equal(
      await secrets.value(alice, 'vault_token'),
      'rotated-secret-value',
      'left as it was',
    )

    // With the gateway's own keys it goes; once k1 is retired (a gateway with k2 alone), the
    // rotated config still matches and the copy from before does not.
    const own = await purge('alice', rotated.path)
    assert.equal(own.code, 0, own.stderr)
    assert.equal(own.stdout, `purged 1 secret of subject alice of ${ISS}: vault_token\n`)
    const retired = configOf({ k2 })
    await withGateway(retired.config, async () => {})
    for (const path of [retired.path, rotated.path]) {
      const r = await purge('alice', path)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stderr, '')
    }
    const r = await purge('alice', before.path)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /seals with key "k2"/)
  })
})

describe('secrets purge prints what it found, never what a store writer could make of it', {
  skip: NO_REDIS,
}, () => {
  it('a name planted in the store (an escape sequence, a line break) is printed quoted, and goes', async () => {
    const { path } = configOf({ k1 })
    // No gateway's marks of other keys (the rotation's): the check finds nothing to refuse.
    await store.del(await store.keysWithPrefix('secrets-keycheck'))
    const secrets = new UserSecrets({ store, sealer: createSealer({ k1 }, 'k1') })
    const user = secrets.userKey(alice)
    await secrets.set(alice, 'github_token', 'alice-secret-value')
    const planted = 'x\u001b[2J\u001b[Hpurged 0 secrets\nfake'
    await store.set(`secrets:${user}:${planted}`, 'not sealed')
    await store.sadd(`secrets:${user}`, `y\u001b]0;title\u0007`)
    await store.set(`secrets:${user}:y\u001b]0;title\u0007`, 'not sealed')
    const r = await purge('alice', path)
    assert.equal(r.code, 0, r.stderr)
    assert.ok(!/[\u0000-\u0009\u000b-\u001f]/.test(r.stdout), JSON.stringify(r.stdout))
    assert.equal(r.stdout.split('\n').length, 2, JSON.stringify(r.stdout))
    assert.match(r.stdout, /^purged 3 secrets of subject alice of https:\/\/idp\.example: /)
    assert.ok(r.stdout.includes('"x\\u001b[2J\\u001b[Hpurged 0 secrets\\nfake"'), r.stdout)
    assert.deepEqual(await store.keysWithPrefix(`secrets:${user}`), [])
  })
})
