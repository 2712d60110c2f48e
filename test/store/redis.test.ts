// The Redis store when Redis is not there: at start-up, gone mid-way, hung; and what it logs.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient } from '@redis/client'
import { pino } from 'pino'
import { StoreError } from '../../gateway/store/errors.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import type { Store } from '../../gateway/store/store.js'
import { freePort } from '../helpers/ports.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { rejectsWith, SILENT } from './harness.js'
import { waitFor } from '../helpers/wait-for.js'

const PASSWORD = 'hunter2-not-in-any-log'

/** A logger whose lines the test reads. */
function capture() {
  const lines: string[] = []
  return {
    lines,
    log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }),
  }
}

/** Every operation of the interface, with arguments that would succeed on a healthy Redis. */
const OPERATIONS: { name: string; call(s: Store): Promise<unknown> }[] = [
  { name: 'get', call: (s) => s.get('k') },
  { name: 'getMany', call: (s) => s.getMany(['k', 'l']) },
  { name: 'set', call: (s) => s.set('k', 'v') },
  { name: 'set ifAbsent with ttl', call: (s) => s.set('k', 'v', { ttlMs: 1000, ifAbsent: true }) },
  { name: 'take', call: (s) => s.take('k') },
  { name: 'del', call: (s) => s.del(['k']) },
  { name: 'delIf (Lua)', call: (s) => s.delIf('k', 'v') },
  { name: 'expire', call: (s) => s.expire('k', 1000) },
  { name: 'sadd', call: (s) => s.sadd('set', 'm') },
  { name: 'sadd with ttl (MULTI)', call: (s) => s.sadd('set', 'm', 1000) },
  { name: 'srem', call: (s) => s.srem('set', 'm') },
  { name: 'smembers', call: (s) => s.smembers('set') },
  { name: 'scard', call: (s) => s.scard('set') },
  { name: 'incr (Lua)', call: (s) => s.incr('n', 1000) },
]

async function everyOperation(store: Store, expect: 'works' | 'unavailable'): Promise<void> {
  for (const op of OPERATIONS) {
    if (expect === 'works') await op.call(store)
    else await rejectsWith(op.call(store), 'unavailable', op.name)
  }
}

describe('Redis store: start-up', { skip: NO_REDIS }, () => {
  it('fails with unavailable, naming host and port but not the password, when nothing answers', async () => {
    const port = await freePort()
    const err = await createRedisStore({
      url: `redis://:${PASSWORD}@127.0.0.1:${port}`,
      keyPrefix: 'x:',
      log: SILENT,
      connectTimeoutMs: 300,
    }).then(
      () => undefined,
      (e: unknown) => e,
    )
    assert.ok(err instanceof StoreError)
    assert.equal(err.code, 'unavailable')
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
    assert.ok(!err.message.includes(PASSWORD))
  })

  const urls = [
    { name: 'not a URL', url: 'localhost:6379' },
    { name: 'another scheme', url: `http://:${PASSWORD}@127.0.0.1:6379` },
    {
      name: 'a database that is not a number',
      url: `redis://:${PASSWORD}@127.0.0.1:6379/${PASSWORD}`,
    },
  ]
  for (const c of urls) {
    it(`refuses a URL that is ${c.name}, without echoing it`, async () => {
      const err = await createRedisStore({ url: c.url, keyPrefix: 'x:', log: SILENT }).then(
        () => undefined,
        (e: unknown) => e,
      )
      assert.ok(err instanceof StoreError)
      assert.equal(err.code, 'invalid_argument')
      assert.ok(!err.message.includes(PASSWORD) && !err.message.includes('localhost'))
    })
  }
})

describe('Redis store: outages', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  before(async () => {
    redis = await startRedis({ password: PASSWORD })
  })
  after(() => redis?.close())

  it('every key it writes is under its prefix', async () => {
    const store = await createRedisStore({ url: redis.url, keyPrefix: 'mine:', log: SILENT })
    const raw = createClient({ url: redis.url })
    try {
      await everyOperation(store, 'works')
      await store.set('k', 'v')
      await store.sadd('set', 'm', 60_000)
      await store.incr('n', 60_000)
      await raw.connect()
      const keys = await raw.keys('*')
      assert.deepEqual([...keys].sort(), ['mine:k', 'mine:n', 'mine:set'])
    } finally {
      await store.close()
      raw.destroy()
    }
  })

  it('Redis stopped: every operation rejects unavailable and ping is false; started again: recovers', async () => {
    const { lines, log } = capture()
    const store = await createRedisStore({ url: redis.url, keyPrefix: 'outage:', log })
    try {
      await store.set('kept?', 'v')
      await redis.stop()
      await everyOperation(store, 'unavailable')
      assert.equal(await store.ping(), false)
      await rejectsWith(
        store.set('k', 'v', { ttlMs: 0 }),
        'invalid_argument',
        "a caller's bug is reported as such, even now",
      )
      await redis.start()
      // The client reconnects on its own (its backoff at most 2 s): wait for it.
      await waitFor(() => store.ping(), 'the client reconnected')
      await everyOperation(store, 'works')
      assert.equal(await store.get('kept?'), undefined, 'the test server saves nothing')
      assert.ok(
        lines.some((l) => l.includes('connection lost')),
        'the outage is logged',
      )
      assert.ok(
        lines.some((l) => l.includes('connection ready')),
        'the recovery is logged',
      )
      assert.ok(
        lines.every((l) => !l.includes(PASSWORD)),
        'no log line holds the password',
      )
    } finally {
      await store.close()
    }
  })

  it('Redis hung (SIGSTOP): operations reject unavailable after the command timeout; resumed: recovers', async () => {
    const store = await createRedisStore({
      url: redis.url,
      keyPrefix: 'hung:',
      log: SILENT,
      commandTimeoutMs: 200,
    })
    try {
      redis.pause()
      // Without the bound these would wait forever: the connection stays open, nothing answers.
      await rejectsWith(store.set('k', 'v'), 'unavailable')
      await rejectsWith(store.incr('n', 1000), 'unavailable')
      await rejectsWith(store.sadd('set', 'm', 1000), 'unavailable')
      assert.equal(await store.ping(), false)
      redis.resume()
      await waitFor(() => store.ping(), 'the store answers again')
      assert.equal(await store.set('k', 'v2'), true)
      assert.equal(await store.get('k'), 'v2')
    } finally {
      redis.resume()
      await store.close()
    }
  })

  it('close returns while Redis is hung (the connection is cut after the command timeout)', async () => {
    const store = await createRedisStore({
      url: redis.url,
      keyPrefix: 'close:',
      log: SILENT,
      commandTimeoutMs: 200,
    })
    redis.pause()
    try {
      await rejectsWith(store.get('k'), 'unavailable')
      await store.close()
      await rejectsWith(store.get('k'), 'unavailable')
    } finally {
      redis.resume()
    }
  })
})
