// LaneEvents: who hears the lanes' server events, and what one event costs. A shared process's
// list_changed reaches every principal's views of it; each listener must be told only its own
// principal's events, and the gateway's own listeners to every event once, or one event costs
// principals x listeners calls (measured through a real gateway with 3,000 users, each with a
// lane and an endpoint session: 316 ms of CPU per event, 30 ms now).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { LaneEvent } from '../../gateway/bridge/lane.js'
import { LaneEvents } from '../../gateway/bridge/lane-events.js'

const tick = () => new Promise((resolve) => setImmediate(resolve))
const changed = (server: string, owner: string): LaneEvent => ({
  server,
  owner,
  method: 'notifications/tools/list_changed',
  params: undefined,
})

describe('LaneEvents', () => {
  it("a shared process's event, repeated by every view: each principal once, everyone's listeners once", () => {
    const events = new LaneEvents(4)
    const owners = Array.from({ length: 50 }, (_, i) => `["iss","u${i}"]`)
    const heard = new Map<string, LaneEvent[]>()
    for (const owner of owners) {
      const mine: LaneEvent[] = []
      heard.set(owner, mine)
      events.listen(
        'sh',
        owner,
        (e) => mine.push(e),
        () => {},
      )
    }
    const everyone: LaneEvent[] = []
    events.onEvent((e) => everyone.push(e))
    // Three views (lanes) of each principal, all told by the one process in the same tick.
    for (let view = 0; view < 3; view++)
      for (const owner of owners) events.emit(changed('sh', owner), true)
    for (const owner of owners)
      assert.deepEqual(
        heard.get(owner)!.map((e) => e.owner),
        [owner],
        'a listen stream is told its own principal’s event, once',
      )
    assert.equal(everyone.length, 1, "the gateway's own listener to every event hears it once")
    assert.equal(events.streams, owners.length)
  })

  it('a session-mode process’s event goes to its principal’s listeners and to everyone’s', () => {
    const events = new LaneEvents(4)
    const a: LaneEvent[] = []
    const b: LaneEvent[] = []
    const all: LaneEvent[] = []
    events.onEventOf('A', (e) => a.push(e))
    events.listen(
      's',
      'B',
      (e) => b.push(e),
      () => {},
    )
    events.onEvent((e) => all.push(e))
    events.emit(changed('s', 'A'), false)
    events.emit(changed('s', 'A'), false)
    events.emit(changed('s', 'B'), false)
    assert.equal(a.length, 2)
    assert.equal(b.length, 1)
    assert.equal(all.length, 3, 'not shared: every event, as each process is its own')
  })

  it('two shared servers in one tick are two events; the next tick is a new one', async () => {
    const events = new LaneEvents(4)
    const a: LaneEvent[] = []
    const all: LaneEvent[] = []
    events.onEventOf('A', (e) => a.push(e))
    events.onEvent((e) => all.push(e))
    events.emit(changed('sh1', 'A'), true)
    events.emit(changed('sh2', 'A'), true)
    assert.deepEqual(
      a.map((e) => e.server),
      ['sh1', 'sh2'],
    )
    assert.equal(all.length, 2)
    await tick()
    events.emit(changed('sh1', 'A'), true)
    assert.equal(a.length, 3)
    assert.equal(all.length, 3)
  })

  it('unsubscribed listeners hear nothing, and free their place', () => {
    const events = new LaneEvents(1)
    const a: LaneEvent[] = []
    const off = events.onEventOf('A', (e) => a.push(e))
    const stop = events.listen(
      's',
      'A',
      (e) => a.push(e),
      () => {},
    )!
    assert.equal(
      events.listen(
        's',
        'A',
        () => {},
        () => {},
      ),
      undefined,
      'listensPerSubject',
    )
    off()
    stop()
    stop()
    assert.equal(events.streams, 0)
    events.emit(changed('s', 'A'), false)
    assert.equal(a.length, 0)
    assert.ok(
      events.listen(
        's',
        'A',
        () => {},
        () => {},
      ),
      'room again',
    )
  })
})
