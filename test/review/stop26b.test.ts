// Stop 26 (endpoints): what held when one user attacks another's, or a closed server's, names,
// URIs and cursors at an endpoint serving several servers. Servers `a` and `a_b` give the prefix
// `{server}_` a collision (`a` + `b_c` and `a_b` + `c`); `closed` is a server bob's policy
// closes, with a resource and a template that would match what he asks for.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

type Message = any

const DIR = mkdtempSync(join(tmpdir(), 'mcp-edge-stop26b-'))
const record = (server: string) => join(DIR, `${server}.jsonl`)
const seen = (server: string): Message[] =>
  existsSync(record(server))
    ? readFileSync(record(server), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l))
    : []
// Lists what NAMES_* say; a call or read answers `<server>:<name or uri>`.
const SCRIPT = `
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
const e = process.env
const list = (v) => (v ? v.split(',') : [])
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  appendFileSync(e.NAMES_RECORD, line + '\\n')
  const m = JSON.parse(line)
  if (m.id === undefined) return
  const reply = (result) => out({ jsonrpc: '2.0', id: m.id, result })
  switch (m.method) {
    case 'initialize':
      return reply({ protocolVersion: m.params.protocolVersion, serverInfo: { name: e.NAMES_SERVER, version: '0' },
        capabilities: { tools: {}, resources: {} } })
    case 'tools/list':
      return reply({ tools: list(e.NAMES_TOOLS).map((name) => ({ name, inputSchema: { type: 'object' } })) })
    case 'resources/list':
      return reply({ resources: list(e.NAMES_URIS).map((uri) => ({ uri, name: uri })) })
    case 'resources/templates/list':
      return reply({ resourceTemplates: list(e.NAMES_TEMPLATES).map((uriTemplate) => ({ uriTemplate, name: uriTemplate })) })
    case 'tools/call':
      return reply({ content: [{ type: 'text', text: e.NAMES_SERVER + ':' + m.params.name }] })
    case 'resources/read':
      return reply({ contents: [{ uri: m.params.uri, text: e.NAMES_SERVER + ':' + m.params.uri }] })
    default:
      return out({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no such method' } })
  }
})
`
const script = join(DIR, 'names.mjs')
writeFileSync(script, SCRIPT)
const server = (name: string, tools: string, uris = '', templates = '') => ({
  command: process.execPath,
  args: [script],
  env: {
    NAMES_SERVER: name,
    NAMES_TOOLS: tools,
    NAMES_URIS: uris,
    NAMES_TEMPLATES: templates,
    NAMES_RECORD: record(name),
  },
})
const SERVERS = {
  a: server('a', 'b_c,Read,read,x', 'memo://shared'),
  a_b: server('a_b', 'c', 'memo://shared'),
  closed: server('closed', 'secret,b_c', 'memo://secret', 'memo://{id}'),
}
const POLICY = `${TEST_POLICY}${['a', 'a_b']
  .map(
    (s) =>
      `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n`,
  )
  .join('')}  closed:
    access: ["mcp:admin"]
    tools: { "*": ["mcp:read"] }
    resources: { "*": ["mcp:read"] }
`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { endpoints: { mix: { servers: ['a', 'a_b', 'closed'], pageSize: 2 } } },
  })
})
after(() => stack.close())

