// Session-era SSE resumability and polling on aggregating endpoints, end to end: the real dev
// IdP, the real gateway, real stdio backends, and raw fetch reading each event stream as it
// arrives. An endpoint's streams are its own (its `resumability` and `ssePolling`, not its
// backends'). A request is held open by a question to the client (elicitation) that the test
// answers when it chooses, so nothing here depends on how long anything takes.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Events, type Sse } from '../helpers/sse-events.js'
import { startStack, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const CURRENT = '2025-11-25'
const OLDER = '2025-06-18'
const POLL = { closeAfter: 300, retry: 250 }

let stack: Stack
before(async () => {
  stack = await startStack({
    config: {
      endpoints: {
        resumed: { servers: ['fixture', 'echo'] },
        polled: { servers: ['fixture'], ssePolling: POLL },
        // A request answered at once is not closed: no reply takes this long.
        polledlong: { servers: ['echo'], ssePolling: { closeAfter: 60_000, retry: 250 } },
        tiny: { servers: ['echo'], resumability: { maxEvents: 4 } },
        unbuffered: { servers: ['echo'], resumability: { enabled: false } },
      },
    },
  })
})
after(() => stack.close())

const url = (endpoint: string) => `${stack.url}/mcp/${endpoint}`
type Message = {
  id?: unknown
  method?: string
  result?: { content: { text: string }[] }
  error?: unknown
  params?: Record<string, unknown>
}
const json = (e: Sse) => JSON.parse(e.data) as Message
const streamOf = (id: string) => id.slice(0, id.lastIndexOf('.'))

/** A raw session of one principal on one endpoint, at one protocol version, able to answer elicitations. */
async function open(endpoint: string, client = 'alice', version = CURRENT) {
  const token = await stack.token(client, { resource: url(endpoint) })
  const auth = { authorization: `Bearer ${token}` }
  const base = { 'content-type': 'application/json', accept: ACCEPT, ...auth }
  const init = await fetch(url(endpoint), {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: version,
        capabilities: { elicitation: {} },
        clientInfo: { name: 't', version: '0' },
      },
    }),
  })
  assert.equal(init.status, 200)
  const sid = init.headers.get('mcp-session-id')!
  await init.body?.cancel()
  const headers = { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': version }
  const ack = await fetch(url(endpoint), {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  })
  assert.equal(ack.status, 202)
  return {
    sid,
    /** POSTs tools/call. */
    call(id: number, name: string, args: Record<string, unknown>, signal?: AbortSignal) {
      return fetch(url(endpoint), {
        method: 'POST',
        headers,
        signal,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name, arguments: args },
        }),
      })
    },
    /** Answers a server→client request (the elicitation) with a result. */
    async answer(id: unknown, result: Record<string, unknown>) {
      const res = await fetch(url(endpoint), {
        method: 'POST',
        headers,
        body: JSON.stringify({ jsonrpc: '2.0', id, result }),
      })
      assert.equal(res.status, 202)
    },
    /** GET, resuming after `lastEventId` when given; `as` sends another principal's token. */
    get(lastEventId?: string, as?: { token: string }) {
      return fetch(url(endpoint), {
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

const ACCEPTED = { action: 'accept', content: { answer: 'resumed' } }
const isAsk = (e: Sse) => e.data !== '' && json(e).method === 'elicitation/create'

describe('an endpoint primes its streams (2025-11-25 and later)', () => {
  const cases = [
    { endpoint: 'resumed', version: CURRENT, primed: true, ids: true },
    { endpoint: 'resumed', version: OLDER, primed: false, ids: true },
    { endpoint: 'unbuffered', version: CURRENT, primed: false, ids: false },
  ]
  for (const c of cases) {
    it(`${c.endpoint} at ${c.version}: ${c.primed ? 'the first event is an id with empty data' : 'no priming event'}; ${c.ids ? 'every event has an id' : 'no event ids'}`, async () => {
      const s = await open(c.endpoint, 'alice', c.version)
      const events = await new Events(await s.call(1, 'echo_echo', { text: 'hi' })).rest()
      if (c.primed) {
        assert.ok(events[0]!.id, 'the priming event has an id')
        assert.equal(events[0]!.data, '')
        assert.equal(events[0]!.retry, undefined, 'no retry hint without ssePolling')
        events.shift()
      }
      assert.deepEqual(
        events.map((e) => json(e).id),
        [1],
      )
      assert.equal(events[0]!.id !== undefined, c.ids)
    })
  }
})

describe('an endpoint resumes a dropped POST stream', () => {
  it("the call runs on; GET + Last-Event-ID gets the rest of that stream (its reply), and nothing of another's", async () => {
    const s = await open('resumed')
    const drop = new AbortController()
    const held = new Events(await s.call(1, 'fixture_elicit', { message: 'hold on' }, drop.signal))
    const ask = await held.until(isAsk)
    drop.abort()
    // Another stream of the session, answered while the first is gone.
    const other = await new Events(await s.call(2, 'echo_echo', { text: 'other' })).rest()
    assert.equal(json(other.at(-1)!).id, 2)

    await s.answer(json(ask).id, ACCEPTED)
    const resumed = await s.get(ask.id)
    assert.equal(resumed.status, 200)
    const events = await new Events(resumed).rest()
    assert.deepEqual(
      events.map((e) => json(e).id),
      [1],
      'only the reply of the dropped stream',
    )
    assert.match(
      json(events[0]!).result!.content[0]!.text,
      /"answer":"resumed"/,
      'the call was not cancelled by the disconnect',
    )
    assert.equal(streamOf(events[0]!.id!), streamOf(ask.id!))
  })

  it("another principal with the owner's session id and Last-Event-ID gets 404 and no events; the owner still resumes", async () => {
    const s = await open('resumed', 'alice')
    const drop = new AbortController()
    const held = new Events(await s.call(1, 'fixture_elicit', { message: 'hold on' }, drop.signal))
    const ask = await held.until(isAsk)
    drop.abort()
    const bob = await s.get(ask.id, {
      token: await stack.token('bob', { resource: url('resumed') }),
    })
    assert.equal(bob.status, 404)
    assert.doesNotMatch(bob.headers.get('content-type') ?? '', /event-stream/)
    await bob.body?.cancel()
    await s.answer(json(ask).id, ACCEPTED)
    const events = await new Events(await s.get(ask.id)).rest()
    assert.deepEqual(
      events.map((e) => json(e).id),
      [1],
    )
  })
})

describe("an endpoint's replay buffer is bounded by its own resumability", () => {
  it('a Last-Event-ID whose stream has left the buffer (maxEvents 4) gets 400 and nothing; a recent one resumes', async () => {
    const s = await open('tiny')
    const old = await new Events(await s.call(1, 'echo_echo', { text: 'a' })).rest()
    for (const id of [2, 3]) await new Events(await s.call(id, 'echo_echo', { text: 'b' })).rest()
    const recent = await new Events(await s.call(4, 'echo_echo', { text: 'c' })).rest()
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

describe('SSE polling on an endpoint', () => {
  it('a call still pending past closeAfter has its POST stream closed after a retry hint; its reply comes on GET + Last-Event-ID', async () => {
    const s = await open('polled')
    // Held by a question the test answers only once the stream has ended: however slow the machine.
    const events = await new Events(await s.call(1, 'fixture_elicit', { message: 'poll' })).rest()
    assert.equal(events.length, 2, 'the priming event and the question, then the close')
    assert.equal(events[0]!.data, '')
    assert.equal(events[0]!.retry, POLL.retry)
    assert.ok(isAsk(events[1]!))
    await s.answer(json(events[1]!).id, ACCEPTED)
    const resumed = await new Events(await s.get(events[1]!.id)).rest()
    assert.deepEqual(
      resumed.map((e) => json(e).id),
      [1],
    )
    assert.match(json(resumed[0]!).result!.content[0]!.text, /"answer":"resumed"/)
  })

  it('a quick call is answered on its own stream', async () => {
    const s = await open('polledlong')
    const events = await new Events(await s.call(1, 'echo_echo', { text: 'quick' })).rest()
    assert.deepEqual(
      events.map((e) => (e.data === '' ? 'priming' : json(e).id)),
      ['priming', 1],
    )
    assert.equal(events[0]!.retry, 250)
  })
})
