// The two defects of multiplexed lanes, fixed (bridge/lane-leases.ts, lane-waiters.ts, lane.ts),
// against real stdio processes: a request that must run alone is not overtaken by plain ones
// that keep sharing the lane it waits for, and a server→client request among several plain
// requests ends the one that fails as the missing capability (-32021), as when it ran alone.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import type { Lease } from '../../gateway/bridge/lanes.js'
import type { CallOutcome } from '../../gateway/bridge/sessionless.js'
import { configSchema } from '../../gateway/config/schema.js'
import { assertNoLaneHeld, startLaneEngine, toolCall } from '../helpers/lane-engine.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const FIXTURE = join(SERVERS_DIR, 'fixture.js')
const tick = () => new Promise((r) => setImmediate(r))

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()))
})

/** Alice's lanes of a fixture server: `lanes` of them at once, `plain` plain requests each. */
function harness(limits: { lanes: number; plain: number }) {
  const config = configSchema.parse({
    servers: { s: { command: process.execPath, args: [FIXTURE], maxSessionsPerSubject: 17 } },
    limits: {
      sessionless: { lanesPerSubject: limits.lanes, lanePlainConcurrency: limits.plain },
    },
  })
  const e = startLaneEngine(config)
  const { lanes } = e
  const h = {
    lanes,
    plain: () => lanes.lease('s', e.caller(), undefined, true),
    alone: () => lanes.lease('s', e.caller()),
    /** Until `n` requests wait for a lane, or `done()`: a state, never a duration. */
    async waiting(n: number, done: () => boolean = () => false) {
      while ((lanes.waiters().get('s') ?? 0) !== n && !done()) await tick()
    },
    call(
      name: string,
      args: Record<string, unknown> = {},
      id = 1,
      signal = new AbortController().signal,
    ): Promise<CallOutcome> {
      return e.call('s', toolCall(name, args, { id }), { signal })
    },
    async running(n: number) {
      while (lanes.inFlight('s') !== n) await tick()
    },
    assertReleased: (why: string) => assertNoLaneHeld(lanes, why),
    close: () => e.close(),
  }
  open.push(h)
  return h
}

/** A pending promise, and whether it has settled yet. */
function watch<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true),
  )
  return { p, settled: () => settled }
}

describe('a request that must run alone is not starved by plain ones', () => {
  for (const late of [1, 3, 8]) {
    it(`one lane, ${late} plain request(s) arriving after it waits: it runs first`, async () => {
      const h = harness({ lanes: 1, plain: 16 })
      const first = await h.plain()
      const alone = watch(h.alone())
      await h.waiting(1)
      // Plain requests arriving now would fit on the shared lane (room for 16): they queue.
      const plain = Array.from({ length: late }, () => watch(h.plain()))
      await h.waiting(1 + late, () => plain.some((p) => p.settled()))
      assert.ok(!plain.some((p) => p.settled()), 'no plain request joined the lane meanwhile')
      h.lanes.release(first.lane, first.holder)
      const held = await alone.p
      assert.equal(held.lane, first.lane, 'the lane it waited for, handed over as it emptied')
      await tick()
      assert.ok(!plain.some((p) => p.settled()), 'it runs alone')
      h.lanes.release(held.lane, held.holder)
      // Then every plain request that waited shares the lane at once.
      const leases: Lease[] = await Promise.all(plain.map((p) => p.p))
      for (const l of leases) assert.equal(l.lane, first.lane)
      assert.equal(h.lanes.inFlight('s'), late)
      for (const l of leases) h.lanes.release(l.lane, l.holder)
      h.assertReleased('fair')
    })
  }

  it('a plain request that waited before it keeps its place ahead of it', async () => {
    const h = harness({ lanes: 1, plain: 1 })
    const first = await h.plain()
    const before = watch(h.plain())
    await h.waiting(1)
    const alone = watch(h.alone())
    await h.waiting(2)
    h.lanes.release(first.lane, first.holder)
    const second = await before.p
    await tick()
    assert.equal(alone.settled(), false, 'the older plain request runs first')
    h.lanes.release(second.lane, second.holder)
    const held = await alone.p
    h.lanes.release(held.lane, held.holder)
    h.assertReleased('order')
  })
})

describe('a server→client request among several plain ones', () => {
  it('ends the request that failed with -32021, as when it ran alone', async () => {
    const h = harness({ lanes: 4, plain: 16 })
    const ends = [new AbortController(), new AbortController()]
    const gates = ends.map((end, i) => h.call('gate', { name: `g${i}` }, 10 + i, end.signal))
    await h.running(2)
    const asked = await h.call('elicit', { message: 'name?' }, 20)
    assert.equal(asked.kind, 'error', JSON.stringify(asked))
    assert.equal((asked as { error: { code: number } }).error.code, -32021)
    assert.equal(h.lanes.size, 1, 'it ran on the shared process')
    for (const end of ends) end.abort()
    assert.deepEqual(await Promise.all(gates), [{ kind: 'cancelled' }, { kind: 'cancelled' }])
    h.assertReleased('asked')
  })
})
