// The lifecycle toolkit every owner of processes uses (bridge/lifecycle.ts): the idle reaper's
// pace and arming (it sweeps only while there are holders), backoff delays,
// a drain bounded by its grace, the gateway's own request and its reply (matched by id, given
// up on exit, send failure or silence, its listener always removed), and the answer to a
// server→client request nobody relays. The own request runs against a real stdio process.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { afterEach, describe, it, mock } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { spawnChild, type Child } from '../../gateway/bridge/child.js'
import { exchange, initializeChild } from '../../gateway/bridge/handshake.js'
import {
  Backoff,
  drain,
  ownRequest,
  reapEvery,
  refuseServerRequest,
  startReaper,
  type OwnPeer,
} from '../../gateway/bridge/lifecycle.js'
import { configSchema } from '../../gateway/config/schema.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const children: Child[] = []
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.close()))
})

describe('lifecycle: the reaper', () => {
  const paces = [
    { idles: [], every: 10_000 },
    { idles: [0], every: 10_000 },
    { idles: [0, 300], every: 150 },
    { idles: [30_000, 4000], every: 2000 },
    { idles: [60], every: 50 },
  ]
  for (const c of paces)
    it(`sweeps every ${c.every} ms with idle timeouts [${c.idles}]`, () =>
      assert.equal(reapEvery(c.idles), c.every))

  /**
   * Steps against a mocked clock, the reaper's pace 100 ms: `watch`, `stop`, `hold` (what the
   * sweeps answer from now on: holders left or not), or `tick` ms. Returns when each sweep ran.
   */
  type Step = 'watch' | 'stop' | { hold: boolean } | { tick: number }
  function run(steps: Step[]): number[] {
    mock.timers.enable({ apis: ['setTimeout'] })
    try {
      let now = 0
      let holders = true
      const sweeps: number[] = []
      const reaper = startReaper([200], () => {
        sweeps.push(now)
        return holders
      })
      for (const s of steps) {
        if (s === 'watch') reaper.watch()
        else if (s === 'stop') reaper.stop()
        else if ('hold' in s) holders = s.hold
        else
          for (let i = 0; i < s.tick; i += 10) {
            now += 10
            mock.timers.tick(10)
          }
      }
      reaper.stop()
      return sweeps
    } finally {
      mock.timers.reset()
    }
  }
  const cases: { name: string; steps: Step[]; sweeps: number[] }[] = [
    { name: 'never watched: no sweep', steps: [{ tick: 1000 }], sweeps: [] },
    {
      name: 'watched: a sweep every pace while holders are left',
      steps: ['watch', { tick: 350 }],
      sweeps: [100, 200, 300],
    },
    {
      name: 'a sweep that leaves no holder is the last',
      steps: ['watch', { tick: 150 }, { hold: false }, { tick: 500 }],
      sweeps: [100, 200],
    },
    {
      name: 'watched again after the last: sweeps again, a pace after the watch',
      steps: [{ hold: false }, 'watch', { tick: 250 }, { hold: true }, 'watch', { tick: 250 }],
      sweeps: [100, 350, 450],
    },
    {
      name: 'watched while sweeping: one timer, not two',
      steps: ['watch', { tick: 150 }, 'watch', 'watch', { tick: 200 }],
      sweeps: [100, 200, 300],
    },
    {
      name: 'stopped: no sweep, and watch does not restart it',
      steps: ['watch', { tick: 150 }, 'stop', 'watch', { tick: 500 }],
      sweeps: [100],
    },
  ]
  for (const c of cases) it(c.name, () => assert.deepEqual(run(c.steps), c.sweeps))
})

describe('lifecycle: backoff', () => {
  const cases = [
    {
      name: 'doubles from first',
      first: 100,
      max: 10_000,
      failures: 4,
      delays: [100, 200, 400, 800],
    },
    { name: 'stays at max', first: 100, max: 300, failures: 4, delays: [100, 200, 300, 300] },
    { name: 'first equal to max', first: 50, max: 50, failures: 3, delays: [50, 50, 50] },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const b = new Backoff(c)
      assert.deepEqual(
        Array.from({ length: c.failures }, () => b.next()),
        c.delays,
      )
      b.reset()
      assert.equal(b.next(), c.first, 'after a success the next failure waits `first` again')
    })
  }
  it('ran: a process that served stableAfter resets the delays, one that exited sooner keeps doubling', () => {
    const b = new Backoff({ first: 10, max: 1000, stableAfter: 5000 })
    assert.equal(b.next(), 10)
    for (const ran of [0, 4999, 100]) b.ran(ran)
    assert.equal(b.next(), 20, 'exits sooner than stableAfter reset nothing')
    b.ran(4999)
    assert.equal(b.next(), 40)
    b.ran(5000)
    assert.equal(b.next(), 10, 'a stable run: `first` again')
  })
})

