// Plain sessionless requests (no progress, logs, client capabilities or rounds) sharing one
// lane's process (bridge/lane.ts, lanes.ts), without HTTP, against real stdio processes: how
// many processes run them, where each reply goes, what never shares, and the release of each
// share on every path. After each case no lane is leased and nobody waits for one.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { CallOutcome } from '../../gateway/bridge/sessionless.js'
import { configSchema } from '../../gateway/config/schema.js'
import { assertNoLaneHeld, outcomeText, startLaneEngine, toolCall } from '../helpers/lane-engine.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const FIXTURE = join(SERVERS_DIR, 'fixture.js')
const STRAY = join(import.meta.dirname, '../helpers/stray-server.js')

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()))
})

/** The engine over real processes of `script`, Alice's requests, up to 17 at once. */
async function harness(script = FIXTURE, server: Record<string, unknown> = {}) {
  const config = configSchema.parse({
    // Requests at once are capped by maxSessionsPerSubject too (laneCap): 17 of both.
    servers: {
      s: { command: process.execPath, args: [script], maxSessionsPerSubject: 17, ...server },
    },
    limits: { sessionless: { lanesPerSubject: 17, lanePlainConcurrency: 17 } },
  })
  const e = startLaneEngine(config)
  const { lanes } = e
  const h = {
    lanes,
    rounds: e.rounds,
    /** One request of Alice's; `meta` is its `_meta` (empty: plain). */
    call(
      name: string,
      args: Record<string, unknown> = {},
      o: { meta?: Record<string, unknown>; signal?: AbortSignal; id?: number } = {},
      notify: (m: JSONRPCMessage) => void = () => {},
    ): Promise<CallOutcome> {
      return e.call('s', toolCall(name, args, o), { signal: o.signal, notify })
    },
    /** Until `n` requests run on the server's lanes: a state, never a duration. */
    async running(n: number) {
      while (lanes.inFlight('s') !== n) await new Promise((r) => setImmediate(r))
    },
    assertReleased(why: string) {
      assertNoLaneHeld(lanes, why)
      assert.equal(lanes.inFlight('s'), 0, `${why}: nothing runs`)
    },
    close: () => e.close(),
  }
  open.push(h)
  return h
}

const textOf = outcomeText
const errorOf = (o: CallOutcome) => {
  assert.equal(o.kind, 'error', JSON.stringify(o))
  return (o as { error: { code: number } }).error.code
}
const CAPS = 'io.modelcontextprotocol/clientCapabilities'

describe('plain requests share one process', () => {
  it('16 plain calls in flight run on one process at once; each result is its own', async () => {
    const h = await harness()
    const names = Array.from({ length: 16 }, (_, i) => `g${i}`)
    const gates = names.map((name) => h.call('gate', { name }))
    await h.running(16)
    assert.equal(h.lanes.size, 1, '16 in flight, one process')
    // Gates are per process: were a gate call elsewhere, opening it here would never end it.
    for (const name of names)
      assert.equal(textOf(await h.call('open_gate', { name })), `opened ${name}`)
    assert.deepEqual(
      (await Promise.all(gates)).map(textOf),
      names.map((n) => `passed ${n}`),
    )
    assert.equal(h.lanes.size, 1)
    h.assertReleased('16 at once')
  })

  it('a cold burst starts one process; one client id for all, each gets its own arguments', async () => {
    const h = await harness()
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => h.call('echo_args', { session: 1, i }, { id: 7 })),
    )
    assert.deepEqual(
      results.map((o) => JSON.parse(textOf(o)).i),
      Array.from({ length: 16 }, (_, i) => i),
    )
    assert.equal(h.lanes.size, 1, 'the burst waited for the one process starting, not 16')
    h.assertReleased('cold burst')
  })

  const apart: {
    name: string
    meta: Record<string, unknown>
    tool: string
    args: Record<string, unknown>
    check: (o: CallOutcome, heard: JSONRPCMessage[]) => void
  }[] = [
    {
      name: 'a progress token: its progress comes',
      meta: { progressToken: 'tok' },
      tool: 'notify',
      args: { count: 2 },
      check: (o, heard) => {
        textOf(o)
        assert.equal(heard.filter((m) => 'method' in m && m.method.endsWith('progress')).length, 2)
      },
    },
    {
      name: 'a log level: its logs come',
      meta: { 'io.modelcontextprotocol/logLevel': 'info' },
      tool: 'notify',
      args: { count: 2 },
      check: (o, heard) => {
        textOf(o)
        assert.equal(heard.filter((m) => 'method' in m && m.method.endsWith('message')).length, 2)
      },
    },
    {
      name: 'a declared elicitation capability: its question comes back as a round',
      meta: { [CAPS]: { elicitation: { form: {} } } },
      tool: 'elicit',
      args: { message: 'name?' },
      check: (o) => assert.equal(o.kind, 'input_required', JSON.stringify(o)),
    },
  ]
  for (const c of apart) {
    it(`never shares a process with plain ones: ${c.name}`, async () => {
      const h = await harness()
      const ends = [new AbortController(), new AbortController()]
      const gates = ends.map((end, i) => h.call('gate', { name: `a${i}` }, { signal: end.signal }))
      await h.running(2)
      const plainPid = textOf(await h.call('pid'))
      const ownPid = textOf(await h.call('pid', {}, { meta: c.meta }))
      assert.notEqual(ownPid, plainPid, 'run on a process of its own')
      const heard: JSONRPCMessage[] = []
      c.check(await h.call(c.tool, c.args, { meta: c.meta }, (m) => void heard.push(m)), heard)
      assert.equal(h.lanes.size, 2)
      h.rounds.close()
      for (const end of ends) end.abort()
      assert.deepEqual(await Promise.all(gates), [{ kind: 'cancelled' }, { kind: 'cancelled' }])
      h.assertReleased(c.name)
    })
  }
})

