// The Store contract, one table of cases run against both implementations: what passes here
// in memory behaves the same on Redis, and the other way round.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { memoryHarness, redisHarness, rejectsWith, type Harness } from './harness.js'

const sorted = (xs: string[]) => [...xs].sort()
const RACERS = 50

/** Keys with characters that break naive parsing, globbing, hashing or encoding. */
const ODD_KEYS = [
  '',
  ' ',
  'a b',
  'line\nbreak',
  'cr\r\nlf',
  'tab\t',
  '\u0000nul',
  'ключ',
  '🙂',
  'e\u0301',
  '{hash}tag',
  '*?[glob]',
  'a:b:c',
  '"quoted\'',
  '\\back',
  'x'.repeat(1000),
]

/** About 1 MB of multi-byte text (4- and 2-byte UTF-8 characters). */
const LARGE = '🙂é'.repeat(Math.ceil(1_048_576 / 6))

const cases: { name: string; run(h: Harness): Promise<void> }[] = [
  // values
  {
    name: 'get of an absent key is undefined; set writes, overwrites and reads back',
    async run({ s }) {
      assert.equal(await s.get('k'), undefined)
      assert.equal(await s.set('k', 'v1'), true)
      assert.equal(await s.get('k'), 'v1')
      assert.equal(await s.set('k', 'v2'), true)
      assert.equal(await s.get('k'), 'v2')
      assert.equal(await s.set('empty', ''), true)
      assert.equal(await s.get('empty'), '', 'an empty value is a value')
    },
  },
  {
    name: 'ifAbsent writes only when the key does not exist',
    async run({ s }) {
      assert.equal(await s.set('k', 'first', { ifAbsent: true }), true)
      assert.equal(await s.set('k', 'second', { ifAbsent: true }), false)
      assert.equal(await s.get('k'), 'first')
    },
  },
  {
    name: `exactly one of ${RACERS} concurrent set(ifAbsent) wins, across clients`,
    async run({ s, t }) {
      const wins = await Promise.all(
        Array.from({ length: RACERS }, (_, i) =>
          (i % 2 ? s : t).set('race', `v${i}`, { ifAbsent: true }),
        ),
      )
      assert.equal(wins.filter(Boolean).length, 1)
      assert.equal(await s.get('race'), `v${wins.indexOf(true)}`, "the winner's value is stored")
    },
  },
  {
    name: 'take returns the value once and deletes it',
    async run({ s }) {
      await s.set('code', 'c1')
      assert.equal(await s.take('code'), 'c1')
      assert.equal(await s.take('code'), undefined)
      assert.equal(await s.get('code'), undefined)
      assert.equal(await s.take('never'), undefined)
    },
  },
  {
    name: `exactly one of ${RACERS} concurrent take gets the value, across clients`,
    async run({ s, t }) {
      await s.set('single-use', 'secret')
      const got = await Promise.all(
        Array.from({ length: RACERS }, (_, i) => (i % 2 ? s : t).take('single-use')),
      )
      assert.deepEqual(
        got.filter((v) => v !== undefined),
        ['secret'],
      )
    },
  },
  {
    name: 'del removes several keys, values and sets, ignores absent ones and an empty list',
    async run({ s }) {
      await s.set('a', '1')
      await s.set('b', '2')
      await s.sadd('c', 'm')
      await s.del([])
      await s.del(['a', 'c', 'absent'])
      assert.deepEqual(await s.getMany(['a', 'b']), [undefined, '2'])
      assert.equal(await s.scard('c'), 0)
    },
  },
  {
    name: 'delIf deletes only while the key holds the value',
    async run({ s }) {
      await s.set('lock', 'mine')
      assert.equal(await s.delIf('lock', 'theirs'), false)
      assert.equal(await s.get('lock'), 'mine')
      assert.equal(await s.delIf('lock', 'mine'), true)
      assert.equal(await s.get('lock'), undefined)
      assert.equal(await s.delIf('lock', 'mine'), false, 'absent')
    },
  },
  {
    name: 'expireIf renews only while the key holds the value (a lock kept by its holder)',
    async run({ s, ttl, long, elapse }) {
      await s.set('lock', 'mine', { ttlMs: ttl })
      assert.equal(await s.expireIf('lock', 'theirs', long), false)
      assert.equal(await s.expireIf('lock', 'mine', long), true)
      await s.set('short', 'mine', { ttlMs: ttl })
      await elapse(async () => (await s.get('short')) === undefined)
      assert.equal(await s.get('lock'), 'mine', 'renewed: outlived the first ttl')
      assert.equal(await s.expireIf('short', 'mine', long), false, 'absent')
      assert.equal(await s.get('short'), undefined)
    },
  },
  {
    name: 'getMany answers in order: duplicates repeated, absent keys undefined, [] for []',
    async run({ s }) {
      await s.set('a', '1')
      await s.set('b', '2')
      assert.deepEqual(await s.getMany(['b', 'absent', 'a', 'b']), ['2', undefined, '1', '2'])
      assert.deepEqual(await s.getMany([]), [])
    },
  },
  {
    name: 'unicode values round-trip unchanged',
    async run({ s }) {
      const values = ['é', '🙂', 'ключ', 'e\u0301', '\u0000', 'line\r\nbreak', '{"json":"ünïcödé"}']
      for (const [i, v] of values.entries()) await s.set(`u${i}`, v)
      assert.deepEqual(await s.getMany(values.map((_, i) => `u${i}`)), values)
    },
  },
  {
    name: 'a 1 MB value round-trips through set, get, getMany and take',
    async run({ s }) {
      assert.ok(Buffer.byteLength(LARGE) >= 1_048_576)
      await s.set('large', LARGE)
      assert.equal(await s.get('large'), LARGE)
      assert.deepEqual(await s.getMany(['large']), [LARGE])
      assert.equal(await s.take('large'), LARGE)
    },
  },
  {
    name: 'keys with odd characters are distinct keys, for values and sets',
    async run({ s }) {
      for (const [i, key] of ODD_KEYS.entries()) await s.set(key, `v${i}`)
      assert.deepEqual(
        await s.getMany(ODD_KEYS),
        ODD_KEYS.map((_, i) => `v${i}`),
      )
      for (const key of ODD_KEYS) await s.sadd(`set ${key}`, key)
      for (const key of ODD_KEYS) assert.deepEqual(await s.smembers(`set ${key}`), [key])
    },
  },

  // times to live
  {
    name: 'a value with a ttl is gone once it expires; one without stays',
    async run({ s, ttl, elapse }) {
      await s.set('short', 'v', { ttlMs: ttl })
      await s.set('forever', 'v')
      assert.equal(await s.get('short'), 'v')
      await elapse(async () => (await s.get('short')) === undefined)
      assert.deepEqual(await s.getMany(['short', 'forever']), [undefined, 'v'])
      assert.equal(await s.take('short'), undefined)
      assert.equal(await s.delIf('short', 'v'), false)
      assert.equal(await s.expire('short', ttl), false)
    },
  },
  {
    name: "ifAbsent (a lock) succeeds again once the holder's ttl expired",
    async run({ s, ttl, elapse }) {
      assert.equal(await s.set('lock', 'a', { ttlMs: ttl, ifAbsent: true }), true)
      assert.equal(await s.set('lock', 'b', { ttlMs: ttl, ifAbsent: true }), false)
      await elapse(async () => (await s.get('lock')) === undefined)
      assert.equal(await s.set('lock', 'b', { ttlMs: ttl, ifAbsent: true }), true)
    },
  },
  {
    name: 'set without a ttl over a key with one removes its expiry (as SET does)',
    async run({ s, ttl, elapse }) {
      await s.set('witness', 'w', { ttlMs: ttl })
      await s.set('k', 'old', { ttlMs: ttl })
      await s.set('k', 'new')
      await elapse(async () => (await s.get('witness')) === undefined)
      assert.equal(await s.get('k'), 'new')
    },
  },
  {
    name: 'expire gives an existing key a new ttl, longer or shorter; false when absent',
    async run({ s, ttl, long, elapse }) {
      await s.set('witness', 'w', { ttlMs: ttl })
      await s.set('extended', 'v', { ttlMs: ttl })
      await s.set('shortened', 'v')
      await s.sadd('set', 'm')
      assert.equal(await s.expire('extended', long), true)
      assert.equal(await s.expire('shortened', ttl), true)
      assert.equal(await s.expire('set', ttl), true, 'sets have a ttl too')
      assert.equal(await s.expire('absent', ttl), false)
      await elapse(
        async () =>
          (await s.getMany(['witness', 'shortened'])).every((v) => v === undefined) &&
          (await s.scard('set')) === 0,
      )
      assert.equal(await s.get('extended'), 'v')
    },
  },
  {
    name: 'persist takes a ttl away (a value, a set); a key without one stays; false when absent',
    async run({ s, ttl, elapse }) {
      await s.set('witness', 'w', { ttlMs: ttl })
      await s.set('kept', 'v', { ttlMs: ttl })
      await s.sadd('set', 'm', ttl)
      await s.set('forever', 'v')
      assert.equal(await s.persist('kept'), true)
      assert.equal(await s.persist('set'), true)
      assert.equal(await s.persist('forever'), true, 'no ttl to take: it exists all the same')
      assert.equal(await s.persist('absent'), false)
      await elapse(async () => (await s.get('witness')) === undefined)
      assert.deepEqual(await s.getMany(['kept', 'forever']), ['v', 'v'])
      assert.deepEqual(await s.smembers('set'), ['m'])
      assert.equal(await s.persist('witness'), false, 'expired is absent')
    },
  },
  {
    name: 'timeToLive: the ms a key has left (at most what it was given), null without one, undefined when absent or expired',
    async run({ s, t, ttl, long, elapse }) {
      await s.set('witness', 'w', { ttlMs: ttl })
      await s.set('timed', 'v', { ttlMs: long })
      await s.sadd('set', 'm', long)
      await s.set('forever', 'v')
      await s.sadd('plain-set', 'm')
      for (const key of ['timed', 'set']) {
        const left = await t.timeToLive(key)
        assert.ok(typeof left === 'number' && left > 0 && left <= long, `${key}: ${left}`)
      }
      assert.equal(await s.timeToLive('forever'), null)
      assert.equal(await s.timeToLive('plain-set'), null)
      assert.equal(await s.timeToLive('absent'), undefined)
      await s.persist('timed')
      assert.equal(await s.timeToLive('timed'), null, 'persisted: none')
      await s.expire('forever', long)
      assert.ok(((await s.timeToLive('forever')) ?? 0) > 0, 'given one by expire')
      await elapse(async () => (await s.get('witness')) === undefined)
      assert.equal(await s.timeToLive('witness'), undefined, 'expired is absent')
    },
  },

  {
    name: 'keysWithPrefix: live keys of any kind under the prefix, glob characters taken literally, not another namespace',
    async run({ s, t, foreign, ttl, long, elapse }) {
      assert.deepEqual(await s.keysWithPrefix('p*?[x]\\:'), [])
      await s.set('p*?[x]\\:a', 'v')
      await t.set('p*?[x]\\:b', 'v', { ttlMs: long })
      await s.sadd('p*?[x]\\:set', 'm')
      await s.set('p*?[x]\\:going', 'v', { ttlMs: ttl })
      for (const near of ['p*?[x]\\', 'pX?[x]\\:a', 'p*?x\\:a', 'p*?[x]:a', 'q*?[x]\\:a'])
        await s.set(near, 'v')
      await foreign.set('p*?[x]\\:foreign', 'v')
      for (const key of ODD_KEYS) await s.set(`p*?[x]\\:${key}`, 'odd')
      const odd = ODD_KEYS.map((key) => `p*?[x]\\:${key}`)
      await elapse(async () => (await s.get('p*?[x]\\:going')) === undefined)
      assert.deepEqual(
        sorted(await s.keysWithPrefix('p*?[x]\\:')),
        sorted([...new Set(['p*?[x]\\:a', 'p*?[x]\\:b', 'p*?[x]\\:set', ...odd])]),
      )
      assert.deepEqual(await foreign.keysWithPrefix('p*?[x]\\:'), ['p*?[x]\\:foreign'])
    },
  },

  // sets
  {
    name: 'sadd, srem, smembers and scard keep a set of distinct members',
    async run({ s }) {
      assert.deepEqual(await s.smembers('absent'), [])
      assert.equal(await s.scard('absent'), 0)
      await s.srem('absent', 'm')
      await s.sadd('grant:g1', 'AccessToken:a')
      await s.sadd('grant:g1', 'RefreshToken:r')
      await s.sadd('grant:g1', 'AccessToken:a')
      assert.deepEqual(sorted(await s.smembers('grant:g1')), ['AccessToken:a', 'RefreshToken:r'])
      assert.equal(await s.scard('grant:g1'), 2)
      await s.srem('grant:g1', 'AccessToken:a')
      await s.srem('grant:g1', 'not a member')
      assert.deepEqual(await s.smembers('grant:g1'), ['RefreshToken:r'])
    },
  },
  {
    name: 'a set emptied by srem no longer exists',
    async run({ s }) {
      await s.sadd('set', 'only')
      await s.srem('set', 'only')
      assert.equal(await s.set('set', 'now a value', { ifAbsent: true }), true)
    },
  },
  {
    name: "sadd with a ttl renews the set's ttl; without one keeps it",
    async run({ s, ttl, long, elapse }) {
      await s.sadd('renewed', 'a', ttl)
      await s.sadd('renewed', 'b', long)
      await s.sadd('kept', 'a', ttl)
      await s.sadd('kept', 'b')
      await elapse(async () => (await s.scard('kept')) === 0)
      assert.deepEqual(sorted(await s.smembers('renewed')), ['a', 'b'])
      assert.deepEqual(await s.smembers('kept'), [])
    },
  },
  {
    name: 'values, sets and counters are distinct types, as in Redis',
    async run({ s }) {
      await s.set('value', 'text')
      await s.sadd('set', 'm')
      await rejectsWith(s.get('set'), 'wrong_type', 'get of a set')
      await rejectsWith(s.take('set'), 'wrong_type', 'take of a set')
      await rejectsWith(s.delIf('set', 'm'), 'wrong_type', 'delIf of a set')
      await rejectsWith(s.expireIf('set', 'm', 1000), 'wrong_type', 'expireIf of a set')
      await rejectsWith(s.incr('set', 1000), 'wrong_type', 'incr of a set')
      await rejectsWith(s.sadd('value', 'm'), 'wrong_type', 'sadd to a value')
      await rejectsWith(s.srem('value', 'm'), 'wrong_type', 'srem from a value')
      await rejectsWith(s.smembers('value'), 'wrong_type', 'smembers of a value')
      await rejectsWith(s.scard('value'), 'wrong_type', 'scard of a value')
      await rejectsWith(s.incr('value', 1000), 'wrong_type', 'incr of text')
      for (const notInteger of ['007', '-0', ' 1', '1.5', '']) {
        await s.set('odd', notInteger)
        await rejectsWith(
          s.incr('odd', 1000),
          'wrong_type',
          `incr of ${JSON.stringify(notInteger)}`,
        )
      }
      assert.deepEqual(
        await s.getMany(['set', 'value']),
        [undefined, 'text'],
        'getMany reads a set as absent (MGET)',
      )
      assert.equal(await s.set('set', 'replaced'), true, 'set replaces a set')
      assert.equal(await s.get('set'), 'replaced')
    },
  },

  // counters
  {
    name: 'incr counts from 1 in a fixed window and starts over after it',
    async run({ s, ttl, elapse }) {
      assert.equal(await s.incr('rl:addr', ttl), 1)
      assert.equal(await s.incr('rl:addr', ttl), 2)
      assert.equal(
        await s.incr('rl:addr', ttl * 1000),
        3,
        'a later window argument does not move the window',
      )
      assert.equal(await s.get('rl:addr'), '3', 'a counter reads as its decimal value')
      await elapse(async () => (await s.get('rl:addr')) === undefined)
      assert.equal(await s.incr('rl:addr', ttl), 1)
    },
  },
  {
    name: `${RACERS} concurrent increments, across clients, count 1 to ${RACERS} once each`,
    async run({ s, t, long }) {
      const got = await Promise.all(
        Array.from({ length: RACERS }, (_, i) => (i % 2 ? s : t).incr('count', long)),
      )
      assert.deepEqual(
        [...got].sort((a, b) => a - b),
        Array.from({ length: RACERS }, (_, i) => i + 1),
      )
    },
  },
  {
    name: 'incr gives a counter written without a ttl a window',
    async run({ s, ttl, elapse }) {
      await s.set('count', '41')
      assert.equal(await s.incr('count', ttl), 42)
      await elapse(async () => (await s.get('count')) === undefined)
    },
  },

  // expiring sets (the broker's revocation list)
  {
    name: 'an expiring set: each member ends on its own, keeps its later end, the set ends with the last',
    async run({ s, t, ttl, long, elapse }) {
      await s.addExpiring('list', 'short', ttl)
      await s.addExpiring('list', 'long', long)
      await t.addExpiring('list', 'long', ttl)
      const live = new Map(await t.liveMembers('list'))
      assert.deepEqual([...live.keys()].sort(), ['long', 'short'])
      assert.ok(live.get('short')! > 0 && live.get('short')! <= ttl)
      assert.ok(live.get('long')! > ttl, 'a shorter end does not shorten a member')
      await elapse(async () => !new Map(await s.liveMembers('list')).has('short'))
      assert.deepEqual(
        (await s.liveMembers('list')).map(([m]) => m),
        ['long'],
      )
      assert.deepEqual(await s.liveMembers('absent'), [])
      await rejectsWith(s.get('list'), 'wrong_type', 'an expiring set is not a value')
      await rejectsWith(s.addExpiring('list', 'm', 0), 'invalid_argument')
    },
  },

  // arguments
  {
    name: 'times to live and windows must be positive integers of ms',
    async run({ s }) {
      await s.set('k', 'v')
      for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await rejectsWith(s.set('k', 'v', { ttlMs: bad }), 'invalid_argument', `set ttlMs ${bad}`)
        await rejectsWith(s.expire('k', bad), 'invalid_argument', `expire ${bad}`)
        await rejectsWith(s.sadd('set', 'm', bad), 'invalid_argument', `sadd ${bad}`)
        await rejectsWith(s.incr('n', bad), 'invalid_argument', `incr ${bad}`)
      }
      assert.equal(await s.get('k'), 'v', 'nothing was written')
      assert.deepEqual(await s.getMany(['set', 'n']), [undefined, undefined])
    },
  },

  // namespaces and lifecycle
  {
    name: 'another namespace sees none of these keys, and the other way round',
    async run({ s, foreign }) {
      await s.set('k', 'mine')
      await s.sadd('set', 'mine')
      await s.incr('n', 60_000)
      assert.deepEqual(await foreign.getMany(['k', 'n']), [undefined, undefined])
      assert.equal(await foreign.take('k'), undefined)
      assert.equal(await foreign.scard('set'), 0)
      assert.equal(await foreign.set('k', 'theirs', { ifAbsent: true }), true)
      await foreign.del(['set', 'n'])
      assert.deepEqual(await s.getMany(['k', 'n']), ['mine', '1'])
      assert.deepEqual(await s.smembers('set'), ['mine'])
    },
  },
  {
    name: 'ping is true while open; once closed ping is false and operations fail unavailable',
    async run({ open }) {
      const store = await open()
      assert.equal(await store.ping(), true)
      await store.close()
      await store.close()
      assert.equal(await store.ping(), false)
      await rejectsWith(store.get('k'), 'unavailable')
      await rejectsWith(store.set('k', 'v'), 'unavailable')
      await rejectsWith(store.incr('k', 1000), 'unavailable')
    },
  },
]

function suite(make: () => Promise<Harness>): void {
  for (const c of cases) {
    it(c.name, async () => {
      const h = await make()
      try {
        await c.run(h)
      } finally {
        await h.close()
      }
    })
  }
}

describe('Store contract: memory', () => {
  suite(async () => memoryHarness())
})

describe('Store contract: Redis', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  before(async () => {
    redis = await startRedis()
  })
  after(() => redis?.close())
  suite(() => redisHarness(redis.url))
})
