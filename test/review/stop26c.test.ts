// Review (review32) of gaps31 (MCP method names in disguise) and replace31 (a client's answer to a
// server request reaches the process that asked). Findings, each with its fix:
// 1. `İ` (U+0130) was no disguise: the fold lower-cases it to `i` and a combining dot, but Go's
//    strings.ToLower, Java's Character.toLowerCase and C's towlower map it to `i` alone, so a
//    server that lower-cases the method ran `tools/lİst` as `tools/list` (unfiltered) and
//    `completİon/complete` undecided. Now `İ` (and `i` with a combining dot) folds to `i`.
// 2. A name with a NUL inside (`tools/call\u0000x`) was no disguise, yet a server in C reads the
//    method only up to the NUL (cJSON, json-c, `strcmp`) and runs `tools/call` of any tool. Now the
//    part before the first NUL is folded too.
// 3. The fold ran NFKC on the whole name: ICU sorts a run of combining marks in quadratic time, and
//    one authenticated request whose method was 1 MB of alternating U+0301 U+0316 held the event
//    loop for 80 s (100 kB: 3.5 s), every user of the replica stalled. Now a name still longer than
//    240 UTF-16 units once the ignored characters are removed (6 times MCP's longest name) is not
//    normalised: it cannot fold to an MCP name.
// What passes and is harmless (no SDK routes it as MCP's: TS and Go SDKs look the exact string up
// in a map, Python's validates a Literal): other separators and forms, lone surrogates.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { Child } from '../../gateway/bridge/child.js'
import { ServerAsks } from '../../gateway/bridge/server-asks.js'
import { disguisedMethod, foldMethod, MCP_METHODS } from '../../gateway/policy/method-names.js'
import { postMcp } from '../helpers/post-mcp.js'
import { Events } from '../helpers/sse-events.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { initBody, openSession } from '../checklist/open-session.js'
import { sseData } from '../helpers/sse.js'

const RECORDER = `
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const tool = (name) => ({ name, inputSchema: { type: 'object' } })
let pending
createInterface({ input: process.stdin }).on('line', (line) => {
  appendFileSync(process.argv[2], line + '\\n')
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {}, prompts: {}, resources: {} }, serverInfo: { name: 'rec', version: '0' } } })
  else if (m.method === 'tools/list')
    out({ jsonrpc: '2.0', id: m.id, result: { tools: [tool('ok'), tool('ask'), tool('secret')] } })
  else if (m.method === 'tools/call' && m.params.name === 'ask') {
    pending = m.id
    out({ jsonrpc: '2.0', id: 'asked-1', ...m.params.arguments })
  } else if (m.method === undefined && pending !== undefined) {
    out({ jsonrpc: '2.0', id: pending, result: { isError: m.error !== undefined, content: [{ type: 'text',
      text: m.error ? 'refused: ' + m.error.code + ' ' + m.error.message : 'answered' }] } })
    pending = undefined
  } else if (m.id !== undefined && m.method !== undefined)
    out({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ran ' + m.method }],
      tools: [tool('ok'), tool('ask'), tool('secret')] } })
})
`

/** Disguises a server that lower-cases with simple mappings, or reads up to a NUL, would run. */
const DISGUISES: [string, string][] = [
  ['tools/l\u0130st', 'tools/list'],
  ['TOOLS/L\u0130ST', 'tools/list'],
  ['tools/li\u0307st', 'tools/list'],
  ['tools/lI\u0307st', 'tools/list'],
  ['prompts/l\u0130st', 'prompts/list'],
  ['resources/templates/l\u0130st', 'resources/templates/list'],
  ['complet\u0130on/complete', 'completion/complete'],
  ['logg\u0130ng/setLevel', 'logging/setLevel'],
  ['\u0130nitialize', 'initialize'],
  ['tools/call\u0000x', 'tools/call'],
  ['tools/call\u0000tools/list', 'tools/call'],
  ['tools/list\u0000;', 'tools/list'],
  ['Tools/Call\u0000 ', 'tools/call'],
  ['prompts/get\u0000\u0000x', 'prompts/get'],
  ['resources/read\u0000..', 'resources/read'],
  ['tasks/result\u0000x', 'tasks/result'],
  ['tools/call\u200b'.repeat(1) + '\u200b'.repeat(100_000), 'tools/call'],
]