describe('what a plain request costs its process', () => {
  /** The messages the fixture has received so far (FIXTURE_RECORD_FILE), parsed. */
  const received = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { id?: unknown; method?: string; params?: unknown })

  it('the handshake once, then each call is its request alone: no ping, initialize, cancel or envelope', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-plain-wire-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'received.jsonl')
    const h = await harness(FIXTURE, { env: { FIXTURE_RECORD_FILE: file } })
    // The request's envelope as a 2026-07-28 client sends it (the bench's calls): nothing of it
    // is the process's business.
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
    }
    assert.equal(
      JSON.parse(textOf(await h.call('echo_args', { session: 1, i: -1 }, { meta }))).i,
      -1,
    )
    const handshake = received(file)
    assert.deepEqual(
      handshake.slice(0, 2).map((m) => m.method),
      ['initialize', 'notifications/initialized'],
    )
    // Two waves of 16 in flight, as the ×16/1s bench row runs them.
    for (const wave of [0, 1]) {
      const calls = Array.from({ length: 16 }, (_, i) =>
        h.call('echo_args', { session: 1, i: wave * 16 + i }, { meta, id: 1 }),
      )
      const got = (await Promise.all(calls)).map((o) => JSON.parse(textOf(o)).i)
      assert.deepEqual(
        got,
        Array.from({ length: 16 }, (_, i) => wave * 16 + i),
      )
    }
    const later = received(file).slice(handshake.length)
    assert.equal(
      later.length,
      32,
      `32 calls, 32 messages: ${JSON.stringify(later.map((m) => m.method))}`,
    )
    // Each call's own request, as the client's params had it without the envelope (in any order).
    const args = later.map((m) => {
      assert.equal(m.method, 'tools/call')
      const { arguments: a, ...rest } = m.params as { arguments: { session: number; i: number } }
      assert.deepEqual(rest, { name: 'echo_args' }, 'no _meta, nothing added')
      assert.deepEqual(Object.keys(a), ['session', 'i'])
      return a.i
    })
    assert.deepEqual(
      args.sort((a, b) => a - b),
      Array.from({ length: 32 }, (_, i) => i),
    )
    assert.equal(new Set(later.map((m) => m.id)).size, 32, 'each its own id')
    assert.equal(h.lanes.size, 1, 'one process: no lane started again')
    h.assertReleased('two waves')
  })
})

