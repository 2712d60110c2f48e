// The session-era Streamable HTTP server transport on its own: requests as http/ hands them
// over (parsed, envelopes read), replies as it hands them back, and real bounded streams
// (outbound.ts) read through their web body or written to a real Node HTTP response.
import assert from 'node:assert/strict'
import { createServer, request as httpRequest, type ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { setImmediate as turn } from 'node:timers/promises'
import { describe, test } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { SessionEventStore } from '../../gateway/bridge/event-store.js'
import { envelope, type Envelope, type RequestId } from '../../gateway/bridge/jsonrpc.js'
import { Outbound, type QueueLimits } from '../../gateway/bridge/outbound-budget.js'
import {
  sendSafely,
  StreamTransport,
  type TransportReply,
  type TransportRequest,
} from '../../gateway/bridge/stream-transport.js'
import { waitFor } from '../helpers/wait-for.js'

const SID = 'session-1'
const ACCEPT = 'application/json, text/event-stream'
const CURRENT = '2025-11-25'
const OLDER = '2025-06-18'
const LIMITS: QueueLimits = {
  streamBytes: 64 * 1024,
  streamEvents: 50,
  sessionBytes: 128 * 1024,
  sessionEvents: 100,
}

const init = (id: RequestId = 0, version = CURRENT) => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 't', version: '0' } },
})
const call = (id: RequestId) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'echo' },
})
const note = (method = 'notifications/initialized') => ({ jsonrpc: '2.0', method })
const result = (id: RequestId, text = 'ok') =>
  ({ jsonrpc: '2.0', id, result: { text } }) as JSONRPCMessage

interface Received {
  message: unknown
  env: Envelope
  closeSSEStream?: () => void
}

/** A transport with its own budget, recording what reaches the session; `initialized` by default. */
function setup(
  o: {
    json?: boolean
    store?: boolean
    retry?: number
    initialized?: boolean
    limits?: Partial<QueueLimits>
  } = {},
) {
  const outbound = new Outbound({ ...LIMITS, ...o.limits })
  const budget = outbound.session()
  const store =
    o.store === false
      ? undefined
      : new SessionEventStore({ maxEvents: 1000, maxBytes: 1 << 20, maxAge: 60_000 })
  const received: Received[] = []
  let deleted = 0
  const t = new StreamTransport<string>({
    sessionId: SID,
    open: (s) => budget.stream({ onEnd: s.onEnd }),
    json: o.json,
    store,
    retry: o.retry,
    onDelete: () => void deleted++,
  })
  t.onmessage = (message, env, extra) =>
    void received.push({ message, env, closeSSEStream: extra.closeSSEStream })
  const req = (
    method: string,
    headers: Record<string, string>,
    body?: unknown,
  ): TransportRequest<string> => ({
    method,
    header: (name) => headers[name],
    body,
    envelopes: body === undefined ? undefined : (Array.isArray(body) ? body : [body]).map(envelope),
    caller: 'alice',
  })
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    t.handle(
      req(
        'POST',
        {
          accept: ACCEPT,
          'content-type': 'application/json',
          'mcp-session-id': SID,
          'mcp-protocol-version': CURRENT,
          ...headers,
        },
        body,
      ),
    )
  const get = (headers: Record<string, string> = {}) =>
    t.handle(req('GET', { accept: 'text/event-stream', 'mcp-session-id': SID, ...headers }))
  const ready = async () => {
    if (o.initialized === false) return
    // JSON mode answers once the reply is in: sent before the answer is awaited.
    const pending = post(init(), { 'mcp-session-id': '' })
    t.send(result(0))
    const r = await pending
    assert.equal(r.status, 200)
    if (r.kind === 'stream') await text(r)
  }
  return { t, outbound, budget, store, received, req, post, get, ready, deleted: () => deleted }
}

/** The whole body of a stream reply (it must end), or a JSON reply's body as text. */
async function text(r: TransportReply): Promise<string> {
  if (r.kind === 'json') return r.body === undefined ? '' : JSON.stringify(r.body)
  return new Response(r.stream.body).text()
}

