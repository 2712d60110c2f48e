// Stop 52: an outsider's attack on users' secrets expiring unused, `mcp-edge secrets purge`
// and its sealing-key check (a real redis-server, the built CLI, the gateway's own config and
// key file, real gateways), and on stop 51's legacy shape check, taskless and span clipping.
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
// What held: sets, deletes, uses and a purge interleaved on two replicas leave every value at
// rest listed and no one else's touched; an expired value frees its user's place under the cap
// only; a store that takes connections and does not answer, or a user's lock held by another
// replica's change: exit 1, nothing printed as done, nothing deleted;
// `validate` refuses every bad `secretUnusedTtl`; legacy POST /messages still takes every
// answer (roots, sampling, elicitation, an error) and notification the v1 SDK client sends;
// a related task spelled any way (duplicate keys, an escaped slash, `__proto__`) never reaches
// a shared process under its name; span values are clipped with no lone surrogate left.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { UserSecrets, type SecretOwner } from '../../gateway/credentials/secrets.js'
import { type Gateway, startGateway } from '../../gateway/gateway.js'
import {
  clip,
  describe as describeMessage,
  MAX_ATTRIBUTE,
} from '../../gateway/observability/otel-attributes.js'
import { markKeys } from '../../gateway/store/key-check.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js'
import { runCli } from '../helpers/cli-run.js'
import { NO_REDIS, redisStoreAt, startRedis, type RedisServer } from '../helpers/redis.js'
import { modernRequest } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { queueServer, recorded } from '../helpers/tasks-stack.js'
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
    // The purge's audit line goes here, not among what it prints (purge-audit tests read it).
    log: { audit: join(dir, 'audit.log') },
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
  store = await redisStoreAt(redis.url, PREFIX)
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

describe('held: two replicas on one Redis, expiry and the cap', { skip: NO_REDIS }, () => {
  const sealer = createSealer({ k1 }, 'k1')
  let other: Store
  before(async () => {
    other = await createRedisStore({
      url: redis.url,
      keyPrefix: PREFIX,
      log: pino({ level: 'silent' }),
    })
  })
  after(() => other?.close())

  it("sets, deletes, uses and a purge interleaved on two replicas leave no value unlisted and touch no one else's", async () => {
    const a = new UserSecrets({ store, sealer, unusedTtl: MINUTE })
    const b = new UserSecrets({ store: other, sealer, unusedTtl: MINUTE })
    await a.set(bob, 'tok', 'bob-secret-value')
    const names = Array.from({ length: 8 }, (_, i) => `n${i}`)
    await Promise.all([
      ...names.map((n, i) => (i % 2 ? a : b).set(alice, n, `v-${n}`)),
      ...names.map((n, i) => (i % 2 ? b : a).remove(alice, n)),
      ...names.map((n, i) => (i % 2 ? a : b).value(alice, n)),
      b.purge(alice),
      ...names.map((n, i) => (i % 2 ? b : a).set(alice, n, `w-${n}`)),
    ])
    const user = a.userKey(alice)
    const atRest = (await store.keysWithPrefix(`secrets:${user}:`)).map((k) => k.split(':')[2]!)
    const listed = (await a.list(alice)).map((s) => s.name)
    assert.deepEqual(
      listed.sort(),
      [...atRest].sort(),
      'every value at rest is listed, and only those',
    )
    for (const n of listed) assert.match((await b.value(alice, n))!, /^[vw]-n\d$/)
    assert.equal(await b.value(bob, 'tok'), 'bob-secret-value')
    await a.purge(alice)
    await a.purge(bob)
    for (const u of [user, a.userKey(bob)])
      assert.deepEqual(await store.keysWithPrefix(`secrets:${u}`), [])
  })

  it("an expired value frees its place under secretsPerUser for its user only; another's list is not touched", async () => {
    const a = new UserSecrets({ store, sealer, unusedTtl: MINUTE, perUser: 2 })
    const b = new UserSecrets({ store: other, sealer, unusedTtl: MINUTE, perUser: 2 })
    await a.set(alice, 'one', 'v1')
    await b.set(alice, 'two', 'v2')
    await a.set(bob, 'one', 'b1')
    await a.set(bob, 'two', 'b2')
    await assert.rejects(b.set(alice, 'three', 'v3'), /at most 2 secrets per user/)
    const user = a.userKey(alice)
    await store.expire(`secrets:${user}:one`, 1)
    await waitFor(async () => (await store.get(`secrets:${user}:one`)) === undefined, 'expired')
    await b.set(alice, 'three', 'v3')
    assert.deepEqual(
      (await a.list(alice)).map((s) => s.name),
      ['three', 'two'],
    )
    // Bob is at his cap still: alice's expiry freed nothing of his.
    await assert.rejects(a.set(bob, 'three', 'b3'), /at most 2 secrets per user/)
    assert.deepEqual(
      (await b.list(bob)).map((s) => s.name),
      ['one', 'two'],
    )
    await a.purge(alice)
    await a.purge(bob)
  })
})