describe('plain requests: every path releases exactly its share', () => {
  it('one times out while the others finish on the same process', async (t) => {
    const h = await harness(FIXTURE, { requestTimeout: 300 })
    // The gateway's timers on a clock the test moves: the quick calls cannot lose a race with
    // 300 ms on a busy machine, and the slow one times out when the clock is moved, not before.
    t.mock.timers.enable({ apis: ['setTimeout'] })
    let slow: ReturnType<typeof h.call>
    try {
      slow = h.call('slow', { ms: 30_000 })
      // Running on its started process (its timeout taken) before the quick ones exist: else,
      // on a slow start, a quick one may arm the lane's shared timer first, and the tick below
      // then fires before the slow call's deadline.
      while (h.lanes.size !== 1 || h.lanes.inFlight('s') !== 1)
        await new Promise((r) => setImmediate(r))
      const quick = [1, 2, 3].map((i) => h.call('echo_args', { session: 2, i }))
      assert.deepEqual(
        (await Promise.all(quick)).map((o) => JSON.parse(textOf(o)).i),
        [1, 2, 3],
      )
      t.mock.timers.tick(300)
    } finally {
      t.mock.timers.reset()
    }
    assert.equal(errorOf(await slow), -32001)
    h.assertReleased('timeout')
    // The process may still be at the call that timed out (stop 25): it ends, now that it is free.
    // (Read through a function: the loop above narrowed `size` to 1 for the compiler.)
    const lanes = () => h.lanes.size
    while (lanes() !== 0) await new Promise((r) => setImmediate(r))
  })

  it('the process exits with 3 plain requests in flight: all 3 fail, the lane is gone', async () => {
    const h = await harness()
    const gates = ['x', 'y'].map((name) => h.call('gate', { name }))
    await h.running(2)
    const crash = h.call('crash', { code: 3 })
    assert.deepEqual((await Promise.all([...gates, crash])).map(errorOf), [-32000, -32000, -32000])
    h.assertReleased('exit')
    while (h.lanes.size !== 0) await new Promise((r) => setImmediate(r))
  })

  it('the client of one of several goes away: only that one is cancelled', async () => {
    const h = await harness()
    const leaves = new AbortController()
    const calls = ['p', 'q', 'r'].map((name) =>
      h.call('gate', { name }, name === 'q' ? { signal: leaves.signal } : {}),
    )
    await h.running(3)
    leaves.abort()
    assert.deepEqual(await calls[1], { kind: 'cancelled' })
    await h.running(2)
    for (const name of ['p', 'r']) await h.call('open_gate', { name })
    assert.equal(textOf((await calls[0])!), 'passed p')
    assert.equal(textOf((await calls[2])!), 'passed r')
    h.assertReleased('one gone')
    // The others joined and finished on it; the process may still be at q (stop 25): it ends.
    while (h.lanes.size !== 0) await new Promise((r) => setImmediate(r))
  })
})

describe('plain requests: hostile processes', () => {
  it('replies to ids nobody sent and unasked logs are dropped; each request gets its own', async () => {
    const h = await harness(STRAY)
    const holds = ['h1', 'h2'].map((name) => h.call('hold', { name }))
    await h.running(2)
    const strays = await Promise.all([1, 2, 3, 4].map((i) => h.call('stray', { i })))
    assert.deepEqual(
      strays.map((o) => JSON.parse(textOf(o)).i),
      [1, 2, 3, 4],
    )
    for (const name of ['h1', 'h2']) await h.call('free', { name })
    assert.deepEqual((await Promise.all(holds)).map(textOf), ['freed h1', 'freed h2'])
    assert.equal(h.lanes.size, 1)
    h.assertReleased('stray ids')
  })

  it('a server→client request among several plain ones is refused; the process does not hang', async () => {
    const h = await harness(STRAY)
    const ends = [new AbortController(), new AbortController()]
    const holds = ends.map((end, i) => h.call('hold', { name: `k${i}` }, { signal: end.signal }))
    await h.running(2)
    assert.equal(
      textOf(await h.call('ask')),
      'refused: the client did not declare the elicitation capability',
    )
    // Its process asked during plain use: from now on one plain request at a time there.
    assert.equal(JSON.parse(textOf(await h.call('stray', { i: 9 }))).i, 9)
    assert.equal(h.lanes.size, 2, 'the next plain request needed a process of its own')
    for (const end of ends) end.abort()
    assert.deepEqual(await Promise.all(holds), [{ kind: 'cancelled' }, { kind: 'cancelled' }])
    h.assertReleased('asked')
  })

  it('a server→client request of the one plain request running is its own (-32021)', async () => {
    const h = await harness()
    const o = await h.call('elicit', { message: 'name?' })
    assert.equal(errorOf(o), -32021)
    h.assertReleased('alone')
  })
})
