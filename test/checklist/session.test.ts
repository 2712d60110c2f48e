// Checklist items of the session era (2025-03-26 to 2025-11-25) and of metadata discovery that no
// other test checked black-box: each test's name starts with its item id (see
// test/checklist/README.md). One server here is a raw stdio script that asks the client for
// sampling whatever the client declared, as a careless or hostile server would.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { postMcp } from '../helpers/post-mcp.js'
import { Events } from '../helpers/sse-events.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { initBody, openSession as openIn } from './open-session.js'

const ACCEPT = 'application/json, text/event-stream'
const init = initBody

// Answers initialize and tools/list; on tools/call asks the client to sample, and reports
// whether it was answered or refused (and with what) as the call's result. Every read is the
// session era's -32002 (resource not found).
const ASKER = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
let pending
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'asker', version: '0' } } })
  else if (m.method === 'tools/list')
    out({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'ask', inputSchema: { type: 'object' } }] } })
  else if (m.method === 'resources/read')
    out({ jsonrpc: '2.0', id: m.id, error: { code: -32002, message: 'Resource not found', data: { uri: m.params.uri } } })
  else if (m.method === 'tools/call') {
    pending = m.id
    out({ jsonrpc: '2.0', id: 'asked-1', method: 'sampling/createMessage', params: {
      messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 1 } })
  } else if (m.method === undefined && pending !== undefined) {
    out({ jsonrpc: '2.0', id: pending, result: { isError: m.error !== undefined,
      content: [{ type: 'text', text: m.error ? 'refused: ' + m.error.message : 'answered' }] } })
    pending = undefined
  } else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

// Asks the client to sample right after its initialize result, before the client's
// `initialized`, as the lifecycle says a server should not (D28). A ping that comes before
// `initialized` is answered only after a second early sampling request and a log message, so
// once the ping's answer is in, the gateway has read both requests.
const EARLY = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
let initialized = false
const sample = (id) => out({ jsonrpc: '2.0', id, method: 'sampling/createMessage', params: {
  messages: [{ role: 'user', content: { type: 'text', text: 'early' } }], maxTokens: 1 } })
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize') {
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { logging: {} }, serverInfo: { name: 'early', version: '0' } } })
    sample('early-1')
  } else if (m.method === 'notifications/initialized') initialized = true
  else if (m.method === 'ping') {
    if (!initialized) {
      sample('early-2')
      out({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'early log' } })
    }
    out({ jsonrpc: '2.0', id: m.id, result: {} })
  } else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

let stack: Stack
let alice: string
before(async () => {
  const script = join(tmpdir(), `checklist-asker-${process.pid}.mjs`)
  writeFileSync(script, ASKER)
  const early = join(tmpdir(), `checklist-early-${process.pid}.mjs`)
  writeFileSync(early, EARLY)
  stack = await startStack({
    policy: `${TEST_POLICY}
  asker:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
    resources: { "*": allow }
  early:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
`,
    servers: {
      asker: { command: process.execPath, args: [script] },
      early: { command: process.execPath, args: [early] },
    },
  })
  alice = await stack.token('alice')
})
after(() => stack.close())

const openSession = (server: string, token: string, capabilities: Record<string, unknown> = {}) =>
  openIn(stack, server, token, capabilities)

const post = (server: string, body: unknown, headers: Record<string, string> = {}) =>
  postMcp(stack.local(server), body, headers)

/** The asker's `ask` tool called as request 2 on session `sid`, its SSE stream open. */
const callAsk = (token: string, sid: string) =>
  fetch(stack.local('asker'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'ask', arguments: {} },
    }),
  })