async function session(client: string) {
  const url = `${stack.url}/mcp/mix`
  const token = await stack.token(client, { resource: url })
  let sid: string | undefined
  const send = async (body: unknown) => {
    const res = await request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        ...(sid ? { 'mcp-session-id': sid } : {}),
      },
      body: JSON.stringify(body),
    })
    const text = await res.body.text()
    sid ??= res.headers['mcp-session-id'] as string | undefined
    const messages: Message[] = String(res.headers['content-type']).startsWith('text/event-stream')
      ? sseData(text).map((l) => JSON.parse(l))
      : text
        ? [JSON.parse(text)]
        : []
    return { status: res.statusCode, last: messages.at(-1) }
  }
  const init = await send({
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
  await send({ jsonrpc: '2.0', method: 'notifications/initialized' })
  let id = 1
  const rpc = async (method: string, params: Record<string, unknown> = {}) =>
    (await send({ jsonrpc: '2.0', id: id++, method, params })).last
  return { rpc }
}

async function allTools(s: Awaited<ReturnType<typeof session>>) {
  const names: string[] = []
  const cursors: string[] = []
  let cursor: string | undefined
  do {
    const r = await s.rpc('tools/list', cursor === undefined ? {} : { cursor })
    names.push(...r.result.tools.map((t: { name: string }) => t.name))
    cursor = r.result.nextCursor
    if (cursor) cursors.push(cursor)
  } while (cursor)
  return { names, cursors }
}

describe('stop 26 (held): names, URIs and cursors at an endpoint', () => {
  it('colliding, case-differing and closed-server names each lead to exactly their own tool, or nowhere', async () => {
    const bob = await session('bob')
    const { names } = await allTools(bob)
    assert.ok(!names.includes('a_b_c'), `a contested name is nobody's: ${names}`)
    assert.ok(names.includes('a_Read') && names.includes('a_read') && names.includes('a_x'))
    assert.equal(names.filter((n) => n.startsWith('closed')).length, 0)
    const answers = new Set<string>()
    for (const name of names) {
      const r = await bob.rpc('tools/call', { name, arguments: {} })
      answers.add(r.result.content[0].text)
    }
    assert.deepEqual(
      [...answers].sort(),
      ['a:Read', 'a:b_c', 'a:read', 'a:x', 'a_b:c'],
      'each public name reached its own tool once',
    )
    for (const name of [
      'a_b_c',
      'closed_secret',
      'closed_b_c',
      'A_read',
      'a_READ',
      'a_b_c_',
      'a_b\u0000c',
    ]) {
      const r = await bob.rpc('tools/call', { name, arguments: {} })
      assert.equal(r.error?.code, -32602, `${name}: ${JSON.stringify(r)}`)
    }
    assert.equal(seen('closed').filter((m) => m.method === 'tools/call').length, 0)
  })

  it("URIs of a server bob's policy closes, plain or namespaced, reach no process", async () => {
    const bob = await session('bob')
    const listed = (await bob.rpc('resources/list')).result.resources.map(
      (r: { uri: string }) => r.uri,
    )
    assert.deepEqual(listed.sort(), ['mcp-edge://a/memo://shared', 'mcp-edge://a_b/memo://shared'])
    for (const uri of [
      'memo://secret',
      'memo://other',
      'mcp-edge://closed/memo://secret',
      'mcp-edge://closed/memo://x',
      'MCP-EDGE://closed/memo://secret',
      'mcp-edge://a/memo://secret',
      'mcp-edge://a/../closed/memo://secret',
      'memo://shared',
    ]) {
      const r = await bob.rpc('resources/read', { uri })
      assert.equal(r.error?.code, -32602, `${uri}: ${JSON.stringify(r)}`)
    }
    const ok = await bob.rpc('resources/read', { uri: 'mcp-edge://a_b/memo://shared' })
    assert.equal(ok.result.contents[0].text, 'a_b:memo://shared')
    assert.equal(ok.result.contents[0].uri, 'mcp-edge://a_b/memo://shared')
    // The closed server's template is neither listed nor completed.
    assert.deepEqual((await bob.rpc('resources/templates/list')).result.resourceTemplates, [])
    for (const uri of ['memo://{id}', 'mcp-edge://closed/memo://{id}'])
      assert.equal(
        (
          await bob.rpc('completion/complete', {
            ref: { type: 'ref/resource', uri },
            argument: { name: 'id', value: 's' },
          })
        ).error?.code,
        -32602,
        uri,
      )
    assert.deepEqual(
      seen('closed').filter(
        (m) =>
          m.method !== undefined &&
          !['initialize', 'notifications/initialized'].includes(m.method) &&
          !m.method.endsWith('/list'),
      ),
      [],
    )
  })

  it("another user's cursor is only a position in bob's own list; an altered one is refused", async () => {
    const alice = await session('alice')
    const bob = await session('bob')
    const { names: bobNames } = await allTools(bob)
    const { cursors } = await allTools(alice)
    assert.ok(cursors.length > 0)
    const page = await bob.rpc('tools/list', { cursor: cursors[0] })
    for (const t of page.result.tools)
      assert.ok(bobNames.includes(t.name), `${t.name} is not bob's`)
    const c = cursors[0]!
    // The second-to-last character changed (it was replaced by 'A' even when it was one: the
    // same cursor, accepted, in about 1 run of 64).
    const at = c.length - 2
    const altered = c.slice(0, at) + (c[at] === 'A' ? 'B' : 'A') + c.slice(at + 1)
    assert.notEqual(altered, c)
    for (const cursor of [altered, `${c}A`, '', 'x', 12, null])
      assert.equal((await bob.rpc('tools/list', { cursor })).error?.code, -32602, String(cursor))
    assert.equal((await bob.rpc('prompts/list', { cursor: c })).error?.code, -32602)
  })
})
