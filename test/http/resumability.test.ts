// Session-era SSE resumability and polling end to end: the real dev IdP, the real gateway, the
// real stdio fixture, and raw fetch reading the event streams byte by byte (checklist D8, D9,
// D12, D14-D18, E6, F7).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Events, type Sse } from '../helpers/sse-events.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const CURRENT = '2025-11-25'
const OLDER = '2025-06-18'
const POLL = { closeAfter: 300, retry: 250 }

let stack: Stack
before(async () => {
  const fixture = { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] }
  const extra = ['polled', 'polledlong', 'tiny']
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')
  stack = await startStack({
    policy: TEST_POLICY + extra,
    servers: {
      polled: { ...fixture, ssePolling: POLL },
      // A request answered at once must not be closed: with a closeAfter no reply takes this long.
      polledlong: { ...fixture, ssePolling: { closeAfter: 60_000, retry: 250 } },
      tiny: { ...fixture, resumability: { maxEvents: 4 } },
    },
  })
})
after(() => stack.close())

const json = (e: Sse) =>
  JSON.parse(e.data) as {
    id?: unknown
    method?: string
    result?: { content: { text: string }[] }
    error?: unknown
    params?: { progressToken?: unknown; progress?: number }
  }
const streamOf = (id: string) => id.slice(0, id.lastIndexOf('.'))

/** A raw session of one principal on one server, at one protocol version. */
async function open(server: string, client = 'alice', version = CURRENT) {
  const token = await stack.token(client, { server })
  const auth = { authorization: `Bearer ${token}` }
  const base = { 'content-type': 'application/json', accept: ACCEPT, ...auth }
  const init = await fetch(stack.local(server), {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: version,
        capabilities: {},
        clientInfo: { name: 't', version: '0' },
      },
    }),
  })
  assert.equal(init.status, 200)
  const sid = init.headers.get('mcp-session-id')!
  await init.body?.cancel()
  const headers = { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': version }
  const ack = await fetch(stack.local(server), {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  })
  assert.equal(ack.status, 202)
  return {
    sid,
    headers,
    /** POSTs tools/call; `progress` adds a progressToken. */
    call(
      id: number,
      name: string,
      args: Record<string, unknown>,
      o: { progress?: string; signal?: AbortSignal } = {},
    ) {
      const params = {
        name,
        arguments: args,
        ...(o.progress ? { _meta: { progressToken: o.progress } } : {}),
      }
      return fetch(stack.local(server), {
        method: 'POST',
        headers,
        signal: o.signal,
        body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params }),
      })
    },
    /** GET, resuming after `lastEventId` when given; `as` sends another principal's token. */
    async get(lastEventId?: string, as?: { token: string }) {
      return fetch(stack.local(server), {
        headers: {
          accept: 'text/event-stream',
          'mcp-session-id': sid,
          'mcp-protocol-version': version,
          authorization: as ? `Bearer ${as.token}` : auth.authorization,
          ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
        },
      })
    },
  }
}