/** The SSE events of a body: id, retry and data of each. */
function events(body: string): { id?: string; retry?: string; data: string }[] {
  return body
    .split('\n\n')
    .filter((b) => b !== '')
    .map((block) => {
      const e: { id?: string; retry?: string; data: string } = { data: '' }
      for (const line of block.split('\n')) {
        const [k, ...v] = line.split(': ')
        if (k === 'id') e.id = v.join(': ')
        if (k === 'retry') e.retry = v.join(': ')
        if (k === 'data') e.data = v.join(': ')
      }
      return e
    })
}

function errorOf(r: TransportReply): [number, number, string] {
  assert.equal(r.kind, 'json')
  const body = (r as { body: { error: { code: number; message: string } } }).body
  return [r.status, body.error.code, body.error.message]
}

describe('StreamTransport: refusals, with the SDK transport’s statuses and messages', () => {
  const cases: {
    name: string
    initialized?: boolean
    run: (s: ReturnType<typeof setup>) => TransportReply | Promise<TransportReply>
    expect: [number, number, string | RegExp]
  }[] = [
    {
      name: 'a POST whose client does not take SSE: 406',
      run: (s) => s.post(call(1), { accept: 'application/json' }),
      expect: [406, -32000, /^Not Acceptable: Client must accept both/],
    },
    {
      name: 'a GET whose client does not take SSE: 406',
      run: (s) => s.get({ accept: 'application/json' }),
      expect: [406, -32000, 'Not Acceptable: Client must accept text/event-stream'],
    },
    {
      name: 'a POST that is not JSON: 415',
      run: (s) => s.post(call(1), { 'content-type': 'text/plain' }),
      expect: [415, -32000, 'Unsupported Media Type: Content-Type must be application/json'],
    },
    {
      name: 'JSON with parameters is JSON',
      run: async (s) => {
        const r = await s.post(note(), { 'content-type': 'Application/JSON; charset=utf-8' })
        return { kind: 'json', status: r.status === 202 ? 599 : r.status, headers: {} }
      },
      expect: [599, 0, ''],
    },
    {
      name: 'a second initialize: 400',
      run: (s) => s.post(init(7)),
      expect: [400, -32600, 'Invalid Request: Server already initialized'],
    },
    {
      name: 'an initialize in a batch: 400',
      initialized: false,
      run: (s) => s.post([init(1), call(2)]),
      expect: [400, -32600, 'Invalid Request: Only one initialization request is allowed'],
    },
    {
      name: 'a request before initialize: 400',
      initialized: false,
      run: (s) => s.post(call(1)),
      expect: [400, -32000, 'Bad Request: Server not initialized'],
    },
    {
      name: 'no Mcp-Session-Id: 400',
      run: (s) => s.post(call(1), { 'mcp-session-id': '' }),
      expect: [400, -32000, 'Bad Request: Mcp-Session-Id header is required'],
    },
    {
      name: "another session's id: 404",
      run: (s) => s.post(call(1), { 'mcp-session-id': 'other' }),
      expect: [404, -32001, 'Session not found'],
    },
    {
      name: 'an unknown protocol version: 400',
      run: (s) => s.post(call(1), { 'mcp-protocol-version': '1999-01-01' }),
      expect: [400, -32000, /^Bad Request: Unsupported protocol version: 1999-01-01/],
    },
    {
      name: 'PUT: 405',
      run: (s) => s.t.handle(s.req('PUT', { 'mcp-session-id': SID })),
      expect: [405, -32000, 'Method not allowed.'],
    },
    {
      name: 'a second GET stream: 409',
      run: async (s) => {
        assert.equal((await s.get()).status, 200)
        return s.get()
      },
      expect: [409, -32000, 'Conflict: Only one SSE stream is allowed per session'],
    },
    {
      name: 'anything after the session closed: 404',
      run: (s) => {
        s.t.close()
        return s.post(call(1))
      },
      expect: [404, -32001, 'Session not found'],
    },
    {
      name: 'a Last-Event-ID the store does not know: 400',
      run: (s) => s.get({ 'last-event-id': 'nope.1' }),
      expect: [400, -32000, 'Invalid event ID format'],
    },
  ]
  for (const c of cases) {
    test(c.name, async () => {
      const s = setup({ initialized: c.initialized })
      await s.ready()
      const before = s.received.length
      const r = await c.run(s)
      if (c.expect[0] === 599) return assert.equal(r.status, 599)
      const [status, code, message] = errorOf(r)
      assert.deepEqual([status, code], c.expect.slice(0, 2))
      if (typeof c.expect[2] === 'string') assert.equal(message, c.expect[2])
      else assert.match(message, c.expect[2])
      assert.equal(s.received.length, before, 'nothing reached the session')
    })
  }
})

