// Clients that stop reading their event streams while a server floods them: every transport and
// era, the real dev IdP, the real gateway, the real fixture process, and bare sockets that go
// quiet (test/helpers/raw-sse.ts). What the gateway holds for them must stay within
// limits.streamQueue* and limits.sessionQueue*; past them notifications are dropped and
// counted, and a stream that owes its client a reply or a request is closed.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { RawSse } from '../helpers/raw-sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const LIMITS = {
  streamQueueBytes: 128 * 1024,
  streamQueueEvents: 100,
  sessionQueueBytes: 256 * 1024,
  sessionQueueEvents: 200,
}
/** ~9 MB of log lines: more than a paused loopback socket's kernel buffers take (~4 MB), so the rest meets the gateway. */
const FLOOD = { count: 8000, size: 1000 }
/** Server→client requests: more than a stream may queue, so a stream that carries them must close. */
const PINGS = LIMITS.streamQueueEvents + 50
const CURRENT = '2025-11-25'
const MODERN = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'

let stack: Stack
before(async () => {
  const fixture = { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] }
  stack = await startStack({
    config: { limits: LIMITS },
    policy: `${TEST_POLICY}  deep:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
    // A replay buffer that outlasts a flood: a closed stream can always be resumed from its start.
    servers: {
      deep: { ...fixture, resumability: { maxEvents: 100_000, maxBytes: 256 * 1024 * 1024 } },
    },
  })
})
after(() => stack.close())
beforeEach(() => void stack.gateway.outbound.takePeaks())

/** What a test opened: its stalled sockets and its sessions, ended after it however it ended. */
const opened = { sockets: new Set<RawSse>(), sessions: new Set<() => Promise<unknown>>() }
// A failed test must not leave stalled streams queued: later tests wait for everything freed.
afterEach(async () => {
  for (const r of opened.sockets) r.destroy()
  await Promise.allSettled([...opened.sessions].map((end) => end()))
  opened.sockets.clear()
  opened.sessions.clear()
})

/** RawSse.open, its socket destroyed after the test. */
async function stall(...args: Parameters<typeof RawSse.open>): Promise<RawSse> {
  const raw = await RawSse.open(...args)
  opened.sockets.add(raw)
  return raw
}

/** Counters of the slow-client metrics, to compare before and after. */
async function counters() {
  const m = stack.gateway.metrics
  const dropped = (await m.streamEventsDropped.get()).values
  const sum = (f: (l: Record<string, unknown>) => boolean) =>
    dropped.filter((v) => f(v.labels)).reduce((n, v) => n + v.value, 0)
  return {
    notifications: sum((l) => l.kind === 'notification'),
    bySession: sum((l) => String(l.reason).startsWith('session_')),
    closed:
      (await m.streamsClosed.get()).values.find((v) => v.labels.reason === 'slow_client')?.value ??
      0,
  }
}

/** The bounds held: what any stream, and any session, queued at most since the test began. */
function assertWithinBounds(o: { finalBytes?: number } = {}) {
  const p = stack.gateway.outbound.takePeaks()
  const extra = o.finalBytes ?? 0
  assert.ok(
    p.streamEvents > 0,
    'the gateway did queue for the stalled client (else the test proves nothing)',
  )
  assert.ok(
    p.streamBytes <= LIMITS.streamQueueBytes + extra,
    `a stream queued ${p.streamBytes} bytes`,
  )
  assert.ok(
    p.streamEvents <= LIMITS.streamQueueEvents + (extra ? 1 : 0),
    `a stream queued ${p.streamEvents} events`,
  )
  assert.ok(
    p.sessionBytes <= LIMITS.sessionQueueBytes + extra,
    `a session queued ${p.sessionBytes} bytes`,
  )
  assert.ok(
    p.sessionEvents <= LIMITS.sessionQueueEvents + (extra ? 1 : 0),
    `a session queued ${p.sessionEvents} events`,
  )
  return p
}

/** Audit events of `tools/call flood` that ended with an answer so far. */
const floods = () => stack.audit().filter((e) => e.name === 'flood' && e.outcome === 'ok').length
const logged = (msg: string) => stack.logLines.filter((l) => l.includes(msg)).length

/** A session-era session (2025-11-25) opened with raw requests. */
async function session(server = 'fixture') {
  const token = await stack.token('alice', { server })
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
        protocolVersion: CURRENT,
        capabilities: {},
        clientInfo: { name: 'stalled', version: '0' },
      },
    }),
  })
  assert.equal(init.status, 200)
  const sid = init.headers.get('mcp-session-id')!
  await init.text()
  const headers = { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': CURRENT }
  const end = () => {
    opened.sessions.delete(end)
    return fetch(stack.local(server), { method: 'DELETE', headers }).then((r) => r.text())
  }
  opened.sessions.add(end)
  await (
    await fetch(stack.local(server), {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    })
  ).text()
  const body = (
    id: number | string,
    name: string,
    args: Record<string, unknown>,
    progress?: string,
  ) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, ...(progress ? { _meta: { progressToken: progress } } : {}) },
  })
  return {
    sid,
    headers,
    body,
    /** tools/call with a client that reads. */
    call: (id: number, name: string, args: Record<string, unknown>) =>
      fetch(stack.local(server), {
        method: 'POST',
        headers,
        body: JSON.stringify(body(id, name, args)),
      }),
    /** tools/call on a socket that stops reading once `until` holds (the headers, by default). */
    stalledCall: (
      id: number | string,
      name: string,
      args: Record<string, unknown>,
      o: { progress?: string; until?: (s: RawSse) => boolean } = {},
    ) =>
      stall(
        stack.local(server),
        { method: 'POST', headers, body: body(id, name, args, o.progress) },
        o.until,
      ),
    /** The GET stream, on a socket that stops reading once it is open. */
    stalledGet: () =>
      stall(stack.local(server), {
        headers: {
          accept: 'text/event-stream',
          ...auth,
          'mcp-session-id': sid,
          'mcp-protocol-version': CURRENT,
        },
      }),
    /** Whether the session still answers a call. */
    async alive(): Promise<boolean> {
      const res = await fetch(stack.local(server), {
        method: 'POST',
        headers,
        body: JSON.stringify(body(99, 'pid', {})),
      })
      return res.status === 200 && (await res.text()).includes('"id":99')
    },
    end,
  }
}

/**
 * A call kept in flight, so the session has two: the server's log lines and requests then
 * belong to no single request and go to the GET stream (MCP transports §Sending Messages).
 */
async function twoInFlight(s: Awaited<ReturnType<typeof session>>) {
  const slow = await s.call(98, 'slow', { ms: 60_000 })
  assert.equal(slow.status, 200)
}

describe('session era: a GET stream nobody reads', () => {
  it('notifications past the bound are dropped and counted; the session lives on and the stream carries later events once read', async () => {
    const s = await session()
    const get = await s.stalledGet()
    assert.equal(get.status, 200)
    await twoInFlight(s)
    const before = await counters()
    const flood = await s.call(1, 'flood', FLOOD)
    assert.match(await flood.text(), /flooded 8000/)
    const after = await counters()
    assertWithinBounds()
    assert.ok(
      after.notifications - before.notifications > 1000,
      `dropped ${after.notifications - before.notifications}`,
    )
    assert.equal(after.closed, before.closed, 'no stream was closed: it owed nothing')
    assert.ok(await s.alive(), 'the session still answers')
    // The client reads again: what was kept, then, once it has caught up, what comes later.
    await get.until(() => get.messages().length > 0)
    await waitFor(() => stack.gateway.outbound.events === 0, 'the client caught up')
    await (await s.call(2, 'notify', { count: 3 })).text()
    await get.until(() => get.messages().some((m) => m.params?.data === 'notification 3 of 3'))
    get.destroy()
    await s.end()
  })

  it('server→client requests past the bound close the stream (its queue freed); the session lives on and the GET stream can be opened again', async () => {
    const s = await session()
    const get = await s.stalledGet()
    await twoInFlight(s)
    const before = await counters()
    const warned = logged('is owed more than the bound: stream closed')
    assert.match(
      await (await s.call(1, 'flood', { ...FLOOD, pings: PINGS })).text(),
      /flooded 8000/,
    )
    await waitFor(
      async () => (await counters()).closed === before.closed + 1,
      'the stalled GET stream closed',
    )
    assertWithinBounds()
    assert.equal(
      logged('is owed more than the bound: stream closed'),
      warned + 1,
      'logged once, at warn',
    )
    assert.equal(stack.gateway.outbound.events, 0, 'nothing queued once the stream is closed')
    assert.ok(await s.alive(), 'the session still answers')
    const again = await s.stalledGet()
    assert.equal(again.status, 200, 'a new GET stream opens')
    for (const r of [get, again]) r.destroy()
    await s.end()
  })
})

describe('session era: POST streams nobody reads', () => {
  it('a reply after a flood is still delivered on its stream: queued notifications give way to it', async () => {
    const s = await session()
    const before = await counters()
    const done = floods()
    const post = await s.stalledCall(1, 'flood', FLOOD)
    await waitFor(() => floods() === done + 1, 'the flood answered')
    assertWithinBounds()
    assert.ok(stack.gateway.outbound.bytes > 0, 'the stalled stream holds its bounded queue')
    const after = await counters()
    assert.ok(after.notifications - before.notifications > 1000)
    assert.equal(after.closed, before.closed)
    const messages = (await post.rest(), post.messages())
    assert.ok(
      messages.length < FLOOD.count,
      `read ${messages.length} of ${FLOOD.count} notifications and the reply`,
    )
    assert.equal(messages.at(-1)!.id, 1)
    assert.match(messages.at(-1)!.result.content[0].text, /flooded 8000/)
    await s.end()
  })

  it('a client that goes away has its queue freed at once', async () => {
    const s = await session()
    const done = floods()
    const post = await s.stalledCall(1, 'flood', FLOOD)
    await waitFor(() => floods() === done + 1, 'the flood answered')
    assert.ok(stack.gateway.outbound.events > 0)
    post.destroy()
    await waitFor(
      () => stack.gateway.outbound.bytes === 0 && stack.gateway.outbound.events === 0,
      'the queue freed',
    )
    assert.ok(await s.alive(), 'the session lives on')
    await s.end()
  })

  it("three unread streams of one session share its budget; each still gets its reply, the last one's making room in the others", async () => {
    const s = await session()
    const before = await counters()
    const done = floods()
    // One after another, so the order is the test's, not the scheduler's: the first two fill
    // the session's budget with their notifications, so the third queues none of its own and
    // its reply needs the others' notifications to give way (else it would close its stream).
    const posts: RawSse[] = []
    for (const i of [1, 2, 3]) {
      posts.push(await s.stalledCall(i, 'flood', FLOOD, { progress: `p${i}` }))
      await waitFor(() => floods() === done + i, `flood ${i} answered`)
    }
    const peaks = assertWithinBounds()
    assert.ok(peaks.sessionBytes > LIMITS.streamQueueBytes, 'more than one stream queued at once')
    const after = await counters()
    assert.ok(after.bySession > before.bySession, 'the session bound dropped some')
    assert.equal(after.closed, before.closed, 'no stream was closed: none owed more than the bound')
    for (const [i, post] of posts.entries()) {
      await post.rest()
      const messages = post.messages()
      assert.deepEqual(messages.at(-1)!.id, i + 1)
      assert.ok(
        messages.slice(0, -1).every((m) => m.params.progressToken === `p${i + 1}`),
        'only its own progress',
      )
    }
    await s.end()
  })

  it('a stream owed more than the bound is closed; a real SDK v2 client resumes it from the replay buffer and gets the reply', async () => {
    const token = await stack.token('alice', { server: 'deep' })
    const client = new Client({ name: 'resumer', version: '0' })
    const transport = new StreamableHTTPClientTransport(new URL(stack.local('deep')), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      reconnectionOptions: {
        initialReconnectionDelay: 10,
        maxReconnectionDelay: 100,
        reconnectionDelayGrowFactor: 1.5,
        maxRetries: 50,
      },
    })
    await client.connect(transport)
    opened.sessions.add(() => client.close())
    const headers = {
      authorization: `Bearer ${token}`,
      accept: ACCEPT,
      'mcp-session-id': transport.sessionId!,
      'mcp-protocol-version': transport.protocolVersion!,
    }
    const args = { ...FLOOD, pings: PINGS }
    const before = await counters()
    const done = floods()
    // Reads the priming event (an id to resume from), then nothing more.
    const post = await stall(
      stack.local('deep'),
      {
        method: 'POST',
        headers,
        body: {
          jsonrpc: '2.0',
          id: 'stalled',
          method: 'tools/call',
          params: { name: 'flood', arguments: args },
        },
      },
      (r) => r.events.length > 0,
    )
    const priming = post.events[0]!
    assert.equal(priming.data, '')
    await waitFor(
      async () => (await counters()).closed === before.closed + 1,
      'the stalled stream closed',
    )
    assertWithinBounds()
    await waitFor(() => floods() === done + 1, 'the flood answered')
    const result = (await client.request(
      { method: 'tools/call', params: { name: 'flood', arguments: args } },
      { resumptionToken: priming.id },
    )) as { content: { text: string }[] }
    assert.match(result.content[0]!.text, /flooded 8000/)
    assert.match(
      JSON.stringify(await client.callTool({ name: 'pid' })),
      /\d+/,
      'the session lives on',
    )
    post.destroy()
    await client.close()
  })
})

describe('session era: resumptions nobody reads', () => {
  it('one replay per session is taken whole (the replay buffer bounds it); the others meanwhile meet the bounds; all is freed when the clients go', async () => {
    const s = await session('deep')
    // A finished stream whose replay is larger than a paused socket takes.
    const done = await stall(
      stack.local('deep'),
      { method: 'POST', headers: s.headers, body: s.body(1, 'flood', FLOOD) },
      (r) => r.events.length > 0,
    )
    const replayBytes = (await done.rest(), done.events.reduce((n, e) => n + e.data.length + 80, 0))
    const priming = done.events[0]!.id!
    const before = await counters()
    const resume = () =>
      stall(stack.local('deep'), {
        headers: {
          accept: 'text/event-stream',
          authorization: s.headers.authorization,
          'mcp-session-id': s.sid,
          'mcp-protocol-version': CURRENT,
          'last-event-id': priming,
        },
      })
    const replays = [await resume(), await resume(), await resume()]
    const p = stack.gateway.outbound.takePeaks()
    assert.ok(p.sessionBytes > LIMITS.sessionQueueBytes, 'the first replay was taken whole')
    assert.ok(
      p.sessionBytes <= replayBytes + LIMITS.sessionQueueBytes,
      `the session queued ${p.sessionBytes} bytes`,
    )
    assert.ok(
      (await counters()).notifications - before.notifications > 1000,
      'the later replays dropped notifications past the bounds',
    )
    for (const r of replays) r.destroy()
    await waitFor(
      () => stack.gateway.outbound.bytes === 0 && stack.gateway.outbound.events === 0,
      'everything freed',
    )
    await s.end()
  })
})

describe('HTTP+SSE (2024-11-05): one stream, not resumable', () => {
  async function legacy() {
    const token = await stack.token('alice', { server: 'fixture' })
    const auth = { authorization: `Bearer ${token}` }
    const stream = await stall(
      `${stack.url}/sse/fixture`,
      { headers: { accept: 'text/event-stream', ...auth } },
      (r) => r.events.length > 0,
    )
    const endpoint = `${stack.url}${stream.events[0]!.data}`
    const post = (body: unknown) =>
      fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify(body),
      }).then(async (r) => (await r.text(), r.status))
    assert.equal(
      await post({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2024-11-05',
          capabilities: {},
          clientInfo: { name: 'old', version: '0' },
        },
      }),
      202,
    )
    assert.equal(await post({ jsonrpc: '2.0', method: 'notifications/initialized' }), 202)
    return { stream, post }
  }

  it('notifications past the bound are dropped; the reply is kept and the session lives on', async () => {
    const { stream, post } = await legacy()
    const before = await counters()
    const done = floods()
    assert.equal(
      await post({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'flood', arguments: FLOOD },
      }),
      202,
    )
    await waitFor(() => floods() === done + 1, 'the flood answered')
    assertWithinBounds()
    const after = await counters()
    assert.ok(after.notifications - before.notifications > 1000)
    assert.equal(after.closed, before.closed)
    assert.equal(await post({ jsonrpc: '2.0', id: 2, method: 'ping' }), 202, 'the session lives on')
    await stream.until(() => stream.messages().some((m) => m.id === 2))
    assert.match(stream.messages().find((m) => m.id === 1)!.result.content[0].text, /flooded 8000/)
    stream.destroy()
  })

  it('a stream owed more than the bound is closed and its session ended, with a warn line', async () => {
    const { stream, post } = await legacy()
    const before = await counters()
    const sessions = stack.gateway.registry.size
    assert.equal(
      await post({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'flood', arguments: { ...FLOOD, pings: PINGS } },
      }),
      202,
    )
    await waitFor(async () => (await counters()).closed === before.closed + 1, 'the stream closed')
    assertWithinBounds()
    await waitFor(() => stack.gateway.registry.size === sessions - 1, 'the session ended')
    assert.equal(
      logged('HTTP+SSE stream closed on a client that is not reading it: session ended'),
      1,
    )
    assert.equal(await post({ jsonrpc: '2.0', id: 2, method: 'ping' }), 404)
    stream.destroy()
  })
})

describe('2026-07-28: sessionless streams', () => {
  async function modern(
    method: string,
    params: Record<string, unknown>,
    meta: Record<string, unknown> = {},
  ) {
    const token = await stack.token('alice', { server: 'fixture' })
    const b = {
      jsonrpc: '2.0',
      id: 7,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
          ...meta,
        },
      },
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: ACCEPT,
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
    }
    if (typeof params.name === 'string') headers['mcp-name'] = params.name
    return { body: b, headers, token }
  }

  it('a request stream drops progress and log lines past the bound, never its final reply', async () => {
    const { body, headers } = await modern(
      'tools/call',
      { name: 'flood', arguments: FLOOD },
      { 'io.modelcontextprotocol/logLevel': 'info' },
    )
    const before = await counters()
    const done = floods()
    const stream = await stall(stack.local('fixture'), { method: 'POST', headers, body })
    assert.equal(stream.status, 200)
    await waitFor(() => floods() === done + 1, 'the flood answered')
    assertWithinBounds({ finalBytes: 1024 })
    const after = await counters()
    assert.ok(after.notifications - before.notifications > 1000)
    assert.equal(after.closed, before.closed)
    const messages = (await stream.rest(), stream.messages())
    assert.equal(messages.at(-1)!.id, 7)
    assert.match(messages.at(-1)!.result.content[0].text, /flooded 8000/)
  })

  it('a subscriptions/listen stream drops notifications past the bound and stays open', async () => {
    const listen = await modern('subscriptions/listen', {
      notifications: { toolsListChanged: true },
    })
    const stream = await stall(
      stack.local('fixture'),
      { method: 'POST', headers: listen.headers, body: listen.body },
      (r) => r.events.length > 0,
    )
    assert.equal(stream.messages()[0]!.method, 'notifications/subscriptions/acknowledged')
    const before = await counters()
    // ~11 MB of list changes from one of the caller's processes.
    const call = await modern('tools/call', {
      name: 'flood',
      arguments: { count: 60_000, changes: true },
    })
    const res = await fetch(stack.local('fixture'), {
      method: 'POST',
      headers: { ...call.headers, 'content-type': 'application/json' },
      body: JSON.stringify(call.body),
    })
    assert.match(await res.text(), /flooded 60000/)
    await waitFor(
      async () => (await counters()).notifications - before.notifications > 1000,
      'the list changes reached the stream',
    )
    assertWithinBounds()
    assert.equal((await counters()).closed, before.closed)
    await stream.until(() => stream.messages().length > 100)
    assert.ok(
      stream
        .messages()
        .slice(1)
        .every((m) => m.method === 'notifications/tools/list_changed'),
    )
    stream.destroy()
  })
})
