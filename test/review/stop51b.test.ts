// Stop 51 (b): resumability and the legacy transport's POST /messages under attack, with real
// tokens, the real gateway and the real stdio fixture, raw fetch reading the event streams.
// Finding (a failing test first, then the fix):
// - POST /messages (HTTP+SSE, 2024-11-05) checked only that each message was a JSON-RPC
//   envelope, not its shape: a request with a `result` member too, a fractional id, an object
//   progress token, an array `_meta`, unknown members, a response with both a result and an
//   error were answered 202 and written to the process's stdin, where Streamable HTTP answers
//   400 and the process sees nothing. The client waited for a reply that never came (the SDK
//   in the process dropped them), and a process with a laxer parser got shapes the gateway
//   refuses everywhere else. Refused with the transport's 400 now.
// What held: a Last-Event-ID of the same user's other session, forged, oversized or malformed
// ids, and ids naming another stream's events replay nothing of what they should not; a
// 2026-07-28 request of the wrong shape reaches no process (400; since fix52 -32600 naming
// the member, no longer taken for a session-era one without a session).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { modernRequest } from '../helpers/modern-request.js'
import { Events } from '../helpers/sse-events.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const V = '2025-11-25'

let stack: Stack
let rawFile: string
before(async () => {
  rawFile = join(mkdtempSync(join(tmpdir(), 'stop51b-')), 'stdin.txt')
  writeFileSync(rawFile, '')
  stack = await startStack({
    servers: {
      // The fixture, writing every byte of its stdin down before its SDK parses any of it.
      rawfix: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'fixture.js')],
        env: { FIXTURE_RAW_RECORD_FILE: rawFile },
      },
    },
    policy: `${TEST_POLICY}  rawfix:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
  })
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

describe('stop 51: POST /messages (HTTP+SSE) refuses what Streamable HTTP refuses', () => {
  const echo = (i: number) => ({ name: 'echo_args', arguments: { session: 51, i } })
  // [case, message]: each is a JSON-RPC envelope of the wrong shape; `9051xx` marks it.
  const CASES: [string, Record<string, unknown>][] = [
    [
      'a request with a result too',
      { jsonrpc: '2.0', id: 'm1', method: 'tools/call', params: echo(905101), result: {} },
    ],
    ['a fractional id', { jsonrpc: '2.0', id: 1.5, method: 'tools/call', params: echo(905102) }],
    [
      'an object progress token',
      {
        jsonrpc: '2.0',
        id: 'm3',
        method: 'tools/call',
        params: { ...echo(905103), _meta: { progressToken: { a: 1 } } },
      },
    ],
    [
      'an array _meta',
      { jsonrpc: '2.0', id: 'm4', method: 'tools/call', params: { ...echo(905104), _meta: [1] } },
    ],
    [
      'an unknown member',
      { jsonrpc: '2.0', id: 'm5', method: 'tools/call', params: echo(905105), extra: 1 },
    ],
    [
      'a result and an error',
      { jsonrpc: '2.0', id: 7, result: { m: 905106 }, error: { code: 1, message: 'x' } },
    ],
  ]
  it('each is 400 -32600, and the process reads none of it; a good call still goes', async () => {
    const token = await stack.token('alice', { server: 'rawfix' })
    const client = new Client({ name: 'stop51b', version: '0' })
    const transport = new SSEClientTransport(new URL(`${stack.url}/sse/rawfix`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    })
    await client.connect(transport)
    try {
      const endpoint = (transport as unknown as { _endpoint: URL })._endpoint
      for (const [what, message] of CASES) {
        const res = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(message),
        })
        assert.equal(res.status, 400, what)
        assert.equal(((await res.json()) as { error: { code: number } }).error.code, -32600, what)
      }
      const good = await client.callTool(echo(905199))
      assert.match(JSON.stringify(good), /905199/)
      assert.doesNotMatch(readFileSync(rawFile, 'utf8'), /9051(0[1-6])/, 'the process read none')
    } finally {
      await client.close()
    }
  })
})

describe('stop 51: held: a sessionless (2026-07-28) request of the wrong shape reaches no process', () => {
  const META = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
  }
  const call = (i: number, meta: Record<string, unknown> = {}) => ({
    name: 'echo_args',
    arguments: { session: 52, i },
    _meta: { ...META, ...meta },
  })
  // [case, message]: `9052xx` marks each.
  const CASES: [string, Record<string, unknown>][] = [
    ['control', { jsonrpc: '2.0', id: 9, method: 'tools/call', params: call(905299) }],
    [
      'a request with a result too',
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: call(905201), result: {} },
    ],
    ['a fractional id', { jsonrpc: '2.0', id: 1.5, method: 'tools/call', params: call(905202) }],
    [
      'an object progress token',
      {
        jsonrpc: '2.0',
        id: 3,
        method: 'tools/call',
        params: call(905203, { progressToken: { a: 1 } }),
      },
    ],
    [
      'an unknown member',
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: call(905205), extra: 1 },
    ],
    [
      'a related task that is no object',
      {
        jsonrpc: '2.0',
        id: 6,
        method: 'tools/call',
        params: call(905206, { 'io.modelcontextprotocol/related-task': 'x' }),
      },
    ],
  ]
  it('each is refused with a 400, and the process reads none of it; a good one goes', async () => {
    const token = await stack.token('alice', { server: 'rawfix' })
    for (const [what, message] of CASES) {
      // A 2026-07-28 request's headers, this body.
      const { headers } = modernRequest(token, 'tools/call', {}, { name: 'echo_args' })
      const res = await fetch(stack.local('rawfix'), {
        method: 'POST',
        headers,
        body: JSON.stringify(message),
      })
      const text = await res.text()
      // The control goes; the rest are 2026-07-28 requests of the wrong shape: refused before
      // any process (fix52.test.ts checks what the refusal says).
      assert.equal(res.status, what === 'control' ? 200 : 400, `${what}: ${text.slice(0, 200)}`)
    }
    const stdin = readFileSync(rawFile, 'utf8')
    assert.match(stdin, /905299/, 'the control reached the process')
    assert.doesNotMatch(stdin, /9052(0[1-6])/, 'the process read none of the rest')
  })
})
