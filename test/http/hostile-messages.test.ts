// Hostile spellings of what policy decides on, through every transport and era: resource URIs
// that a server would normalize into a denied one, and JSON-RPC ids that would make a request
// look like a notification. Each is refused with its status and code, audited, and the server
// process never sees a byte of it (its raw stdin is recorded).
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request, type Dispatcher } from 'undici'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const V2026 = '2026-07-28'

const RULES = `
    access: ["mcp:read"]
    tools: { crash: deny, env: deny, "*": ["mcp:read"] }
    prompts: { "*": allow }
    resources: { "fixture://hello": deny, "*": ["mcp:read"] }
`
const SERVERS = ['hsession', 'hjson', 'hshared'] as const

const recordDir = mkdtempSync(join(tmpdir(), 'mcp-edge-hostile-'))
const stackDir = () => recordDir

let stack: Stack
let alice: Record<string, string>
before(async () => {
  const fixture = (name: string, extra: Record<string, unknown>) => ({
    command: process.execPath,
    args: [join(SERVERS_DIR, 'fixture.js')],
    env: { FIXTURE_RAW_RECORD_FILE: join(stackDir(), `raw-${name}.log`) },
    ...extra,
  })
  stack = await startStack({
    servers: {
      hsession: fixture('hsession', {}),
      hjson: fixture('hjson', { responses: 'json' }),
      hshared: fixture('hshared', { mode: 'shared' }),
    },
    policy: `${TEST_POLICY}${SERVERS.map((s) => `  ${s}:${RULES}`).join('')}`,
  })
  alice = Object.fromEntries(
    await Promise.all(SERVERS.map(async (s) => [s, await stack.token('alice', { server: s })])),
  )
})
after(() => stack.close())

/** Everything the server process of `server` has read from stdin so far. */
function stdinOf(server: string): string {
  const file = join(stackDir(), `raw-${server}.log`)
  return existsSync(file) ? readFileSync(file, 'utf8') : ''
}

type Res = {
  status: number
  headers: Dispatcher.ResponseData['headers']
  text: string
  json: Record<string, any> | undefined
}

async function post(path: string, body: unknown, headers: Record<string, string>): Promise<Res> {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.body.text()
  const data = sseData(text)
  const json =
    data.length > 0
      ? JSON.parse(data.at(-1)!)
      : text.startsWith('{') || text.startsWith('[')
        ? JSON.parse(text)
        : undefined
  return { status: res.statusCode, headers: res.headers, text, json }
}

async function openSession(server: string): Promise<string> {
  const auth = { authorization: `Bearer ${alice[server]}` }
  const init = {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'hostile', version: '0' },
    },
  }
  const res = await post(`/mcp/${server}`, init, auth)
  assert.equal(res.status, 200, res.text)
  const sid = res.headers['mcp-session-id'] as string
  await post(
    `/mcp/${server}`,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...auth, 'mcp-session-id': sid },
  )
  // The process reads its stdin in order: once a ping is answered, everything before it was read.
  const ping = await post(
    `/mcp/${server}`,
    { jsonrpc: '2.0', id: 'sync', method: 'ping' },
    { ...auth, 'mcp-session-id': sid },
  )
  assert.equal(ping.status, 200, ping.text)
  return sid
}

