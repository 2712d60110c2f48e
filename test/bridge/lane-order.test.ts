// Requests waiting for a lane are served in arrival order (bridge/lane-waiters.ts,
// lane-leases.ts), also when the lane they wait for goes away and the first of them starts a
// new process the others then share: the one that starts it is served before those that join.
// Real stdio processes; every wait is for a state, never a duration.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import type { Lease } from '../../gateway/bridge/lanes.js'
import { configSchema } from '../../gateway/config/schema.js'
import { assertNoLaneHeld, startLaneEngine, toolCall } from '../helpers/lane-engine.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const FIXTURE = join(SERVERS_DIR, 'fixture.js')
const tick = () => new Promise((r) => setImmediate(r))

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

/**
 * Alice's lanes of a fixture server: one at a time, shared by up to 16 plain requests; with
 * `record`, each process appends every message it receives there.
 */
function engine(record?: string) {
  const env = record === undefined ? {} : { FIXTURE_RECORD_FILE: record }
  const config = configSchema.parse({
    servers: { s: { command: process.execPath, args: [FIXTURE], env } },
    limits: { sessionless: { lanesPerSubject: 1, lanePlainConcurrency: 16 } },
  })
  const e = startLaneEngine(config)
  open.push(e)
  const { lanes } = e
  return {
    e,
    lanes,
    plain: () => lanes.lease('s', e.caller(), undefined, true),
    alone: () => lanes.lease('s', e.caller()),
    /** Until `n` requests wait for a lane: a state, never a duration. */
    async waiting(n: number) {
      while ((lanes.waiters().get('s') ?? 0) !== n) await tick()
    },
  }
}

describe('waiters are served in arrival order', () => {
  for (const n of [2, 3, 5]) {
    it(`the lane's holder leaves with its process: ${n} plain waiters share a new one, the first served first`, async () => {
      const e = engine()
      const holder = await e.alone()
      const order: number[] = []
      const waiting: Promise<Lease>[] = []
      for (let i = 0; i < n; i++) {
        const p = e.plain()
        void p.then(() => order.push(i))
        waiting.push(p)
        await e.waiting(i + 1)
      }
      // The holder's call ended without the process's answer (its client left): the lane ends
      // once released (lane.ts `abandoned`), and the waiters need a new process.
      holder.lane.abandoned = true
      e.lanes.release(holder.lane, holder.holder)
      const leases = await Promise.all(waiting)
      assert.deepEqual(
        order,
        Array.from({ length: n }, (_, i) => i),
        'served in the order they came',
      )
      for (const l of leases) {
        assert.notEqual(l.lane, holder.lane)
        assert.equal(l.lane, leases[0]!.lane, 'they share one new process')
      }
      for (const l of leases) e.lanes.release(l.lane, l.holder)
      assertNoLaneHeld(e.lanes, 'order')
    })
  }
})

describe('calls waiting for a lane reach the new process in arrival order', () => {
  it("the holder's call is cancelled and its process ends: the waiting calls are sent first come, first sent", async () => {
    const record = join(mkdtempSync(join(tmpdir(), 'lane-order-')), 'record.jsonl')
    const { e, lanes, waiting } = engine(record)
    // A call holding the lane alone (it asks for progress), running at the process's gate.
    const leave = new AbortController()
    let running!: () => void
    const atGate = new Promise<void>((r) => (running = r))
    const holding = e.call(
      's',
      toolCall('gate', { name: 'held' }, { id: 1, meta: { progressToken: 'p' } }),
      {
        signal: leave.signal,
        notify: () => running(),
      },
    )
    await atGate
    const calls: Promise<unknown>[] = []
    for (let n = 0; n < 3; n++) {
      calls.push(e.call('s', toolCall('echo_args', { n }, { id: 10 + n })))
      await waiting(n + 1)
    }
    // Its client leaves: the process may still be at it, so the lane ends once released.
    leave.abort()
    assert.equal((await holding).kind, 'cancelled')
    await Promise.all(calls)
    const received = readFileSync(record, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map(
        (l) =>
          JSON.parse(l) as {
            method?: string
            params?: { name?: string; arguments?: { n?: number } }
          },
      )
    const inits = received.filter((m) => m.method === 'initialize').length
    assert.equal(inits, 2, 'a new process was started for them')
    const sent = received
      .filter((m) => m.params?.name === 'echo_args')
      .map((m) => m.params!.arguments!.n)
    assert.deepEqual(sent, [0, 1, 2], 'sent in the order they came')
    assertNoLaneHeld(lanes, 'sent')
  })
})
