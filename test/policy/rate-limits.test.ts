// Rate-limit rules in policy files: what loads (durations, per, patterns), what is refused with
// file and line, and which requests a rule counts.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { loadPolicy } from '../../gateway/policy/load.js'
import {
  compileRateRule,
  rateLimitSchema,
  ruleCounts,
  type RateRule,
} from '../../gateway/policy/rate-limits.js'
import { pino } from 'pino'
import { RateLimits } from '../../gateway/http/rate-limit.js'
import { createMetrics, type Gauges } from '../../gateway/observability/metrics.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { policyDir } from './fixtures.js'

const NO_GAUGES: Gauges = {
  sessions: () => 0,
  endpointSessions: () => 0,
  lanes: () => 0,
  waitingRounds: () => 0,
  laneWaiters: () => new Map(),
  listenStreams: () => 0,
  queuedBytes: () => 0,
  queuedEvents: () => 0,
  endpointUserLists: () => 0,
}

const tmp = policyDir()
const SRC = { file: '/p/limits.yaml', line: 7 }
const base = { limit: 10, interval: '1m' }

function rule(entry: Record<string, unknown>): RateRule {
  return compileRateRule(rateLimitSchema.parse({ ...base, ...entry }), SRC)
}

describe('rateLimits: durations', () => {
  for (const [value, seconds] of [
    ['1s', 1],
    ['30s', 30],
    ['1m', 60],
    ['2h', 7200],
    ['1d', 86_400],
    ['31d', 2_678_400],
    [45, 45],
    [1, 1],
  ] as const)
    test(`${JSON.stringify(value)} → ${seconds} s`, () =>
      assert.equal(rule({ interval: value }).intervalSec, seconds))

  for (const value of [
    '0s',
    '1.5m',
    ' 1m',
    '1m ',
    '1M',
    '1w',
    '-1s',
    '1',
    'm',
    '',
    '01m',
    '32d',
    '1m\n',
    '１m',
    0,
    -1,
    1.5,
    2_678_401,
    null,
    true,
    [],
    {},
  ])
    test(`${JSON.stringify(value)} is refused`, () =>
      assert.equal(rateLimitSchema.safeParse({ ...base, interval: value }).success, false))
})

describe('rateLimits: shape', () => {
  test('defaults: per subject, every server and request, no burst, a JSON-RPC error', () => {
    const r = rule({})
    assert.deepEqual(r.per, ['subject'])
    assert.equal(r.servers, undefined)
    assert.equal(r.tools, undefined)
    assert.equal(r.methods, undefined)
    assert.equal(r.burst, 0)
    assert.equal(r.burstIntervalSec, 600)
    assert.equal(r.refuseAs, 'error')
    assert.equal(r.id, 'limits.yaml:7')
  })
  test('per as one key or a list; duplicates fold', () => {
    assert.deepEqual(rule({ per: 'tool' }).per, ['tool'])
    assert.deepEqual(rule({ per: ['subject', 'tool', 'subject'] }).per, ['subject', 'tool'])
  })
  test('tools alone count only tools/call', () => {
    assert.deepEqual([...rule({ tools: ['x'] }).methods!], ['tools/call'])
  })
  test('the counters key changes with every number, not with other fields', () => {
    const a = rule({ name: 'n' })
    assert.equal(a.key, rule({ name: 'n', servers: ['x'] }).key)
    for (const change of [
      { limit: 11 },
      { interval: '2m' },
      { burst: 1 },
      { burst: 1, burstInterval: '1h' },
    ])
      assert.notEqual(a.key, rule({ name: 'n', ...change }).key, JSON.stringify(change))
  })
  for (const [what, entry] of [
    ['limit 0', { limit: 0 }],
    ['limit 1.5', { limit: 1.5 }],
    ['limit as text', { limit: '10' }],
    ['no limit', { limit: undefined }],
    ['negative burst', { burst: -1 }],
    ['unknown per', { per: 'user' }],
    ['empty per', { per: [] }],
    ['empty servers', { servers: [] }],
    ['empty pattern', { tools: [''] }],
    ['unknown key', { limits: 5 }],
    ['name with a space', { name: 'a b' }],
    ['name with a newline', { name: 'a\nb' }],
    ['name too long', { name: 'x'.repeat(65) }],
    ['tools with methods lacking tools/call', { tools: ['x'], methods: ['prompts/get'] }],
    ['refuseAs unknown', { refuseAs: 'http' }],
    ['when not an object', { when: 'admins' }],
    ['when with an empty list', { when: { roles: [] } }],
  ] as const)
    test(`${what} is refused`, () =>
      assert.equal(rateLimitSchema.safeParse({ ...base, ...entry }).success, false))
})

