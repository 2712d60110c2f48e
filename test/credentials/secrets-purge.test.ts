// An operator removes one user's secrets (someone who left): `UserSecrets.purge` on a real
// store, and `mcp-edge secrets purge` run as an operator runs it (the built command, the
// gateway's own config file and key file) against a real Redis that a real gateway serves
// from. Only that user's are gone, under every name their records may have; a similar subject
// (case, whitespace, Unicode), another issuer, keys that are not the gateway's, a store that
// is down or in memory leave everything as it was, with the exit code and message the README
// quotes; the running gateway starts no process with a purged value, and never is a value printed.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { UserSecrets, type SecretOwner } from '../../gateway/credentials/secrets.js'
import type { Gateway } from '../../gateway/gateway.js'
import { startGateway } from '../../gateway/gateway.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import { checkKeys, markKeys } from '../../gateway/store/key-check.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { runCli } from '../helpers/cli-run.js'
import { closedPortUrl } from '../helpers/jwks-server.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { gone } from '../helpers/pids.js'
import { freePort } from '../helpers/ports.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ISS = 'https://idp.example'
const alice: SecretOwner = { iss: ISS, sub: 'alice' }
/** Subjects an operator could type for alice that are someone else (or no one). */
const NOT_ALICE = [
  'Alice',
  'ALICE',
  ' alice',
  'alice ',
  'alice\u00a0',
  'alice\u200b',
  '\uff41lice', // fullwidth a
  'аlice', // Cyrillic а
  'alic',
  'alice2',
  'alice@idp.example',
]
const sha = (v: string) => createHash('sha256').update(v).digest('hex')

describe('UserSecrets.purge (memory store)', () => {
  const k1 = randomBytes(32)
  const k2 = randomBytes(32)

  it("deletes every secret of the user, under a former key's name and the unkeyed one too; nothing of theirs is left", async () => {
    const store = createMemoryStore()
    const before = new UserSecrets({ store, sealer: createSealer({ k1 }, 'k1') })
    await before.set(alice, 'old_token', 'sealed-under-k1')
    const secrets = new UserSecrets({ store, sealer: createSealer({ k1, k2 }, 'k2') })
    await secrets.set(alice, 'github_token', 'ghp_alice')
    await secrets.set(alice, 'jira', 'jira-alice')
    const unkeyed = createHash('sha256')
      .update(JSON.stringify([ISS, 'alice']))
      .digest('base64url')
    await store.sadd(`secrets:${unkeyed}`, 'legacy')
    await store.set(
      `secrets:${unkeyed}:legacy`,
      createSealer({ k1, k2 }, 'k2').seal(
        JSON.stringify({ value: 'legacy-value', setAt: 1 }),
        `secrets:${unkeyed}:legacy`,
      ),
    )
    assert.equal(await secrets.value(alice, 'legacy'), 'legacy-value')
    const bob = { iss: ISS, sub: 'bob' }
    await secrets.set(bob, 'github_token', 'ghp_bob')
    const keysBefore = store.size

    assert.deepEqual(await secrets.purge(alice), ['github_token', 'jira', 'legacy', 'old_token'])
    assert.deepEqual(await secrets.list(alice), [])
    for (const name of ['github_token', 'jira', 'legacy', 'old_token'])
      assert.equal(await secrets.value(alice, name), undefined, name)
    // Values and lists under all three of alice's names: 4 values and 3 lists.
    assert.equal(store.size, keysBefore - 7)
    assert.equal(await secrets.value(bob, 'github_token'), 'ghp_bob')
    // Nothing left to purge; and the user's lock is free (a set goes through at once).
    assert.deepEqual(await secrets.purge(alice), [])
    await secrets.set(alice, 'new', 'after-purge')
    assert.deepEqual(
      (await secrets.list(alice)).map((s) => s.name),
      ['new'],
    )
  })

  it('a similar subject or another issuer purges nothing of alice', async () => {
    const secrets = new UserSecrets({
      store: createMemoryStore(),
      sealer: createSealer({ k1 }, 'k1'),
    })
    await secrets.set(alice, 'tok', 'alice-value')
    const jose = { iss: ISS, sub: 'jos\u00e9' }
    await secrets.set(jose, 'tok', 'jose-value')
    const others = [
      ...NOT_ALICE.map((sub) => ({ iss: ISS, sub })),
      { iss: 'https://idp.example/', sub: 'alice' },
      { iss: 'https://IDP.example', sub: 'alice' },
      { iss: 'https://other.example', sub: 'alice' },
      { iss: ISS, sub: 'jose\u0301' }, // NFD of the NFC subject
      { iss: `${ISS}", "alice`, sub: '' },
    ]
    for (const other of others)
      assert.deepEqual(await secrets.purge(other), [], JSON.stringify(other))
    assert.equal(await secrets.value(alice, 'tok'), 'alice-value')
    assert.equal(await secrets.value(jose, 'tok'), 'jose-value')
  })
})

