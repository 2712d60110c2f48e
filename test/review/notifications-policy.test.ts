// Review (notify21): what a server process sends on its own, in session-era sessions, follows
// the policy loaded now, as on a 2026-07-28 listen stream. Before, a session subscribed to
// `test://watched-resource` kept getting `notifications/resources/updated` after a reload
// denied reading it, and a session whose user lost the server kept its streams and kept
// hearing logs and list changes. Now, for a server session (Streamable HTTP, with its GET
// stream, and legacy HTTP+SSE) and an endpoint session: the update of a URI no longer readable
// is dropped, while logs, progress and list changes still flow; a reload that takes the server
// away ends the session's stream and closes it (the next request gets 404). Real gateway, real
// conformance fixture, real reloads of the policy file; "nothing arrived" is asserted against a
// marker that arrives after it (a list_changed), never against a wait.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { editPolicy, type PolicyEdit } from '../helpers/policy-edit.js'
import { Events } from '../helpers/sse-events.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const WATCHED = 'test://watched-resource'
const ACCEPT = 'application/json, text/event-stream'
const VERSION = '2025-11-25'
const RESOURCES = 'resources: { "*": ["mcp:read"] }'
const ACCESS = 'access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources'
const POLICY = `${TEST_POLICY}  conformance:\n    ${ACCESS.replace('resources', RESOURCES)}\n`

let stack: Stack
let policy: PolicyEdit
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      conformance: { command: process.execPath, args: [join(SERVERS_DIR, 'conformance.js')] },
    },
    config: { endpoints: { subs: { servers: ['conformance'] } } },
  })
  policy = editPolicy(stack)
})
afterEach(() => policy.restore())
after(() => stack.close())

type Msg = {
  id?: unknown
  method?: string
  params?: Record<string, any>
  result?: any
  error?: { code: number; message: string }
}

/**
 * One session-era session as a client sees it: every message it received, on any of its
 * streams, in order of arrival (`seen`), and its listening stream's end (`ended`).
 */
interface Conn {
  seen: Msg[]
  /** Sends a request; resolves with its reply, once every message before it was seen. */
  request(method: string, params: Record<string, unknown>): Promise<Msg>
  /** Resolves with the first message from `from` on that matches. */
  waitFor(match: (m: Msg) => boolean, from: number, what: string): Promise<Msg>
  /** Resolves when the listening stream (GET, or the legacy event stream) has ended. */
  ended: Promise<void>
  /** The HTTP status of one more request (a ping) on the session, and its JSON-RPC error code if any. */
  statusOfNext(): Promise<string>
  close(): Promise<void>
}

/** What every kind of session shares: the log of messages and waiting on it. */
class Seen {
  readonly seen: Msg[] = []
  push(m: Msg): void {
    this.seen.push(m)
  }
  waitFor(match: (m: Msg) => boolean, from: number, what: string): Promise<Msg> {
    return waitFor(
      () => this.seen.slice(from).find(match),
      () => `timed out waiting for ${what}; saw ${JSON.stringify(this.seen)}`,
    )
  }
}

/** Reads an event stream into `into` (JSON-RPC messages only); resolves at its end. */
async function pump(events: Events, into: Seen): Promise<void> {
  for (let e = await events.next(); e !== undefined; e = await events.next()) {
    if (e.data.startsWith('{')) into.push(JSON.parse(e.data) as Msg)
  }
}

