// A listen stream's resource subscriptions on a lane (bridge/lane-subscriptions.ts), the one
// place that counts them: the process is subscribed by the first holder of a URI and
// unsubscribed by the last, a hold keeps its process (pinned: not reclaimed while idle) until
// it is released, a release is given once, and the process going away is told. Real processes
// of servers/conformance.js, whose stderr says each subscribe and unsubscribe it got.
import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { pino } from 'pino'
import { SubjectBounds } from '../../gateway/bridge/bounds.js'
import {
  holdSubscriptions,
  type SubscriptionHold,
} from '../../gateway/bridge/lane-subscriptions.js'
import { LanePool } from '../../gateway/bridge/lanes.js'
import { SessionRegistry } from '../../gateway/bridge/registry.js'
import { configSchema } from '../../gateway/config/schema.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { principal } from '../helpers/principal.js'

const WATCHED = 'test://watched-resource'
const TEXT = 'test://static-text'
const ALICE = principal()

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()))
})

/** A lane pool over the conformance server; `trace` hears each (un)subscribe the process got. */
function harness() {
  const config = configSchema.parse({
    servers: {
      conf: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'conformance.js')],
        env: { CONFORMANCE_TRACE: '1' },
      },
    },
  })
  const trace = new EventEmitter()
  const seen: string[] = []
  const log = pino({ level: 'info' }, {
    write(line: string) {
      const stderr = JSON.parse(line).stderr as string | undefined
      const m = stderr?.match(/^conformance: ((?:un)?subscribed .*)$/)
      if (m) {
        seen.push(m[1]!)
        trace.emit('line')
      }
    },
  } as never)
  const bounds = new SubjectBounds({ config, log })
  const registry = new SessionRegistry({ config, log, bounds })
  const lanes = new LanePool({ config, source: registry, bounds, log })
  closers.push(async () => {
    const closing = lanes.close()
    await registry.closeAll(() => lanes.busy)
    await closing
  })
  const lost: string[] = []
  const hold = (uris: string[], name = 'stream'): Promise<SubscriptionHold> =>
    holdSubscriptions(lanes, {
      server: 'conf',
      principal: ALICE,
      uris,
      signal: new AbortController().signal,
      log,
      onLost: () => void lost.push(name),
    })
  /** Resolves once the process has told `n` (un)subscribes in all. */
  const told = async (n: number) => {
    while (seen.length < n) await once(trace, 'line')
    return seen.slice()
  }
  /** Whether an idle process could be ended now (none is pinned by a hold). */
  const reclaimable = () => lanes.reclaimIdle(() => true, 'test')
  return { lanes, hold, told, seen, lost, reclaimable }
}

describe('lane subscriptions: holds', () => {
  it('the first holder of a URI subscribes the process, the last unsubscribes it', async () => {
    const h = harness()
    const a = await h.hold([WATCHED, TEXT], 'a')
    const b = await h.hold([WATCHED], 'b')
    assert.deepEqual(a.subscribed, [WATCHED, TEXT])
    assert.deepEqual(b.subscribed, [WATCHED])
    assert.equal(h.lanes.size, 1, 'both on the one idle process')
    assert.deepEqual(await h.told(2), [`subscribed ${WATCHED}`, `subscribed ${TEXT}`])
    a.release()
    a.release() // given once: a second release takes nothing from b
    assert.deepEqual(await h.told(3), [
      `subscribed ${WATCHED}`,
      `subscribed ${TEXT}`,
      `unsubscribed ${TEXT}`,
    ])
    assert.equal(await h.reclaimable(), false, 'b still holds the process')
    b.release()
    assert.equal((await h.told(4))[3], `unsubscribed ${WATCHED}`)
    assert.equal(h.lanes.busy, false)
    assert.equal(await h.reclaimable(), true, 'no hold left: the idle process may end')
    assert.deepEqual(h.lost, [])
  })

  const cases = [
    { name: 'no URI: the server is only learned, nothing held', uris: [], subscribed: [] },
    {
      name: 'a URI the server refuses is left out, nothing held',
      uris: ['test://no-such-thing'],
      subscribed: [],
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const h = harness()
      const hold = await h.hold(c.uris)
      assert.deepEqual(hold.subscribed, c.subscribed)
      assert.equal((hold.init.serverInfo as { name: string }).name, 'conformance')
      assert.equal(h.lanes.busy, false, 'the lease for placing is given back')
      assert.equal(await h.reclaimable(), true, 'not pinned')
      hold.release()
    })
  }

  it('the process going away ends the hold (the stream ends with it)', async () => {
    const h = harness()
    const hold = await h.hold([WATCHED])
    await h.told(1)
    assert.equal(await h.reclaimable(), false)
    // Shutdown ends every process, pinned or not: the holder hears it.
    await closers.splice(0)[0]!()
    assert.deepEqual(h.lost, ['stream'])
    hold.release()
  })
})