describe('the sealing-key check a gateway leaves at start (store/key-check)', () => {
  it('one that opens is left (mid-rotation); one that does not is replaced; other keys are named, never shown', async () => {
    const store = createMemoryStore()
    const k1 = randomBytes(32)
    const k2 = randomBytes(32)
    const only1 = createSealer({ k1 }, 'k1')
    const rotating = createSealer({ k1, k2 }, 'k2')
    const only2 = createSealer({ k2 }, 'k2')
    assert.equal(await checkKeys(store, only1), 'unknown')
    await markKeys(store, only1)
    const marks = async () => store.getMany((await store.smembers('secrets-keychecks')).sort())
    const [first] = await marks()
    assert.equal(first?.split('.')[1], 'k1')
    await markKeys(store, rotating)
    assert.ok((await marks()).includes(first), "a replica mid-rotation leaves the other's")
    assert.equal((await marks()).length, 2, 'and leaves its own: k2')
    assert.equal(await checkKeys(store, rotating), 'match')
    await assert.rejects(checkKeys(store, only1), /seals with key "k2"/, 'k1 alone misses k2')
    await markKeys(store, only2)
    assert.equal((await marks()).length, 1, 'k1 retired: its mark goes')
    assert.equal(await checkKeys(store, rotating), 'match')
    await assert.rejects(checkKeys(store, only1), (err: Error) => {
      assert.match(
        err.message,
        /^the gateway seals with key "k2", which these secrets\.keys do not hold/,
      )
      assert.ok(!err.message.includes(k2.toString('base64url')))
      return true
    })
    const sameIdOtherBytes = createSealer({ k2: randomBytes(32) }, 'k2')
    await assert.rejects(
      checkKeys(store, sameIdOtherBytes),
      /key "k2", which these secrets\.keys do not hold \(or hold with other bytes\)/,
    )
    // A value someone wrote there that names no key id: not shown either.
    await store.set('secrets-keycheck', 's1.\u001b[2J.x.y.z')
    await assert.rejects(checkKeys(store, only2), /seals with key "\?"/)
  })
})