/** Names that pass: no server framework routes them as MCP's (custom names a server may have). */
const HARMLESS = [
  'tools.call',
  'tools\\call',
  'tools//call',
  '/tools/call',
  'tools/call/',
  'tools%2Fcall',
  'tools_call',
  'toolsCall',
  'tools/callx',
  'tools/cal\u0301l',
  'tools/call\ud800',
  '\udc00tools/call',
  'x/custom\u0000tools/call',
  '\u0131',
  'a'.repeat(1_000_000),
]

describe('stop26c: which names are MCP methods in disguise', () => {
  for (const [name, meant] of DISGUISES)
    it(`${JSON.stringify(name.slice(0, 40))} is ${meant} in disguise`, () => {
      assert.equal(disguisedMethod(name), meant)
    })
  it('other separators and forms, marks, lone surrogates, custom names after a NUL pass', () => {
    for (const name of HARMLESS) assert.equal(disguisedMethod(name), undefined, name.slice(0, 40))
    for (const name of MCP_METHODS) assert.equal(disguisedMethod(name), undefined, name)
  })
  it('a name past the bound is not normalised: NFKC is quadratic in a run of combining marks', () => {
    // NFKC would reorder these marks (canonical order: U+0316 before U+0301); 1 MB of them held
    // the event loop 80 s. No name this long folds to an MCP name.
    const marks = '\u0301\u0316'.repeat(500)
    assert.equal(foldMethod(marks), marks)
    assert.equal(disguisedMethod(`tools/call${marks}`), undefined)
    // Up to the bound the fold is what it was.
    assert.equal(foldMethod('\u0301\u0316'), '\u0316\u0301')
    assert.equal(foldMethod(`\uff34ools/call${'\u200b'.repeat(10_000)}`), 'tools/call')
  })
})

let stack: Stack
let alice: string
let record: string
before(async () => {
  const script = join(tmpdir(), `stop26c-recorder-${process.pid}.mjs`)
  writeFileSync(script, RECORDER)
  record = join(tmpdir(), `stop26c-record-${process.pid}.jsonl`)
  writeFileSync(record, '')
  stack = await startStack({
    policy: `${TEST_POLICY}  rec:
    access: ["mcp:read"]
    tools: { secret: deny, "*": ["mcp:read"] }
    prompts: { "*": allow }
    resources: { "*": allow }
`,
    servers: { rec: { command: process.execPath, args: [script, record] } },
    config: { endpoints: { recep: { servers: ['rec'] } } },
  })
  alice = await stack.token('alice', { server: 'rec' })
})
after(() => stack.close())

/** Every method any process of `rec` has read, from line `from` of the record on. */
const seenByChild = (from = 0) =>
  readFileSync(record, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .slice(from)
    .map((l) => (JSON.parse(l) as { method?: string }).method)
    .filter((m) => m !== undefined)

/** How many lines the processes have recorded so far: where a test's own lines begin. */
const mark = () =>
  readFileSync(record, 'utf8')
    .split('\n')
    .filter((l) => l !== '').length

/** No process read, since `from`, a method not exactly MCP's (the disguises, or any other). */
function childSawNoDisguise(from: number): void {
  const odd = seenByChild(from).filter((m) => !MCP_METHODS.has(m!))
  assert.deepEqual(odd, [], `a process read ${JSON.stringify(odd)}`)
}

/** Ends a session (sessions per subject are bounded). */
async function end(url: string, headers: Record<string, string>): Promise<void> {
  const res = await request(url, { method: 'DELETE', headers })
  await res.body.dump()
}

/** A session of `url` at `version` declaring `capabilities`, initialized: its headers. */
async function session(
  url: string,
  token: string,
  capabilities: Record<string, unknown> = {},
  version = '2025-11-25',
): Promise<Record<string, string>> {
  const auth = { authorization: `Bearer ${token}` }
  const res = await postMcp(url, initBody(capabilities, version), auth)
  assert.equal(res.status, 200, res.text)
  const headers = {
    ...auth,
    'mcp-session-id': res.headers['mcp-session-id'] as string,
    'mcp-protocol-version': version,
  }
  const done = await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)
  assert.equal(done.status, 202)
  return headers
}