describe('A: discovery from the challenge', () => {
  it('A4: each server challenges with its own metadata URL, whose resource is that server', async () => {
    const seen = new Set<string>()
    for (const server of ['echo', 'notes', 'fixture']) {
      const res = await post(server, init())
      assert.equal(res.status, 401)
      const rm = /resource_metadata="([^"]+)"/.exec(res.headers['www-authenticate'] as string)?.[1]
      assert.ok(rm, server)
      seen.add(rm)
      const doc = (await (await request(rm)).body.json()) as Record<string, unknown>
      assert.equal(doc.resource, stack.endpoint(server))
      // A20: no signed_metadata is published (so none can disagree with the plain values).
      assert.equal(doc.signed_metadata, undefined)
    }
    assert.equal(seen.size, 3)
  })

  it('C3: a token whose audience is the gateway origin opens no server (no gateway-wide audience)', async () => {
    for (const aud of [stack.url, `${stack.url}/`, `${stack.url}/mcp`]) {
      const res = await post('echo', init(), {
        authorization: `Bearer ${await stack.forge({ aud })}`,
      })
      assert.equal(res.status, 401, aud)
      assert.match(res.headers['www-authenticate'] as string, /error="invalid_token"/)
    }
  })
})

describe('D: session-era transport', () => {
  it('D3: a batch on a session negotiated at 2025-11-25 is 400 -32600 (batches ended with 2025-06-18)', async () => {
    const sid = await openSession('echo', alice)
    const list = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/list' })
    const res = await post('echo', [list(2), list(3)], {
      authorization: `Bearer ${alice}`,
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    })
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json().error.code, -32600)
  })

  it('D25: an initialize carrying MCP-Protocol-Version is served and opens a session', async () => {
    for (const v of ['2025-11-25', '2025-06-18']) {
      const res = await post('echo', init(), {
        authorization: `Bearer ${alice}`,
        'mcp-protocol-version': v,
      })
      assert.equal(res.status, 200, `${v}: ${res.text}`)
      assert.ok(res.headers['mcp-session-id'], v)
    }
  })

  it('D27: a server request for a capability the client did not negotiate never reaches the client', async () => {
    const alice = await stack.token('alice', { server: 'asker' })
    const sid = await openSession('asker', alice)
    const res = await callAsk(alice, sid)
    assert.equal(res.status, 200)
    const events = new Events(res)
    let reply: {
      id?: unknown
      method?: string
      result?: { isError: boolean; content: { text: string }[] }
    }
    for (;;) {
      const e = await events.next()
      assert.ok(e, 'the stream ended without the reply')
      if (e.data === '') continue
      reply = JSON.parse(e.data)
      // The client declared no sampling: the request must not be relayed to it.
      assert.notEqual(
        reply.method,
        'sampling/createMessage',
        'relayed to a client without sampling',
      )
      if (reply.id === 2) break
    }
    await res.body?.cancel().catch(() => {})
    assert.equal(reply.result?.isError, true)
    assert.match(reply.result!.content[0]!.text, /^refused: .*sampling/)
  })

  it('D27: control: a client that declared sampling is asked', async () => {
    const alice = await stack.token('alice', { server: 'asker' })
    const sid = await openSession('asker', alice, { sampling: {} })
    const res = await callAsk(alice, sid)
    const events = new Events(res)
    const next = async () => {
      for (;;) {
        const e = await events.next()
        assert.ok(e, 'the stream ended')
        if (e.data !== '') return JSON.parse(e.data) as Record<string, any>
      }
    }
    const asked = await next()
    assert.equal(asked.method, 'sampling/createMessage')
    // The client declines; the call then ends with what the server made of it.
    const answer = await post(
      'asker',
      { jsonrpc: '2.0', id: asked.id, error: { code: -1, message: 'declined' } },
      { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
    )
    assert.equal(answer.status, 202)
    const reply = await next()
    assert.equal(reply.id, 2)
    assert.match(reply.result.content[0].text, /^refused: declined/)
  })
})

