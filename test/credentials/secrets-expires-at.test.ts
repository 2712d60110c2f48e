// When a user's secret expires unused, as the account page, its API and `secrets list` show
// it: read from the store's own time to live of the value (the memory store's expiry under an
// injected clock; Redis PTTL), so what is shown is what the store will do: pushed out by a
// use, changed in the store by hand, never (`secretUnusedTtl` 0, or a value with no time to
// live, set so by an earlier version) — not a date computed from when it was set.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { UserSecrets } from '../../gateway/credentials/secrets.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { createSealer } from '../../gateway/store/sealed.js'
import type { Store } from '../../gateway/store/store.js'
import { NO_REDIS, redisStoreAt, startRedis, type RedisServer } from '../helpers/redis.js'

const DAY = 24 * 3600 * 1000
const alice = { iss: 'https://idp.example', sub: 'alice' }

/** The store and clock each case runs on: the memory store's injected one, or Redis's own. */
interface Kind {
  name: string
  skip?: string | false
  open(): Promise<{ store: Store; now: () => number; advance(ms: number): void }>
}

let redis: RedisServer | undefined
const kinds: Kind[] = [
  {
    name: 'memory store',
    async open() {
      const clock = { t: 1_700_000_000_000 }
      const now = () => clock.t
      return { store: createMemoryStore({ now }), now, advance: (ms) => void (clock.t += ms) }
    },
  },
  {
    name: 'Redis',
    skip: NO_REDIS,
    async open() {
      redis ??= await startRedis()
      const store = await redisStoreAt(redis.url, `expires-at-${randomBytes(4).toString('hex')}:`)
      // Redis keeps time itself: a later instant is the same key's shorter time to live.
      const skew = { ms: 0 }
      return { store, now: () => Date.now() + skew.ms, advance: (ms) => void (skew.ms += ms) }
    },
  },
]

after(() => redis?.close())

for (const kind of kinds)
  describe(`UserSecrets.list: when each secret expires (${kind.name})`, { skip: kind.skip }, () => {
    let store: Store
    let now: () => number
    let advance: (ms: number) => void
    const sealer = createSealer({ k1: randomBytes(32) }, 'k1')
    const secretsWith = (unusedTtl: number) => new UserSecrets({ store, sealer, unusedTtl, now })
    before(async () => {
      ;({ store, now, advance } = await kind.open())
    })
    after(() => store?.close())

    /** The listed expiry of `name`; undefined when not listed. */
    const expiryOf = async (secrets: UserSecrets, name: string) =>
      (await secrets.list(alice)).find((s) => s.name === name)?.expiresAt

    /**
     * `at` is `want` as the store keeps it: exact on the injected clock; on Redis's own, within
     * the ms between the call that set it (`from`) and the read (`to`).
     */
    const near = (at: number | null | undefined, want: number, from: number, to: number) => {
      assert.equal(typeof at, 'number', String(at))
      assert.ok(at! >= want - (now() - from) - 1 && at! <= want + (to - from), `${at} vs ${want}`)
    }

    it('set: unusedTtl from its set; the set and the list agree', async () => {
      const secrets = secretsWith(30 * DAY)
      const from = now()
      const set = await secrets.set(alice, 'github_token', 'ghp_value')
      assert.equal(set.expiresAt, set.setAt + 30 * DAY)
      near(await expiryOf(secrets, 'github_token'), set.expiresAt!, from, now())
    })

    it('a use past a tenth of it pushes it out, and the list shows the new instant', async () => {
      const secrets = secretsWith(30 * DAY)
      const set = await secrets.set(alice, 'pushed', 'value-pushed')
      advance(4 * DAY)
      const from = now()
      assert.equal(await secrets.value(alice, 'pushed'), 'value-pushed')
      near(await expiryOf(secrets, 'pushed'), from + 30 * DAY, from, now())
      assert.ok((await expiryOf(secrets, 'pushed'))! > set.expiresAt! + 3 * DAY)
    })

    it("the store's own time to live, not a date made from the set: changed by hand, it shows", async () => {
      const secrets = secretsWith(30 * DAY)
      await secrets.set(alice, 'by_hand', 'value-by-hand')
      const key = `secrets:${secrets.userKey(alice)}:by_hand`
      const from = now()
      assert.equal(await store.expire(key, 5 * 60_000), true)
      near(await expiryOf(secrets, 'by_hand'), from + 5 * 60_000, from, now())
      // No time to live at all (a value an earlier version set): it never expires, and says so.
      assert.equal(await store.persist(key), true)
      assert.equal(await expiryOf(secrets, 'by_hand'), null)
    })

    it('unusedTtl 0: never, set and listed', async () => {
      const secrets = secretsWith(0)
      const set = await secrets.set(alice, 'forever', 'value-forever')
      assert.equal(set.expiresAt, null)
      assert.equal(await expiryOf(secrets, 'forever'), null)
    })

    it('a value gone (expired, or deleted between the read and its time to live) is not listed', async () => {
      const secrets = secretsWith(30 * DAY)
      await secrets.set(alice, 'short', 'value-short')
      const key = `secrets:${secrets.userKey(alice)}:short`
      await store.expire(key, 1)
      if (kind.name === 'memory store') advance(2)
      else while ((await store.get(key)) !== undefined) await new Promise((r) => setImmediate(r))
      assert.equal(await expiryOf(secrets, 'short'), undefined)
      assert.equal(await store.timeToLive(key), undefined)
    })
  })
