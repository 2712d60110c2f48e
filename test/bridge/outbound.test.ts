// The bounded outbound stream every SSE body of the gateway goes through, with real metrics and
// a real logger: a client that reads nothing while the producer keeps writing.
import assert from 'node:assert/strict'
import { setImmediate as turn } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import type { EndReason, OutboundStream } from '../../gateway/bridge/outbound.js'
import type { ChunkKind } from '../../gateway/bridge/sse-chunk.js'
import { Outbound, type QueueLimits } from '../../gateway/bridge/outbound-budget.js'
import { createMetrics } from '../../gateway/observability/metrics.js'

const LIMITS: QueueLimits = {
  streamBytes: 100_000,
  streamEvents: 100,
  sessionBytes: 400_000,
  sessionEvents: 400,
}
/** Every chunk the cases build is exactly this long unless said otherwise. */
const SIZE = 200

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** One SSE event carrying `message`, padded (inside the JSON) to `size` bytes, as the SDK writes it. */
function event(message: Record<string, unknown>, size = SIZE, id = 's.1'): Uint8Array {
  const text = (pad: string) =>
    `event: message\nid: ${id}\ndata: ${JSON.stringify({ ...message, pad })}\n\n`
  const bare = encoder.encode(text('')).byteLength
  assert.ok(size >= bare, `a ${size}-byte chunk cannot hold ${JSON.stringify(message)}`)
  return encoder.encode(text('x'.repeat(size - bare)))
}

const note = (label: string, size?: number) =>
  event({ jsonrpc: '2.0', method: 'notifications/message', params: { data: label } }, size)
const reply = (label: string, size?: number) =>
  event({ jsonrpc: '2.0', id: label, result: {} }, size)
const request = (label: string, size?: number) =>
  event({ jsonrpc: '2.0', id: label, method: 'ping' }, size)
const keepalive = () => encoder.encode(': keepalive\n\n')
const priming = () => encoder.encode('id: s.0\ndata: \n\n')

/** What the client reads of a chunk: the message's id or data, or the comment. */
function label(chunk: Uint8Array): string {
  const text = decoder.decode(chunk)
  if (text.startsWith(':')) return text.trim()
  if (/^id: [^\n]*\ndata: \n/.test(text)) return 'priming'
  const m = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as {
    id?: string
    params?: { data?: string }
  }
  return m.id ?? m.params!.data!
}

/** A gateway's outbound side with real metrics, one session budget, and what the streams logged. */
function setup(limits: Partial<QueueLimits> = {}) {
  const metrics = createMetrics({
    sessions: () => 0,
    endpointSessions: () => 0,
    lanes: () => 0,
    waitingRounds: () => 0,
    laneWaiters: () => new Map(),
    listenStreams: () => 0,
    queuedBytes: () => 0,
    queuedEvents: () => 0,
    endpointUserLists: () => 0,
  })
  const outbound = new Outbound({ ...LIMITS, ...limits }, metrics)
  const budget = outbound.session()
  const logs: { level: number; msg: string }[] = []
  const log = pino(
    { level: 'debug' },
    { write: (line: string) => void logs.push(JSON.parse(line)) },
  )
  const ends: EndReason[] = []
  const open = () => budget.stream({ log, onEnd: (why) => ends.push(why) })
  /** Dropped events by `reason kind`. */
  const dropped = async () => {
    const { values } = await metrics.streamEventsDropped.get()
    return Object.fromEntries(
      values
        .filter((v) => v.value > 0)
        .map((v) => [`${v.labels.reason} ${v.labels.kind}`, v.value]),
    )
  }
  const closed = async () =>
    (await metrics.streamsClosed.get()).values.find((v) => v.labels.reason === 'slow_client')
      ?.value ?? 0
  return { outbound, budget, open, logs, ends, dropped, closed }
}

/** Reads what is queued, then whether the stream has ended (without waiting for more). */
async function readAll(
  out: OutboundStream,
  reader = out.body.getReader(),
): Promise<{ read: string[]; ended: boolean }> {
  const read: string[] = []
  while (out.queuedEvents > 0) read.push(label((await reader.read()).value!))
  // An ended stream answers at once; an open one would wait: look without waiting.
  const ended = out.closed ? (await reader.read()).done : false
  return { read, ended }
}

