// A session's process replaced when the user's credentials change (session.ts replaceChild): the
// client's answers to server→client requests, and its cancellations, reach only the process
// that asked. The server here is a raw stdio script that numbers its own requests from 0 (as
// the SDK does), so the old and the new process ask with the same ids, and that reports every
// answer and cancellation it received: the assertion is what the new process saw.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Child } from '../../gateway/bridge/child.js'
import { ServerAsks } from '../../gateway/bridge/server-asks.js'
import type { SecretOwner, UserSecrets } from '../../gateway/credentials/secrets.js'
import { openSession } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { sseData } from '../helpers/sse.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

// `ask`: asks the client for its roots (ids 0, 1, … of its own) and answers the call at once, so
// the request stays outstanding with no client request in flight (a replacement goes ahead).
// `seen`: every response and cancellation this process received, with its pid.
const ASKER = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const seen = []
let asks = 0
const text = (id, value) => out({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: JSON.stringify(value) }] } })
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === undefined || m.method === 'notifications/cancelled') seen.push(m)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'asker', version: '0' } } })
  else if (m.method === 'tools/list')
    out({ jsonrpc: '2.0', id: m.id, result: { tools: [
      { name: 'ask', inputSchema: { type: 'object' } }, { name: 'seen', inputSchema: { type: 'object' } }] } })
  else if (m.method === 'tools/call' && m.params.name === 'ask') {
    const id = asks++
    out({ jsonrpc: '2.0', id, method: 'roots/list', params: {} })
    text(m.id, { pid: process.pid, asked: id })
  } else if (m.method === 'tools/call') text(m.id, { pid: process.pid, seen })
  else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

const credentials = { ASKER_TOKEN: { secret: 'asker_token', describe: 'Your asker token' } }
let stack: Stack
let secrets: UserSecrets
let token: string
const owner = (): SecretOwner => ({ iss: stack.idp.issuer, sub: 'alice' })

before(async () => {
  const script = join(tmpdir(), `replace-answers-${process.pid}.mjs`)
  writeFileSync(script, ASKER)
  stack = await startStack({
    policy: `${TEST_POLICY}  asker:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
    servers: { asker: { command: process.execPath, args: [script], credentials } },
    config: { credentials: { pollInterval: 20 } },
  })
  secrets = stack.gateway.secrets!
  token = await stack.token('alice', { server: 'asker' })
})
after(() => stack.close())

/** One POST on session `sid`: its status and every message of its body. */
async function post(sid: string, body: unknown) {
  const res = await postMcp(stack.local('asker'), body, {
    authorization: `Bearer ${token}`,
    'mcp-session-id': sid,
    'mcp-protocol-version': '2025-11-25',
  })
  return { status: res.status, messages: sseData(res.text).map((d) => JSON.parse(d)) }
}

let nextId = 10
/** Calls `name` on session `sid`: the server's requests that came on its stream, and its result. */
async function call(sid: string, name: string) {
  const id = nextId++
  const r = await post(sid, {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: {} },
  })
  assert.equal(r.status, 200)
  const asked = r.messages.filter((m) => m.method !== undefined && m.id !== undefined)
  const reply = r.messages.find((m) => m.id === id)
  assert.ok(reply?.result, JSON.stringify(r.messages))
  return { asked, result: JSON.parse(reply.result.content[0].text) }
}

const answer = (id: unknown, uri: string) => ({
  jsonrpc: '2.0',
  id,
  result: { roots: [{ uri, name: uri }] },
})
const cancel = (requestId: unknown) => ({
  jsonrpc: '2.0',
  method: 'notifications/cancelled',
  params: { requestId, reason: 'test' },
})

describe('process replaced: answers reach only the process that asked', () => {
  it("a late answer to the old process's request never reaches the new one, even with the same id", async () => {
    await secrets.set(owner(), 'asker_token', 'first')
    const sid = await openSession(stack, 'asker', token, { roots: {} })
    const before = await call(sid, 'ask')
    assert.equal(before.asked.length, 1)
    const oldAsk = before.asked[0]
    assert.equal(oldAsk.method, 'roots/list')
    assert.equal(oldAsk.id, 0)

    // The secret changes: the next call runs on a new process, which asks with its own id 0.
    await secrets.set(owner(), 'asker_token', 'second')
    const after = await call(sid, 'ask')
    assert.notEqual(after.result.pid, before.result.pid, 'the process was replaced')
    assert.equal(after.result.asked, 0)
    assert.equal(after.asked.length, 1)
    const newAsk = after.asked[0]

    // The client answers the old process's request late, cancels it, then sends answers and
    // cancellations for requests no process of the session asked.
    for (const body of [
      answer(oldAsk.id, 'file:///old'),
      cancel(oldAsk.id),
      answer(oldAsk.id, 'file:///old-again'),
      answer(1, 'file:///never-asked'),
      answer('mcp-edge-nobody', 'file:///never-asked'),
      { jsonrpc: '2.0', id: 2, error: { code: -32601, message: 'no' } },
      cancel(7),
    ])
      assert.equal((await post(sid, body)).status, 202, JSON.stringify(body))
    // Then it answers the new process's request: that one goes, with the process's own id.
    assert.equal((await post(sid, answer(newAsk.id, 'file:///new'))).status, 202)

    const seen = await call(sid, 'seen')
    assert.equal(seen.result.pid, after.result.pid)
    assert.deepEqual(seen.result.seen, [
      { jsonrpc: '2.0', id: 0, result: { roots: [{ uri: 'file:///new', name: 'file:///new' }] } },
    ])
    assert.ok(
      stack.logLines.some(
        (l) => l.includes('"level":40') && l.includes('no process of the session asked'),
      ),
      'an answer nobody asked for is logged',
    )
    // The new process's request reached the client under an id of its own: not the one still
    // outstanding from the old process, which would leave the client two requests with one id.
    assert.notEqual(newAsk.id, oldAsk.id)
  })

  it("the client's cancellation of the new process's request reaches it with its own id", async () => {
    await secrets.set(owner(), 'asker_token', 'third')
    const sid = await openSession(stack, 'asker', token, { roots: {} })
    const first = await call(sid, 'ask')
    await secrets.set(owner(), 'asker_token', 'fourth')
    const second = await call(sid, 'ask')
    assert.notEqual(second.result.pid, first.result.pid)
    const newAsk = second.asked[0]
    assert.equal((await post(sid, cancel(newAsk.id))).status, 202)
    // Once cancelled the request is forgotten: a late answer to it is not relayed.
    assert.equal((await post(sid, answer(newAsk.id, 'file:///late'))).status, 202)
    const seen = await call(sid, 'seen')
    assert.deepEqual(seen.result.seen, [
      {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 0, reason: 'test' },
      },
    ])
  })
})

describe("a session's server requests awaiting the client's answers are bounded", () => {
  let small: Stack
  before(async () => {
    const script = join(tmpdir(), `replace-answers-bounded-${process.pid}.mjs`)
    writeFileSync(script, ASKER)
    small = await startStack({
      policy: `${TEST_POLICY}  asker:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      servers: { asker: { command: process.execPath, args: [script] } },
      config: { limits: { sessionQueueEvents: 4, streamQueueEvents: 4 } },
    })
  })
  after(() => small.close())

  it('past limits.sessionQueueEvents a request is refused to the process, not relayed; an answer frees room', async () => {
    const alice = await small.token('alice', { server: 'asker' })
    const sid = await openSession(small, 'asker', alice, { roots: {} })
    const headers = {
      authorization: `Bearer ${alice}`,
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    }
    const send = async (body: unknown) => {
      const res = await postMcp(small.local('asker'), body, headers)
      return { status: res.status, messages: sseData(res.text).map((d) => JSON.parse(d)) }
    }
    let id = 100
    const ask = async (name = 'ask') => {
      const r = await send({
        jsonrpc: '2.0',
        id: ++id,
        method: 'tools/call',
        params: { name, arguments: {} },
      })
      assert.equal(r.status, 200)
      const reply = r.messages.find((m) => m.id === id)
      return {
        asked: r.messages.filter((m) => m.method !== undefined && m.id !== undefined),
        result: JSON.parse(reply.result.content[0].text),
      }
    }
    for (let n = 0; n < 4; n++)
      assert.deepEqual(
        (await ask()).asked.map((m) => m.id),
        [n],
      )
    // A fifth while none is answered: the process hears the refusal, the client nothing.
    assert.deepEqual((await ask()).asked, [])
    assert.equal((await send(answer(0, 'file:///zero'))).status, 202)
    assert.deepEqual(
      (await ask()).asked.map((m) => m.id),
      [5],
    )
    const seen = (await ask('seen')).result.seen
    assert.deepEqual(seen, [
      {
        jsonrpc: '2.0',
        id: 4,
        error: { code: -32603, message: "too many requests awaiting the client's answers" },
      },
      { jsonrpc: '2.0', id: 0, result: { roots: [{ uri: 'file:///zero', name: 'file:///zero' }] } },
    ])
    assert.ok(
      small.logLines.some((l) => l.includes('awaiting the client') && l.includes('refused')),
    )
  })
})