describe('mcp-edge secrets purge, against a real Redis and a running gateway', {
  skip: NO_REDIS,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-purge-'))
  const REDIS_ENV = 'MCP_EDGE_TEST_PURGE_REDIS'
  const key = randomBytes(32).toString('base64url')
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 })
    return join(dir, name)
  }
  const keysFile = file('keys.json', JSON.stringify({ k1: key }))
  const wrongKeysFile = file(
    'wrong-keys.json',
    JSON.stringify({ k1: randomBytes(32).toString('base64url') }),
  )
  const otherKidFile = file('other-kid.json', JSON.stringify({ k9: key }))
  const policy = file(
    'policy.yaml',
    'servers:\n  vault:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n',
  )
  const servers = {
    vault: {
      command: process.execPath,
      args: [join(SERVERS_DIR, 'fixture.js')],
      credentials: { VAULT_TOKEN: { secret: 'vault_token' } },
    },
  }
  /** The gateway's config, as gateway.yaml (JSON is YAML), with `change` applied. */
  const configOf = (change: Record<string, unknown> = {}) => ({
    store: {
      kind: 'redis',
      url: { env: REDIS_ENV },
      keyPrefix: 'purge-test:',
      connectTimeout: 500,
    },
    secrets: { keys: { file: keysFile }, active: 'k1' },
    servers,
    policies: policy,
    // The purge's audit line goes here, not among what it prints (purge-audit tests read it).
    log: { audit: join(dir, 'audit.log') },
    ...change,
  })
  /** The purge lines of the audit log so far (the gateway's own lines left out). */
  const auditLines = () =>
    (existsSync(join(dir, 'audit.log')) ? readFileSync(join(dir, 'audit.log'), 'utf8') : '')
      .split('\n')
      .filter((l) => l.includes('"method":"secrets/purge"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  let configs = 0
  const configFile = (change: Record<string, unknown> = {}) =>
    file(`gateway-${++configs}.yaml`, JSON.stringify(configOf(change)))

  let redis: RedisServer
  let gateway: Gateway
  let store: Store
  let secrets: UserSecrets
  let insecure: SecretOwner
  let gatewayYaml: string
  const purge = (args: string[]) => runCli(['secrets', 'purge', ...args])
  /** Purging alice with the gateway's config changed by `change`. */
  const aliceWith = (change: Record<string, unknown>) => [
    '--subject',
    'alice',
    '--issuer',
    ISS,
    '--config',
    configFile(change),
  ]

  before(async () => {
    redis = await startRedis()
    process.env[REDIS_ENV] = redis.url
    const port = await freePort()
    gateway = await startGateway(
      validateConfig(
        { ...configOf(), listen: { host: '127.0.0.1', port } },
        { file: 'test', baseDir: dir },
      ),
      { log: pino({ level: 'silent' }), insecureNoAuth: true },
    )
    const me = (await (await request(`${gateway.url}/whoami`)).body.json()) as SecretOwner
    insecure = { iss: me.iss, sub: me.sub }
    store = await createRedisStore({
      url: redis.url,
      keyPrefix: 'purge-test:',
      log: pino({ level: 'silent' }),
    })
    secrets = new UserSecrets({
      store,
      sealer: createSealer({ k1: Buffer.from(key, 'base64url') }, 'k1'),
    })
    gatewayYaml = configFile()
  })
  after(async () => {
    await gateway?.close()
    await store?.close()
    await redis?.close()
    delete process.env[REDIS_ENV]
  })
  beforeEach(async () => {
    await secrets.purge(alice)
    await secrets.set(alice, 'github_token', 'ghp_alice-secret-value')
    await secrets.set(alice, 'jira', 'jira-alice-secret-value')
  })
  /** Alice's secrets are all still there. */
  const aliceIntact = async () => {
    assert.equal(await secrets.value(alice, 'github_token'), 'ghp_alice-secret-value')
    assert.equal(await secrets.value(alice, 'jira'), 'jira-alice-secret-value')
  }

  it('purges every secret of the user, prints how many and their names, never a value', async () => {
    const r = await purge(['--subject', 'alice', '--issuer', ISS, '--config', gatewayYaml])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `purged 2 secrets of subject alice of ${ISS}: github_token, jira\n`)
    assert.equal(r.stderr, '')
    assert.deepEqual(await secrets.list(alice), [])
    assert.equal(await secrets.value(alice, 'github_token'), undefined)
    const again = await purge(['--subject', 'alice', '--issuer', ISS, '--config', gatewayYaml])
    assert.equal(again.code, 0)
    assert.equal(again.stdout, `no secrets held for subject alice of ${ISS}\n`)
  })

  it("the running gateway starts no process with a purged secret; the process that had it ends at the user's next request", async () => {
    await gateway.secrets!.set(insecure, 'vault_token', 'vault-purged-value')
    let id = 1
    const call = async () => {
      const o = modernToolCall('', 'credential', { name: 'VAULT_TOKEN' }, { id: id++ })
      // --insecure-no-auth: no token at all.
      delete (o.headers as Record<string, string>).authorization
      const res = await request(`${gateway.url}/mcp/vault`, o)
      return (await res.body.json()) as {
        result?: { content: { text: string }[]; isError?: boolean }
        error?: { code: number }
      }
    }
    const ran = JSON.parse((await call()).result!.content[0]!.text) as {
      pid: number
      sha256: string
    }
    assert.equal(ran.sha256, sha('vault-purged-value'))
    const r = await purge([
      '--subject',
      insecure.sub,
      '--issuer',
      insecure.iss,
      '--config',
      gatewayYaml,
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      r.stdout,
      /^purged 1 secret of subject anonymous of urn:mcp-edge:insecure-no-auth: vault_token\n$/,
    )
    const after = await call()
    const text = JSON.stringify(after)
    assert.ok(text.includes('/account?server=vault&secret=vault_token'), text)
    assert.ok(!text.includes(sha('vault-purged-value')), text)
    await waitFor(() => gone(ran.pid), 'the process started with the purged value ended')
    await aliceIntact()
  })

  for (const sub of NOT_ALICE)
    it(`subject ${JSON.stringify(sub)}: exit 0, nothing held, alice's left as they were`, async () => {
      const r = await purge(['--subject', sub, '--issuer', ISS, '--config', gatewayYaml])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^no secrets held for subject /)
      // Printed so the operator sees what was asked (spaces, invisible characters quoted).
      if (/[\s\u200b]/.test(sub))
        assert.ok(r.stdout.includes(JSON.stringify(sub).replace('\u200b', '\\u200b')), r.stdout)
      await aliceIntact()
    })

  for (const [name, iss] of [
    ['a trailing slash', `${ISS}/`],
    ['another case', 'https://IDP.example'],
    ['another issuer', 'https://other.example'],
  ] as const)
    it(`issuer with ${name}: nothing held, alice's left`, async () => {
      const r = await purge(['--subject', 'alice', '--issuer', iss, '--config', gatewayYaml])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^no secrets held/)
      await aliceIntact()
    })

  it("the issuer defaults to auth.issuer (the broker's publicUrl with the broker)", async () => {
    const r = await purge(['--subject', 'alice', '--config', configFile({ auth: { issuer: ISS } })])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^purged 2 secrets of subject alice of https:\/\/idp\.example:/)
  })

  it('with the broker: its account and upstream tokens of the user go too (their next refresh is refused)', async () => {
    const broker = { iss: 'https://mcp.example.com', sub: 'alice' }
    await secrets.set(broker, 'github_token', 'broker-user-value')
    await store.set('broker:account:alice', '{"sub":"alice","roles":[],"checkedAt":1}')
    await store.set('broker:upstream:alice', 'sealed-upstream-tokens')
    await store.set('broker:upstream:alice2', 'someone-else')
    const r = await purge([
      '--subject',
      'alice',
      '--config',
      configFile({
        publicUrl: 'https://mcp.example.com',
        auth: {
          broker: {
            upstream: {
              issuer: 'https://upstream.example',
              clientId: 'gw',
              clientSecret: { env: 'NOT_READ' },
            },
          },
        },
      }),
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(
      r.stdout,
      'purged 1 secret of subject alice of https://mcp.example.com: github_token; and the account and upstream tokens the broker kept for them; signed out everywhere\n',
    )
    const line = auditLines().at(-1)!
    assert.deepEqual(
      [line.sub, line.iss, line.decision, line.names, line.signedOut, line.outcome],
      [
        'alice',
        'https://mcp.example.com',
        'allow',
        ['github_token'],
        true,
        'purged 1 secret; and the account and upstream tokens the broker kept for them; signed out everywhere',
      ],
    )
    assert.deepEqual(
      await store.getMany([
        'broker:account:alice',
        'broker:upstream:alice',
        'broker:upstream:alice2',
      ]),
      [undefined, undefined, 'someone-else'],
    )
    await aliceIntact()
  })

  const refusals: {
    name: string
    args: () => string[]
    code: number
    stderr: RegExp
    /** Once the config is read, the refusal's audit line: its subject and outcome. */
    audited?: { sub: string; outcome: RegExp }
  }[] = [
    {
      name: 'sealing keys with other bytes than the gateway’s',
      args: () => aliceWith({ secrets: { keys: { file: wrongKeysFile }, active: 'k1' } }),
      code: 1,
      stderr:
        /the gateway seals with key "k1", which these secrets\.keys do not hold \(or hold with other bytes\)/,
      audited: { sub: 'alice', outcome: /^refused: the gateway seals with key "k1"/ },
    },
    {
      name: 'sealing keys under another id',
      args: () => aliceWith({ secrets: { keys: { file: otherKidFile }, active: 'k9' } }),
      code: 1,
      stderr: /the gateway seals with key "k1", which these secrets\.keys do not hold/,
      audited: { sub: 'alice', outcome: /^refused: the gateway seals with key "k1"/ },
    },
    {
      name: 'no sealing keys in the config',
      args: () => aliceWith({ secrets: undefined }),
      code: 2,
      stderr: /secrets: required with a shared store/,
      audited: {
        sub: 'alice',
        outcome: /^refused: invalid configuration:\n.*secrets: required with a shared store/,
      },
    },
    {
      name: 'a key file that cannot be read',
      args: () =>
        aliceWith({ secrets: { keys: { file: join(dir, 'absent.json') }, active: 'k1' } }),
      code: 2,
      stderr: /secrets\.keys.*cannot read .*absent\.json: ENOENT/,
      audited: {
        sub: 'alice',
        outcome: /^refused: invalid configuration:\n.*cannot read .*absent\.json: ENOENT/,
      },
    },
    {
      name: 'a store that is down',
      args: () =>
        aliceWith({
          store: { kind: 'redis', url: { env: 'MCP_EDGE_TEST_PURGE_DOWN' }, connectTimeout: 300 },
        }),
      code: 1,
      stderr: /^mcp-edge secrets purge: cannot reach Redis at 127\.0\.0\.1:\d+ within 300 ms/,
      audited: { sub: 'alice', outcome: /^refused: cannot reach Redis at 127\.0\.0\.1:\d+/ },
    },
    {
      name: 'the in-memory store',
      args: () => aliceWith({ store: { kind: 'memory' } }),
      code: 1,
      stderr: /store\.kind is memory: users' secrets live in the running gateway's memory/,
      audited: { sub: 'alice', outcome: /^refused: store\.kind is memory: / },
    },
    {
      name: 'no --subject',
      args: () => ['--issuer', ISS, '--config', gatewayYaml],
      code: 2,
      stderr: /--subject is required\nusage: mcp-edge secrets purge/,
      audited: { sub: '', outcome: /^refused: --subject is required$/ },
    },
    {
      name: 'an empty --subject',
      args: () => ['--subject', '', '--issuer', ISS, '--config', gatewayYaml],
      code: 2,
      stderr: /--subject is required/,
      audited: { sub: '', outcome: /^refused: --subject is required$/ },
    },
    {
      name: 'a subject with a control character (a pasted escape sequence)',
      args: () => ['--subject', 'alice\u001b[2K', '--issuer', ISS, '--config', gatewayYaml],
      code: 2,
      stderr: /--subject holds a control character/,
      audited: { sub: 'alice\u001b[2K', outcome: /^refused: --subject holds a control character$/ },
    },
    {
      name: 'no --config',
      args: () => ['--subject', 'alice', '--issuer', ISS],
      code: 2,
      stderr: /--config is required: the gateway's own/,
    },
    {
      name: 'no issuer in the config nor on the command line',
      args: () => ['--subject', 'alice', '--config', gatewayYaml],
      code: 2,
      stderr: /--issuer is required: the config names no issuer/,
      audited: { sub: 'alice', outcome: /^refused: --issuer is required/ },
    },
    {
      name: 'a secret name (purge takes none)',
      args: () => ['github_token', '--subject', 'alice', '--issuer', ISS, '--config', gatewayYaml],
      code: 2,
      stderr: /purge takes no NAME/,
    },
  ]
  for (const r of refusals)
    it(`${r.name}: exit ${r.code}, nothing deleted`, async () => {
      process.env.MCP_EDGE_TEST_PURGE_DOWN = await closedPortUrl().then((u) =>
        u.replace(/^http/, 'redis'),
      )
      const from = auditLines().length
      const res = await purge(r.args())
      assert.equal(res.code, r.code, `${res.stdout}${res.stderr}`)
      assert.match(res.stderr, r.stderr)
      assert.equal(res.stdout, '')
      assert.ok(!res.stderr.includes('secret-value'))
      await aliceIntact()
      // Refused after the config was read: one line says so, nothing deleted; before: none.
      const lines = auditLines().slice(from)
      if (r.audited === undefined) return assert.deepEqual(lines, [])
      assert.equal(lines.length, 1, JSON.stringify(lines))
      const line = lines[0]!
      assert.match(String(line.outcome), r.audited.outcome)
      assert.deepEqual(
        [line.method, line.sub, line.decision, line.names, line.signedOut],
        ['secrets/purge', r.audited.sub, 'deny', [], false],
      )
    })

  it('a store no gateway of this version marked: a note that other keys find nothing, then the purge', async () => {
    const fresh = configFile({
      store: { kind: 'redis', url: { env: REDIS_ENV }, keyPrefix: 'purge-fresh:' },
    })
    const r = await purge(['--subject', 'alice', '--issuer', ISS, '--config', fresh])
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      r.stderr,
      /note: no gateway of this version has marked its sealing keys in this store/,
    )
    assert.equal(r.stdout, `no secrets held for subject alice of ${ISS}\n`)
  })
})