describe('rateLimits: which requests a rule counts', () => {
  const r = rule({ servers: ['files', 'db-*'], tools: ['read_*', 'search'] })
  for (const [server, method, name, counts] of [
    ['files', 'tools/call', 'read_file', true],
    ['db-main', 'tools/call', 'search', true],
    ['files', 'tools/call', 'write_file', false],
    ['files', 'tools/call', 'READ_FILE', false],
    ['files', 'tools/call', undefined, false],
    ['files', 'tools/list', undefined, false],
    ['files', 'prompts/get', 'read_x', false],
    ['other', 'tools/call', 'read_file', false],
    ['Files', 'tools/call', 'read_file', false],
    ['files ', 'tools/call', 'read_file', false],
  ] as const)
    test(`${server} ${method} ${String(name)} → ${counts}`, () =>
      assert.equal(ruleCounts(r, { server, method, name }), counts))

  test('methods alone: any name, only those methods', () => {
    const m = rule({ methods: ['initialize', 'resources/read'] })
    assert.equal(ruleCounts(m, { server: 's', method: 'initialize', name: undefined }), true)
    assert.equal(ruleCounts(m, { server: 's', method: 'resources/read', name: 'file:///x' }), true)
    assert.equal(ruleCounts(m, { server: 's', method: 'tools/call', name: 'x' }), false)
  })
  test('no filters: every request of every server', () => {
    const all = rule({})
    for (const method of ['initialize', 'tools/call', 'ping', 'resources/list'])
      assert.equal(ruleCounts(all, { server: 'any', method, name: undefined }), true)
  })
})

describe('rateLimits in policy files', () => {
  test('load in file order, with their source line', async () => {
    const file = await tmp.file(
      'ok.yaml',
      'servers: {}\nrateLimits:\n  - name: a\n    limit: 1\n    interval: 1s\n  - limit: 2\n    interval: 1m\n',
    )
    const p = loadPolicy(file)
    assert.deepEqual(
      p.rateLimits.map((r) => [r.id, r.source.line]),
      [
        ['a', 3],
        ['ok.yaml:6', 6],
      ],
    )
  })
  test('a bad entry fails the load with file and line', async () => {
    const file = await tmp.file(
      'bad.yaml',
      'rateLimits:\n  - limit: 1\n    interval: 1s\n  - limit: 2\n    interval: 2w\n',
    )
    assert.throws(
      () => loadPolicy(file),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        const p = err.problems[0]!
        assert.equal(p.file, file)
        assert.equal(p.line, 5)
        assert.match(p.message, /duration/)
        return true
      },
    )
  })
  test('one name in two files is refused naming both', async () => {
    await tmp.file('dup/a.yaml', 'rateLimits:\n  - name: same\n    limit: 1\n    interval: 1s\n')
    await tmp.file('dup/b.yaml', 'rateLimits:\n  - name: same\n    limit: 2\n    interval: 1s\n')
    assert.throws(
      () => loadPolicy(`${tmp.dir}/dup`),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.match(err.problems[0]!.message, /rate limit same is also defined in .*a\.yaml:2/)
        return true
      },
    )
  })
  test('rateLimits that is not a list is refused', async () => {
    for (const text of ['rateLimits: {}\n', 'rateLimits: 5\n', 'rateLimits: "x"\n']) {
      const file = await tmp.file('shape.yaml', text)
      assert.throws(() => loadPolicy(file), ConfigError, text)
    }
  })
})