describe('StreamTransport: hostile messages the envelope let through are refused by shape', () => {
  const hostile: [string, unknown][] = [
    ['a member JSON-RPC does not have', { ...call(1), extra: true }],
    ['a fractional id', call(1.5)],
    ['params that are an array', { ...call(1), params: [1] }],
    ['a _meta that is a string', { ...call(1), params: { _meta: 'x' } }],
    ['a fractional progress token', { ...call(1), params: { _meta: { progressToken: 1.5 } } }],
    ['a result that is not an object', { jsonrpc: '2.0', id: 1, result: 5 }],
    [
      'an error with a fractional code',
      { jsonrpc: '2.0', id: 1, error: { code: 1.5, message: '' } },
    ],
    ['an error without a message', { jsonrpc: '2.0', id: 1, error: { code: 1 } }],
    [
      'a result and an error',
      { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: '' } },
    ],
    ['one bad message in a batch', [call(1), { ...note(), id: undefined, x: 1 }]],
  ]
  for (const [name, body] of hostile) {
    test(name, async () => {
      const s = setup()
      await s.ready()
      const before = s.received.length
      assert.deepEqual(errorOf(await s.post(body)), [
        400,
        -32700,
        'Parse error: Invalid JSON-RPC message',
      ])
      assert.equal(s.received.length, before)
    })
  }
})

describe('StreamTransport: what a POST gets', () => {
  test('notifications and responses only: 202, each handed over with its envelope', async () => {
    const s = setup()
    await s.ready()
    const r = await s.post([note(), { jsonrpc: '2.0', id: 'x', result: {} }])
    assert.deepEqual([r.kind, r.status, await text(r)], ['json', 202, ''])
    assert.deepEqual(
      s.received.slice(-2).map((m) => m.env.kind),
      ['notification', 'response'],
    )
  })

  test('a batch: one stream with every reply, in the order they come, then its end', async () => {
    const s = setup({ store: false })
    await s.ready()
    const r = await s.post([call(1), note('notifications/x'), call(2)])
    assert.equal(r.kind, 'stream')
    assert.equal(r.headers['content-type'], 'text/event-stream')
    assert.equal(r.headers['mcp-session-id'], SID)
    s.t.send({ jsonrpc: '2.0', method: 'notifications/progress', params: {} } as JSONRPCMessage, 2)
    s.t.send(result(2, 'two'))
    s.t.send(result(1, 'one'))
    const body = await text(r)
    assert.deepEqual(
      events(body).map((e) => e.data),
      [
        '{"jsonrpc":"2.0","method":"notifications/progress","params":{}}',
        '{"jsonrpc":"2.0","id":2,"result":{"text":"two"}}',
        '{"jsonrpc":"2.0","id":1,"result":{"text":"one"}}',
      ],
    )
    assert.match(body, /^event: message\ndata: /, 'no event ids without a store')
    assert.equal(s.t.send(result(1)), false, 'a request answered is forgotten')
  })

  const priming: {
    name: string
    version: string
    store: boolean
    retry?: number
    primed: string | undefined
  }[] = [
    {
      name: 'a 2025-11-25 client with a store is primed',
      version: CURRENT,
      store: true,
      primed: '',
    },
    {
      name: 'with ssePolling the priming event carries retry:',
      version: CURRENT,
      store: true,
      retry: 250,
      primed: '250',
    },
    {
      name: 'an older client is not primed (no empty data for it)',
      version: OLDER,
      store: true,
      primed: undefined,
    },
    {
      name: 'without a store nothing is primed',
      version: CURRENT,
      store: false,
      primed: undefined,
    },
  ]
  for (const c of priming) {
    test(c.name, async () => {
      const s = setup({ store: c.store, retry: c.retry })
      await s.ready()
      const r = await s.post(call(1), { 'mcp-protocol-version': c.version })
      const got = s.received.at(-1)!
      assert.equal(
        got.closeSSEStream !== undefined,
        c.primed !== undefined,
        'closable only when primed',
      )
      s.t.send(result(1))
      const e = events(await text(r))
      if (c.primed === undefined) {
        assert.equal(e.length, 1)
        assert.equal(e[0]!.data, '{"jsonrpc":"2.0","id":1,"result":{"text":"ok"}}')
      } else {
        assert.equal(e[0]!.data, '')
        assert.match(e[0]!.id!, /^[0-9a-f-]{36}\.[0-9a-z]+$/)
        assert.equal(e[0]!.retry, c.retry === undefined ? undefined : String(c.retry))
        assert.equal(e[1]!.id!.split('.')[0], e[0]!.id!.split('.')[0], 'one stream, one id prefix')
      }
    })
  }

  test('JSON mode: one body, a batch answered in request order', async () => {
    const s = setup({ json: true })
    await s.ready()
    const one = s.post(call(1))
    s.t.send(result(1))
    assert.deepEqual((await one) as unknown, {
      kind: 'json',
      status: 200,
      headers: { 'mcp-session-id': SID },
      body: result(1),
    })
    const batch = s.post([call(2), call(3)])
    s.t.send({ jsonrpc: '2.0', method: 'notifications/message' } as JSONRPCMessage, 2)
    s.t.send(result(3))
    s.t.send(result(2))
    assert.deepEqual(((await batch) as { body: unknown }).body, [result(2), result(3)])
  })

  test('JSON mode: a session closed while a POST waits answers it 404, never leaves it hanging', async () => {
    const s = setup({ json: true })
    await s.ready()
    const waiting = s.post(call(1))
    s.t.close()
    assert.deepEqual(errorOf(await waiting), [404, -32001, 'Session not found'])
  })
})