/** Messages the fixture received, as recorded by it. */
function fixtureSaw(): { method?: string; params?: { requestId?: unknown } }[] {
  return readFileSync(join(stack.dir, 'fixture-record.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
}

describe('priming events (D8, F7)', () => {
  const cases = [
    { version: CURRENT, primed: true },
    { version: OLDER, primed: false },
    { version: '2025-03-26', primed: false },
  ]
  for (const c of cases) {
    it(`${c.version}: ${c.primed ? 'the first event is an id with empty data' : 'no priming event, the first event is the reply'}`, async () => {
      const s = await open('fixture', 'alice', c.version)
      const events = await new Events(await s.call(1, 'slow', { ms: 20 })).rest()
      if (c.primed) {
        assert.ok(events[0]!.id, 'the priming event has an id')
        assert.equal(events[0]!.data, '')
        assert.equal(events[0]!.retry, undefined, 'no retry hint without ssePolling')
        events.shift()
      }
      assert.equal(events.length, 1)
      assert.equal(json(events[0]!).id, 1)
      assert.ok(events[0]!.id, 'the reply has an event id too (resumable at any version)')
    })
  }
})

describe('event ids and streams (D14-D17)', () => {
  it('ids are unique across three concurrent POST streams and the GET stream; each id names its stream; nothing is sent twice', async () => {
    const s = await open('fixture')
    const get = new Events(await s.get())
    const posts = await Promise.all(
      [1, 2, 3].map((i) => s.call(i, 'slow', { ms: 400, every: 100 }, { progress: `p${i}` })),
    )
    // A fourth request while three are in flight: its log lines belong to no single stream.
    const notify = await new Events(await s.call(4, 'notify', { count: 2 })).rest()
    const streams = await Promise.all(posts.map((p) => new Events(p).rest()))
    const onGet = [await get.next(), await get.next()]
    await get.cancel()
    const all = [...streams.flat(), ...notify, ...(onGet as Sse[])]
    const ids = all.map((e) => e.id!)
    assert.ok(
      ids.every((id) => typeof id === 'string' && id.length > 0),
      'every event has an id',
    )
    assert.equal(new Set(ids).size, ids.length, 'no id repeats across streams')
    const prefixes = [...streams, notify, onGet as Sse[]].map(
      (events) => new Set(events.map((e) => streamOf(e.id!))),
    )
    for (const p of prefixes) assert.equal(p.size, 1, 'one stream, one prefix')
    assert.equal(
      new Set(prefixes.map((p) => [...p][0])).size,
      prefixes.length,
      'different streams, different prefixes',
    )
    for (const [i, events] of streams.entries()) {
      assert.equal(events[0]!.data, '', 'primed')
      const messages = events.slice(1).map(json)
      assert.deepEqual(
        messages.map((m) => m.params?.progress ?? 'reply'),
        [1, 2, 3, 'reply'],
      )
      assert.ok(
        messages.slice(0, 3).every((m) => m.params?.progressToken === `p${i + 1}`),
        'only its own progress',
      )
      assert.equal(messages[3]!.id, i + 1)
    }
    for (const e of onGet as Sse[]) {
      const m = json(e)
      assert.equal(m.method, 'notifications/message', 'the log lines came on the GET stream')
      assert.ok(!('result' in m) && !('error' in m), 'never a response on the GET stream (D14)')
    }
    const data = all.filter((e) => e.data !== '').map((e) => e.data)
    assert.equal(new Set(data).size, data.length, 'no message on two streams (D15)')
  })
})

describe('resumption after a dropped POST stream (D12, D18, E6)', () => {
  it("the request runs on; GET + Last-Event-ID gets that stream's remaining events and its reply, none of another stream's", async () => {
    const s = await open('fixture')
    const drop = new AbortController()
    const a = new Events(
      await s.call(901, 'slow', { ms: 700, every: 100 }, { progress: 'a', signal: drop.signal }),
    )
    const b = s.call(902, 'slow', { ms: 300, every: 100 }, { progress: 'b' })
    const first = await a.until((e) => e.data !== '')
    assert.equal(json(first).params?.progress, 1)
    drop.abort()
    const bEvents = await new Events(await b).rest()
    assert.equal(json(bEvents.at(-1)!).id, 902)

    const resumed = await s.get(first.id)
    assert.equal(resumed.status, 200)
    const events = await new Events(resumed).rest()
    const messages = events.map(json)
    assert.deepEqual(
      messages.map((m) => m.params?.progress ?? m.id),
      [2, 3, 4, 5, 6, 901],
      'the rest of stream a, in order, then its reply',
    )
    assert.ok(
      messages.slice(0, -1).every((m) => m.params?.progressToken === 'a'),
      "none of stream b's events",
    )
    assert.equal(
      messages.at(-1)!.result!.content[0]!.text,
      'done',
      'not cancelled by the disconnect',
    )
    assert.ok(events.every((e) => streamOf(e.id!) === streamOf(first.id!)))
    assert.ok(
      !fixtureSaw().some(
        (m) => m.method === 'notifications/cancelled' && m.params?.requestId === 901,
      ),
      'no cancellation reached the server',
    )
  })

  it("another principal with the owner's session id and Last-Event-ID gets 404 and no events; the owner still resumes", async () => {
    const s = await open('fixture', 'alice')
    const drop = new AbortController()
    const a = new Events(await s.call(911, 'slow', { ms: 300 }, { signal: drop.signal }))
    const priming = await a.next()
    drop.abort()
    const bob = await s.get(priming!.id, { token: await stack.token('bob', { server: 'fixture' }) })
    assert.equal(bob.status, 404)
    assert.doesNotMatch(bob.headers.get('content-type') ?? '', /event-stream/)
    assert.doesNotMatch(await bob.text(), /911|done/)
    const events = await new Events(await s.get(priming!.id)).rest()
    assert.deepEqual(
      events.map((e) => json(e).id),
      [911],
    )
  })
})

describe('replay buffer bounds', () => {
  it('a Last-Event-ID whose stream has left the buffer (maxEvents 4) gets 400 and nothing; a recent one resumes', async () => {
    const s = await open('tiny')
    const old = await new Events(await s.call(1, 'slow', { ms: 1 })).rest()
    for (const id of [2, 3]) await new Events(await s.call(id, 'slow', { ms: 1 })).rest()
    const recent = await new Events(await s.call(4, 'slow', { ms: 1 })).rest()
    for (const lastEventId of [old[0]!.id!, old[1]!.id!, 'no-such-stream.1', 'garbage']) {
      const res = await s.get(lastEventId)
      assert.equal(res.status, 400, lastEventId)
      assert.doesNotMatch(await res.text(), /"result"/)
    }
    const again = await new Events(await s.get(recent[0]!.id)).rest()
    assert.deepEqual(
      again.map((e) => json(e).id),
      [4],
    )
  })
})

describe('SSE polling (D9)', () => {
  it('a request pending past closeAfter has its POST stream closed after a retry hint; its reply comes on GET + Last-Event-ID', async () => {
    const s = await open('polled')
    const start = performance.now()
    // Held at a gate the test opens only once the stream has closed: however slow the machine.
    const post = new Events(await s.call(1, 'gate', { name: 'poll' }))
    const events = await post.rest()
    const closedAfter = performance.now() - start
    assert.equal(events.length, 1, 'only the priming event before the close')
    assert.equal(events[0]!.data, '')
    assert.equal(events[0]!.retry, POLL.retry)
    assert.ok(closedAfter >= POLL.closeAfter - 50, `closed after ${closedAfter} ms`)
    await new Events(await s.call(2, 'open_gate', { name: 'poll' })).rest()
    const resumed = await new Events(await s.get(events[0]!.id)).rest()
    assert.deepEqual(
      resumed.map((e) => json(e).id),
      [1],
    )
    assert.equal(json(resumed[0]!).result!.content[0]!.text, 'passed poll')
  })

  it('a quick request is not closed', async () => {
    const s = await open('polledlong')
    const events = await new Events(await s.call(1, 'slow', { ms: 10 })).rest()
    assert.deepEqual(
      events.map((e) => (e.data === '' ? 'priming' : json(e).id)),
      ['priming', 1],
    )
  })

  it(`${OLDER}: no priming event, so the stream is never closed (the client could not resume)`, async () => {
    const s = await open('polled', 'alice', OLDER)
    const events = await new Events(await s.call(1, 'slow', { ms: 600 })).rest()
    assert.deepEqual(
      events.map((e) => json(e).id),
      [1],
    )
  })
})