/** A Streamable HTTP session (of a server, or of an endpoint) with its GET stream open. */
async function streamable(url: string): Promise<Conn> {
  const token = await stack.token('alice', { resource: url })
  const base = {
    'content-type': 'application/json',
    accept: ACCEPT,
    authorization: `Bearer ${token}`,
  }
  const init = await fetch(url, {
    method: 'POST',
    headers: base,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: VERSION,
        capabilities: {},
        clientInfo: { name: 't', version: '0' },
      },
    }),
  })
  assert.equal(init.status, 200)
  const sid = init.headers.get('mcp-session-id')!
  await init.body?.cancel()
  const headers = { ...base, 'mcp-session-id': sid, 'mcp-protocol-version': VERSION }
  const post = (body: unknown) =>
    fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
  const ack = await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
  assert.equal(ack.status, 202)
  const s = new Seen()
  const get = await fetch(url, { headers: { ...headers, accept: 'text/event-stream' } })
  assert.equal(get.status, 200)
  const ended = pump(new Events(get), s)
  let next = 1
  return {
    seen: s.seen,
    waitFor: (match, from, what) => s.waitFor(match, from, what),
    async request(method, params) {
      const id = next++
      const res = await post({ jsonrpc: '2.0', id, method, params })
      assert.equal(res.status, 200, `${method}: ${res.status}`)
      if (res.headers.get('content-type')?.startsWith('text/event-stream'))
        await pump(new Events(res), s)
      else s.push((await res.json()) as Msg)
      return s.waitFor((m) => m.id === id && m.method === undefined, 0, `the reply to ${method}`)
    },
    ended,
    async statusOfNext() {
      const res = await post({ jsonrpc: '2.0', id: next++, method: 'ping' })
      const text = await res.text()
      const data = text.startsWith('{') ? text : lastData(text)
      const code = data ? (JSON.parse(data) as Msg).error?.code : undefined
      return code === undefined ? String(res.status) : `${res.status} ${code}`
    },
    async close() {
      await fetch(url, { method: 'DELETE', headers }).then((r) => r.body?.cancel())
    },
  }
}

/** A legacy HTTP+SSE (2024-11-05) session: one event stream carries everything. */
async function legacy(server: string): Promise<Conn> {
  const token = await stack.token('alice', { server })
  const auth = { authorization: `Bearer ${token}` }
  const res = await fetch(`${stack.url}/sse/${server}`, {
    headers: { accept: 'text/event-stream', ...auth },
  })
  assert.equal(res.status, 200)
  const events = new Events(res)
  const endpoint = `${stack.url}${(await events.next())!.data}`
  const s = new Seen()
  const ended = pump(events, s)
  const post = (body: unknown) =>
    fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify(body),
    })
  let next = 1
  const request = async (method: string, params: Record<string, unknown>) => {
    const id = next++
    const r = await post({ jsonrpc: '2.0', id, method, params })
    assert.equal(r.status, 202, `${method}: ${r.status}`)
    await r.body?.cancel()
    return s.waitFor((m) => m.id === id && m.method === undefined, 0, `the reply to ${method}`)
  }
  await request('initialize', {
    protocolVersion: '2024-11-05',
    capabilities: {},
    clientInfo: { name: 't', version: '0' },
  })
  assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202)
  return {
    seen: s.seen,
    waitFor: (match, from, what) => s.waitFor(match, from, what),
    request,
    ended,
    async statusOfNext() {
      const r = await post({ jsonrpc: '2.0', id: next++, method: 'ping' })
      await r.body?.cancel()
      return String(r.status)
    },
    async close() {
      await events.cancel().catch(() => {})
    },
  }
}

/**
 * Each kind of session, and what its next ping gets: once the server is denied (`denied`), while
 * the user lacks a scope the server's access needs (`challenged`), and served (`served`).
 */
const SESSIONS: {
  name: string
  tool: string
  denied: string
  challenged: string
  served: string
  /** No such session (any more). */
  gone: string
  open: () => Promise<Conn>
}[] = [
  {
    name: 'Streamable HTTP session of a server',
    tool: '',
    // Access is decided before the session is looked up: an explicit deny is a JSON-RPC error
    // on a 200, a missing scope the 403 step-up challenge.
    denied: '200 -32010',
    challenged: '403 -32011',
    served: '200',
    gone: '404 -32001',
    open: () => streamable(stack.local('conformance')),
  },
  {
    name: 'legacy HTTP+SSE session of a server',
    tool: '',
    denied: '404',
    challenged: '403',
    served: '202',
    gone: '404',
    open: () => legacy('conformance'),
  },
  {
    name: 'endpoint session',
    tool: 'conformance_',
    denied: '404 -32001',
    // A ping is the endpoint's own: it answers whatever its backends allow.
    challenged: '200',
    served: '200',
    gone: '404 -32001',
    open: () => streamable(`${stack.url}/mcp/subs`),
  },
]

/** The data of the last event of an event stream's text. */
function lastData(text: string): string {
  const datas = text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
  return datas[datas.length - 1] ?? ''
}

