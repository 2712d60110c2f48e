import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { SessionEventStore, type ReplayBounds } from '../../gateway/bridge/event-store.js'

const LOOSE: ReplayBounds = { maxEvents: 1000, maxBytes: 1 << 20, maxAge: 60_000 }
const PRIMING = {} as JSONRPCMessage
const note = (n: number) =>
  ({ jsonrpc: '2.0', method: 'notifications/message', params: { n } }) as JSONRPCMessage
const reply = (id: number) => ({ jsonrpc: '2.0', id, result: {} }) as JSONRPCMessage

/** A store on a clock the test moves. */
function store(bounds: Partial<ReplayBounds> = {}) {
  const clock = { t: 0 }
  return { s: new SessionEventStore({ ...LOOSE, ...bounds }, () => clock.t), clock }
}

/** What a resumption from `id` would send, or the refusal. */
async function replay(s: SessionEventStore, id: string) {
  const stream = await s.getStreamIdForEventId(id)
  if (stream === undefined) return 'refused'
  const sent: [string, unknown][] = []
  assert.equal(
    await s.replayEventsAfter(id, { send: async (eid, m) => void sent.push([eid, m]) }),
    stream,
  )
  return sent
}

describe('SessionEventStore ids and replay', () => {
  test('ids are unique across streams and name their stream', async () => {
    const { s } = store()
    const ids = [
      await s.storeEvent('a', PRIMING),
      await s.storeEvent('b', PRIMING),
      await s.storeEvent('_GET_stream', note(1)),
      await s.storeEvent('a', note(2)),
      await s.storeEvent('b', reply(1)),
      await s.storeEvent('a', reply(2)),
    ]
    assert.equal(new Set(ids).size, ids.length)
    for (const id of ids)
      assert.equal(await s.getStreamIdForEventId(id), id.slice(0, id.lastIndexOf('.')))
  })

  test("replays only the named stream's later events, priming left out", async () => {
    const { s } = store()
    const a0 = await s.storeEvent('a', PRIMING)
    await s.storeEvent('b', PRIMING)
    const a1 = await s.storeEvent('a', note(1))
    await s.storeEvent('b', note(2))
    await s.storeEvent('_GET_stream', note(3))
    const a2 = await s.storeEvent('a', reply(7))
    assert.deepEqual(await replay(s, a0), [
      [a1, note(1)],
      [a2, reply(7)],
    ])
    assert.deepEqual(await replay(s, a1), [[a2, reply(7)]])
    assert.deepEqual(await replay(s, a2), [])
  })

  test('after() gives the events after an id as they go on the wire (id, JSON), priming events left out', async () => {
    const { s } = store()
    const a0 = s.append('a', undefined)
    const b0 = s.append('b', undefined)
    const a1 = s.append('a', JSON.stringify(note(1)))
    s.append('b', JSON.stringify(note(2)))
    const a2 = s.append('a', JSON.stringify(reply(1)))
    assert.deepEqual(s.after(a0), [
      [a1, JSON.stringify(note(1))],
      [a2, JSON.stringify(reply(1))],
    ])
    assert.deepEqual(s.after(a2), [], 'nothing after the last one')
    assert.equal(s.streamOf(b0), 'b')
    assert.equal(s.after('nope.1'), undefined)
    assert.equal(s.streamOf('nope.1'), undefined)
  })

  const bad = ['', 'a', '.1', 'a.', 'a.-1', 'a.ZZ', 'nope.1', `a.${'1'.repeat(20)}`, 'a.zz']
  for (const id of bad) {
    test(`Last-Event-ID ${JSON.stringify(id)} is refused`, async () => {
      const { s } = store()
      await s.storeEvent('a', PRIMING)
      await s.storeEvent('a', note(1))
      assert.equal(await replay(s, id), 'refused')
      await assert.rejects(s.replayEventsAfter(id, { send: async () => {} }))
    })
  }
})

