// Users' secrets at rest: write-only, sealed, keyed by a keyed hash of the user, validated, bounded,
// isolated between users and issuers; key rotation opens old values; with Redis they survive a
// gateway restart and the restarted gateway starts the user's process with them.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { pino } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import {
  DEFAULT_SECRET_MAX_LENGTH,
  DEFAULT_SECRET_UNUSED_TTL_MS,
  DEFAULT_SECRETS_PER_USER,
} from '../../gateway/config/schema.js'
import { UserSecrets } from '../../gateway/credentials/secrets.js'
import { startGateway } from '../../gateway/gateway.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { testStore } from '../helpers/memory-store.js'
import { recorder } from '../helpers/log-recorder.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { freePort } from '../helpers/ports.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const key = () => randomBytes(32)
/** The unkeyed hash earlier versions named a user by (anyone can make it from a guess). */
const unkeyed = (o: { iss: string; sub: string }) =>
  createHash('sha256')
    .update(JSON.stringify([o.iss, o.sub]))
    .digest('base64url')
const alice = { iss: 'https://idp.example', sub: 'alice' }

describe('UserSecrets', () => {
  it('write-only: a value goes in; list gives names and dates; the store holds neither the value nor the subject', async () => {
    // One clock for both: the expiry listed is the store's own, read back.
    const store = testStore(() => 1_700_000_000_000)
    const secrets = new UserSecrets({
      store,
      sealer: createSealer({ k1: key() }, 'k1'),
      now: () => 1_700_000_000_000,
    })
    const value = 'ghp_0123456789abcdefghij'
    const expiresAt = 1_700_000_000_000 + DEFAULT_SECRET_UNUSED_TTL_MS
    assert.deepEqual(await secrets.set(alice, 'github_token', value), {
      name: 'github_token',
      setAt: 1_700_000_000_000,
      expiresAt,
    })
    assert.deepEqual(await secrets.list(alice), [
      { name: 'github_token', setAt: 1_700_000_000_000, expiresAt },
    ])
    assert.equal(await secrets.value(alice, 'github_token'), value)
    const dump = JSON.stringify(
      [...store.values].concat([...store.sets].map(([k, v]) => [k, [...v]] as never)),
    )
    assert.ok(!dump.includes(value), 'no plaintext value')
    assert.ok(!dump.includes('alice'), 'no subject in keys or values')
    await secrets.remove(alice, 'github_token')
    assert.equal(await secrets.value(alice, 'github_token'), undefined)
    assert.deepEqual(await secrets.list(alice), [])
  })

  it('isolation: another user, another issuer with the same subject, and subjects built to collide get nothing', async () => {
    const secrets = new UserSecrets({
      store: testStore(),
      sealer: createSealer({ k1: key() }, 'k1'),
    })
    await secrets.set(alice, 'token', 'alice-value')
    for (const other of [
      { iss: 'https://idp.example', sub: 'bob' },
      { iss: 'https://other.example', sub: 'alice' },
      { iss: 'https://idp.example/', sub: 'alice' },
      { iss: 'https://idp.example', sub: 'alice ' },
      { iss: 'https://idp.example", "alice', sub: '' },
      { iss: 'https://idp.example', sub: 'ALICE' },
    ]) {
      assert.equal(await secrets.value(other, 'token'), undefined, JSON.stringify(other))
      assert.deepEqual(await secrets.list(other), [])
    }
  })

  it('records cannot be swapped between users or names: a moved value does not open', async () => {
    const store = testStore()
    const logs = recorder()
    const secrets = new UserSecrets({
      store,
      sealer: createSealer({ k1: key() }, 'k1'),
      log: logs.log,
    })
    const bob = { iss: alice.iss, sub: 'bob' }
    await secrets.set(alice, 'token', 'alice-value')
    await secrets.set(bob, 'token', 'bob-value')
    await secrets.set(alice, 'other', 'x')
    const k = (o: typeof alice, name: string) => `secrets:${secrets.userKey(o)}:${name}`
    // Bob's record copied over Alice's: it was sealed to Bob's key, so it opens for no one else.
    store.values.set(k(alice, 'token'), store.values.get(k(bob, 'token'))!)
    store.values.set(k(alice, 'other'), store.values.get(k(alice, 'token'))!)
    assert.equal(await secrets.value(alice, 'token'), undefined)
    assert.equal(await secrets.value(alice, 'other'), undefined)
    assert.equal(await secrets.value(bob, 'token'), 'bob-value')
    // The operator is told, by the secret's name: never its value, its owner or its store key.
    const warned = logs.lines.filter((l) => /stored secret does not open/.test(l.msg))
    assert.deepEqual(
      warned.map((l) => [l.level, l.kind, l.name]),
      [
        [40, 'secret', 'token'],
        [40, 'secret', 'other'],
      ],
    )
    const text = JSON.stringify(logs.lines)
    for (const leak of [
      'alice-value',
      'bob-value',
      'alice',
      secrets.userKey(alice),
      k(bob, 'token'),
    ])
      assert.ok(!text.includes(leak), `no ${leak} in the log`)
  })

  it('a sealed value that opens but is not a record this gateway writes counts as not set, and is logged by its kind', async () => {
    const store = testStore()
    const logs = recorder()
    const sealer = createSealer({ k1: key() }, 'k1')
    const secrets = new UserSecrets({ store, sealer, log: logs.log })
    await secrets.set(alice, 'token', 'v')
    const k = `secrets:${secrets.userKey(alice)}:token`
    const bodies = [
      'not json',
      '"a string"',
      '[]',
      '{"value":1,"setAt":2}',
      '{"value":"v"}',
      '{"value":"v","setAt":"1"}',
      '{"__proto__":{"value":"x"},"value":"v","setAt":1}',
    ]
    for (const body of bodies) {
      store.values.set(k, { value: sealer.seal(body, k), expires: Number.POSITIVE_INFINITY })
      assert.equal(await secrets.value(alice, 'token'), undefined, body)
      assert.deepEqual(await secrets.list(alice), [], body)
    }
    const warned = logs.lines.filter((l) =>
      /stored record is not what this gateway writes/.test(l.msg),
    )
    assert.equal(warned.length, bodies.length * 2)
    for (const l of warned) assert.equal(l.kind, 'secret')
    assert.ok(!JSON.stringify(logs.lines).includes(k), 'no store key in the log')
  })

  it('store keys name the user by a keyed hash: a guess of the subject, hashed, finds nothing', async () => {
    const store = testStore()
    const sealer = createSealer({ k1: key() }, 'k1')
    const secrets = new UserSecrets({ store, sealer })
    await secrets.set(alice, 'token', 'v')
    const guess = unkeyed(alice)
    const keys = [...store.values.keys(), ...store.sets.keys()]
    assert.ok(keys.length > 0)
    assert.ok(!keys.some((k) => k.includes(guess)), JSON.stringify(keys))
    assert.ok(keys.includes(`secrets:${secrets.userKey(alice)}`))
    assert.equal(secrets.userKey(alice), sealer.macs(JSON.stringify([alice.iss, alice.sub]))[0])
    // Another gateway key, another name: the hash is nothing a reader of the store can make.
    const other = new UserSecrets({ store, sealer: createSealer({ k1: key() }, 'k1') })
    assert.notEqual(other.userKey(alice), secrets.userKey(alice))
  })

  it('records stored under the unkeyed hash (earlier versions) are read, listed, and move when changed', async () => {
    const store = testStore()
    const sealer = createSealer({ k1: key() }, 'k1')
    // As an earlier version wrote them.
    const old = `secrets:${unkeyed(alice)}`
    for (const [name, value] of [
      ['token', 'old-token'],
      ['other', 'old-other'],
    ] as const) {
      await store.sadd(old, name)
      await store.set(
        `${old}:${name}`,
        sealer.seal(JSON.stringify({ value, setAt: 1 }), `${old}:${name}`),
      )
    }
    const secrets = new UserSecrets({ store, sealer, perUser: 2 })
    assert.equal(await secrets.value(alice, 'token'), 'old-token')
    assert.deepEqual(
      (await secrets.list(alice)).map((x) => x.name),
      ['other', 'token'],
    )
    // The cap counts them: a third name is refused.
    await assert.rejects(secrets.set(alice, 'third', 'v'), /at most 2 secrets per user/)
    // Changed: written under the keyed name, gone from the old one.
    await secrets.set(alice, 'token', 'new-token')
    assert.equal(await secrets.value(alice, 'token'), 'new-token')
    assert.equal(await store.get(`${old}:token`), undefined)
    assert.deepEqual(await store.smembers(old), ['other'])
    assert.deepEqual(
      (await secrets.list(alice)).map((x) => x.name),
      ['other', 'token'],
    )
    // Deleted: from wherever it is.
    await secrets.remove(alice, 'other')
    assert.equal(await store.get(`${old}:other`), undefined)
    assert.deepEqual(
      (await secrets.list(alice)).map((x) => x.name),
      ['token'],
    )
  })

  it('refuses bad names and values with a message a user can act on; bounds the count per user', async () => {
    const secrets = new UserSecrets({
      store: testStore(),
      sealer: createSealer({ k1: key() }, 'k1'),
    })
    for (const name of [
      '',
      'a b',
      'a/b',
      '../x',
      'x\n',
      'x\u0000',
      'é',
      'a'.repeat(65),
      'a:b',
      '%2e%2e',
    ]) {
      await assert.rejects(
        secrets.set(alice, name, 'v'),
        /a secret name is 1 to 64 letters, digits, _ \. -/,
        JSON.stringify(name),
      )
    }
    await assert.rejects(secrets.set(alice, 'ok', ''), /a secret value is 1 to 8192 characters/)
    await assert.rejects(
      secrets.set(alice, 'ok', 'x'.repeat(DEFAULT_SECRET_MAX_LENGTH + 1)),
      /a secret value is 1 to 8192 characters/,
    )
    await assert.rejects(secrets.set(alice, 'ok', 'a\u0000b'), /NUL/)
    assert.ok(await secrets.set(alice, 'ok', 'x'.repeat(DEFAULT_SECRET_MAX_LENGTH)))
    for (let i = 1; i < DEFAULT_SECRETS_PER_USER; i++) await secrets.set(alice, `s${i}`, 'v')
    await assert.rejects(
      secrets.set(alice, 'one-too-many', 'v'),
      new RegExp(`at most ${DEFAULT_SECRETS_PER_USER} secrets per user`),
    )
    // Replacing one that exists is not a new one.
    assert.ok(await secrets.set(alice, 's1', 'replaced'))
    assert.equal(await secrets.value(alice, 's1'), 'replaced')
  })

  it('configured bounds (credentials.secretMaxLength, secretsPerUser) replace the defaults', async () => {
    const secrets = new UserSecrets({
      store: testStore(),
      sealer: createSealer({ k1: key() }, 'k1'),
      maxLength: 4,
      perUser: 2,
    })
    await assert.rejects(secrets.set(alice, 'a', 'xxxxx'), /a secret value is 1 to 4 characters/)
    assert.ok(await secrets.set(alice, 'a', 'xxxx'))
    assert.ok(await secrets.set(alice, 'b', 'v'))
    await assert.rejects(secrets.set(alice, 'c', 'v'), /at most 2 secrets per user/)
  })

  it('key rotation: a value sealed with the old key opens once the new key is active; new values use the new key; a removed key means not set', async () => {
    const store = testStore()
    const k1 = key()
    const k2 = key()
    await new UserSecrets({ store, sealer: createSealer({ k1 }, 'k1') }).set(
      alice,
      'token',
      'sealed-with-k1',
    )
    const rotated = new UserSecrets({ store, sealer: createSealer({ k1, k2 }, 'k2') })
    assert.equal(await rotated.value(alice, 'token'), 'sealed-with-k1')
    await rotated.set(alice, 'fresh', 'sealed-with-k2')
    const onlyK2 = new UserSecrets({ store, sealer: createSealer({ k2 }, 'k2') })
    assert.equal(await onlyK2.value(alice, 'fresh'), 'sealed-with-k2')
    assert.equal(
      await onlyK2.value(alice, 'token'),
      undefined,
      'its key is gone: the user sets it again',
    )
    assert.deepEqual(
      (await onlyK2.list(alice)).map((s) => s.name),
      ['fresh'],
    )
  })
})