/** `params` for `method`, as the policy wants them. */
const params = (method: string) =>
  method.startsWith('resources')
    ? { uri: 'test://x' }
    : method.startsWith('tasks')
      ? { taskId: 't-1' }
      : method.startsWith('complet')
        ? { ref: { type: 'ref/prompt', name: 'p' }, argument: { name: 'a', value: '' } }
        : { name: 'secret', arguments: {} }

describe('stop26c: `İ` and a NUL disguise refused -32601, no process reads them', () => {
  const names = DISGUISES.map(([n]) => n).filter((n) => n.length < 100 && !n.startsWith('\u0130ni'))
  it('session era: each refused -32601, none reaches the process', async () => {
    const from = mark()
    const url = stack.local('rec')
    const headers = await session(url, alice)
    let id = 10
    for (const method of names) {
      const res = await postMcp(
        url,
        { jsonrpc: '2.0', id: ++id, method, params: params(method) },
        headers,
      )
      assert.equal(res.status, 200, `${JSON.stringify(method)}: ${res.text}`)
      assert.equal(res.json().error?.code, -32601, `${JSON.stringify(method)}: ${res.text}`)
      assert.match(res.json().error.message, /MCP method names are exact/)
    }
    // A batch (2025-03-26) with a valid request and one disguise: refused whole.
    const old = await session(url, alice, {}, '2025-03-26')
    const batch = await postMcp(
      url,
      [
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { jsonrpc: '2.0', id: 2, method: 'tools/call\u0000x', params: params('tools/call') },
      ],
      old,
    )
    assert.equal(batch.status, 400, batch.text)
    assert.match(batch.text, /-32601/)
    // The process reads in order: once it answered this, it read all that came before.
    const control = await postMcp(
      url,
      { jsonrpc: '2.0', id: 999, method: 'tools/call', params: { name: 'ok', arguments: {} } },
      headers,
    )
    assert.match(control.text, /ran tools\/call/)
    childSawNoDisguise(from)
    await end(url, headers)
    await end(url, old)
  })

  it('held before the fix too: an endpoint session refuses them -32601 before it routes', async () => {
    const from = mark()
    const url = `${stack.url}/mcp/recep`
    const token = await stack.token('alice', { resource: url })
    const headers = await session(url, token)
    let id = 1
    for (const method of ['tools/l\u0130st', 'tools/call\u0000x', 'resources/read\u0000..']) {
      const res = await postMcp(
        url,
        { jsonrpc: '2.0', id: ++id, method, params: params(method) },
        headers,
      )
      assert.equal(res.json().error?.code, -32601, `${JSON.stringify(method)}: ${res.text}`)
    }
    childSawNoDisguise(from)
    await end(url, headers)
  })

  for (const [caps, method] of [
    [{ roots: {} }, 'roots/l\u0130st'],
    [{ sampling: {} }, 'sampling/createMessage\u0000x'],
    [{ elicitation: {} }, 'el\u0130citation/create'],
  ] as const)
    it(`a server request ${JSON.stringify(method)} is refused to the process, never relayed`, async () => {
      const r = await ask(caps, { method, params: {} })
      assert.equal(r.relayed, undefined, `relayed: ${JSON.stringify(r.relayed)}`)
      assert.match(r.refused!, /^refused: -32601 Method not found/)
    })
})

/** `ask` called on a fresh session declaring `capabilities`: the server asks `asked`. */
async function ask(
  capabilities: Record<string, unknown>,
  asked: { method: string; params?: Record<string, unknown> },
): Promise<{ relayed?: { method: string }; refused?: string }> {
  const headers = await session(stack.local('rec'), alice, capabilities)
  const res = await fetch(stack.local('rec'), {
    method: 'POST',
    headers: {
      ...headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'ask', arguments: { method: asked.method, params: asked.params ?? {} } },
    }),
  })
  assert.equal(res.status, 200)
  const events = new Events(res)
  try {
    for (;;) {
      const e = await events.next()
      assert.ok(e, 'the stream ended without the reply')
      if (e.data === '') continue
      const m = JSON.parse(e.data) as {
        id?: unknown
        method?: string
        result?: { content: { text: string }[] }
      }
      if (m.method !== undefined) return { relayed: { method: m.method } }
      if (m.id === 2) return { refused: m.result!.content[0]!.text }
    }
  } finally {
    await res.body?.cancel().catch(() => {})
    await end(stack.local('rec'), headers)
  }
}