describe("D28: a server's requests wait for the client's initialized", () => {
  const headers = (token: string, sid?: string) => ({
    'content-type': 'application/json',
    accept: ACCEPT,
    authorization: `Bearer ${token}`,
    'mcp-protocol-version': '2025-11-25',
    ...(sid === undefined ? {} : { 'mcp-session-id': sid }),
  })
  /** The next JSON-RPC message of a stream (priming events skipped). */
  const message = async (events: Events) => {
    for (;;) {
      const e = await events.next()
      assert.ok(e, `the stream ended; saw ${JSON.stringify(events.seen)}`)
      if (e.data !== '') return JSON.parse(e.data) as Record<string, any>
    }
  }

  it('D28: a sampling request sent before initialized reaches the client only after it; pings and logs pass', async () => {
    const token = await stack.token('alice', { server: 'early' })
    const opened = await post('early', init({ sampling: {} }), { authorization: `Bearer ${token}` })
    assert.equal(opened.status, 200, opened.text)
    const sid = opened.headers['mcp-session-id'] as string
    const get = await fetch(stack.local('early'), {
      headers: { ...headers(token, sid), accept: 'text/event-stream' },
    })
    assert.equal(get.status, 200)
    const standalone = new Events(get)
    // A ping before initialized: its answer comes after the process wrote early-2 and its log.
    const ping = await fetch(stack.local('early'), {
      method: 'POST',
      headers: headers(token, sid),
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    })
    assert.equal(ping.status, 200)
    const onPing: Record<string, any>[] = []
    const pingEvents = new Events(ping)
    for (let m = await message(pingEvents); ; m = await message(pingEvents)) {
      onPing.push(m)
      if (m.id === 2) break
    }
    await ping.body?.cancel().catch(() => {})
    // Logging passes before initialized (on the ping's stream: the one request in flight).
    assert.ok(
      onPing.some((m) => m.method === 'notifications/message'),
      JSON.stringify(onPing),
    )
    assert.ok(!onPing.some((m) => m.method === 'sampling/createMessage'), JSON.stringify(onPing))
    const done = await post(
      'early',
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(done.status, 202)
    // The GET stream's first messages are the two held requests, in order: nothing came before.
    const first = await message(standalone)
    const second = await message(standalone)
    await standalone.cancel().catch(() => {})
    assert.deepEqual(
      [first, second].map((m) => [m.method, m.id]),
      [
        ['sampling/createMessage', 'early-1'],
        ['sampling/createMessage', 'early-2'],
      ],
    )
  })

  it('D28: a client that never sends initialized gets them with its first request', async () => {
    const token = await stack.token('alice', { server: 'asker' })
    const opened = await post('asker', init({ sampling: {} }), { authorization: `Bearer ${token}` })
    const sid = opened.headers['mcp-session-id'] as string
    const res = await fetch(stack.local('asker'), {
      method: 'POST',
      headers: headers(token, sid),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'ask', arguments: {} },
      }),
    })
    const asked = await message(new Events(res))
    await res.body?.cancel().catch(() => {})
    assert.equal(asked.method, 'sampling/createMessage')
  })
})

describe('D-M: the modern path over a session-era server', () => {
  it("D47: a server's -32002 reaches a modern client as -32602; a session still gets -32002", async () => {
    const token = await stack.token('alice', { server: 'asker' })
    const uri = 'asker://nope'
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
    }
    const res = await post(
      'asker',
      { jsonrpc: '2.0', id: 47, method: 'resources/read', params: { uri, _meta: meta } },
      {
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'resources/read',
        'mcp-name': uri,
      },
    )
    assert.equal(res.json().id, 47, res.text)
    assert.equal(res.json().error?.code, -32602, res.text)
    // control: the server does answer -32002, and a session-era client gets it as sent
    const sid = await openSession('asker', token)
    const legacy = await post(
      'asker',
      { jsonrpc: '2.0', id: 48, method: 'resources/read', params: { uri } },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(legacy.json().error?.code, -32002, legacy.text)
  })
})