describe('RateLimits at run time (the memory store)', () => {
  const principal = (sub: string) =>
    ({
      iss: 'https://idp.test',
      sub,
      clientId: 'app',
      scopes: new Set<string>(),
      hasScopeClaim: false,
      roles: new Set(['mcp-user']),
      exp: undefined,
      claims: {},
    }) as const
  const limits = async (text: string) => {
    const file = await tmp.file(`run-${Math.random().toString(36).slice(2)}.yaml`, text)
    const policy = loadPolicy(file)
    const rates = new RateLimits({
      store: async () => createMemoryStore({}),
      onStoreError: 'closed',
      timeoutMs: 1000,
      connectTimeoutMs: 1000,
      metrics: createMetrics(NO_GAUGES),
      log: pino({ level: 'silent' }),
    })
    return (sub: string, name = 't') =>
      rates.check(policy, principal(sub), { server: 's', method: 'tools/call', name })
  }

  test('limit, then burst, then refused with the time to the window’s end', async () => {
    const check = await limits(
      'rateLimits:\n  - name: b\n    limit: 2\n    interval: 1h\n    burst: 2\n    burstInterval: 1d\n',
    )
    for (let i = 0; i < 4; i++) assert.equal(await check('u'), undefined, `call ${i + 1}`)
    const refused = await check('u')
    assert.ok(refused)
    assert.equal(refused.rule.id, 'b')
    assert.equal(refused.why, 'limit')
    assert.ok(refused.retryAfter >= 1 && refused.retryAfter <= 3600, String(refused.retryAfter))
    assert.equal(await check('v'), undefined, 'another subject has its own count')
  })

  test('every matching rule counts; the first out of points refuses', async () => {
    const check = await limits(
      'rateLimits:\n  - name: wide\n    limit: 3\n    interval: 1h\n  - name: narrow\n    tools: [t]\n    limit: 1\n    interval: 1h\n',
    )
    assert.equal(await check('u', 't'), undefined)
    assert.equal((await check('u', 't'))?.rule.id, 'narrow')
    // The refused call was counted by `wide` too: 2 of 3 used, one left.
    assert.equal(await check('u', 'other'), undefined)
    assert.equal((await check('u', 'other'))?.rule.id, 'wide')
  })

  test("the store's first connection has the connect time, later counts the command time", async () => {
    const file = await tmp.file('connect.yaml', 'rateLimits:\n  - limit: 5\n    interval: 1h\n')
    const policy = loadPolicy(file)
    // The store connects in 50 ms: more than a command's 1 ms, well within a connection's 60 s.
    const slowConnect = () =>
      new Promise<ReturnType<typeof createMemoryStore>>((resolve) =>
        setTimeout(() => resolve(createMemoryStore({})), 50),
      )
    const rates = (connectTimeoutMs: number) =>
      new RateLimits({
        store: slowConnect,
        onStoreError: 'closed',
        timeoutMs: 1,
        connectTimeoutMs,
        metrics: createMetrics(NO_GAUGES),
        log: pino({ level: 'silent' }),
      })
    const call = { server: 's', method: 'tools/call', name: 't' }
    const patient = rates(60_000)
    assert.equal(await patient.check(policy, principal('u'), call), undefined)
    assert.equal(await patient.check(policy, principal('u'), call), undefined)
    // A connection held to the command's time would have been refused as the store being away.
    const impatient = rates(1)
    assert.equal((await impatient.check(policy, principal('u'), call))?.why, 'store')
    // Once a connection has failed, the next waits a command's time only (1 ms here, not 60 s):
    // the store refuses the first connection, then is back but slow to connect (50 ms).
    let tries = 0
    const refusedOnce = new RateLimits({
      store: () => (tries++ === 0 ? Promise.reject(new Error('ECONNREFUSED')) : slowConnect()),
      onStoreError: 'closed',
      timeoutMs: 1,
      connectTimeoutMs: 60_000,
      metrics: createMetrics(NO_GAUGES),
      log: pino({ level: 'silent' }),
    })
    assert.equal((await refusedOnce.check(policy, principal('u'), call))?.why, 'store')
    assert.equal((await refusedOnce.check(policy, principal('u'), call))?.why, 'store')
    assert.equal(tries, 2)
  })

  test('hostile subjects share nothing: keys are hashed per part', async () => {
    const check = await limits(
      'rateLimits:\n  - limit: 1\n    interval: 1h\n    per: [subject, tool]\n',
    )
    // Names that would collide if parts were joined with a separator.
    assert.equal(await check('a', 'b/c'), undefined)
    assert.equal(await check('a/b', 'c'), undefined)
    assert.equal(await check('a\u0000', 'b'), undefined)
    assert.equal(await check('a', '\u0000b'), undefined)
    assert.equal((await check('a', 'b/c'))?.why, 'limit')
  })
})