describe('lifecycle: drain', () => {
  it('resolves true at once when nothing is busy', async () => {
    assert.equal(await drain(() => false, 60_000), true)
  })
  it('waits until the work in flight ends', async () => {
    let busy = true
    let looked = 0
    // Busy for three looks, then done: the drain saw it end.
    assert.equal(await drain(() => (++looked > 3 ? (busy = false) : busy), 60_000), true)
    assert.equal(busy, false)
  })
  it('gives up at the grace, work still in flight', async () => {
    assert.equal(await drain(() => true, 0), false)
  })
})

/** A peer in memory: what was sent, and a way to answer as the other side. */
function memoryPeer(o: { failSend?: boolean } = {}) {
  let hear: ((m: JSONRPCMessage) => void) | undefined
  let lost: (() => void) | undefined
  const sent: JSONRPCMessage[] = []
  const peer: OwnPeer = {
    send: async (m) => {
      if (o.failSend) throw new Error('not running')
      sent.push(m)
    },
    listen(h, l) {
      hear = h
      lost = l
      return () => {
        hear = undefined
        lost = undefined
      }
    },
  }
  return {
    peer,
    sent,
    say: (m: unknown) => hear?.(m as JSONRPCMessage),
    lose: () => lost?.(),
    get listening() {
      return hear !== undefined
    },
  }
}

describe('lifecycle: own request', () => {
  const reply = { jsonrpc: '2.0', id: 'mine', result: { ok: true } }
  const cases: {
    name: string
    failSend?: boolean
    then: (p: ReturnType<typeof memoryPeer>) => void
    expect: unknown
  }[] = [
    {
      name: 'its own reply, after a stranger one',
      then: (p) => {
        p.say({ jsonrpc: '2.0', id: 'someone else', result: {} })
        p.say({ jsonrpc: '2.0', method: 'notifications/message', params: {} })
        p.say(reply)
      },
      expect: reply,
    },
    { name: 'the peer goes away', then: (p) => p.lose(), expect: undefined },
    { name: 'the send fails', failSend: true, then: () => {}, expect: undefined },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const p = memoryPeer({ failSend: c.failSend })
      const pending = ownRequest(p.peer, { id: 'mine', method: 'tools/list' }, 60_000)
      c.then(p)
      assert.deepEqual(await pending, c.expect)
      assert.equal(p.listening, false, 'the listener is removed')
      if (!c.failSend)
        assert.deepEqual(p.sent, [{ jsonrpc: '2.0', id: 'mine', method: 'tools/list' }])
    })
  }
  it('silence past the timeout', async () => {
    const p = memoryPeer()
    assert.equal(await ownRequest(p.peer, { id: 'mine', method: 'ping' }, 1), undefined)
    assert.equal(p.listening, false)
  })

  it("a real process's reply to the gateway's own request; its exit ends a wait", async () => {
    const config = configSchema.parse({
      servers: { f: { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] } },
    }).servers.f!
    const child = await spawnChild(config, pino({ level: 'silent' }))
    children.push(child)
    await initializeChild(child, 10_000)
    const listed = (await exchange(child, 'tools/list', {}, 10_000)) as {
      result?: { tools?: { name: string }[] }
    }
    assert.ok(listed.result?.tools?.some((t) => t.name === 'pid'))
    assert.equal(child.onmessage, undefined, 'the process is nobody’s listener afterwards')
    // The crash tool exits before answering: the wait ends with the process, not the timeout.
    const crashed = await exchange(child, 'tools/call', { name: 'crash', arguments: {} }, 600_000)
    assert.equal(crashed, undefined)
  })
})

describe('lifecycle: a server→client request nobody relays', () => {
  const cases = [
    { method: 'ping', expect: { jsonrpc: '2.0', id: 4, result: {} } },
    {
      method: 'sampling/createMessage',
      expect: { jsonrpc: '2.0', id: 4, error: { code: -32601, message: 'no client here' } },
    },
    {
      method: 'roots/list',
      expect: { jsonrpc: '2.0', id: 4, error: { code: -32601, message: 'no client here' } },
    },
  ]
  for (const c of cases) {
    it(c.method, () => {
      assert.deepEqual(refuseServerRequest(4, c.method, 'no client here'), c.expect)
    })
  }
})
