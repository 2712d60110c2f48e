// A user signed out everywhere, across replicas: two revocation lists (replicas) on a real
// redis-server, and a third started later that loads what the store holds.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { RevocationList } from '../../gateway/broker/revocations.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import type { Store } from '../../gateway/store/store.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait-for.js'

const SILENT = pino({ level: 'silent' })
const PREFIX = `subj-${process.pid}:`

describe('a subject signed out on one replica', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  const stores: Store[] = []
  const lists: RevocationList[] = []
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    for (const l of lists) await l.close()
    for (const s of stores) await s.close()
    await redis?.close()
  })

  async function replica(): Promise<RevocationList> {
    const store = await createRedisStore({
      url: redis.url,
      keyPrefix: PREFIX,
      log: SILENT,
      connectTimeoutMs: 500,
      commandTimeoutMs: 500,
    })
    stores.push(store)
    const list = await RevocationList.start({
      store,
      ttlMs: 60_000,
      toleranceMs: 0,
      maxEntries: 1000,
      tokensPerUser: 10,
      cookieKeys: ['k'.repeat(32)],
      log: SILENT,
    })
    lists.push(list)
    return list
  }

  it('is refused on every replica, a late one included; others, and later tokens, are not', async () => {
    const a = await replica()
    const b = await replica()
    const now = Math.floor(Date.now() / 1000)
    const marks = (sub: string, iat: number) => ({ grant: 'g'.repeat(22), jti: 'j', sub, iat })
    await a.revokeSubject('alice')
    assert.match(a.refusal(marks('alice', now)) ?? '', /signed out everywhere/)
    await waitFor(() => b.refusal(marks('alice', now)) !== undefined, 'B hears the sign-out')
    const c = await replica()
    for (const list of [a, b, c]) {
      assert.match(list.refusal(marks('alice', now - 100)) ?? '', /signed out/, 'an older token')
      assert.equal(list.refusal(marks('alice', now + 2)), undefined, 'a token issued later')
      assert.equal(list.refusal(marks('bob', now)), undefined, 'another user')
      assert.equal(list.refusal({ grant: 'g'.repeat(22), jti: 'j', iat: now }), undefined)
    }
    // Signed out again: still one entry for the user.
    await a.revokeSubject('alice')
    assert.equal(a.size, 1)
  })
})
