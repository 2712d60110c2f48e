// Stop 51 (b): resumability under attack, with real tokens, the real gateway and the real stdio
// fixture, raw fetch reading the event streams. What held: a Last-Event-ID of the same user's
// other session, forged, oversized or malformed ids, and ids naming another stream's events
// replay nothing of what they should not; a stream's events are never replayed to another
// user. Nothing here was a finding (stop51.test.ts has the findings of stop 51).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Events } from '../helpers/sse-events.js'
import { startStack, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const V = '2025-11-25'

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

/** Request methods the fixture process received so far. */
function requestsSeen(): string[] {
  return readFileSync(join(stack.dir, 'fixture-record.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { method?: string }).method ?? '')
    .filter((m) => m !== '' && !m.startsWith('notifications/'))
}

/** A raw session of `user` on the fixture at 2025-11-25 (its streams primed). */
async function open(user: string) {
  const token = await stack.token(user, { server: 'fixture' })
  const base = {
    'content-type': 'application/json',
    accept: ACCEPT,
    authorization: `Bearer ${token}`,
  }
  const post = (body: unknown, sid?: string) =>
    fetch(stack.local('fixture'), {
      method: 'POST',
      headers: { ...base, ...(sid && { 'mcp-session-id': sid, 'mcp-protocol-version': V }) },
      body: JSON.stringify(body),
    })
  const init = await post({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: V, capabilities: {}, clientInfo: { name: 't', version: '0' } },
  })
  assert.equal(init.status, 200)
  const sid = init.headers.get('mcp-session-id')!
  await init.body?.cancel()
  assert.equal(
    (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid)).status,
    202,
  )
  return {
    sid,
    token,
    /** A tools/call of echo_args (`mark` comes back in its reply), read to its end: its events. */
    async call(id: number, mark: number) {
      const args = { session: mark, i: 1 }
      const res = await post(
        {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'echo_args', arguments: args },
        },
        sid,
      )
      return new Events(res).rest()
    },
    /** GET with `last-event-id` (raw, any string), on `session` (this one by default). */
    get(lastEventId: string, session = sid) {
      return fetch(stack.local('fixture'), {
        headers: {
          accept: 'text/event-stream',
          'mcp-session-id': session,
          'mcp-protocol-version': V,
          authorization: `Bearer ${token}`,
          'last-event-id': lastEventId,
        },
      })
    },
  }
}

describe('stop 51: held: Last-Event-ID replays only its own stream of its own session', () => {
  it("held: the same user's other session: 400, none of the first session's events", async () => {
    const one = await open('alice')
    const two = await open('alice')
    const events = await one.call(7, 918273645)
    assert.match(events.map((e) => e.data).join(''), /918273645/)
    for (const e of events) {
      const res = await two.get(e.id!)
      assert.equal(res.status, 400, e.id)
      const body = await res.text()
      assert.doesNotMatch(body, /918273645/)
      assert.equal(JSON.parse(body).error.message, 'Invalid event ID format')
    }
    // The owner resumes from its priming event: the reply, once.
    const again = await new Events(await one.get(events[0]!.id!)).rest()
    assert.equal(again.filter((e) => /918273645/.test(e.data)).length, 1)
  })

  it('held: forged, oversized and malformed ids: 400 and nothing replayed; the process asked nothing', async () => {
    const s = await open('bob')
    const events = await s.call(8, 827364519)
    const first = events[0]!.id!
    const stream = first.slice(0, first.lastIndexOf('.'))
    const seen = requestsSeen().length
    const FORGED = [
      '.',
      '.1',
      `${stream}.`,
      `${stream}.-1`,
      `${stream}.+1`,
      `${stream}.1e3`,
      `${stream}.0x1`,
      `${stream}.A`,
      `${stream}.${'z'.repeat(12)}`,
      `${stream}.99999999`,
      `${stream.toUpperCase()}.1`,
      `${stream} .1`,
      `_GET_stream.1`,
      `${'x'.repeat(8000)}.1`,
      `${stream}\u0001.1`,
    ]
    for (const id of FORGED) {
      let res: Response
      try {
        res = await s.get(id)
      } catch {
        continue // a header value fetch itself will not send: nothing reached the gateway
      }
      assert.equal(res.status, 400, JSON.stringify(id.slice(0, 60)))
      assert.doesNotMatch(await res.text(), /827364519/)
    }
    assert.deepEqual(requestsSeen().slice(seen), [], 'no request reached the process')
  })

  it("held: a Last-Event-ID naming another stream's event replays only the named stream", async () => {
    const s = await open('dev')
    const a = await s.call(9, 736451928)
    const b = await s.call(10, 645192837)
    const streamA = a[0]!.id!.slice(0, a[0]!.id!.lastIndexOf('.'))
    const seqB = b[0]!.id!.slice(b[0]!.id!.lastIndexOf('.') + 1)
    // Stream A's id with stream B's position (later than all of A): A's events after it, none.
    const res = await s.get(`${streamA}.${seqB}`)
    assert.equal(res.status, 200)
    const replayed = await new Events(res).rest()
    assert.doesNotMatch(replayed.map((e) => e.data).join(''), /736451928|645192837/)
  })
})
