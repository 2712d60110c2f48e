// A replica whose revocation subscription dies silently (the connection stays open, nothing
// arrives: a dropped NAT entry, a firewall) raises no error. The list's heartbeat finds it:
// readiness says so, the store's list is polled meanwhile (another replica's revocation is
// refused here without any message), and a new subscription makes it trusted again. A real
// redis-server, two lists (replicas), and a TCP relay in front of one that can go silent.
import assert from 'node:assert/strict'
import { createServer, type Server, type Socket, connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { RevocationList, type RevocationEvent } from '../../gateway/broker/revocations.js'
import { createRedisStore } from '../../gateway/store/redis.js'
import type { Store } from '../../gateway/store/store.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait-for.js'

const SILENT = pino({ level: 'silent' })
const KEY = 'k'.repeat(32)
const PREFIX = `hb-${process.pid}:`

/** A relay to Redis whose connections, by their order of arrival, can be made silent. */
class Relay {
  readonly server: Server
  private readonly sockets: Socket[] = []
  /** A connection is silent when this says so of its index (0: the first made). */
  silent: (index: number) => boolean = () => false
  connections = 0

  constructor(target: number) {
    this.server = createServer((client) => {
      const index = this.connections++
      const upstream = connect(target, '127.0.0.1')
      this.sockets.push(client, upstream)
      // Silent: bytes are taken and dropped both ways; the sockets stay open.
      client.on('data', (d) => void (this.silent(index) || upstream.write(d)))
      upstream.on('data', (d) => void (this.silent(index) || client.write(d)))
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        a.on('error', () => b.destroy())
        a.on('close', () => b.destroy())
      }
    })
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as AddressInfo).port
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

describe('revocation list heartbeat', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  let relay: Relay
  const stores: Store[] = []
  const lists: RevocationList[] = []
  before(async () => {
    redis = await startRedis()
    relay = new Relay(redis.port)
  })
  after(async () => {
    for (const l of lists) await l.close()
    for (const s of stores) await s.close()
    await relay?.close()
    await redis?.close()
  })

  async function replica(url: string, heartbeatMs: number) {
    const store = await createRedisStore({
      url,
      keyPrefix: PREFIX,
      log: SILENT,
      connectTimeoutMs: 500,
      commandTimeoutMs: 500,
    })
    stores.push(store)
    const events: RevocationEvent[] = []
    const list = await RevocationList.start({
      store,
      ttlMs: 60_000,
      toleranceMs: 0,
      maxEntries: 1000,
      tokensPerUser: 10,
      cookieKeys: [KEY],
      log: SILENT,
      onEvent: (e) => events.push(e),
      heartbeatMs,
    })
    lists.push(list)
    return { list, events }
  }

  it('a subscription gone silent: not trusted, the list polled, then subscribed anew', async () => {
    const port = await relay.listen()
    // A: straight to Redis, no heartbeat. B: through the relay; connection 0 is its store's,
    // every later one a subscription.
    const a = await replica(redis.url, 0)
    const b = await replica(`redis://127.0.0.1:${port}`, 100)
    assert.equal(relay.connections, 2)
    const marks = (grantId: string) => ({
      grant: b.list.grantTag(grantId),
      jti: undefined,
      iat: Math.floor(Date.now() / 1000),
    })
    await a.list.revokeGrant('heard')
    await waitFor(() => b.list.refusal(marks('heard')) !== undefined, 'B hears a revocation')
    assert.equal(b.list.problem(), undefined)

    // Every subscription connection goes silent, the ones B will make included.
    relay.silent = (i) => i > 0
    await waitFor(() => b.events.includes('subscription_lost'), 'B notices the silence')
    assert.match(b.list.problem() ?? '', /not being received/)
    // A revocation whose message B cannot hear: B refuses it anyway, from the store.
    await a.list.revokeGrant('unheard')
    await waitFor(() => b.list.refusal(marks('unheard')) !== undefined, 'B polls the store')
    assert.equal(b.list.problem() !== undefined, true, 'still not trusted while silent')

    // New connections get through again: B's next subscription hears its heartbeat.
    const silentUpTo = relay.connections
    relay.silent = (i) => i > 0 && i < silentUpTo
    await waitFor(() => b.events.includes('resynced'), 'B subscribed anew')
    assert.equal(b.list.problem(), undefined)
    await a.list.revokeGrant('after')
    await waitFor(() => b.list.refusal(marks('after')) !== undefined, 'B hears again')
    assert.equal(a.list.refusal(marks('never-revoked')), undefined)
    assert.equal(b.list.refusal(marks('never-revoked')), undefined)
  })
})