describe('SessionEventStore bounds', () => {
  test('maxEvents: the oldest go first; a resumption that would miss one is refused', async () => {
    const { s } = store({ maxEvents: 3 })
    const a0 = await s.storeEvent('a', PRIMING)
    const a1 = await s.storeEvent('a', note(1))
    const a2 = await s.storeEvent('a', note(2))
    const a3 = await s.storeEvent('a', note(3))
    assert.equal(s.size, 3)
    assert.deepEqual(
      await replay(s, a0),
      [
        [a1, note(1)],
        [a2, note(2)],
        [a3, note(3)],
      ],
      'a0 is gone, nothing after it',
    )
    const a4 = await s.storeEvent('a', note(4))
    assert.equal(await replay(s, a0), 'refused', 'a1 was dropped: replaying from a0 would skip it')
    assert.deepEqual(await replay(s, a1), [
      [a2, note(2)],
      [a3, note(3)],
      [a4, note(4)],
    ])
  })

  test('the last dropped event is still a resumption point (nothing after it is missing)', async () => {
    const { s } = store({ maxEvents: 2 })
    const a0 = await s.storeEvent('a', PRIMING)
    const b0 = await s.storeEvent('b', PRIMING)
    const a1 = await s.storeEvent('a', note(1))
    assert.equal(s.size, 2)
    assert.deepEqual(await replay(s, a0), [[a1, note(1)]])
    assert.deepEqual(await replay(s, b0), [])
  })

  test('maxBytes counts serialized messages; an oversize message is sent live but not kept', async () => {
    const big = { jsonrpc: '2.0', method: 'n', params: { x: 'x'.repeat(2000) } } as JSONRPCMessage
    const { s } = store({ maxBytes: 1024 })
    const a0 = await s.storeEvent('a', PRIMING)
    const a1 = await s.storeEvent('a', note(1))
    assert.equal(s.bytes, JSON.stringify(note(1)).length)
    const a2 = await s.storeEvent('a', big)
    assert.equal(s.size, 0)
    assert.equal(s.bytes, 0)
    assert.equal(await replay(s, a1), 'refused', 'a2 is lost')
    assert.equal(await replay(s, a0), 'refused')
    assert.equal(await replay(s, a2), 'refused', 'no event of the stream is left to find it by')
    const a3 = await s.storeEvent('a', note(3))
    assert.equal(
      await replay(s, a1),
      'refused',
      'a stream seen again after it emptied: anything up to the last drop may be lost',
    )
    assert.deepEqual(
      await replay(s, a2),
      [[a3, note(3)]],
      'the last dropped event: nothing after it is lost',
    )
  })

  test('maxAge: events older than maxAge are dropped on the next store or lookup', async () => {
    const { s, clock } = store({ maxAge: 1000 })
    const a0 = await s.storeEvent('a', PRIMING)
    clock.t = 600
    const a1 = await s.storeEvent('a', note(1))
    clock.t = 1000
    assert.deepEqual(await replay(s, a0), [[a1, note(1)]], 'exactly maxAge old is kept')
    clock.t = 1001
    assert.deepEqual(
      await replay(s, a0),
      [[a1, note(1)]],
      'a0 dropped, a1 kept: nothing after a0 missing',
    )
    clock.t = 1601
    assert.equal(await replay(s, a0), 'refused')
    assert.equal(s.size, 0)
  })

  test('many events over many streams: the events and the streams it remembers stay bounded', async () => {
    const { s } = store({ maxEvents: 100 })
    let last = ''
    for (let i = 0; i < 200_000; i++)
      last = await s.storeEvent(`s${i >> 1}`, i % 2 === 0 ? PRIMING : reply(i))
    assert.equal(s.size, 100)
    // No per-stream record outlives its events (100 events span at most 50 streams here).
    assert.ok((s as unknown as { streams: Map<string, unknown> }).streams.size <= 50)
    assert.deepEqual(await replay(s, last), [])
  })
})
