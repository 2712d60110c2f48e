// createStore: the configuration's store section to a running store, or a located config error.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import type { GatewayConfig } from '../../gateway/config/schema.js'
import { readSecret } from '../../gateway/config/secrets.js'
import { createStore } from '../../gateway/store/create.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { SILENT } from './harness.js'

const VAR = 'MCP_EDGE_TEST_REDIS_URL'
const PASSWORD = 'hunter2-not-in-messages'
/** readSecret over an environment holding only `url` (if any). */
const deps = (url?: string) => ({
  log: SILENT,
  readSecret: ((ref, path) =>
    readSecret(ref, path, url === undefined ? {} : { [VAR]: url })) as typeof readSecret,
})
/** A store section with the schema's defaults for everything `over` leaves out. */
const storeConfig = (over: Partial<GatewayConfig['store']>): GatewayConfig['store'] => ({
  ...validateConfig({ servers: { s: { command: 'x' } } }, { file: 'x', baseDir: '/' }).store,
  ...over,
})
const redisConfig = (keyPrefix = 'cfg:'): GatewayConfig['store'] =>
  storeConfig({ kind: 'redis', url: { env: VAR }, keyPrefix })

describe('createStore', () => {
  it('memory (the default) needs no URL', async () => {
    const store = await createStore(storeConfig({ kind: 'memory', keyPrefix: 'mcp-edge:' }), deps())
    assert.equal(await store.set('k', 'v'), true)
    assert.equal(await store.get('k'), 'v')
    await store.close()
  })

  const refused: { name: string; config: GatewayConfig['store']; url?: string; message: RegExp }[] =
    [
      {
        name: 'redis without a url (past the schema)',
        config: storeConfig({ kind: 'redis', keyPrefix: 'x:' }),
        message: /store\.url: required with kind: redis/,
      },
      {
        name: 'a url variable that is not set',
        config: redisConfig(),
        message: new RegExp(`store\\.url: environment variable ${VAR} is not set`),
      },
      {
        name: 'a url that is not a URL',
        config: redisConfig(),
        url: `${PASSWORD}@localhost`,
        message: /store\.url: not a URL/,
      },
      {
        name: 'an http:// url',
        config: redisConfig(),
        url: `http://:${PASSWORD}@127.0.0.1:6379`,
        message: /store\.url: not a redis:\/\/ or rediss:\/\/ URL/,
      },
      {
        name: 'a url without a host',
        config: redisConfig(),
        url: `redis:///0?password=${PASSWORD}`,
        message: /store\.url: not a redis:\/\/ or rediss:\/\/ URL/,
      },
    ]
  for (const c of refused) {
    it(`refuses ${c.name} as configuration, without echoing the value`, async () => {
      await assert.rejects(createStore(c.config, deps(c.url)), (err: unknown) => {
        assert.ok(err instanceof ConfigError)
        assert.match(err.message, c.message)
        assert.ok(!err.message.includes(PASSWORD))
        return true
      })
    })
  }
})

describe('createStore: Redis', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  before(async () => {
    redis = await startRedis({ password: PASSWORD })
  })
  after(() => redis?.close())

  it('connects to the URL read from the secret, under the configured prefix', async () => {
    const [a, b] = await Promise.all([
      createStore(redisConfig('a:'), deps(redis.url)),
      createStore(redisConfig('b:'), deps(redis.url)),
    ])
    try {
      assert.equal(await a.ping(), true)
      await a.set('k', 'in a')
      assert.equal(await b.get('k'), undefined)
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})