/**
 * Two replicas' secret changes of one user at once: six new names against a cap of two, and
 * a set racing a delete of the same name, on one shared store.
 */
async function raceOnOneStore(store: Store): Promise<void> {
  const sealer = createSealer({ k1: randomBytes(32) }, 'k1')
  const a = new UserSecrets({ store, sealer, perUser: 2 })
  const b = new UserSecrets({ store, sealer, perUser: 2 })
  const owner = { iss: 'https://idp.example', sub: `racer-${randomBytes(4).toString('hex')}` }
  const outcomes = await Promise.allSettled(
    ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'].map((n, i) => (i % 2 ? a : b).set(owner, n, 'v')),
  )
  const set = outcomes.filter((o) => o.status === 'fulfilled').length
  assert.equal(set, 2, 'exactly the cap succeeds')
  for (const o of outcomes)
    if (o.status === 'rejected') assert.match(String(o.reason), /at most 2 secrets per user/)
  const listed = (await a.list(owner)).map((s) => s.name)
  assert.equal(listed.length, 2, `listed: ${listed}`)
  // Every value a process could be handed is one the user's page lists.
  for (const n of ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'])
    assert.equal((await b.value(owner, n)) !== undefined, listed.includes(n), n)
  // A set and a delete of one name at once: the name is listed exactly when a value is held.
  for (let i = 0; i < 20; i++) {
    await Promise.all([a.set(owner, listed[0]!, `v${i}`), b.remove(owner, listed[0]!)])
    const shown = (await a.list(owner)).some((s) => s.name === listed[0])
    const held = (await b.value(owner, listed[0]!)) !== undefined
    assert.equal(shown, held, `round ${i}`)
  }
}

describe("a user's secret changes at once, on two replicas", () => {
  it('in memory: the cap holds and nothing is held unlisted', async () => {
    await raceOnOneStore(testStore())
  })

  it('a set cut short by the store leaves nothing a process would get but the page not show', async () => {
    const store = testStore()
    const broken: Store = {
      ...store,
      sadd: async () => {
        throw new Error('store went away')
      },
    }
    const secrets = new UserSecrets({ store: broken, sealer: createSealer({ k1: key() }, 'k1') })
    await assert.rejects(secrets.set(alice, 'token', 'half-set'), /store went away/)
    assert.equal(await secrets.value(alice, 'token'), undefined)
    assert.deepEqual(await secrets.list(alice), [])
  })

  it('a secret named `lock` is a secret like any other (the lock lives elsewhere)', async () => {
    const secrets = new UserSecrets({
      store: testStore(),
      sealer: createSealer({ k1: key() }, 'k1'),
    })
    await secrets.set(alice, 'lock', 'value-of-lock')
    await secrets.set(alice, 'other', 'x')
    assert.equal(await secrets.value(alice, 'lock'), 'value-of-lock')
    assert.deepEqual(
      (await secrets.list(alice)).map((s) => s.name),
      ['lock', 'other'],
    )
  })

  describe('in Redis', { skip: NO_REDIS }, () => {
    let redis: RedisServer
    let store: Store | undefined
    before(async () => {
      redis = await startRedis()
    })
    after(async () => {
      await store?.close()
      await redis.close()
    })
    it('the cap holds and nothing is held unlisted', async () => {
      store = await createRedisStore({
        url: redis.url,
        keyPrefix: 'secrets-race:',
        log: pino({ level: 'silent' }),
      })
      await raceOnOneStore(store)
    })
  })
})

describe("users' secrets in Redis survive a gateway restart", { skip: NO_REDIS }, () => {
  let redis: RedisServer
  before(async () => {
    redis = await startRedis({ persist: true })
  })
  after(() => redis.close())

  it("set through one gateway, read by the next one (rotated key too), and handed to the user's process", async () => {
    const k1 = randomBytes(32).toString('base64url')
    const k2 = randomBytes(32).toString('base64url')
    process.env.MCP_EDGE_TEST_REDIS_URL = redis.url
    const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-secrets-restart-'))
    writeFileSync(
      join(dir, 'policy.yaml'),
      'servers:\n  vault:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n',
    )
    const start = async (keys: Record<string, string>, active: string) => {
      process.env.MCP_EDGE_TEST_SEAL_KEYS = JSON.stringify(keys)
      const port = await freePort()
      const config = validateConfig(
        {
          listen: { host: '127.0.0.1', port },
          store: {
            kind: 'redis',
            url: { env: 'MCP_EDGE_TEST_REDIS_URL' },
            keyPrefix: 'restart-test:',
          },
          secrets: { keys: { env: 'MCP_EDGE_TEST_SEAL_KEYS' }, active },
          servers: {
            vault: {
              command: process.execPath,
              args: [join(SERVERS_DIR, 'fixture.js')],
              credentials: { VAULT_TOKEN: { secret: 'vault_token' } },
            },
          },
          policies: join(dir, 'policy.yaml'),
        },
        { file: 'test', baseDir: dir },
      )
      return startGateway(config, { log: pino({ level: 'silent' }), insecureNoAuth: true })
    }
    try {
      const first = await start({ k1 }, 'k1')
      const anonymous = await first.secrets!.list({ iss: 'x', sub: 'y' })
      assert.deepEqual(anonymous, [])
      // The --insecure-no-auth principal is who the calls below run as.
      const owner = await whoami(first.url)
      await first.secrets!.set(owner, 'vault_token', 'kept-in-redis')
      await first.close()
      // Restarted, with a new active key and the old one still listed.
      const second = await start({ k1, k2 }, 'k2')
      try {
        assert.equal(await second.secrets!.value(owner, 'vault_token'), 'kept-in-redis')
        const body = {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: 'credential',
            arguments: { name: 'VAULT_TOKEN' },
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }
        const res = await request(`${second.url}/mcp/vault`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': '2026-07-28',
            'mcp-method': 'tools/call',
            'mcp-name': 'credential',
          },
          body: JSON.stringify(body),
        })
        const json = (await res.body.json()) as { result: { content: { text: string }[] } }
        assert.ok(json.result, JSON.stringify(json))
        assert.equal(
          JSON.parse(json.result.content[0]!.text).sha256,
          createHash('sha256').update('kept-in-redis').digest('hex'),
        )
      } finally {
        await second.close()
      }
    } finally {
      delete process.env.MCP_EDGE_TEST_REDIS_URL
      delete process.env.MCP_EDGE_TEST_SEAL_KEYS
    }
  })
})

/** Who the gateway says the caller is (the --insecure-no-auth principal here). */
async function whoami(url: string): Promise<{ iss: string; sub: string }> {
  const res = await request(`${url}/whoami`)
  const me = (await res.body.json()) as { iss: string; sub: string }
  return { iss: me.iss, sub: me.sub }
}