/** A legacy HTTP+SSE session: its message endpoint and the messages its event stream carried. */
async function openLegacy(server: string) {
  const res = await request(`${stack.url}/sse/${server}`, {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${alice[server]}` },
  })
  assert.equal(res.statusCode, 200)
  const messages: Record<string, any>[] = []
  let endpoint: string | undefined
  let buffer = ''
  const waiters: (() => void)[] = []
  void (async () => {
    for await (const chunk of res.body) {
      buffer += String(chunk)
      let cut
      while ((cut = buffer.indexOf('\n\n')) !== -1) {
        const event = buffer.slice(0, cut)
        buffer = buffer.slice(cut + 2)
        const data = /^data: (.*)$/m.exec(event)?.[1]
        if (event.startsWith('event: endpoint')) endpoint = data
        else if (data) messages.push(JSON.parse(data))
        for (const w of waiters.splice(0)) w()
      }
    }
  })().catch(() => {})
  const until = async (ok: () => boolean) => {
    while (!ok()) await new Promise<void>((r) => waiters.push(r))
  }
  await until(() => endpoint !== undefined)
  const auth = { authorization: `Bearer ${alice[server]}` }
  const send = (body: unknown) => post(endpoint!, body, auth)
  await send({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2024-11-05',
      capabilities: {},
      clientInfo: { name: 'hostile', version: '0' },
    },
  })
  await until(() => messages.some((m) => m.id === 0))
  await send({ jsonrpc: '2.0', method: 'notifications/initialized' })
  await send({ jsonrpc: '2.0', id: 'sync', method: 'ping' })
  await until(() => messages.some((m) => m.id === 'sync'))
  return {
    send,
    /** The stream's answer to request `id`. */
    answer: async (id: unknown) => {
      await until(() => messages.some((m) => m.id === id))
      return messages.find((m) => m.id === id)!
    },
    close: () => res.body.destroy(),
  }
}

/** A 2026-07-28 request as a conforming client sends it. */
function modern(server: string, method: string, params: Record<string, unknown>, id: number) {
  const body = {
    jsonrpc: '2.0',
    id,
    method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': V2026,
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  }
  const headers: Record<string, string> = {
    authorization: `Bearer ${alice[server]}`,
    'mcp-protocol-version': V2026,
    'mcp-method': method,
  }
  const name = params.name ?? params.uri
  // A header value cannot carry control characters: those go Base64-encoded (SEP-2243).
  if (typeof name === 'string')
    headers['mcp-name'] =
      /^[\x20-\x7e]*$/.test(name) && name.trim() === name
        ? name
        : `=?base64?${Buffer.from(name).toString('base64')}?=`
  return post(`/mcp/${server}`, body, headers)
}

// Spellings of the denied fixture://hello that the SDK server reads as fixture://hello.
const HELLO_VARIANTS = [
  'fixture://hello ',
  ' fixture://hello',
  'fixture://hel\tlo',
  'fixture://hello\n',
  'fixture://hello\r',
  'fixture://hello\u0000',
  '\u0000fixture://hello',
  'fixture://hello\t',
  'fixture://hel\r\nlo',
  '\u001ffixture://hello',
  'FIXTURE://hello',
  'Fixture://hello',
  'fixture://hello/../hello',
  'fixture://hel%6Co',
  'fixture://hello#x',
  'fixture://HELLO',
]

/** The three messages that name a resource, for one URI. */
function naming(uri: string): { method: string; params: Record<string, unknown> }[] {
  return [
    { method: 'resources/read', params: { uri } },
    { method: 'resources/subscribe', params: { uri } },
    {
      method: 'completion/complete',
      params: { ref: { type: 'ref/resource', uri }, argument: { name: 'x', value: '' } },
    },
  ]
}

describe('resource URIs are decided in the form the server reads, or refused', () => {
  it('the canonical denied URI is denied and the canonical allowed one is read (the checks below can fail)', async () => {
    const sid = await openSession('hsession')
    const h = { authorization: `Bearer ${alice.hsession}`, 'mcp-session-id': sid }
    const before = stdinOf('hsession')
    const denied = await post(
      '/mcp/hsession',
      { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'fixture://hello' } },
      h,
    )
    assert.equal(denied.status, 200)
    assert.equal(denied.json!.error.code, -32010)
    assert.equal(stdinOf('hsession'), before, 'a denied read never reaches the process')
    const list = await post(
      '/mcp/hsession',
      { jsonrpc: '2.0', id: 2, method: 'resources/templates/list', params: {} },
      h,
    )
    assert.equal(list.status, 200)
    assert.notEqual(
      stdinOf('hsession'),
      before,
      'an allowed request does reach it (so the record works)',
    )
  })

  for (const server of SERVERS) {
    it(`${server}: every non-canonical spelling is -32602 on a 200, audited, and never reaches the process`, async () => {
      const sid = await openSession(server)
      const h = { authorization: `Bearer ${alice[server]}`, 'mcp-session-id': sid }
      let id = 100
      for (const uri of HELLO_VARIANTS) {
        for (const m of naming(uri)) {
          const before = stdinOf(server)
          const auditBefore = stack.audit().length
          const res = await post(`/mcp/${server}`, { jsonrpc: '2.0', id: ++id, ...m }, h)
          const what = `${m.method} ${JSON.stringify(uri)}`
          assert.equal(res.status, 200, `${what}: ${res.text}`)
          assert.equal(res.json!.id, id, what)
          assert.equal(res.json!.error.code, -32602, what)
          assert.match(res.json!.error.message, /^Invalid params: params\.(ref\.)?uri: /, what)
          assert.equal(stdinOf(server), before, `${what} reached the process`)
          const events = stack.audit().slice(auditBefore)
          assert.equal(events.length, 1, what)
          assert.equal(events[0]!.decision, 'invalid', what)
          assert.equal(events[0]!.outcome, 'refused', what)
          assert.equal(events[0]!.method, m.method, what)
        }
      }
      // The same session still works: nothing was left half-open.
      const ok = await post(
        `/mcp/${server}`,
        { jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'pid', arguments: {} } },
        h,
      )
      assert.equal(ok.status, 200, ok.text)
      assert.ok(ok.json!.result, ok.text)
    })
  }

  it('legacy HTTP+SSE: the refusal arrives on the stream with the request id; the process sees nothing', async () => {
    const legacy = await openLegacy('hsession')
    try {
      let id = 500
      for (const uri of HELLO_VARIANTS) {
        for (const m of naming(uri)) {
          const before = stdinOf('hsession')
          const res = await legacy.send({ jsonrpc: '2.0', id: ++id, ...m })
          assert.equal(res.status, 202, res.text)
          const answer = await legacy.answer(id)
          assert.equal(answer.error.code, -32602, `${m.method} ${JSON.stringify(uri)}`)
          assert.equal(
            stdinOf('hsession'),
            before,
            `${m.method} ${JSON.stringify(uri)} reached the process`,
          )
        }
      }
    } finally {
      legacy.close()
    }
  })

  it('2026-07-28: every non-canonical spelling is -32602 with the request id, before any process is taken', async () => {
    let id = 900
    for (const uri of HELLO_VARIANTS) {
      for (const m of naming(uri).filter((x) => x.method !== 'resources/subscribe')) {
        const before = stdinOf('hsession')
        const res = await modern('hsession', m.method, m.params, ++id)
        const what = `${m.method} ${JSON.stringify(uri)}`
        assert.equal(res.status, 200, `${what}: ${res.text}`)
        assert.equal(res.json!.id, id, what)
        assert.equal(res.json!.error.code, -32602, what)
        assert.equal(stdinOf('hsession'), before, `${what} reached the process`)
      }
    }
  })

  it('2026-07-28 subscriptions/listen leaves non-canonical URIs out of its acknowledgement', async () => {
    const before = stack.audit().length
    const res = await modern(
      'hsession',
      'subscriptions/listen',
      { notifications: { resourceSubscriptions: ['fixture://hello ', 'FIXTURE://hello'] } },
      990,
    )
    assert.equal(res.status, 200, res.text)
    const ack = sseData(res.text)
      .map((d) => JSON.parse(d))
      .find((m) => m.method === 'notifications/subscriptions/acknowledged')
    assert.ok(ack, res.text)
    assert.equal(ack.params.notifications.resourceSubscriptions, undefined)
    const left = stack
      .audit()
      .slice(before)
      .filter((e) => e.method === 'subscriptions/listen' && e.outcome === 'left out')
    assert.deepEqual(
      left.map((e) => e.decision),
      ['invalid', 'invalid'],
    )
  })
})

// Ids that are not strings or numbers: each makes the message invalid, never a notification.
const BAD_IDS: unknown[] = [null, {}, { id: 1 }, true, false, [], [1], ['1']]

describe('a message is a notification only when it has no id member', () => {
  const crash = (id: unknown) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'crash', arguments: {} },
  })
  const withoutId = {
    jsonrpc: '2.0',
    method: 'tools/call',
    params: { name: 'crash', arguments: {} },
  }
  const gatedNotifications = [
    withoutId,
    { jsonrpc: '2.0', method: 'resources/read', params: { uri: 'fixture://hello' } },
    { jsonrpc: '2.0', method: 'prompts/get', params: { name: 'greet', arguments: { name: 'x' } } },
    {
      jsonrpc: '2.0',
      method: 'completion/complete',
      params: {
        ref: { type: 'ref/resource', uri: 'fixture://hello' },
        argument: { name: 'x', value: '' },
      },
    },
    { jsonrpc: '2.0', method: 'resources/subscribe', params: { uri: 'fixture://hello' } },
  ]

  for (const server of SERVERS) {
    it(`${server}: a denied tools/call with a malformed id, or as a notification, is 400 -32600 and never reaches the process`, async () => {
      const sid = await openSession(server)
      const h = { authorization: `Bearer ${alice[server]}`, 'mcp-session-id': sid }
      const bodies: unknown[] = [
        ...BAD_IDS.map(crash),
        ...gatedNotifications,
        // Batches (2025-03-26 allows them): one bad member refuses the whole batch.
        [{ jsonrpc: '2.0', id: 1, method: 'ping' }, crash(null)],
        [withoutId],
      ]
      for (const body of bodies) {
        const before = stdinOf(server)
        const res = await post(`/mcp/${server}`, body, h)
        const what = JSON.stringify(body)
        assert.equal(res.status, 400, `${what}: ${res.text}`)
        assert.equal(res.json!.id, null, what)
        assert.equal(res.json!.error.code, -32600, what)
        assert.equal(stdinOf(server), before, `${what} reached the process`)
      }
      const ok = await post(
        `/mcp/${server}`,
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'pid', arguments: {} } },
        h,
      )
      assert.ok(ok.json!.result, `the process is alive and the session usable: ${ok.text}`)
    })
  }

  it('legacy /messages: the same bodies are 400 -32600 on the POST, audited, and never reach the process', async () => {
    const legacy = await openLegacy('hsession')
    try {
      for (const body of [
        ...BAD_IDS.map(crash),
        ...gatedNotifications,
        [crash(true)],
        [{ jsonrpc: '2.0', id: 7, method: 'ping' }, withoutId],
      ]) {
        const before = stdinOf('hsession')
        const auditBefore = stack.audit().length
        const res = await legacy.send(body)
        const what = JSON.stringify(body)
        assert.equal(res.status, 400, `${what}: ${res.text}`)
        assert.equal(res.json!.error.code, -32600, what)
        assert.equal(stdinOf('hsession'), before, `${what} reached the process`)
        const events = stack.audit().slice(auditBefore)
        assert.equal(events.length, 1, `${what} is audited`)
        assert.equal(events[0]!.decision, 'invalid')
      }
      // A well-formed call of the same denied tool is denied on the stream, as ever.
      await legacy.send(crash(42))
      assert.equal((await legacy.answer(42)).error.code, -32010)
    } finally {
      legacy.close()
    }
  })

  it('2026-07-28 bodies with a malformed id are 400 and never reach a process', async () => {
    for (const id of BAD_IDS) {
      const before = stdinOf('hsession')
      const body = {
        ...crash(id),
        params: {
          name: 'crash',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': V2026,
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }
      const res = await post('/mcp/hsession', body, {
        authorization: `Bearer ${alice.hsession}`,
        'mcp-protocol-version': V2026,
        'mcp-method': 'tools/call',
        'mcp-name': 'crash',
      })
      assert.equal(res.status, 400, `${JSON.stringify(id)}: ${res.text}`)
      assert.equal(res.json!.id, null)
      assert.equal(stdinOf('hsession'), before, `${JSON.stringify(id)} reached the process`)
    }
  })
})