describe('StreamTransport: the GET stream, resumption and DELETE', () => {
  test('messages for no request go on the GET stream, kept for replay; a reply never does', async () => {
    const s = setup()
    await s.ready()
    assert.equal(
      s.t.send({ jsonrpc: '2.0', method: 'notifications/a' } as JSONRPCMessage),
      false,
      'no GET stream yet: kept only',
    )
    const r = await s.get()
    assert.equal(
      r.kind === 'stream' && r.flush,
      true,
      'a listening client gets its headers at once',
    )
    assert.equal(s.t.send({ jsonrpc: '2.0', method: 'notifications/b' } as JSONRPCMessage), true)
    assert.equal(s.t.send(result(99)), false, 'a reply to nothing goes nowhere')
    ;(r as { stream: { close: (w: 'cancelled') => void } }).stream.close('cancelled')
    await turn()
    assert.equal((await s.get()).status, 200, 'the stream gone, a new GET opens')
  })

  test('Last-Event-ID replays the rest of that stream only; a live stream then carries on; 409 while it is connected', async () => {
    const s = setup()
    await s.ready()
    const a = await s.post(call(1))
    const b = await s.post(call(2))
    s.t.send({ jsonrpc: '2.0', method: 'notifications/a1' } as JSONRPCMessage, 1)
    s.t.send({ jsonrpc: '2.0', method: 'notifications/b1' } as JSONRPCMessage, 2)
    // The client loses stream a after its priming event.
    const reader = (a as { stream: { body: ReadableStream<Uint8Array> } }).stream.body.getReader()
    const primed = events(new TextDecoder().decode((await reader.read()).value))[0]!
    await reader.cancel()
    await turn()
    s.t.send({ jsonrpc: '2.0', method: 'notifications/a2' } as JSONRPCMessage, 1)
    const resumed = await s.get({ 'last-event-id': primed.id! })
    assert.equal(resumed.status, 200)
    assert.deepEqual(errorOf(await s.get({ 'last-event-id': primed.id! })), [
      409,
      -32000,
      'Conflict: Stream already has an active connection',
    ])
    s.t.send(result(1))
    const got = events(await text(resumed)).map(
      (e) => JSON.parse(e.data).method ?? JSON.parse(e.data).id,
    )
    assert.deepEqual(got, ['notifications/a1', 'notifications/a2', 1], "a's events, none of b's")
    s.t.send(result(2))
    assert.equal(events(await text(b)).length, 3)
  })

  test('closeSSEStream ends a primed stream; the reply waits in the store and a resumption ends with it', async () => {
    const s = setup()
    await s.ready()
    const r = await s.post(call(1))
    s.received.at(-1)!.closeSSEStream!()
    const [primed] = events(await text(r))
    s.t.send(result(1, 'late'))
    const resumed = await s.get({ 'last-event-id': primed!.id! })
    assert.deepEqual(
      events(await text(resumed)).map((e) => e.data),
      ['{"jsonrpc":"2.0","id":1,"result":{"text":"late"}}'],
      'a finished stream replays and ends',
    )
  })

  test('a cancelled request: its stream ends once nothing on it is owed, a late reply goes nowhere', async () => {
    const s = setup({ store: false })
    await s.ready()
    const r = await s.post(call(1))
    s.t.cancel(1)
    assert.equal(await text(r), '', 'ended with nothing owed')
    assert.equal(s.t.send(result(1)), false, 'the request is forgotten')
    // A batch: cancelling one request leaves the stream to the other (review of stop 18: it
    // used to end there, and the other's reply was lost to the client).
    const batch = await s.post([call(2), call(3)])
    s.t.cancel(2)
    s.t.send(result(3))
    assert.match(await text(batch), /"id":3,"result"/, "the other request's reply arrives")
    assert.equal(s.t.send(result(2)), false, 'both forgotten once neither is owed')
  })

  test('DELETE: 200, the session told, then 404', async () => {
    const s = setup()
    await s.ready()
    const r = await s.t.handle(s.req('DELETE', { 'mcp-session-id': SID }))
    assert.deepEqual([r.status, s.deleted()], [200, 1])
    assert.equal((await s.post(call(1))).status, 404)
  })
})