interface Case {
  name: string
  limits: Partial<QueueLimits>
  /** What the producer sends while its client reads nothing; `[chunk, kind]` when the producer says what it is. */
  push: (Uint8Array | [Uint8Array, ChunkKind])[]
  /** What the client then reads, in order. */
  reads: string[]
  /** Dropped events, by `reason kind`. */
  dropped: Record<string, number>
  /** How the stream ended, if it did. */
  end?: EndReason
}

const cases: Case[] = [
  {
    name: 'within the bounds nothing is dropped and the order is kept',
    limits: { streamEvents: 4, streamBytes: 4 * SIZE },
    push: [note('n1'), reply('r1'), note('n2'), request('q1')],
    reads: ['n1', 'r1', 'n2', 'q1'],
    dropped: {},
  },
  {
    name: 'a notification past the byte bound is dropped',
    limits: { streamBytes: 3.5 * SIZE },
    push: [note('n1'), note('n2'), note('n3'), note('n4'), note('n5')],
    reads: ['n1', 'n2', 'n3'],
    dropped: { 'stream_bytes notification': 2 },
  },
  {
    name: 'a notification past the count bound is dropped',
    limits: { streamEvents: 2 },
    push: [note('n1'), note('n2'), note('n3')],
    reads: ['n1', 'n2'],
    dropped: { 'stream_events notification': 1 },
  },
  {
    name: 'keep-alives and priming events past the bound are dropped',
    limits: { streamEvents: 1 },
    push: [note('n1'), keepalive(), priming(), note('n2')],
    reads: ['n1'],
    dropped: { 'stream_events control': 2, 'stream_events notification': 1 },
  },
  {
    name: 'a reply past the bound: queued notifications give way, oldest first, and the reply is kept',
    limits: { streamEvents: 3 },
    push: [note('n1'), reply('r1'), note('n2'), note('n3'), reply('r2')],
    reads: ['r1', 'n2', 'r2'],
    dropped: { 'stream_events notification': 2 },
  },
  {
    name: 'a reply past the bound with only owed messages queued closes the stream and frees its queue',
    limits: { streamEvents: 2 },
    push: [reply('r1'), request('q1'), reply('r2'), note('n1')],
    reads: [],
    dropped: {},
    end: 'slow_client',
  },
  {
    name: 'a server→client request past the bound closes the stream',
    limits: { streamBytes: 2 * SIZE },
    push: [request('q1'), request('q2'), request('q3')],
    reads: [],
    dropped: {},
    end: 'slow_client',
  },
  {
    name: 'a chunk larger than the whole bound passes when nothing else is queued',
    limits: { streamBytes: 2 * SIZE, sessionBytes: 2 * SIZE },
    push: [reply('big', 10 * SIZE)],
    reads: ['big'],
    dropped: {},
  },
  {
    name: 'a notification larger than the whole bound behind another one is dropped',
    limits: { streamBytes: 2 * SIZE, sessionBytes: 2 * SIZE },
    push: [note('n1'), note('big', 10 * SIZE), note('n2')],
    reads: ['n1', 'n2'],
    dropped: { 'stream_bytes notification': 1 },
  },
  {
    name: 'a reply larger than the whole bound behind a reply closes the stream',
    limits: { streamBytes: 2 * SIZE, sessionBytes: 2 * SIZE },
    push: [reply('r1'), reply('big', 10 * SIZE)],
    reads: [],
    dropped: {},
    end: 'slow_client',
  },
  {
    name: 'a final message is always queued, past the bound too',
    limits: { streamEvents: 2 },
    push: [reply('r1'), reply('r2'), [reply('last'), 'final']],
    reads: ['r1', 'r2', 'last'],
    dropped: {},
  },
  {
    name: 'what the producer says a chunk is counts, unread',
    limits: { streamEvents: 1 },
    push: [note('n1'), [reply('said-notification'), 'notification'], [note('said-owed'), 'owed']],
    reads: ['said-owed'],
    dropped: { 'stream_events notification': 2 },
  },
  {
    name: 'a chunk that cannot be read is owed, never dropped unseen',
    limits: { streamEvents: 1 },
    push: [reply('r1'), encoder.encode('event: message\ndata: {not json\n\n')],
    reads: [],
    dropped: {},
    end: 'slow_client',
  },
]