describe("held: secrets purge while a change of the user's secrets holds their lock", {
  skip: NO_REDIS,
}, () => {
  it('exit 1 with the message README quotes, nothing deleted, nothing printed as done', async () => {
    const { config } = configOf({ k1 })
    const path = file(
      'lock-wait.yaml',
      JSON.stringify({ ...config, store: { ...config.store, lockWait: 100 } }),
    )
    // The marks of a gateway with these keys alone (not the rotation case's).
    await store.del(await store.keysWithPrefix('secrets-keycheck'))
    await markKeys(store, createSealer({ k1 }, 'k1'))
    const secrets = new UserSecrets({ store, sealer: createSealer({ k1 }, 'k1') })
    await secrets.set(alice, 'tok', 'locked-secret-value')
    const unkeyed = createHash('sha256')
      .update(JSON.stringify([ISS, 'alice']))
      .digest('base64url')
    // Another replica's set of alice's, under way (its lock as withLock takes it).
    await store.set(`secrets-lock:${unkeyed}`, 'another-replica', { ttlMs: 60_000 })
    try {
      const r = await purge('alice', path)
      assert.equal(r.code, 1, r.stdout)
      assert.equal(r.stdout, '')
      assert.equal(r.stderr, 'mcp-edge secrets purge: the lock was still held after 100 ms\n')
      assert.equal(await secrets.value(alice, 'tok'), 'locked-secret-value')
    } finally {
      await store.del([`secrets-lock:${unkeyed}`])
    }
    const r = await purge('alice', path)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `purged 1 secret of subject alice of ${ISS}: tok\n`)
  })
})

describe('held: secrets purge against a store that takes connections and does not answer', {
  skip: NO_REDIS,
}, () => {
  it('exit 1 naming no value, nothing printed as done; once it answers again the purge completes', async () => {
    const paused = await startRedis()
    const env = 'MCP_EDGE_TEST_STOP52_PAUSED'
    process.env[env] = paused.url
    const { config } = configOf({ k1 })
    const path = file(
      'paused.yaml',
      JSON.stringify({
        ...config,
        store: { ...config.store, url: { env }, commandTimeout: 300 },
      }),
    )
    const s = await createRedisStore({
      url: paused.url,
      keyPrefix: PREFIX,
      log: pino({ level: 'silent' }),
    })
    try {
      const secrets = new UserSecrets({ store: s, sealer: createSealer({ k1 }, 'k1') })
      await secrets.set(alice, 'tok', 'paused-secret-value')
      paused.pause()
      const r = await purge('alice', path)
      paused.resume()
      assert.equal(r.code, 1, r.stdout)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, /^mcp-edge secrets purge: /)
      assert.ok(!r.stderr.includes('paused-secret-value'))
      const again = await purge('alice', path)
      assert.equal(again.code, 0, again.stderr)
      assert.equal(again.stdout, `purged 1 secret of subject alice of ${ISS}: tok\n`)
    } finally {
      paused.resume()
      await s.close()
      await paused.close()
      delete process.env[env]
    }
  })
})