describe('ServerAsks: which process asked what', () => {
  // Processes are only told apart here (the key), never spoken to.
  const older = { pid: 1 } as Child
  const newer = { pid: 2 } as Child

  it('an id still outstanding from any process is relayed under a gateway id; answers find their asker once', () => {
    const asks = new ServerAsks(10)
    assert.equal(asks.relay(older, 0), 0)
    const clash = asks.relay(newer, 0)
    assert.match(String(clash), /^mcp-edge-server-/)
    // A string id and a number id are different ids.
    assert.equal(asks.relay(newer, '0'), '0')
    assert.deepEqual(asks.take(clash!), { child: newer, id: 0 })
    assert.equal(asks.take(clash!), undefined, 'answered once')
    assert.deepEqual(asks.take(0), { child: older, id: 0 })
    assert.equal(asks.take(0), undefined)
    assert.equal(asks.take(1), undefined, 'never asked')
    // Free again: the next request with id 0 keeps its id.
    assert.equal(asks.relay(newer, 0), 0)
    assert.equal(asks.size, 2)
  })

  it("a process's own cancellation names the id the client knows; another process's id is not its own", () => {
    const asks = new ServerAsks(10)
    asks.relay(older, 5)
    const clash = asks.relay(newer, 5)!
    assert.equal(asks.withdraw(newer, 6), undefined)
    assert.equal(asks.withdraw(newer, 5), clash)
    assert.equal(asks.take(clash), undefined, 'withdrawn: a late answer finds no asker')
    assert.deepEqual(asks.take(5), { child: older, id: 5 })
  })

  it('bounded: past the bound a request is not relayed until an answer frees room', () => {
    const asks = new ServerAsks(3)
    for (const id of [1, 2, 3]) assert.equal(asks.relay(older, id), id)
    assert.equal(asks.relay(newer, 4), undefined)
    assert.equal(asks.size, 3)
    asks.take(2)
    assert.equal(asks.relay(newer, 4), 4)
    asks.clear()
    assert.equal(asks.size, 0)
    assert.equal(asks.take(1), undefined)
  })
})