describe('OutboundStream: a client that reads nothing', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const s = setup(c.limits)
      const out = s.open()
      for (const p of c.push) {
        if (Array.isArray(p)) out.push(p[0], p[1])
        else out.push(p)
      }
      const { read, ended } = await readAll(out)
      assert.deepEqual(read, c.reads)
      assert.deepEqual(await s.dropped(), c.dropped)
      assert.deepEqual(s.ends, c.end ? [c.end] : [])
      assert.equal(ended, c.end !== undefined)
      assert.equal(await s.closed(), c.end === 'slow_client' ? 1 : 0)
      assert.deepEqual(
        [s.outbound.bytes, s.outbound.events, s.budget.bytes, s.budget.events],
        [0, 0, 0, 0],
        'nothing queued once read or freed',
      )
      const warned = s.logs.filter((l) => l.level === 40)
      assert.equal(
        warned.length,
        c.end === 'slow_client' ? 1 : 0,
        'a closed stream is logged once, at warn',
      )
    })
  }
})

describe('OutboundStream: budgets, readers and sources', () => {
  test("a session's streams share its budget: the second one hits the session bound", async () => {
    const s = setup({ streamEvents: 4, sessionEvents: 6 })
    const [a, b] = [s.open(), s.open()]
    for (const n of ['a1', 'a2', 'a3']) a.push(note(n))
    for (const n of ['b1', 'b2', 'b3', 'b4']) b.push(note(n))
    a.push(note('a4'))
    assert.deepEqual([a.queuedEvents, b.queuedEvents, s.budget.events], [3, 3, 6])
    assert.deepEqual(await s.dropped(), { 'session_events notification': 2 })
    // A reply on b while the session is full: b's own notifications give way.
    b.push(reply('rb'))
    assert.deepEqual((await readAll(b)).read, ['b2', 'b3', 'rb'])
    // Room again in the session: a's reply fits, nothing gives way.
    a.push(reply('ra'))
    assert.deepEqual((await readAll(a)).read, ['a1', 'a2', 'a3', 'ra'])
    assert.equal(s.outbound.takePeaks().sessionEvents, 6)
  })

  test('a reply past the session bound closes only its own stream', async () => {
    const s = setup({ streamEvents: 3, sessionEvents: 4 })
    const [a, b] = [s.open(), s.open()]
    for (const r of ['a1', 'a2', 'a3']) a.push(reply(r))
    b.push(reply('b1'))
    b.push(reply('b2'))
    assert.deepEqual(s.ends, ['slow_client'])
    assert.equal(b.closed, true)
    assert.equal(a.closed, false)
    assert.deepEqual([s.budget.events, s.outbound.events], [3, 3], "b's queue was freed, a's kept")
    assert.deepEqual((await readAll(a)).read, ['a1', 'a2', 'a3'])
  })

  test("a reply past the session bound on a stream with nothing queued: the other streams' notifications give way, the largest queue first", async () => {
    const s = setup({ streamEvents: 4, sessionEvents: 6 })
    const [a, b, c] = [s.open(), s.open(), s.open()]
    for (const n of ['a1', 'a2', 'a3', 'a4']) a.push(note(n))
    for (const n of ['b1', 'b2']) b.push(note(n))
    c.push(note('c1'))
    assert.deepEqual([a.queuedEvents, b.queuedEvents, c.queuedEvents], [4, 2, 0])
    c.push(reply('rc1'))
    c.push(request('qc2'))
    assert.deepEqual(s.ends, [], 'no stream was closed')
    assert.deepEqual(await s.dropped(), {
      'session_events notification': 3,
    })
    assert.deepEqual((await readAll(a)).read, ['a3', 'a4'])
    assert.deepEqual((await readAll(b)).read, ['b1', 'b2'])
    assert.deepEqual((await readAll(c)).read, ['rc1', 'qc2'])
  })

  test('a session full of owed messages closes the stream that went over, never another; a replay taken whole does not give way', async () => {
    const s = setup({ streamEvents: 4, sessionEvents: 6 })
    const [a, b, c] = [s.open(), s.open(), s.open()]
    for (const r of ['a1', 'a2', 'a3']) a.push(reply(r))
    b.replay([note('b1'), note('b2'), note('b3')])
    c.push(reply('rc'))
    assert.deepEqual(s.ends, ['slow_client'])
    assert.deepEqual([a.closed, b.closed, c.closed], [false, false, true])
    assert.deepEqual(await s.dropped(), {})
    assert.deepEqual((await readAll(a)).read, ['a1', 'a2', 'a3'])
    assert.deepEqual((await readAll(b)).read, ['b1', 'b2', 'b3'])
  })

  test('a client that reads again after drops gets what comes later', async () => {
    const s = setup({ streamEvents: 2 })
    const out = s.open()
    const reader = out.body.getReader()
    for (const n of ['n1', 'n2', 'n3', 'n4']) out.push(note(n))
    assert.deepEqual((await readAll(out, reader)).read, ['n1', 'n2'])
    const next = reader.read()
    out.push(note('n5'))
    out.push(reply('r1'))
    assert.equal(label((await next).value!), 'n5')
    assert.deepEqual((await readAll(out, reader)).read, ['r1'])
    assert.deepEqual(await s.dropped(), { 'stream_events notification': 2 })
  })

  test('a reader that waits gets each chunk handed over: nothing is queued', async () => {
    const s = setup({ streamEvents: 1, sessionEvents: 1 })
    const out = s.open()
    const reader = out.body.getReader()
    for (let i = 0; i < 50; i++) {
      const next = reader.read()
      // The read reaches the stream's pull once the stream has settled its last one.
      await turn()
      out.push(note(`n${i}`, 1000))
      assert.equal(label((await next).value!), `n${i}`)
    }
    assert.deepEqual(s.outbound.takePeaks(), {
      streamBytes: 0,
      streamEvents: 0,
      sessionBytes: 0,
      sessionEvents: 0,
    })
    assert.deepEqual(await s.dropped(), {})
  })

  test('a client that goes away frees the queue and the budget and cancels the source', async () => {
    const s = setup()
    let cancelled: unknown
    let source!: ReadableStreamDefaultController<Uint8Array>
    const out = s.open().drain(
      new ReadableStream({
        start: (c) => void (source = c),
        cancel: (why) => void (cancelled = why ?? 'cancelled'),
      }),
    )
    for (let i = 0; i < 10; i++) source.enqueue(note(`n${i}`))
    await turn()
    assert.equal(s.budget.events, 10)
    await out.body.cancel()
    assert.deepEqual(
      [s.outbound.bytes, s.outbound.events, s.budget.bytes, s.budget.events],
      [0, 0, 0, 0],
    )
    assert.deepEqual(s.ends, ['cancelled'])
    assert.ok(cancelled !== undefined, 'the source was cancelled')
  })

  test("a source is drained as soon as it has anything: the producer's own queue stays empty", async () => {
    const s = setup({ streamEvents: 10 })
    let source!: ReadableStreamDefaultController<Uint8Array>
    const out = s.open().drain(new ReadableStream({ start: (c) => void (source = c) }))
    for (let i = 0; i < 1000; i++) {
      source.enqueue(note(`n${i}`))
      if (i % 100 === 0) await turn()
    }
    await turn()
    assert.equal(source.desiredSize, 1, 'nothing waits in the source')
    assert.equal(out.queuedEvents, 10)
    assert.deepEqual(await s.dropped(), { 'stream_events notification': 990 })
    source.close()
    await turn()
    const reader = out.body.getReader()
    assert.deepEqual(
      (await readAll(out, reader)).read,
      Array.from({ length: 10 }, (_, i) => `n${i}`),
    )
    assert.equal(
      (await reader.read()).done,
      true,
      "the source's end ends the stream once it is read",
    )
    assert.deepEqual(s.ends, ['done'])
  })

  test('a stream closed on a slow client cancels its source: the producer stops writing to it', async () => {
    const s = setup({ streamEvents: 1 })
    let cancelled = false
    let source!: ReadableStreamDefaultController<Uint8Array>
    s.open().drain(
      new ReadableStream({
        start: (c) => void (source = c),
        cancel: () => void (cancelled = true),
      }),
    )
    source.enqueue(reply('r1'))
    source.enqueue(reply('r2'))
    await turn()
    assert.equal(cancelled, true)
    assert.deepEqual(s.ends, ['slow_client'])
    assert.throws(() => source.enqueue(reply('r3')), 'the source is closed to its producer')
  })

  test('a replay is taken whole, past the bound; what follows it meets the bound; a second replay meanwhile does not', async () => {
    const s = setup({ streamEvents: 2 })
    /** A resumed stream: the SDK writes the replay before the stream is handed out. */
    const resumed = (labels: string[]) => {
      let source!: ReadableStreamDefaultController<Uint8Array>
      const body = new ReadableStream<Uint8Array>({ start: (c) => void (source = c) })
      for (const l of labels) source.enqueue(reply(l))
      return { out: s.open().drain(body, labels.length), source }
    }
    const first = resumed(['r1', 'r2', 'r3', 'r4'])
    await turn()
    assert.equal(first.out.queuedEvents, 4, 'the whole replay')
    first.source.enqueue(note('live'))
    await turn()
    assert.deepEqual(
      await s.dropped(),
      { 'stream_events notification': 1 },
      'a live notification after it is over the bound',
    )
    const second = resumed(['r1', 'r2', 'r3'])
    await turn()
    assert.equal(
      second.out.closed,
      true,
      'another replay of the session meanwhile is bounded: it owes too much and closes',
    )
    assert.deepEqual((await readAll(first.out)).read, ['r1', 'r2', 'r3', 'r4'])
    const third = resumed(['r1', 'r2', 'r3'])
    await turn()
    assert.equal(
      third.out.queuedEvents,
      3,
      'once the first was read, the next replay is taken whole',
    )
    assert.deepEqual(s.ends, ['slow_client'])
  })

  test('end() lets the client read what is queued, then ends; close() frees it at once', async () => {
    const s = setup()
    const ended = s.open()
    ended.push(note('n1'))
    ended.end()
    assert.equal(ended.push(note('n2')), false, 'nothing is taken after end()')
    const reader = ended.body.getReader()
    assert.deepEqual(await readAll(ended, reader), { read: ['n1'], ended: false })
    assert.equal((await reader.read()).done, true)
    const expired = s.open()
    expired.push(note('n1'))
    expired.close('expired')
    assert.deepEqual([s.budget.events, s.outbound.events], [0, 0])
    assert.deepEqual(s.ends, ['done', 'expired'])
  })

  test('one log line when a stream starts dropping, at info, not one per drop', async () => {
    const s = setup({ streamEvents: 1 })
    const out = s.open()
    for (let i = 0; i < 100; i++) out.push(note(`n${i}`))
    assert.deepEqual(
      s.logs.map((l) => [l.level, l.msg]),
      [[30, 'client is not reading its stream: notifications past the bound are dropped']],
    )
  })

  test("a principal's sessionless streams share one budget, forgotten with the last of them", async () => {
    const s = setup({ streamEvents: 2, sessionEvents: 3 })
    const [a, b] = [s.outbound.principalStream('alice'), s.outbound.principalStream('alice')]
    const c = s.outbound.principalStream('bob')
    for (const out of [a, b, c]) for (const n of ['1', '2']) out.push(note(n))
    assert.deepEqual([a.queuedEvents, b.queuedEvents, c.queuedEvents], [2, 1, 2])
    for (const out of [a, b]) out.close('cancelled')
    const again = s.outbound.principalStream('alice')
    for (const n of ['1', '2']) again.push(note(n))
    assert.equal(again.queuedEvents, 2, 'a fresh budget')
  })
})

describe('Outbound: priming holds', () => {
  /** Resolves once `released` holds `n` names (the real timer runs the due check). */
  async function until(released: string[], n: number): Promise<void> {
    while (released.length < n) await new Promise((resolve) => setTimeout(resolve, 5))
  }

  test("each hold runs its own time: one begun later is not cut short by an older one's end", async () => {
    let now = 1_000
    const outbound = new Outbound(LIMITS, undefined, 0, () => now)
    const released: string[] = []
    const stream = (name: string) =>
      ({ release: () => released.push(name) }) as unknown as OutboundStream
    outbound.hold(stream('a'))
    now = 1_030
    outbound.hold(stream('b'))
    const c = outbound.hold(stream('c'))
    // c's reply came: its hold ended early, nothing is left to release.
    c.cancel()
    // a's 50 ms are up; b has held for 21.
    now = 1_051
    await until(released, 1)
    assert.deepEqual(released, ['a'])
    now = 1_081
    await until(released, 2)
    assert.deepEqual(released, ['a', 'b'])
  })
})