describe("held: legacy HTTP+SSE (2024-11-05) after POST /messages's shape check: every answer and notification the v1 SDK client sends goes", () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({})
  })
  after(() => stack?.close())

  it('roots, sampling and elicitation answered, an error answer, notifications: each reaches the process', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const client = new Client(
      { name: 'stop52', version: '0' },
      { capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} } },
    )
    let rootsAsked = 0
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      if (++rootsAsked === 2) throw new McpError(-32001, 'roots refused by stop52')
      return { roots: [{ uri: 'file:///stop52', name: 'stop52 \ud83d\ude00' }], _meta: { n: 1 } }
    })
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'sampled 905201' },
      model: 'stop52',
    }))
    client.setRequestHandler(ElicitRequestSchema, async () => ({
      action: 'accept',
      content: { answer: '905202' },
    }))
    const transport = new SSEClientTransport(new URL(`${stack.url}/sse/fixture`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    })
    await client.connect(transport)
    try {
      const text = async (name: string, args: Record<string, unknown> = {}) =>
        JSON.stringify(await client.callTool({ name, arguments: args }))
      assert.match(await text('roots'), /file:\/\/\/stop52/)
      assert.match(await text('roots'), /roots refused by stop52/)
      assert.match(await text('sample', { prompt: 'p' }), /sampled 905201/)
      assert.match(await text('elicit', { message: 'm' }), /905202/)
      await client.sendRootsListChanged()
      // A cancelled notification for a request long answered, and a progress-tokened call.
      await client.notification({ method: 'notifications/cancelled', params: { requestId: 99 } })
      const progress: number[] = []
      const r = await client.callTool(
        { name: 'echo_args', arguments: { session: 52, i: 905203 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress) },
      )
      assert.match(JSON.stringify(r), /905203/)
      const seen = readFileSync(join(stack.dir, 'fixture-record.jsonl'), 'utf8')
      assert.match(seen, /notifications\/roots\/list_changed/)
    } finally {
      await client.close()
    }
  })
})

describe('held: span values clipped from what a client sends (otel-attributes clip, describe)', () => {
  const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
  const pair = '\ud83d\ude00'
  it('at every cut of a surrogate pair, and lone halves anywhere, nothing lone is left and nothing longer', () => {
    for (let at = MAX_ATTRIBUTE - 3; at <= MAX_ATTRIBUTE + 1; at++) {
      const v = `${'a'.repeat(at)}${pair}${pair}`
      const out = clip(v)
      assert.ok(out.length <= MAX_ATTRIBUTE, `${at}: ${out.length}`)
      assert.ok(!lone.test(out), `${at}: a lone surrogate`)
      assert.ok(out.startsWith('a'.repeat(Math.min(at, MAX_ATTRIBUTE))))
    }
    for (const v of [
      '\ud800',
      '\udc00',
      '\udc00\ud800',
      `x\ud83d`,
      `\ude00x`,
      `${pair}\ud83d${pair}`,
    ])
      assert.ok(!lone.test(clip(v)), JSON.stringify(v))
    assert.equal(clip(`${pair}\ud83d`), `${pair}\ufffd`)
    // A whole pair is kept as it is; a value of 10 million units is cut, not copied.
    assert.equal(clip(pair.repeat(128)), pair.repeat(128))
    const huge = clip('\ud800'.repeat(10_000_000))
    assert.equal(huge, '\ufffd'.repeat(MAX_ATTRIBUTE))
  })

  it('a span name never holds a lone surrogate, nor a target over 128 units', () => {
    for (const name of [
      `${'t'.repeat(127)}\ud83d`,
      `\udc00tool`,
      `${'t'.repeat(129)}`,
      `t${pair}`,
    ]) {
      const { name: span, attributes } = describeMessage({
        server: 'fixture',
        method: 'tools/call',
        params: { name },
      } as Parameters<typeof describeMessage>[0])
      assert.ok(!lone.test(span), JSON.stringify(span))
      assert.ok(!lone.test(String(attributes['gen_ai.tool.name'])))
      assert.ok(span.length <= 'tools/call '.length + 128, span)
    }
  })
})

