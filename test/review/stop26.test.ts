// Stop 26: an outsider's attack on cross-user leakage where one process or one endpoint serves
// many users (shared mode's id and progress-token rewriting, endpoints' namespaced names).
// Finding (shared mode, medium): a log line (`notifications/message`) of a shared process went to
// whichever session had the one request in flight when it arrived. A log line names no request,
// so that guessed: the line of work the process still did for a session that had closed (or
// of no request at all) reached another user's session. Log lines of a shared process now go
// to no session.
// Finding (shared mode, low): a session's resource subscriptions were held without bound in the
// gateway (and each reached the one process every user shares): one user could grow both with
// distinct URIs. A session now holds `servers.<name>.maxSubscriptions` (256) at most, as an
// endpoint session does; one more new URI is -32000 and never reaches the process.
// Finding (shared mode, low): a request the client cancelled stayed in the shared process's
// table of requests in flight (and its session's) until the session ended, since the process
// does not answer a cancelled request: each cancel (and each requestTimeout) of a long session
// grew the gateway's memory, and the session's end cancelled it at the process a second time.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { Events } from '../helpers/sse-events.js'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ACCEPT = 'application/json, text/event-stream'
type Message = any
const RECORD = join(mkdtempSync(join(tmpdir(), 'mcp-edge-stop26-')), 'record.jsonl')
const got = (text: string) => existsSync(RECORD) && readFileSync(RECORD, 'utf8').includes(text)
/** What reached a process, one message a line. */
const received = (file: string): Message[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l))
    : []
const HUB_RECORD = join(mkdtempSync(join(tmpdir(), 'mcp-edge-stop26-')), 'hub.jsonl')
// A raw server with subscriptions: its `emit` tool writes the messages its arguments hold (as a
// server would on its own), then answers. Records every line it reads.
const HUB = `
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  appendFileSync(process.env.HUB_RECORD, line + '\\n')
  const m = JSON.parse(line)
  if (m.id === undefined) return
  const reply = (result) => out({ jsonrpc: '2.0', id: m.id, result })
  if (m.method === 'initialize')
    return reply({ protocolVersion: m.params.protocolVersion, serverInfo: { name: 'hub', version: '0' },
      capabilities: { tools: {}, resources: { subscribe: true }, logging: {} } })
  if (m.method === 'tools/list') return reply({ tools: [{ name: 'emit', inputSchema: { type: 'object' } }] })
  if (m.method === 'tools/call') {
    for (const n of m.params.arguments.messages ?? []) out(n)
    return reply({ content: [{ type: 'text', text: 'emitted' }] })
  }
  if (['resources/subscribe', 'resources/unsubscribe', 'logging/setLevel'].includes(m.method)) return reply({})
  out({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no such method' } })
})
`
const hubScript = join(mkdtempSync(join(tmpdir(), 'mcp-edge-stop26-')), 'hub.mjs')
writeFileSync(hubScript, HUB)
const SERVERS = {
  sharedfx: {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'fixture.js')],
    mode: 'shared',
    env: { FIXTURE_RECORD_FILE: RECORD },
  },
  hub: { command: process.execPath, args: [hubScript], mode: 'shared', env: { HUB_RECORD } },
}
const POLICY = `${TEST_POLICY}  sharedfx:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
    resources: { "*": ["mcp:read"] }
  hub:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
    resources: { "*": ["mcp:read"] }
`

let stack: Stack
before(async () => {
  stack = await startStack({ servers: SERVERS, policy: POLICY })
})
after(async () => {
  await stack.close()
})