const isUpdate = (m: Msg) => m.method === 'notifications/resources/updated'
const isToolsChanged = (m: Msg) => m.method === 'notifications/tools/list_changed'

for (const kind of SESSIONS) {
  describe(`review: server notifications follow the policy loaded now (${kind.name})`, () => {
    const call = (c: Conn, name: string, meta?: Record<string, unknown>) =>
      c.request('tools/call', {
        name: `${kind.tool}${name}`,
        arguments: {},
        ...(meta ? { _meta: meta } : {}),
      })

    /** Changes the watched resource, then lists a change (the marker); resolves with what came between. */
    async function touchThenMark(c: Conn): Promise<Msg[]> {
      const from = c.seen.length
      assert.equal((await call(c, 'test_update_watched_resource')).error, undefined)
      assert.equal((await call(c, 'test_trigger_tool_change')).error, undefined)
      const marker = await c.waitFor(isToolsChanged, from, 'the list_changed marker')
      return c.seen.slice(from, c.seen.indexOf(marker, from))
    }

    it('an update of a URI no longer readable is dropped; logs, progress and list changes still flow', async () => {
      const c = await kind.open()
      try {
        const sub = await c.request('resources/subscribe', { uri: WATCHED })
        assert.equal(sub.error, undefined)
        assert.equal(
          (await touchThenMark(c)).filter(isUpdate).length,
          1,
          'readable: the update arrives, before the marker',
        )

        policy.replace(RESOURCES, `resources: { "${WATCHED}": deny, "*": ["mcp:read"] }`)
        const read = await c.request('resources/read', { uri: WATCHED })
        assert.equal(read.error?.code, -32010, 'reading it is refused now')
        assert.deepEqual(
          (await touchThenMark(c)).filter(isUpdate),
          [],
          'no update before the marker that follows it',
        )

        // What is not about the denied URI keeps flowing while the server stays allowed.
        let from = c.seen.length
        await call(c, 'test_logging_tool')
        const logs = c.seen.slice(from).filter((m) => m.method === 'notifications/message')
        assert.ok(logs.length > 0, 'logs of a call arrive')
        from = c.seen.length
        await call(c, 'test_tool_with_progress', { progressToken: 'p1' })
        const progress = c.seen
          .slice(from)
          .filter((m) => m.method === 'notifications/progress' && m.params?.progressToken === 'p1')
        assert.equal(progress.length, 3, 'progress of a call arrives')

        policy.restore()
        assert.equal(
          (await touchThenMark(c)).filter(isUpdate).length,
          1,
          'readable again: updates flow again (the subscription was kept)',
        )
      } finally {
        await c.close()
      }
    })

    it('a reload that denies the server ends the stream and closes the session', async () => {
      const c = await kind.open()
      let ended = false
      void c.ended.then(() => (ended = true))
      try {
        assert.equal((await c.request('resources/subscribe', { uri: WATCHED })).error, undefined)
        // No policy for the server any more: denied outright.
        policy.replace('  conformance:\n', '  conformance-retired:\n')
        await waitFor(() => ended, 'the stream ended')
        // Streamable HTTP decides access to the server before it looks the session up.
        assert.equal(await c.statusOfNext(), kind.denied, 'its next request is refused')
        policy.restore()
        assert.equal(await c.statusOfNext(), kind.gone, 'the session is gone, access back or not')
      } finally {
        await c.close()
      }
    })

    it('a reload that only raises the access scope keeps the session for a client that steps up', async () => {
      const c = await kind.open()
      let ended = false
      void c.ended.then(() => (ended = true))
      try {
        assert.equal((await c.request('resources/subscribe', { uri: WATCHED })).error, undefined)
        // The user now lacks a scope: their next request gets a step-up challenge, and the
        // session stays for the client that steps up (here: the scope comes back).
        policy.replace(ACCESS, ACCESS.replace('mcp:read', 'mcp:admin'))
        assert.equal(await c.statusOfNext(), kind.challenged, 'challenged, not gone')
        policy.restore()
        assert.equal(await c.statusOfNext(), kind.served, 'served on the same session')
        assert.equal(
          (await touchThenMark(c)).filter(isUpdate).length,
          1,
          'its listening stream still carries the subscription',
        )
        assert.equal(ended, false, 'the listening stream never ended')
      } finally {
        await c.close()
      }
    })
  })
}