describe("held: a related task where tasks are not offered, however the client spells it (shared process, the SDK's task message queue)", () => {
  const RELATED = 'io.modelcontextprotocol/related-task'
  let stack: Stack
  const q = queueServer({ mode: 'shared' })
  const record = q.record
  before(async () => {
    stack = await startStack({
      servers: { tasksq: q.server },
      policy: `${TEST_POLICY}  tasksq:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
    })
  })
  after(() => stack?.close())

  // [case, the body's `"_meta":{` replaced by]: each names a related task some way.
  const related = (id: string) => `"${RELATED}":{"taskId":"${id}"}`
  const CASES: [string, string][] = [
    ['a duplicate _meta, the first naming it', `"_meta":{${related('dup1')}},"_meta":{`],
    [
      'a duplicate _meta, the last naming it',
      `"_meta":{${related('dup2')},"x":1},"_meta":{${related('dup2b')},`,
    ],
    ['the key twice in one _meta', `"_meta":{${related('twice1')},${related('twice2')},`],
    [
      'the key with an escaped slash',
      `"_meta":{"io.modelcontextprotocol\\u002frelated-task":{"taskId":"esc"},`,
    ],
    [
      'the key in another case',
      `"_meta":{"IO.modelcontextprotocol/Related-Task":{"taskId":"case"},`,
    ],
    ['under __proto__', `"_meta":{"__proto__":{${related('proto')}},`],
    ['a copy in the arguments', `"_meta":{"x":{${related('nested')}},`],
  ]

  it('each is answered, not queued for a task, and the process never sees the related task under its name', async () => {
    const token = await stack.token('alice', { server: 'tasksq' })
    for (const [i, [what, meta]] of CASES.entries()) {
      const o = modernRequest(
        token,
        'tools/call',
        { name: 'plain', arguments: { bytes: 10 } },
        { id: 100 + i, name: 'plain' },
      )
      const body = o.body.replace('"_meta":{', meta)
      assert.notEqual(body, o.body)
      const before = recorded(record).length
      const res = await request(stack.local('tasksq'), { ...o, body })
      const text = await res.body.text()
      assert.equal(res.statusCode, 200, `${what}: ${text}`)
      assert.match(text, /"content"/, `${what}: answered, not queued for a task`)
      const seen = recorded(record).slice(before)
      assert.ok(
        seen.some((m) => m.method === 'tools/call'),
        `${what}: the process got the call`,
      )
      for (const m of seen) {
        const metaSeen = (m.params as { _meta?: object } | undefined)?._meta
        assert.ok(
          metaSeen === undefined || !Object.hasOwn(metaSeen, RELATED),
          `${what}: ${JSON.stringify(metaSeen)}`,
        )
      }
    }
  })
})

describe('held: credentials.secretUnusedTtl in mcp-edge validate', () => {
  for (const [value, refused] of [
    [-1, /credentials\.secretUnusedTtl: Too small/],
    ['90d', /credentials\.secretUnusedTtl: Invalid input: expected number, received string/],
    [59_999, /credentials\.secretUnusedTtl: at least 60000 \(a minute\), or 0 for never/],
    [60_000.5, /credentials\.secretUnusedTtl: Invalid input: expected int/],
    [315_360_000_001, /credentials\.secretUnusedTtl: Too big/],
    [null, /credentials\.secretUnusedTtl: Invalid input: expected number, received null/],
    [0, undefined],
    [60_000, undefined],
    [315_360_000_000, undefined],
  ] as const)
    it(`${JSON.stringify(value)}: ${refused ? 'exit 1, the path named' : 'exit 0'}`, async () => {
      const path = file(
        `validate-${String(value)}.yaml`,
        JSON.stringify({
          servers: { vault: { command: process.execPath, args: ['-e', ''] } },
          policies: policy,
          credentials: { secretUnusedTtl: value },
        }),
      )
      const r = await runCli(['validate', '--config', path])
      assert.equal(r.code, refused ? 1 : 0, `${r.stdout}${r.stderr}`)
      if (refused) assert.match(r.stderr, refused)
    })
})