async function rpc(server: string, token: string, body: unknown, sid?: string) {
  const res = await request(`${stack.url}/mcp/${server}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const sse = String(res.headers['content-type']).startsWith('text/event-stream')
  const messages: Message[] = sse
    ? sseData(text).map((l) => JSON.parse(l))
    : text
      ? [JSON.parse(text)]
      : []
  return { status: res.statusCode, headers: res.headers, messages, last: messages.at(-1) }
}

async function open(server: string, token: string) {
  const init = await rpc(server, token, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 't', version: '0' },
    },
  })
  assert.equal(init.status, 200)
  const sid = init.headers['mcp-session-id'] as string
  await rpc(server, token, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  const call = (id: number | string, name: string, args: Record<string, unknown> = {}) =>
    rpc(
      server,
      token,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } },
      sid,
    )
  const close = () =>
    request(`${stack.url}/mcp/${server}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    }).then((r) => r.body.dump())
  const send = (body: unknown) => rpc(server, token, body, sid)
  /** The session's GET stream, read as it arrives. */
  const stream = async () => {
    const res = await fetch(`${stack.url}/mcp/${server}`, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${token}`,
        'mcp-session-id': sid,
      },
    })
    assert.equal(res.status, 200)
    return new Events(res)
  }
  return { sid, call, close, send, stream }
}

describe('stop 26: shared mode, one process for every user', () => {
  it("a log line of work the process still does for a closed session never reaches another user's request", async () => {
    const alice = await open('sharedfx', await stack.token('alice', { server: 'sharedfx' }))
    const bob = await open('sharedfx', await stack.token('bob', { server: 'sharedfx' }))
    // Alice's call runs on (deaf to cancellation) and logs "after alice-private" when released.
    const lingering = alice.call(1, 'linger', { name: 'alice-private' })
    await waitFor(() => got('alice-private'), "alice's call reached the process")
    await alice.close()
    await lingering
    // Bob's one request in flight releases it, and is answered only after the log line is out.
    const res = await bob.call(1, 'open_gate', { name: 'alice-private', settle: true })
    assert.equal(res.last?.result?.content?.[0]?.text, 'opened alice-private')
    const leaked = res.messages.filter((m) => JSON.stringify(m).includes('after alice-private'))
    assert.deepEqual(leaked, [], "alice's log line reached bob")
  })

  it("held: ids and progress tokens of one user shaped like the rewritten ones, or colliding, never touch another user's request", async () => {
    const alice = await open('sharedfx', await stack.token('alice', { server: 'sharedfx' }))
    const bob = await open('sharedfx', await stack.token('bob', { server: 'sharedfx' }))
    const waiting = alice.send({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'gate', arguments: { name: 'alice-gate' }, _meta: { progressToken: 'tok' } },
    })
    await waitFor(() => got('alice-gate'), "alice's call reached the process")
    const sent = received(RECORD).find((m) => m.params?.arguments?.name === 'alice-gate')
    const [backendId, backendToken] = [sent.id, sent.params._meta.progressToken]
    assert.notEqual(backendId, 7, 'the id was rewritten')
    const before = received(RECORD).length
    // Bob names alice's request every way he can: its client id, its rewritten id, neighbours.
    const guesses = [7, '7', backendId, String(backendId), 's0', 's1', 'p0', 'p1', -7, 7.5]
    for (const requestId of guesses)
      await bob.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } })
    for (const progressToken of ['tok', backendToken])
      await bob.send({
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken, progress: 1 },
      })
    const hostileIds = [
      backendId,
      backendToken,
      's0',
      'p0',
      9007199254740991,
      -1,
      0.5,
      '1',
      1,
      'x'.repeat(5000),
    ]
    for (const [n, id] of hostileIds.entries()) {
      const res = await bob.call(id, 'echo_args', { session: 2, i: n })
      if (id === 0.5) {
        // MCP ids are strings or integers: a fraction is refused before the process sees it.
        assert.equal(res.last?.id, null)
        assert.equal(typeof res.last?.error?.code, 'number')
        continue
      }
      assert.equal(res.last?.id, id)
      assert.equal(res.last?.result?.content?.[0]?.text, JSON.stringify({ session: 2, i: n }))
    }
    assert.deepEqual(
      received(RECORD)
        .slice(before)
        .filter((m) => m.method !== 'tools/call'),
      [],
      "none of bob's notifications reached the process",
    )
    await bob.call(99, 'open_gate', { name: 'alice-gate' })
    const res = await waiting
    assert.equal(res.last?.id, 7)
    assert.equal(res.last?.result?.content?.[0]?.text, 'passed alice-gate')
    assert.deepEqual(
      res.messages
        .filter((m) => m.method === 'notifications/progress')
        .map((m) => m.params.progressToken),
      ['tok'],
      'alice saw her own progress, under her own token, once',
    )
    await alice.close()
    await bob.close()
  })

  it("held: another user's unsubscribe, setLevel and subscription updates never reach or touch a subscriber", async () => {
    const alice = await open('hub', await stack.token('alice', { server: 'hub' }))
    const bob = await open('hub', await stack.token('bob', { server: 'hub' }))
    const events = await alice.stream()
    const sub = await alice.send({
      jsonrpc: '2.0',
      id: 1,
      method: 'resources/subscribe',
      params: { uri: 'memo://alice' },
    })
    assert.deepEqual(sub.last?.result, {})
    const before = received(HUB_RECORD).length
    for (const [id, method, params] of [
      [1, 'resources/unsubscribe', { uri: 'memo://alice' }],
      [2, 'logging/setLevel', { level: 'emergency' }],
    ] as const) {
      const res = await bob.send({ jsonrpc: '2.0', id, method, params })
      assert.deepEqual(res.last?.result, {}, method)
    }
    assert.deepEqual(
      received(HUB_RECORD).slice(before),
      [],
      "bob's unsubscribe and setLevel reached the process",
    )
    // The server tells of alice's memo (and of a progress and a cancellation of no request).
    const messages = [
      {
        jsonrpc: '2.0',
        method: 'notifications/resources/updated',
        params: { uri: 'memo://alice' },
      },
      {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: 'p0', progress: 1 },
      },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 's0' } },
    ]
    const res = await bob.call(3, 'emit', { messages })
    assert.equal(res.last?.result?.content?.[0]?.text, 'emitted')
    assert.deepEqual(
      res.messages.filter((m) => m.method !== undefined),
      [],
      'bob got none of it',
    )
    const update = await events.until((e) => e.data.includes('resources/updated'))
    assert.equal(JSON.parse(update.data).params.uri, 'memo://alice', 'alice still subscribed')
    await events.cancel()
    await alice.close()
    await bob.close()
  })

  it('a session holds at most maxSubscriptions (256) subscriptions; one more new URI is refused and never reaches the process', async () => {
    const alice = await open('hub', await stack.token('alice', { server: 'hub' }))
    const subscribe = (id: number, uri: string) =>
      alice.send({ jsonrpc: '2.0', id, method: 'resources/subscribe', params: { uri } })
    for (let i = 0; i < 256; i++)
      assert.deepEqual((await subscribe(i, `memo://many/${i}`)).last?.result, {})
    const before = received(HUB_RECORD).length
    const over = await subscribe(256, 'memo://many/256')
    assert.equal(over.last?.error?.code, -32000, JSON.stringify(over.last))
    assert.match(over.last?.error?.message, /256 resource subscriptions/)
    assert.deepEqual(received(HUB_RECORD).slice(before), [], 'the process saw it')
    // A held URI again, and a new one after an unsubscribe, still succeed.
    assert.deepEqual((await subscribe(257, 'memo://many/3')).last?.result, {})
    const unsub = await alice.send({
      jsonrpc: '2.0',
      id: 258,
      method: 'resources/unsubscribe',
      params: { uri: 'memo://many/4' },
    })
    assert.deepEqual(unsub.last?.result, {})
    assert.deepEqual((await subscribe(259, 'memo://many/256')).last?.result, {})
    await alice.close()
  })

  it("a cancelled request is forgotten at once: the session's end does not cancel it at the process again", async () => {
    const alice = await open('sharedfx', await stack.token('alice', { server: 'sharedfx' }))
    const waiting = alice.call(5, 'gate', { name: 'cancelled-gate' })
    await waitFor(() => got('cancelled-gate'), "alice's call reached the process")
    const backendId = received(RECORD).find(
      (m) => m.params?.arguments?.name === 'cancelled-gate',
    ).id
    await alice.send({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 5 },
    })
    await waiting
    await alice.close()
    // Anyone's next call is recorded after whatever alice's end sent the process.
    const bob = await open('sharedfx', await stack.token('bob', { server: 'sharedfx' }))
    await bob.call(1, 'open_gate', { name: 'cancelled-gate' })
    const cancels = received(RECORD).filter(
      (m) => m.method === 'notifications/cancelled' && m.params?.requestId === backendId,
    )
    assert.equal(cancels.length, 1, JSON.stringify(cancels))
    await bob.close()
  })

  it('held: the process dying with both users in flight under one id fails each with its own id; both sessions end', async () => {
    const alice = await open('sharedfx', await stack.token('alice', { server: 'sharedfx' }))
    const bob = await open('sharedfx', await stack.token('bob', { server: 'sharedfx' }))
    const pid = Number((await alice.call(1, 'pid')).last?.result?.content?.[0]?.text)
    const calls = [
      alice.call(2, 'gate', { name: 'crash-a' }),
      bob.call(2, 'gate', { name: 'crash-b' }),
    ]
    await waitFor(() => got('crash-a') && got('crash-b'), 'both calls reached the process')
    process.kill(pid, 'SIGKILL')
    for (const res of await Promise.all(calls)) {
      assert.equal(res.messages.length, 1, JSON.stringify(res.messages))
      assert.equal(res.last?.id, 2)
      assert.equal(res.last?.error?.code, -32000)
    }
    for (const s of [alice, bob]) assert.equal((await s.call(3, 'pid')).status, 404)
  })
})
