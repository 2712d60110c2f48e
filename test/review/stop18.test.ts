// What the outside review of stop 18 found, each shown failing before its fix: a process's
// deeply nested line killed the gateway; a non-object result escaped the caps and was spread
// one key per character; an endpoint's own requests were not rate limited; an endpoint session
// took a reused request id (and gave its reply to the wrong stream); a cancelled request of a
// batch ended the stream the others still needed.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { firstData } from '../helpers/sse.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
// A raw stdio server: `deep` writes a notification nested 20,000 levels, then answers; `deepresult`
// answers with a result nested that deep; `text` answers with a result that is a 20 kB string;
// `slow` answers after params.arguments.ms.
const HOSTILE =
  "const out = (m) => process.stdout.write((typeof m === 'string' ? m : JSON.stringify(m)) + '\\n'); " +
  "const deep = (n) => '['.repeat(n) + '1' + ']'.repeat(n); " +
  "require('readline').createInterface({ input: process.stdin }).on('line', (l) => { const m = JSON.parse(l); if (m.id === undefined || m.method === undefined) return; " +
  "if (m.method === 'initialize') return out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'hostile', version: '0' } } }); " +
  "if (m.method === 'ping') return out({ jsonrpc: '2.0', id: m.id, result: {} }); " +
  "if (m.method === 'tools/list') return out({ jsonrpc: '2.0', id: m.id, result: { tools: ['deep', 'deepresult', 'text', 'slow', 'bigerror'].map((name) => ({ name, inputSchema: { type: 'object' } })) } }); " +
  'const name = m.params.name; const id = JSON.stringify(m.id); ' +
  'if (name === \'deep\') { out(\'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":\' + deep(20000) + \'}}\'); return out({ jsonrpc: \'2.0\', id: m.id, result: { content: [{ type: \'text\', text: \'survived\' }] } }) } ' +
  'if (name === \'deepresult\') return out(\'{"jsonrpc":"2.0","id":\' + id + \',"result":{"content":\' + deep(20000) + \'}}\'); ' +
  "if (name === 'bigerror') return out({ jsonrpc: '2.0', id: m.id, error: { code: -32000, message: 'E'.repeat(200000), data: 'D'.repeat(200000) } }); " +
  "if (name === 'text') return out({ jsonrpc: '2.0', id: m.id, result: 'E'.repeat(20000) }); " +
  "if (name === 'slow') return setTimeout(() => out({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'slow ' + m.params.arguments.ms }] } }), m.params.arguments.ms); })"

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: {
      hostile: {
        command: process.execPath,
        args: ['-e', HOSTILE],
        requestTimeout: 1500,
        output: { maxResultBytes: 2048 },
      },
    },
    config: { endpoints: { hostileep: { servers: ['hostile'], prefix: '' } } },
    policy: `${TEST_POLICY}  hostile:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\nrateLimits:\n  - name: endpoint-opens\n    servers: [hostileep]\n    methods: [initialize]\n    limit: 2\n    interval: 1h\n`,
  })
})
after(() => stack.close())

async function post(path: string, body: unknown, headers: Record<string, string>) {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text }
}

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 't', version: '0' },
  },
}

async function session(path: string, token: string, protocolVersion = '2025-06-18') {
  const auth = { authorization: `Bearer ${token}` }
  const init = await post(path, { ...INIT, params: { ...INIT.params, protocolVersion } }, auth)
  assert.equal(init.status, 200, init.text)
  const sid = init.headers['mcp-session-id'] as string
  const h = { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': protocolVersion }
  await post(path, { jsonrpc: '2.0', method: 'notifications/initialized' }, h)
  return (body: unknown) => post(path, body, h)
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
})

describe('a process writing a deeply nested line', () => {
  it('is skipped; the gateway lives and the call still ends (server and endpoint sessions)', async () => {
    for (const path of ['/mcp/hostile', '/mcp/hostileep']) {
      const token = await stack.token('alice', { resource: `${stack.url}${path}` })
      const send = await session(path, token)
      const res = await send(call(5, 'deep'))
      assert.equal(res.status, 200)
      assert.match(res.text, /survived/, path)
      const r2 = await send(call(6, 'deepresult'))
      const body = JSON.parse(firstData(r2.text) ?? r2.text)
      assert.equal(body.id, 6)
      assert.equal(body.error.code, -32001, 'the skipped reply times out, as documented')
    }
    const ready = await request(`${stack.url}/readyz`)
    assert.equal(ready.statusCode, 200)
    await ready.body.dump()
    assert.ok(stack.logLines.some((l) => l.includes('nested too deep')))
  })
})