describe('StreamTransport on a Node response', () => {
  /** A server whose handler hands each request's reply to the stream, as http/reply.ts does. */
  async function serve(handle: (res: ServerResponse) => void) {
    const server = createServer((_req, res) => handle(res))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    return { server, port, close: () => new Promise<void>((r) => server.close(() => r())) }
  }

  test('a reply ready before the response is written ends it in one end(), its length known (no chunked framing)', async () => {
    const s = setup({ store: false })
    await s.ready()
    const r = (await s.post(call(1))) as Extract<TransportReply, { kind: 'stream' }>
    s.t.send(result(1))
    const srv = await serve((res) => void r.stream.attach(res, { status: 200, headers: r.headers }))
    const got = await new Promise<{ headers: Record<string, unknown>; body: string }>((resolve) => {
      httpRequest({ port: srv.port, host: '127.0.0.1' }, (res) => {
        let body = ''
        res.setEncoding('utf8').on('data', (d) => (body += d))
        res.on('end', () => resolve({ headers: res.headers, body }))
      }).end()
    })
    await srv.close()
    assert.equal(got.headers['content-length'], String(Buffer.byteLength(got.body)))
    assert.equal(got.headers['transfer-encoding'], undefined)
    assert.equal(events(got.body)[0]!.data, '{"jsonrpc":"2.0","id":1,"result":{"text":"ok"}}')
  })

  /** One GET on a raw client: the response head and the body events as they come. */
  function fetchRaw(port: number) {
    const seen: { headers?: Record<string, unknown>; body: string; ended: boolean } = {
      body: '',
      ended: false,
    }
    const done = new Promise<void>((resolve) => {
      httpRequest({ port, host: '127.0.0.1' }, (res) => {
        seen.headers = res.headers
        res.setEncoding('utf8').on('data', (d) => (seen.body += d))
        res.on('end', () => {
          seen.ended = true
          resolve()
        })
      }).end()
    })
    return { seen, done }
  }

  test('a primed stream whose reply comes soon: the priming event waits for it and both leave in one end()', async () => {
    const s = setup()
    await s.ready()
    const r = (await s.post(call(1))) as Extract<TransportReply, { kind: 'stream' }>
    const srv = await serve((res) => {
      r.stream.attach(res, { status: 200, headers: r.headers })
      setImmediate(() => s.t.send(result(1)))
    })
    const { seen, done } = fetchRaw(srv.port)
    await done
    await srv.close()
    assert.equal(seen.headers!['content-length'], String(Buffer.byteLength(seen.body)))
    const e = events(seen.body)
    assert.deepEqual(
      e.map((x) => x.data),
      ['', '{"jsonrpc":"2.0","id":1,"result":{"text":"ok"}}'],
      'the priming event first, then the reply',
    )
  })

  test('a held priming event goes alone once nothing else comes, and first', async () => {
    const s = setup()
    await s.ready()
    const r = (await s.post(call(1))) as Extract<TransportReply, { kind: 'stream' }>
    const srv = await serve((res) => void r.stream.attach(res, { status: 200, headers: r.headers }))
    const { seen, done } = fetchRaw(srv.port)
    await waitFor(() => seen.body.includes('\n\n'), 'the first event arrived')
    assert.equal(events(seen.body)[0]!.data, '', 'the priming event came without the reply')
    s.t.send(result(1))
    await done
    await srv.close()
    assert.equal(seen.headers!['transfer-encoding'], 'chunked')
    assert.equal(events(seen.body).length, 2)
  })

  test('a progress notification ends the hold: priming and progress leave together', async () => {
    const s = setup()
    await s.ready()
    const r = (await s.post(call(1))) as Extract<TransportReply, { kind: 'stream' }>
    const srv = await serve((res) => {
      r.stream.attach(res, { status: 200, headers: r.headers })
      s.t.send(
        { jsonrpc: '2.0', method: 'notifications/progress', params: {} } as JSONRPCMessage,
        1,
      )
    })
    const { seen, done } = fetchRaw(srv.port)
    await waitFor(() => events(seen.body).length >= 2, 'two events arrived')
    assert.deepEqual(
      events(seen.body).map((e) => e.data.slice(0, 30)),
      ['', '{"jsonrpc":"2.0","method":"not'],
    )
    s.t.send(result(1))
    await done
    await srv.close()
  })

  test('a reader that stops reading: the socket takes what it takes, the rest is bounded here, and the reply still ends the stream', async () => {
    const s = setup({ store: false })
    await s.ready()
    const r = (await s.post(call(1))) as Extract<TransportReply, { kind: 'stream' }>
    let attached!: () => void
    const served = new Promise<void>((resolve) => (attached = resolve))
    const srv = await serve((res) => {
      r.stream.attach(res, { status: 200, headers: r.headers })
      attached()
    })
    const socket = connect(srv.port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write('GET / HTTP/1.0\r\n\r\n')
    socket.pause()
    // The stream writes to the paused reader from now on.
    await served
    const pad = 'x'.repeat(4000)
    // Far more than a paused loopback socket holds (several MB): the rest meets the bound.
    for (let i = 0; i < 5000; i++)
      s.t.send(
        { jsonrpc: '2.0', method: 'notifications/message', params: { pad } } as JSONRPCMessage,
        1,
      )
    const peaks = s.outbound.takePeaks()
    assert.ok(peaks.streamEvents > 0, 'the client fell behind (else this proves nothing)')
    assert.ok(peaks.streamEvents <= LIMITS.streamEvents)
    assert.ok(peaks.streamBytes <= LIMITS.streamBytes)
    s.t.send(result(1))
    socket.resume()
    let body = ''
    socket.setEncoding('utf8').on('data', (d) => (body += d))
    await new Promise((resolve) => socket.once('end', resolve))
    assert.match(body, /"id":1,"result"/, 'the reply came, after what was kept')
    assert.equal(s.outbound.events, 0)
    socket.destroy()
    await srv.close()
  })
})

describe('sendSafely: a reply that cannot be serialized', () => {
  test('the client gets -32603 for it, and the caller is told (false) so its audit says so', async () => {
    const s = setup()
    await s.ready()
    const pending = s.post(call(7))
    const logged: string[] = []
    const log = { warn: (_o: object, msg: string) => void logged.push(msg) }
    // A BigInt: JSON.stringify throws in the real transport, as it would on any unserializable reply.
    const bad = { jsonrpc: '2.0', id: 7, result: { n: 1n } } as unknown as JSONRPCMessage
    assert.equal(sendSafely(s.t, bad, undefined, log), false)
    const r = await pending
    const data = events(await text(r))
      .map((e) => e.data)
      .filter((d) => d !== '')
    assert.deepEqual(
      data.map((d) => JSON.parse(d)),
      [
        {
          jsonrpc: '2.0',
          id: 7,
          error: { code: -32603, message: "the MCP server's reply could not be passed on" },
        },
      ],
    )
    assert.deepEqual(logged, ['a message could not be serialized for the client; dropped'])
    assert.equal(sendSafely(s.t, result(8), undefined, log), true)
  })
})
