import { createClient } from '@redis/client'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import type { Logger } from 'pino'
import {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_CONNECT_TIMEOUT_MS,
  DEFAULT_REDIS_RECONNECT_MAX_DELAY_MS,
} from '../config/schema.js'
import { checkTtl, StoreError } from './errors.js'
import { storeError } from './redis-errors.js'
import { redisBroadcast } from './redis-broadcast.js'
import type { Store } from './store.js'

// Compare-and-delete: releases a lock only while it still holds the releaser's token.
const DEL_IF = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`
// Compare-and-expire: renews a lock only while it still holds the renewer's token.
const EXPIRE_IF = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`
// A fixed window: the first increment (or a counter without a time to live) starts it.
const INCR_WINDOW = `local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

// An expiring set is a sorted set scored by each member's end (the server's clock, ms); the
// key itself ends with its last member. ZADD GT: a member already there keeps the later end.
const ADD_EXPIRING = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1`
const LIVE_MEMBERS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local out = {}
for i = 1, #r, 2 do
  out[#out + 1] = r[i]
  out[#out + 1] = tostring(tonumber(r[i + 1]) - now)
end
return out`

export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL; may hold a password, so it is never logged. */
  url: string
  /** Prepended to every key, so several gateways (or tests) can share one Redis. */
  keyPrefix: string
  log: Logger
  connectTimeoutMs?: number
  commandTimeoutMs?: number
  reconnectMaxDelayMs?: number
}

/**
 * The store of several replicas: one Redis (node-redis, RESP3). Every key is prefixed; SET
 * NX PX, GETDEL and Lua scripts (compare-and-delete, compare-and-expire, fixed-window increment) make the
 * deciding operations atomic on the server. Resolves once connected; afterwards the client
 * reconnects by itself, and while Redis is away every operation fails fast (no offline queue)
 * or after `commandTimeoutMs` with `unavailable`, never with a Redis error.
 * @throws StoreError unavailable when Redis cannot be reached within `connectTimeoutMs`;
 *   invalid_argument when the URL cannot be used
 */
export async function createRedisStore(o: RedisStoreOptions): Promise<Store> {
  const connectTimeoutMs = o.connectTimeoutMs ?? DEFAULT_REDIS_CONNECT_TIMEOUT_MS
  const commandTimeoutMs = o.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS
  const maxDelay = o.reconnectMaxDelayMs ?? DEFAULT_REDIS_RECONNECT_MAX_DELAY_MS
  const { where, redact } = describeUrl(o.url)
  let client: ReturnType<typeof createClient>
  try {
    client = createClient({
      url: o.url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: connectTimeoutMs,
        reconnectStrategy: (retries) =>
          Math.min(50 * 2 ** retries, maxDelay) + Math.floor(Math.random() * 50),
      },
    })
  } catch (err) {
    // node-redis refuses e.g. a path that is not a database number; its message is not passed on.
    throw new StoreError(
      'invalid_argument',
      'the Redis URL cannot be used (redis://[user:password@]host[:port][/db])',
      err,
    )
  }
  let lastError: unknown
  let up = false
  client.on('error', (err: unknown) => {
    lastError = err
    if (up)
      o.log.warn({ redis: where, err: redact(err) }, 'store: Redis connection lost, reconnecting')
    up = false
  })
  client.on('ready', () => {
    if (lastError !== undefined) o.log.info({ redis: where }, 'store: Redis connection ready')
    up = true
  })

  const connecting = client.connect()
  connecting.catch(() => {})
  if (!(await within(connecting, connectTimeoutMs))) {
    client.destroy()
    throw new StoreError(
      'unavailable',
      `cannot reach Redis at ${where} within ${connectTimeoutMs} ms` +
        (lastError === undefined ? '' : `: ${redact(lastError)}`),
      lastError,
    )
  }

  const k = (key: string) => o.keyPrefix + key
  let closed = false
  const broadcast = redisBroadcast(client, {
    keyPrefix: o.keyPrefix,
    log: o.log,
    where,
    redact,
    connectTimeoutMs,
    publish: (channel, message) =>
      run('publish', async () => {
        await client.publish(k(channel), message)
      }),
  })

  /** Runs one operation: fails fast when disconnected, at most `commandTimeoutMs` otherwise. */
  async function run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreError('unavailable', `${op}: the store is closed`)
    if (!client.isReady)
      throw new StoreError('unavailable', `${op}: Redis is not connected`, lastError)
    const pending = fn()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      const late = () =>
        new StoreError('unavailable', `${op}: Redis did not answer within ${commandTimeoutMs} ms`)
      timer = setTimeout(() => reject(late()), commandTimeoutMs)
    })
    // A reply arriving after the timeout is dropped; the command may still have run.
    pending.catch(() => {})
    try {
      return await Promise.race([pending, timeout])
    } catch (err) {
      throw storeError(err, op)
    } finally {
      clearTimeout(timer)
    }
  }

  return {
    get: (key) => run('get', async () => (await client.get(k(key))) ?? undefined),

    getMany: (keys) =>
      run('getMany', async () =>
        keys.length === 0 ? [] : (await client.mGet(keys.map(k))).map((v) => v ?? undefined),
      ),

    async set(key, value, so = {}) {
      const ttl = so.ttlMs === undefined ? undefined : checkTtl(so.ttlMs, 'set ttlMs')
      const px = ttl === undefined ? {} : { expiration: { type: 'PX' as const, value: ttl } }
      const nx = so.ifAbsent ? { condition: 'NX' as const } : {}
      return run('set', async () => (await client.set(k(key), value, { ...px, ...nx })) === 'OK')
    },

    take: (key) => run('take', async () => (await client.getDel(k(key))) ?? undefined),

    del: (keys) =>
      run('del', async () => {
        if (keys.length > 0) await client.del(keys.map(k))
      }),

    delIf: (key, value) =>
      run(
        'delIf',
        async () => (await client.eval(DEL_IF, { keys: [k(key)], arguments: [value] })) === 1,
      ),

    async expire(key, ttlMs) {
      checkTtl(ttlMs, 'expire ttlMs')
      return run('expire', async () => (await client.pExpire(k(key), ttlMs)) === 1)
    },

    async expireIf(key, value, ttlMs) {
      checkTtl(ttlMs, 'expireIf ttlMs')
      const args = { keys: [k(key)], arguments: [value, String(ttlMs)] }
      return run('expireIf', async () => (await client.eval(EXPIRE_IF, args)) === 1)
    },

    // PTTL: -2 absent, -1 no time to live.
    async timeToLive(key) {
      const ms = await run('timeToLive', () => client.pTTL(k(key)))
      return ms === -2 ? undefined : ms === -1 ? null : ms
    },

    // PERSIST answers 0 for a key without a time to live too: it exists all the same.
    persist: (key) =>
      run(
        'persist',
        async () => (await client.persist(k(key))) === 1 || (await client.exists(k(key))) === 1,
      ),

    // SCAN MATCH, one call per batch (each within commandTimeoutMs), the prefix glob-escaped.
    async keysWithPrefix(prefix) {
      const match = `${k(prefix).replace(/[*?[\]\\]/g, '\\$&')}*`
      const out = new Set<string>()
      let cursor = '0'
      do {
        const reply = await run('keysWithPrefix', () =>
          client.scan(cursor, { MATCH: match, COUNT: 1000 }),
        )
        cursor = String(reply.cursor)
        for (const key of reply.keys) out.add(key.slice(o.keyPrefix.length))
      } while (cursor !== '0')
      return [...out]
    },

    async sadd(set, member, ttlMs) {
      if (ttlMs !== undefined) checkTtl(ttlMs, 'sadd ttlMs')
      return run('sadd', async () => {
        if (ttlMs === undefined) await client.sAdd(k(set), member)
        // One transaction: the set never exists without its time to live.
        else await client.multi().sAdd(k(set), member).pExpire(k(set), ttlMs).exec()
      })
    },

    srem: (set, member) =>
      run('srem', async () => {
        await client.sRem(k(set), member)
      }),

    smembers: (set) => run('smembers', async () => [...(await client.sMembers(k(set)))]),

    scard: (set) => run('scard', () => client.sCard(k(set))),

    async addExpiring(set, member, ttlMs) {
      checkTtl(ttlMs, 'addExpiring ttlMs')
      const args = { keys: [k(set)], arguments: [member, String(ttlMs)] }
      await run('addExpiring', () => client.eval(ADD_EXPIRING, args))
    },

    liveMembers: (set) =>
      run('liveMembers', async () => {
        const flat = (await client.eval(LIVE_MEMBERS, { keys: [k(set)] })) as string[]
        const out: [string, number][] = []
        for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, Number(flat[i + 1])])
        return out
      }),

    broadcast,

    async incr(key, windowMs) {
      checkTtl(windowMs, 'incr windowMs')
      const args = { keys: [k(key)], arguments: [String(windowMs)] }
      return run('incr', async () => Number(await client.eval(INCR_WINDOW, args)))
    },

    // Its own Lua script (set NX EX, INCRBY, PTTL) on this connection; not ready → rejects at once.
    counter: (prefix, points, duration) =>
      new RateLimiterRedis({
        storeClient: client,
        useRedisPackage: true,
        rejectIfRedisNotReady: true,
        keyPrefix: k(prefix),
        points,
        duration,
      }),

    async ping() {
      try {
        return (await run('ping', () => client.ping())) === 'PONG'
      } catch {
        return false
      }
    },

    async close() {
      if (closed) return
      closed = true
      await broadcast.close()
      // QUIT waits for pending replies; a Redis that does not answer is cut off.
      if (!client.isReady || !(await within(client.close(), commandTimeoutMs))) client.destroy()
    },
  }
}

/** Whether `p` settles (either way) within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Where Redis is, for messages and logs (`host:port`), and a function turning an error into a
 * message without the URL's password.
 * @throws StoreError invalid_argument when the URL is not a redis:// or rediss:// URL
 */
function describeUrl(url: string): { where: string; redact: (err: unknown) => string } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new StoreError('invalid_argument', 'the Redis URL is not a URL')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new StoreError('invalid_argument', 'the Redis URL must start with redis:// or rediss://')
  }
  const password = decodeURIComponent(parsed.password)
  const redact = (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err)
    return password === '' ? message : message.replaceAll(password, '[redacted]')
  }
  return { where: `${parsed.hostname}:${parsed.port || '6379'}`, redact }
}
