// Every abort listener the bridge adds to a request's signal is removed once it is no longer
// needed, on every path: a signal outlives what listens to it (a client's request, a session's
// waiting request), and a listener left behind keeps what it closes over alive and runs late.
// Counted on real AbortSignals with node:events' getEventListeners, over real stdio processes.
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { configSchema } from '../../gateway/config/schema.js'
import { assertNoLaneHeld, startLaneEngine, toolCall } from '../helpers/lane-engine.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const FIXTURE = join(SERVERS_DIR, 'fixture.js')
const tick = () => new Promise((r) => setImmediate(r))
const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

/** Alice's lanes of a fixture server: one (two plain requests share it); a lease waits at most `laneWait` ms. */
function engine(laneWait = 60_000) {
  const e = startLaneEngine(
    configSchema.parse({
      servers: { s: { command: process.execPath, args: [FIXTURE] } },
      limits: { sessionless: { lanesPerSubject: 1, lanePlainConcurrency: 2, laneWait } },
    }),
  )
  open.push(e)
  /** Until `n` requests wait for a lane: a state, never a duration. */
  const waiting = async (n: number) => {
    while ((e.lanes.waiters().get('s') ?? 0) !== n) await tick()
  }
  return { ...e, waiting }
}

describe('lane waiters (bridge/lane-waiters.ts)', () => {
  it('a waiter handed the lane as it is released: its abort listener is gone', async () => {
    const e = engine()
    const first = await e.lanes.lease('s', e.caller())
    const end = new AbortController()
    const second = e.lanes.lease('s', { ...e.caller(), signal: end.signal })
    await e.waiting(1)
    assert.equal(listeners(end.signal), 1, 'a waiting lease listens for its client going')
    e.lanes.release(first.lane, first.holder)
    const held = await second
    assert.equal(held.lane, first.lane, 'handed the lane it waited for')
    assert.equal(listeners(end.signal), 0, 'served: nothing listens on its signal any more')
    e.lanes.release(held.lane, held.holder)
    assertNoLaneHeld(e.lanes, 'served')
  })

  it('a waiter woken to look again, waiting again, then served: one listener at a time, none after', async () => {
    const e = engine()
    // Two plain requests share the one lane; one that must run alone waits for it.
    const a = await e.lanes.lease('s', e.caller(), undefined, true)
    const b = await e.lanes.lease('s', e.caller(), undefined, true)
    assert.equal(a.lane, b.lane)
    const end = new AbortController()
    const alone = e.lanes.lease('s', { ...e.caller(), signal: end.signal })
    await e.waiting(1)
    // One plain request leaves: the lane is not free, the waiter is woken, looks and waits again.
    e.lanes.release(a.lane, a.holder)
    await e.waiting(1)
    assert.equal(listeners(end.signal), 1, 'woken and waiting again: still one listener')
    e.lanes.release(b.lane, b.holder)
    const held = await alone
    assert.equal(listeners(end.signal), 0, 'served: none')
    e.lanes.release(held.lane, held.holder)
    assertNoLaneHeld(e.lanes, 'woken, then served')
  })

  it('a waiter whose laneWait ran out: refused, its listener gone', async () => {
    const e = engine(50)
    const first = await e.lanes.lease('s', e.caller())
    const end = new AbortController()
    await assert.rejects(e.lanes.lease('s', { ...e.caller(), signal: end.signal }), {
      code: 'too_many_sessions',
    })
    assert.equal(listeners(end.signal), 0)
    e.lanes.release(first.lane, first.holder)
  })
})

describe('a sessionless call (bridge/sessionless.ts)', () => {
  it("answered: nothing listens on the client's signal any more", async () => {
    const e = engine()
    const end = new AbortController()
    const outcome = await e.call('s', toolCall('pid'), { signal: end.signal })
    assert.equal(outcome.kind, 'result', JSON.stringify(outcome))
    assert.equal(listeners(end.signal), 0)
    assertNoLaneHeld(e.lanes, 'answered')
  })

  it('one that waited for the lane, then answered: none either', async () => {
    const e = engine()
    const first = await e.lanes.lease('s', e.caller())
    const end = new AbortController()
    const call = e.call('s', toolCall('pid'), { signal: end.signal })
    await e.waiting(1)
    e.lanes.release(first.lane, first.holder)
    const outcome = await call
    assert.equal(outcome.kind, 'result', JSON.stringify(outcome))
    assert.equal(listeners(end.signal), 0)
  })
})