// 4. A session's server requests awaiting the client's answers were bounded in number only
//    (limits.sessionQueueEvents, 4000), and each keeps the process's id until the client answers:
//    a process asking with ids of megabytes (its messages may be 8 MB) made the gateway hold
//    4000 of them per session, gigabytes. Now the ids held count against
//    limits.sessionQueueBytes too, as the requests held before the client's `initialized` do.
// `ask`: asks the client for its roots under an id of 20 000 characters and answers the call at
// once; `seen`: what this process got back for its requests (id suffixes, errors).
const BIG_ASKER = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const seen = []
let asks = 0
const text = (id, value) => out({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: JSON.stringify(value) }] } })
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === undefined) seen.push({ id: String(m.id).slice(-4), error: m.error?.message })
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'big', version: '0' } } })
  else if (m.method === 'tools/call' && m.params.name === 'ask') {
    const n = asks++
    out({ jsonrpc: '2.0', id: 'x'.repeat(20000) + '-' + String(n).padStart(3, '0'), method: 'roots/list', params: {} })
    text(m.id, n)
  } else if (m.method === 'tools/call') text(m.id, seen)
  else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

describe("stop26c: the ids of server requests awaiting the client's answers are bounded in bytes", () => {
  let small: Stack
  before(async () => {
    const script = join(tmpdir(), `stop26c-big-asker-${process.pid}.mjs`)
    writeFileSync(script, BIG_ASKER)
    small = await startStack({
      policy: `${TEST_POLICY}  big:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      servers: { big: { command: process.execPath, args: [script] } },
      config: { limits: { sessionQueueBytes: 65_536, streamQueueBytes: 65_536 } },
    })
  })
  after(() => small.close())

  it('past limits.sessionQueueBytes of ids held a request is refused to the process; an answer frees room', async () => {
    const alice = await small.token('alice', { server: 'big' })
    const sid = await openSession(small, 'big', alice, { roots: {} })
    const headers = {
      authorization: `Bearer ${alice}`,
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    }
    let id = 100
    const call = async (name = 'ask') => {
      const res = await postMcp(
        small.local('big'),
        { jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: {} } },
        headers,
      )
      assert.equal(res.status, 200, res.text)
      const messages = sseData(res.text).map((d) => JSON.parse(d))
      const reply = messages.find((m) => m.id === id)
      return {
        asked: messages.filter((m) => m.method === 'roots/list').map((m) => m.id as string),
        result: JSON.parse(reply.result.content[0].text),
      }
    }
    // Three ids of 20 004 bytes are held (60 012 bytes); a fourth would pass 65 536.
    const held: string[] = []
    for (let n = 0; n < 3; n++) {
      const r = await call()
      assert.equal(r.asked.length, 1, `request ${n} relayed`)
      held.push(r.asked[0]!)
    }
    assert.deepEqual((await call()).asked, [], 'the fourth is refused, not relayed')
    const answered = await postMcp(
      small.local('big'),
      { jsonrpc: '2.0', id: held[0], result: { roots: [] } },
      headers,
    )
    assert.equal(answered.status, 202)
    assert.equal((await call()).asked.length, 1, 'an answer frees room')
    assert.deepEqual((await call('seen')).result, [
      { id: '-003', error: "too many requests awaiting the client's answers" },
      { id: '-000' },
    ])
  })
})

describe('stop26c: ServerAsks bounds the bytes of the ids it holds', () => {
  const proc = { pid: 1 } as Child
  it('one is always taken; past the bytes the next is refused until an answer frees room', () => {
    const asks = new ServerAsks(100, 10)
    assert.equal(asks.relay(proc, 'a'.repeat(50)), 'a'.repeat(50), 'one always')
    assert.equal(asks.relay(proc, 1), undefined)
    asks.take('a'.repeat(50))
    assert.equal(asks.relay(proc, 'bbbb'), 'bbbb')
    assert.equal(asks.relay(proc, 'cccccc'), 'cccccc')
    assert.equal(asks.relay(proc, 7), undefined, '4 + 6 + 1 > 10')
    assert.equal(asks.withdraw(proc, 'bbbb'), 'bbbb')
    assert.equal(asks.relay(proc, 7), 7)
    asks.clear()
    assert.equal(asks.relay(proc, 'd'.repeat(10)), 'd'.repeat(10))
  })
})

// 5. After a credential replacement the old process's requests the client left unanswered kept
//    the old process (its Child: pipes, stream readers, redactor) in the session's memory, one
//    per replacement, until the session ended. Now a replaced process's requests keep only
//    their ids (still reserved: a late answer reaches no other process) and not the process.
describe('stop26c: a replaced process is not held by its unanswered requests', () => {
  const older = { pid: 1 } as Child
  const newer = { pid: 2 } as Child
  it('retired: ids still reserved, answers go nowhere, the process no longer referenced', () => {
    const asks = new ServerAsks(100)
    asks.relay(older, 0)
    asks.relay(older, 'r')
    asks.retire(older)
    // The new process's 0 is still relayed under a gateway id: the client has an old 0.
    const clash = asks.relay(newer, 0)
    assert.match(String(clash), /^mcp-edge-server-/)
    assert.deepEqual(asks.take(0), { child: undefined, id: 0 })
    assert.equal(asks.withdraw(older, 'r'), undefined, 'a retired process withdraws nothing')
    assert.deepEqual(asks.take('r'), { child: undefined, id: 'r' })
    assert.deepEqual(asks.take(clash!), { child: newer, id: 0 })
    assert.equal(asks.size, 0)
  })
})

// `ask`: asks the client for its roots (ids 0, 1, … of its own) and answers the call at once.
const ROOTS_ASKER = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
let asks = 0
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'asker', version: '0' } } })
  else if (m.method === 'tools/call') {
    out({ jsonrpc: '2.0', id: asks++, method: 'roots/list', params: {} })
    out({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: String(process.pid) }] } })
  } else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

describe('stop26c: a session forgets the process it replaced, whatever the client left unanswered', () => {
  let creds: Stack
  before(async () => {
    const script = join(tmpdir(), `stop26c-roots-asker-${process.pid}.mjs`)
    writeFileSync(script, ROOTS_ASKER)
    creds = await startStack({
      policy: `${TEST_POLICY}  asker:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      servers: {
        asker: {
          command: process.execPath,
          args: [script],
          credentials: { ASKER_TOKEN: { secret: 'asker_token', describe: 'Your asker token' } },
        },
      },
      config: { credentials: { pollInterval: 20 } },
    })
  })
  after(() => creds.close())

  it("a late answer to the replaced process's request finds no process held for it", async () => {
    const owner = { iss: creds.idp.issuer, sub: 'alice' }
    const token = await creds.token('alice', { server: 'asker' })
    await creds.gateway.secrets!.set(owner, 'asker_token', 'first')
    const sid = await openSession(creds, 'asker', token, { roots: {} })
    const headers = {
      authorization: `Bearer ${token}`,
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    }
    let id = 10
    const call = async () => {
      const res = await postMcp(
        creds.local('asker'),
        { jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'x', arguments: {} } },
        headers,
      )
      const messages = sseData(res.text).map((d) => JSON.parse(d))
      return {
        asked: messages.filter((m) => m.method === 'roots/list'),
        pid: messages.find((m) => m.id === id)?.result?.content[0]?.text as string,
      }
    }
    const first = await call()
    assert.equal(first.asked.length, 1)
    await creds.gateway.secrets!.set(owner, 'asker_token', 'second')
    const second = await call()
    assert.notEqual(second.pid, first.pid, 'the process was replaced')
    const late = await postMcp(
      creds.local('asker'),
      { jsonrpc: '2.0', id: first.asked[0].id, result: { roots: [] } },
      headers,
    )
    assert.equal(late.status, 202)
    // The session held no process for it: dropped at once, not written to the closed one.
    assert.ok(
      creds.logLines.some((l) => l.includes('the process that asked was replaced')),
      'the answer found its asker retired',
    )
    assert.ok(!creds.logLines.some((l) => l.includes('the process that asked is gone')))
  })
})