describe('a result that is not an object', () => {
  it('is refused by the cap in the session era, and an error in 2026-07-28 (never spread)', async () => {
    const token = await stack.token('alice', { server: 'hostile' })
    const send = await session('/mcp/hostile', token)
    const res = await send(call(7, 'text'))
    const body = JSON.parse(firstData(res.text) ?? res.text)
    assert.equal(body.result.isError, true)
    assert.ok(res.text.length < 2048)
    const modern = await post(
      '/mcp/hostile',
      {
        jsonrpc: '2.0',
        id: 8,
        method: 'tools/call',
        params: {
          name: 'text',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      },
      {
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'text',
      },
    )
    const m = JSON.parse(firstData(modern.text) ?? modern.text)
    assert.equal(m.error?.code, -32603, modern.text.slice(0, 200))
    assert.ok(modern.text.length < 1000)
  })
})

describe('a server error larger than the output cap', () => {
  it('keeps its code and the start of its message, without data, in every era and at an endpoint', async () => {
    for (const path of ['/mcp/hostile', '/mcp/hostileep']) {
      const token = await stack.token('alice', { resource: `${stack.url}${path}` })
      const send = await session(path, token)
      const res = await send(call(9, 'bigerror'))
      const body = JSON.parse(firstData(res.text) ?? res.text)
      assert.equal(body.error.code, -32000, path)
      assert.match(body.error.message, /^E+ … \(error truncated: 400\.\d kB over the output cap\)$/)
      assert.equal(body.error.data, undefined)
      assert.ok(res.text.length < 2048, `${path}: ${res.text.length}`)
    }
    const token = await stack.token('alice', { server: 'hostile' })
    const modern = await post(
      '/mcp/hostile',
      {
        jsonrpc: '2.0',
        id: 10,
        method: 'tools/call',
        params: {
          name: 'bigerror',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      },
      {
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'bigerror',
      },
    )
    assert.ok(modern.text.length < 2048, String(modern.text.length))
  })
})

describe("an endpoint's own requests", () => {
  it('are rate limited: the third initialize at the endpoint is a 429', async () => {
    const token = await stack.token('bob', { resource: `${stack.url}/mcp/hostileep` })
    const auth = { authorization: `Bearer ${token}` }
    assert.equal((await post('/mcp/hostileep', INIT, auth)).status, 200)
    assert.equal((await post('/mcp/hostileep', INIT, auth)).status, 200)
    const third = await post('/mcp/hostileep', INIT, auth)
    assert.equal(third.status, 429)
    assert.equal(third.headers['mcp-session-id'], undefined)
    assert.equal(JSON.parse(third.text).error.code, -32029)
  })
})

describe('request ids on an endpoint session', () => {
  it('an id still in progress is refused (400); the other request gets its own reply', async (t) => {
    const token = await stack.token('dev', { resource: `${stack.url}/mcp/hostileep` })
    const send = await session('/mcp/hostileep', token)
    // Both at once, whichever arrives first: one runs, the other is refused; never crossed. The
    // one that runs takes 1 s (real, in the process): requestTimeout's 1.5 s must not race it,
    // so the gateway's timers are on a clock that does not move.
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const [a, b] = await Promise.all([
      send(call(7, 'slow', { ms: 1000 })),
      send(call(7, 'slow', { ms: 999 })),
    ]).finally(() => t.mock.timers.reset())
    const refused = [a, b].filter((r) => r.status === 400)
    assert.equal(refused.length, 1, `${a.status} ${b.status}`)
    assert.match(refused[0]!.text, /already in progress/)
    if (a.status === 200) assert.match(a.text, /slow 1000/)
    else assert.match(b.text, /slow 999/)
  })
})

describe('cancelling one request of a batch', () => {
  it('leaves the stream open for the others', async (t) => {
    const token = await stack.token('admin', { server: 'hostile' })
    // Batches are 2025-03-26's (later revisions refuse them: checklist D3).
    const send = await session('/mcp/hostile', token, '2025-03-26')
    // Request 2's answer must not race requestTimeout's 1.5 s: the gateway's timers stand still.
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const res = await send([
      call(1, 'slow', { ms: 800 }),
      call(2, 'slow', { ms: 200 }),
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
    ]).finally(() => t.mock.timers.reset())
    assert.equal(res.status, 200)
    assert.match(res.text, /slow 200/, 'request 2 is answered on the stream')
  })
})
