// countInWindow, the count both broker guards (sign-ins, registrations) make: per address (an
// IPv4 address, an IPv6 /64), per IPv6 /48 and in all, in one fixed window. Hostile peers: one
// /48 in every spelling, mapped IPv4 both ways, many /48s; the product's memory store and a
// real redis-server shared by two clients (two replicas). A refused request stores nothing.
import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { createClient } from '@redis/client'
import { countInWindow, type WindowBounds } from '../../gateway/broker/addresses.js'
import type { Store } from '../../gateway/store/store.js'
import { recordingStore } from '../helpers/recording-store.js'
import { NO_REDIS, redisStoreAt, startRedis, type RedisServer } from '../helpers/redis.js'

const WINDOW_MS = 60_000
/** 45.5 s into a minute: 14.5 s left, so Retry-After 15. */
const AT = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS + 45_500
const BOUNDS: WindowBounds = { perAddress: 3, perNetwork: 6, perAll: 20 }

/** Counts one request from each peer in turn, through `stores` in turn: each peer's outcome. */
async function countEach(stores: Store[], peers: (string | undefined)[], bounds = BOUNDS) {
  const outcomes: string[] = []
  for (const [i, peer] of peers.entries()) {
    const o = { store: stores[i % stores.length]!, kind: 'test:count', windowMs: WINDOW_MS, bounds }
    const r = await countInWindow(o, peer, AT)
    outcomes.push(r === undefined ? 'admitted' : `${r.bound} ${r.retryAfterS}`)
  }
  return outcomes
}
const times = <T>(n: number, x: T): T[] => Array<T>(n).fill(x)

/** The cases, run against the memory store and against Redis shared by two replicas. */
function cases(stores: () => Store[], counters: () => Promise<string[]>) {
  test('one /48 in every spelling is one /48: 6 admitted from its /64s, then none of its /64s; the next /48 is not affected', async () => {
    const spellings = [
      '2001:db8:5:1::1',
      '2001:0DB8:0005:0002:0000:0000:0000:0001',
      '2001:db8:5:3::abcd%eth0',
      '2001:0db8:05:0004::1',
      '2001:DB8:5:5::192.0.2.1',
      '2001:db8:5:6:ffff:ffff:ffff:ffff',
    ]
    assert.deepEqual(await countEach(stores(), spellings), times(6, 'admitted'))
    // Fresh /64s of the same /48, in each spelling: refused, and no counter made for them.
    const before = (await counters()).length
    const more = [
      '2001:db8:5:71::1',
      '2001:0DB8:0005:0072:0000:0000:0000:0001',
      '2001:db8:5:73::abcd%eth0',
      '2001:0db8:05:0074::1',
      '2001:DB8:5:75::192.0.2.1',
      '2001:db8:5:76:ffff:ffff:ffff:ffff',
    ]
    assert.deepEqual(await countEach(stores(), more), times(6, 'network 15'))
    assert.equal((await counters()).length, before, 'nothing stored for a refused request')
    assert.deepEqual(await countEach(stores(), ['2001:db8:6::1']), ['admitted'])
  })

  test("one /64 meets its own bound first and spends only its own share of the /48's", async () => {
    const peers = times(5, '2001:db8:7:1::1')
    assert.deepEqual(await countEach(stores(), peers), [
      ...times(3, 'admitted'),
      ...times(2, 'address 15'),
    ])
    // The /48 counted 3, not 5: three more from another /64 of it.
    assert.deepEqual(await countEach(stores(), times(4, '2001:db8:7:2::1')), [
      ...times(3, 'admitted'),
      'network 15',
    ])
  })

  test('an IPv4-mapped address is its IPv4 address: one counter with the plain spelling, and no /48 (a dual-stack socket sees every IPv4 client mapped)', async () => {
    const one = ['::ffff:192.0.2.5', '192.0.2.5', '::FFFF:C000:205', '0:0:0:0:0:ffff:192.0.2.5']
    assert.deepEqual(await countEach(stores(), one), [...times(3, 'admitted'), 'address 15'])
    // 12 mapped addresses: more than a /48 may make, all admitted (none shares ::/48).
    const many = Array.from({ length: 12 }, (_, i) => `::ffff:198.51.100.${i + 1}`)
    assert.deepEqual(await countEach(stores(), many), times(12, 'admitted'))
    assert.ok(!(await counters()).some((k) => k.includes('/48')), (await counters()).join(' '))
  })

  test('peers that are not an address, and no peer at all, share their bucket and have no /48', async () => {
    assert.deepEqual(await countEach(stores(), [undefined, undefined, undefined, undefined]), [
      ...times(3, 'admitted'),
      'address 15',
    ])
    assert.deepEqual(await countEach(stores(), times(4, 'x')), [
      ...times(3, 'admitted'),
      'address 15',
    ])
  })

  test('many /48s: the bound in all holds; past it a new /48 stores nothing; it costs a /64 and a /48 counter per admitted request, and perAll / perNetwork /48s spend it for everyone', async () => {
    // 40 /48s, two /64s each, three requests from each /64.
    const peers: string[] = []
    for (let n = 0; n < 40; n++)
      for (const s of [1, 2])
        peers.push(...times(3, `2001:db8:${(0x100 + n).toString(16)}:${s}::1`))
    const outcomes = await countEach(stores(), peers)
    assert.equal(outcomes.filter((o) => o === 'admitted').length, 20)
    // Four /48s (6 each, 20 in all) spent the bound in all: everyone else is refused now.
    assert.deepEqual(outcomes.slice(0, 24), [...times(20, 'admitted'), ...times(4, 'all 15')])
    assert.deepEqual(outcomes.slice(24), times(peers.length - 24, 'all 15'))
    assert.deepEqual(
      await countEach(stores(), ['192.0.2.99', '2001:db8:ffff::1']),
      times(2, 'all 15'),
    )
    // The counters of the seven /64s and four /48s admitted from, and the count in all.
    assert.equal((await counters()).length, 7 + 4 + 1, (await counters()).join(' '))
  })
}

describe('countInWindow, memory store', () => {
  let store = recordingStore()
  beforeEach(() => {
    store = recordingStore()
  })
  cases(
    () => [store],
    () => store.keys('test:count:'),
  )
})

describe('countInWindow, two replicas sharing a real redis-server', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  let replicas: Store[] = []
  let prefix = ''
  let n = 0
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    await Promise.all(replicas.map((r) => r.close()))
    await redis?.close()
  })
  beforeEach(async () => {
    await Promise.all(replicas.map((r) => r.close()))
    prefix = `guard-${n++}:`
    replicas = [await redisStoreAt(redis.url, prefix), await redisStoreAt(redis.url, prefix)]
  })
  /** Every key under this case's prefix, without it. */
  const counters = async () => {
    const client = createClient({ url: redis.url })
    client.on('error', () => {})
    await client.connect()
    try {
      const keys: string[] = []
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 }))
        keys.push(...([batch].flat() as string[]).map((k) => k.slice(prefix.length)))
      return keys
    } finally {
      await client.quit()
    }
  }
  // Requests alternate between the replicas: every bound is met once for both.
  cases(() => replicas, counters)
})
