// Review (gaps31): MCP's own method names in disguise, and server→client tasks requests.
// 1. A method that is not exactly MCP's but folds to one of MCP's (case, spaces, NUL, zero-width
//    characters, fullwidth forms) is refused -32601 before any process sees it, in every era and
//    transport: policy and list filtering read exact names, and a server that normalises names
//    would run `TOOLS/CALL` of a denied tool, or answer `Tools/List` unfiltered. The other way, a
//    server request `Sampling/CreateMessage` must not dodge the client's capabilities.
// 2. A server's `tasks/*` requests, and requests it augments with a task, need the client's
//    tasks capability (MCP 2025-11-25 tasks §Capability Negotiation), or are refused to it.
// The server is a raw stdio script that records every line it reads, and answers any request.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { disguisedMethod, foldMethod, MCP_METHODS } from '../../gateway/policy/method-names.js'
import { modernRequest } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { Events } from '../helpers/sse-events.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { initBody } from '../checklist/open-session.js'

// Records each line it reads (argv[2]) before it answers. `ask` sends the server→client request
// its arguments name, and reports what came back as the call's result; any other request is
// answered as run (so a relayed disguise shows as "ran …").
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

/** Hostile spellings of MCP methods the policy decides or filters, each with the one it folds to. */
const DISGUISES: [string, string][] = [
  ['Tools/Call', 'tools/call'],
  ['TOOLS/CALL', 'tools/call'],
  ['tools/call ', 'tools/call'],
  [' tools/call', 'tools/call'],
  ['tools/call\t', 'tools/call'],
  ['tools/call\n', 'tools/call'],
  ['tools/call\u0000', 'tools/call'],
  ['tools/call\u200b', 'tools/call'],
  ['tools\u200d/call', 'tools/call'],
  ['\ufefftools/call', 'tools/call'],
  ['tools/c\u00adall', 'tools/call'],
  ['tools/call\u202e', 'tools/call'],
  ['tools/call\u00a0', 'tools/call'],
  ['tools/call\u3000', 'tools/call'],
  ['\uff54ools/call', 'tools/call'],
  ['tools\uff0fcall', 'tools/call'],
  ['\uff34\uff2f\uff2f\uff2c\uff33/\uff23\uff21\uff2c\uff2c', 'tools/call'],
  ['tool\u017f/call', 'tools/call'],
  ['tools/call\ufe0f', 'tools/call'],
  ['Prompts/Get', 'prompts/get'],
  ['resources/READ', 'resources/read'],
  ['Resources/Subscribe', 'resources/subscribe'],
  ['completion/Complete', 'completion/complete'],
  ['Tasks/Get', 'tasks/get'],
  ['tasks/result ', 'tasks/result'],
  ['TASKS/CANCEL', 'tasks/cancel'],
  ['Tools/List', 'tools/list'],
  ['tools/list\u0000', 'tools/list'],
  ['PROMPTS/LIST', 'prompts/list'],
  ['Resources/List', 'resources/list'],
  ['resources/templates/List', 'resources/templates/list'],
  ['logging/setlevel', 'logging/setLevel'],
  ['Initialize', 'initialize'],
  ['PING', 'ping'],
]

/** Names that are not MCP's in disguise: MCP's own, and custom ones that fold to none. */
const NOT_DISGUISES = [
  ...MCP_METHODS,
  'x/custom',
  'tools/call2',
  'tools/callx',
  'tools/call/extra',
  'tools',
  'toolscall',
  'tools\\call',
  'tools/cal',
  '',
]

describe('stop26: which names are MCP methods in disguise', () => {
  for (const [name, meant] of DISGUISES)
    it(`${JSON.stringify(name)} is ${meant} in disguise`, () => {
      assert.equal(disguisedMethod(name), meant)
    })
  it('MCP names exactly as spelled, and custom names that fold to none, are not', () => {
    for (const name of NOT_DISGUISES) assert.equal(disguisedMethod(name), undefined, name)
  })
  it('the fold: NFKC, then no space/control/format, then case', () => {
    assert.equal(foldMethod('\uff34ools/\u200bCALL \u0000'), 'tools/call')
    assert.equal(foldMethod('x/Custom'), 'x/custom')
  })
})

let stack: Stack
let alice: string
let record: string
before(async () => {
  const script = join(tmpdir(), `stop26-recorder-${process.pid}.mjs`)
  writeFileSync(script, RECORDER)
  record = join(tmpdir(), `stop26-record-${process.pid}.jsonl`)
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

const params = (method: string) =>
  method.startsWith('resources')
    ? { uri: 'test://x' }
    : method.startsWith('tasks')
      ? { taskId: 't-1' }
      : method.startsWith('completion')
        ? { ref: { type: 'ref/prompt', name: 'p' }, argument: { name: 'a', value: '' } }
        : method.startsWith('initialize')
          ? initBody().params
          : { name: 'secret', arguments: {} }

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

/** The audit event of the refusal of `method` at `server` (or endpoint), once written. */
const audited = (method: string, server: string) =>
  waitFor(
    () =>
      stack
        .audit()
        .find(
          (e) =>
            e.method === method &&
            e.server === server &&
            e.decision === 'invalid' &&
            e.outcome === 'refused',
        ),
    `the audit event of the refusal of ${JSON.stringify(method)} at ${server}`,
  )

describe('stop26: a client method in disguise is refused -32601 and reaches no process', () => {
  it('session era (Streamable HTTP): requests 200 -32601, notifications 400 -32601, audited', async () => {
    const from = mark()
    const url = stack.local('rec')
    const headers = await session(url, alice)
    let id = 10
    for (const [method] of DISGUISES) {
      const res = await postMcp(
        url,
        { jsonrpc: '2.0', id: ++id, method, params: params(method) },
        headers,
      )
      assert.equal(res.status, 200, `${JSON.stringify(method)}: ${res.text}`)
      assert.equal(res.json().id, id)
      assert.equal(res.json().error?.code, -32601, `${JSON.stringify(method)}: ${res.text}`)
      assert.match(res.json().error.message, /^Method not found: .* \(MCP method names are exact: /)
      await audited(method, 'rec')
    }
    for (const method of ['Notifications/Cancelled', 'notifications/initialized ', 'TOOLS/CALL']) {
      const res = await postMcp(url, { jsonrpc: '2.0', method, params: { requestId: 1 } }, headers)
      assert.equal(res.status, 400, `${method}: ${res.text}`)
      assert.equal(res.json().error.code, -32601)
    }
    // The process reads in order: once it answered this, it read all that came before.
    const control = await postMcp(
      url,
      { jsonrpc: '2.0', id: 999, method: 'tools/call', params: { name: 'ok', arguments: {} } },
      headers,
    )
    assert.match(control.text, /ran tools\/call/)
    childSawNoDisguise(from)
    await end(url, headers)
  })

  it('a batch (2025-03-26) holding one disguise is refused whole, 400 -32601', async () => {
    const from = mark()
    const url = stack.local('rec')
    const headers = await session(url, alice, {}, '2025-03-26')
    const call = (id: number, method: string) => ({
      jsonrpc: '2.0',
      id,
      method,
      params: { name: 'secret', arguments: {} },
    })
    const res = await postMcp(url, [call(2, 'tools/list'), call(3, 'Tools/Call')], headers)
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json().error.code, -32601)
    const control = await postMcp(url, call(4, 'ping'), headers)
    assert.equal(control.status, 200)
    childSawNoDisguise(from)
    assert.ok(!seenByChild(from).includes('tools/list'), 'the batch was refused whole')
    await end(url, headers)
  })

  for (const [what, path] of [
    ['a server', 'rec'],
    ['an endpoint', 'recep'],
  ] as const)
    it(`legacy HTTP+SSE, ${what}: the refusal arrives on the event stream`, async () => {
      const from = mark()
      const token =
        path === 'rec'
          ? alice
          : await stack.token('alice', { resource: `${stack.url}/mcp/${path}` })
      const auth = { authorization: `Bearer ${token}` }
      const res = await fetch(`${stack.url}/sse/${path}`, {
        headers: { accept: 'text/event-stream', ...auth },
      })
      assert.equal(res.status, 200)
      const events = new Events(res)
      const endpoint = `${stack.url}${(await events.next())!.data}`
      const post = async (body: unknown) => {
        const r = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth },
          body: JSON.stringify(body),
        })
        assert.equal(r.status, 202, JSON.stringify(body))
        await r.body?.cancel()
      }
      const reply = async (id: number) => {
        for (;;) {
          const e = await events.next()
          assert.ok(e, 'the stream ended')
          const m = JSON.parse(e.data) as {
            id?: unknown
            error?: { code: number }
            result?: unknown
          }
          if (m.id === id) return m
        }
      }
      await post({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: initBody({}, '2024-11-05').params,
      })
      await reply(1)
      await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
      let id = 1
      for (const method of ['TOOLS/CALL', 'tools/call\u200b', 'Tools/List', 'tasks/get ']) {
        await post({ jsonrpc: '2.0', id: ++id, method, params: params(method) })
        const m = await reply(id)
        assert.equal(m.error?.code, -32601, `${JSON.stringify(method)}: ${JSON.stringify(m)}`)
      }
      // A list the process answers (an endpoint's merged list asks its backend too).
      await post({ jsonrpc: '2.0', id: 99, method: 'tools/list' })
      assert.ok((await reply(99)).result)
      await audited('tools/call\u200b', path)
      await events.cancel().catch(() => {})
      childSawNoDisguise(from)
    })

  it('an endpoint (aggregate) session: refused -32601 before it routes or answers, audited', async () => {
    const from = mark()
    const url = `${stack.url}/mcp/recep`
    const token = await stack.token('alice', { resource: url })
    const headers = await session(url, token)
    let id = 1
    for (const method of [
      'TOOLS/CALL',
      'Tools/List',
      'tools/call\u0000',
      'Resources/Read',
      'PING',
    ]) {
      const res = await postMcp(
        url,
        { jsonrpc: '2.0', id: ++id, method, params: params(method) },
        headers,
      )
      assert.equal(res.status, 200, `${JSON.stringify(method)}: ${res.text}`)
      assert.equal(res.json().error?.code, -32601, `${JSON.stringify(method)}: ${res.text}`)
      assert.match(res.json().error.message, /MCP method names are exact/)
      await audited(method, 'recep')
    }
    const note = await postMcp(url, { jsonrpc: '2.0', method: 'Notifications/Cancelled' }, headers)
    assert.equal(note.status, 400, note.text)
    assert.equal(note.json().error.code, -32601)
    childSawNoDisguise(from)
    await end(url, headers)
  })

  it("sessionless 2026-07-28: refused -32601 (the revision's method-not-found, 404), audited, no process asked", async () => {
    const from = mark()
    for (const method of ['TOOLS/CALL', 'Tools/List', 'Tasks/Get', 'Server/Discover']) {
      const res = await request(stack.local('rec'), modernRequest(alice, method, params(method)))
      const body = (await res.body.json()) as { error?: { code: number; message: string } }
      assert.equal(res.statusCode, 404, `${method}: ${JSON.stringify(body)}`)
      assert.equal(body.error?.code, -32601)
      assert.match(String(body.error?.message), /MCP method names are exact/)
      await audited(method, 'rec')
    }
    childSawNoDisguise(from)
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

const SAMPLE = { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 1 }
const TASKS_ALL = {
  list: {},
  cancel: {},
  requests: { sampling: { createMessage: {} }, elicitation: { create: {} } },
}

describe('stop26: server→client requests need what the client declared', () => {
  const refusals: [string, Record<string, unknown>, string, Record<string, unknown>, RegExp][] = [
    // [what, client capabilities, method, params, refusal]
    [
      'disguised sampling, undeclared',
      {},
      'Sampling/CreateMessage',
      SAMPLE,
      /^refused: -32601 Method not found/,
    ],
    [
      'disguised sampling, declared',
      { sampling: {} },
      'SAMPLING/CREATEMESSAGE',
      SAMPLE,
      /^refused: -32601 Method not found/,
    ],
    [
      'disguised sampling, NUL',
      { sampling: {} },
      'sampling/createMessage\u0000',
      SAMPLE,
      /^refused: -32601 Method not found/,
    ],
    [
      'disguised elicitation',
      { elicitation: {} },
      'Elicitation/Create',
      { message: 'm', requestedSchema: { type: 'object', properties: {} } },
      /^refused: -32601 Method not found/,
    ],
    ['disguised roots', { roots: {} }, 'roots/list ', {}, /^refused: -32601 Method not found/],
    ['disguised ping', {}, 'PING', {}, /^refused: -32601 Method not found/],
    [
      'tasks/get, no tasks',
      {},
      'tasks/get',
      { taskId: 't' },
      /^refused: -32601 the client did not declare the tasks\.requests capability$/,
    ],
    [
      'tasks/result, no tasks',
      { sampling: {} },
      'tasks/result',
      { taskId: 't' },
      /^refused: -32601 .*tasks\.requests capability$/,
    ],
    [
      'tasks/get, tasks without requests',
      { tasks: { list: {} } },
      'tasks/get',
      { taskId: 't' },
      /^refused: -32601 .*tasks\.requests capability$/,
    ],
    [
      'tasks/list, no tasks.list',
      { tasks: { cancel: {}, requests: {} } },
      'tasks/list',
      {},
      /^refused: -32601 .*tasks\.list capability$/,
    ],
    [
      'tasks/list, tasks.list not an object',
      { tasks: { list: true } },
      'tasks/list',
      {},
      /^refused: -32601 .*tasks\.list capability$/,
    ],
    [
      'tasks/cancel, no tasks.cancel',
      { tasks: { list: {} } },
      'tasks/cancel',
      { taskId: 't' },
      /^refused: -32601 .*tasks\.cancel capability$/,
    ],
    [
      'task-augmented sampling, sampling only',
      { sampling: {} },
      'sampling/createMessage',
      { ...SAMPLE, task: { ttl: 1000 } },
      /^refused: -32601 .*tasks\.requests\.sampling\.createMessage capability$/,
    ],
    [
      'task-augmented sampling, elicitation tasks only',
      { sampling: {}, tasks: { requests: { elicitation: { create: {} } } } },
      'sampling/createMessage',
      { ...SAMPLE, task: {} },
      /^refused: -32601 .*tasks\.requests\.sampling\.createMessage capability$/,
    ],
    [
      'task-augmented elicitation, elicitation only',
      { elicitation: {} },
      'elicitation/create',
      { message: 'm', requestedSchema: { type: 'object', properties: {} }, task: {} },
      /^refused: -32601 .*tasks\.requests\.elicitation\.create capability$/,
    ],
  ]
  for (const [what, caps, method, p, refusal] of refusals)
    it(`refused to the process, never relayed: ${what}`, async () => {
      const r = await ask(caps, { method, params: p })
      assert.equal(r.relayed, undefined, `relayed: ${JSON.stringify(r.relayed)}`)
      assert.match(r.refused!, refusal)
    })

  const relayed: [string, Record<string, unknown>, string, Record<string, unknown>][] = [
    ['tasks/get, tasks.requests declared', { tasks: TASKS_ALL }, 'tasks/get', { taskId: 't' }],
    ['tasks/list, tasks.list declared', { tasks: { list: {} } }, 'tasks/list', {}],
    [
      'tasks/cancel, tasks.cancel declared',
      { tasks: { cancel: {} } },
      'tasks/cancel',
      { taskId: 't' },
    ],
    [
      'task-augmented sampling, declared',
      { sampling: {}, tasks: TASKS_ALL },
      'sampling/createMessage',
      { ...SAMPLE, task: {} },
    ],
    ['plain sampling, declared', { sampling: {} }, 'sampling/createMessage', SAMPLE],
  ]
  for (const [what, caps, method, p] of relayed)
    it(`control: relayed to the client: ${what}`, async () => {
      const r = await ask(caps, { method, params: p })
      assert.equal(r.relayed?.method, method, JSON.stringify(r))
    })
})
