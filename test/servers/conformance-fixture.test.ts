// servers/conformance over real stdio: the SDK v2 client for what a session client sees, raw
// JSON-RPC lines for what the SDK would not send (malformed answers, cancellation).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/client'
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import type {
  CallToolResult,
  ClientCapabilities,
  JSONRPCMessage,
} from '@modelcontextprotocol/client'
import { JSON_SCHEMA_2020_12 } from '../../servers/conformance/media.js'
import { waitFor } from '../helpers/wait-for.js'

const SERVER = fileURLToPath(new URL('../../servers/conformance.js', import.meta.url))

type Wire = { id?: string | number; method?: string; params?: Record<string, unknown> }

/** An SDK client on a fresh server process, recording every message the server sends. */
async function connect(
  capabilities: ClientCapabilities,
  answer?: (c: Client, seen: Wire[]) => void,
) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [SERVER],
    stderr: 'pipe',
  })
  const client = new Client(
    { name: 'conformance-fixture-test', version: '0.0.0' },
    { capabilities },
  )
  const wire: Wire[] = []
  const requests: Wire[] = []
  answer?.(client, requests)
  await client.connect(transport)
  const handle = transport.onmessage
  transport.onmessage = (m: JSONRPCMessage) => {
    const w = m as Wire
    wire.push(w)
    if (w.method !== undefined && w.id !== undefined) requests.push(w)
    handle?.(m)
  }
  return { client, wire, requests }
}

const textOf = (r: CallToolResult) =>
  r.content.map((c) => (c.type === 'text' ? c.text : '')).join('')

/** Waits until n server→client requests were seen. */
const until = (seen: Wire[], n: number) =>
  waitFor(
    () => seen.length >= n,
    () => `expected ${n} requests outstanding at once, saw ${seen.length}`,
  )

describe('conformance fixture with every client capability', () => {
  let conn: Awaited<ReturnType<typeof connect>>
  /** Answers wait until this many requests were seen: proves concurrent ones were all sent first. */
  let hold = 0
  before(async () => {
    conn = await connect(
      { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } },
      (c, seen) => {
        c.setRequestHandler('elicitation/create', async (req) => {
          await until(seen, hold)
          const props =
            'requestedSchema' in req.params
              ? Object.keys(req.params.requestedSchema.properties)
              : []
          return {
            action: 'accept',
            content: Object.fromEntries(props.map((p) => [p, p === 'ok' ? true : `my ${p}`])),
          }
        })
        c.setRequestHandler('sampling/createMessage', async () => {
          await until(seen, hold)
          return { role: 'assistant', model: 'test', content: { type: 'text', text: 'Paris' } }
        })
        c.setRequestHandler('roots/list', async () => {
          await until(seen, hold)
          return { roots: [{ uri: 'file:///test/root', name: 'Test Root' }] }
        })
      },
    )
  })
  after(() => conn.client.close())

  it('negotiates the version and declares what it serves', () => {
    assert.equal(conn.client.getServerVersion()?.name, 'conformance')
    assert.deepEqual(conn.client.getServerCapabilities(), {
      tools: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true },
      logging: {},
      completions: {},
    })
  })

  // tool → the ids of its server→client requests, in order (the gateway's inputRequests keys),
  // and whether they are sent together.
  const keys: Array<[tool: string, ids: string[], text: RegExp, together?: true]> = [
    ['test_input_required_result_elicitation', ['user_name'], /^Hello, my name!$/],
    ['test_input_required_result_sampling', ['capital_question'], /Paris/],
    ['test_input_required_result_list_roots', ['client_roots'], /file:\/\/\/test\/root/],
    ['test_input_required_result_request_state', ['confirm'], /state-ok/],
    [
      'test_input_required_result_multiple_inputs',
      ['user_name', 'greeting', 'client_roots'],
      /Paris my name; roots: file:\/\/\/test\/root/,
      true,
    ],
    ['test_input_required_result_multi_round', ['step1', 'step2'], /my name likes my color/],
    ['test_input_required_result_tampered_state', ['tamper_check'], /confirmed=true/],
    [
      'test_input_required_result_capabilities',
      ['capability_sampling', 'capability_elicitation'],
      /sampling: Paris; elicitation: my text/,
      true,
    ],
    ['test_streaming_elicitation', ['streaming_confirm'], /confirmed=true/],
    ['test_missing_capability', ['missing_capability_probe'], /sampled: Paris/],
    ['test_sampling', ['sampling'], /LLM response: Paris/],
    ['test_elicitation', ['elicitation'], /User response: action=accept/],
    ['test_elicitation_sep1034_defaults', ['sep1034_defaults'], /action=accept/],
    ['test_elicitation_sep1330_enums', ['sep1330_enums'], /action=accept/],
  ]
  for (const [tool, ids, text, together] of keys) {
    it(`${tool} asks with ids ${ids.join(', ')}${together ? ', all at once' : ''}`, async () => {
      conn.requests.length = 0
      hold = together ? ids.length : 0
      const args =
        tool === 'test_sampling'
          ? { prompt: 'p' }
          : tool === 'test_elicitation'
            ? { message: 'm' }
            : {}
      const result = await conn.client.callTool({ name: tool, arguments: args })
      assert.equal(result.isError, undefined, textOf(result))
      assert.deepEqual(
        conn.requests.map((r) => r.id),
        ids,
      )
      assert.match(textOf(result), text)
    })
  }

  it('the input_required prompt asks with id user_context', async () => {
    conn.requests.length = 0
    const { messages } = await conn.client.getPrompt({ name: 'test_input_required_result_prompt' })
    assert.deepEqual(
      conn.requests.map((r) => r.id),
      ['user_context'],
    )
    assert.match(JSON.stringify(messages), /my context/)
  })

  it('an unknown resource is -32602 "Resource not found" with data.uri (SEP-2164)', async () => {
    const uri = 'test://nonexistent-resource-for-conformance-testing'
    await assert.rejects(
      conn.client.readResource({ uri }),
      (err: { code?: number; message?: string; data?: unknown }) => {
        assert.equal(err.code, -32602)
        assert.match(err.message ?? '', /Resource not found/)
        assert.deepEqual(err.data, { uri })
        return true
      },
    )
  })

  it('reads text, binary and templated resources', async () => {
    const read = async (uri: string) =>
      (await conn.client.readResource({ uri })).contents[0] as Record<string, unknown>
    assert.equal((await read('test://static-text')).mimeType, 'text/plain')
    assert.equal(typeof (await read('test://static-binary')).blob, 'string')
    assert.deepEqual(JSON.parse((await read('test://template/123/data')).text as string), {
      id: '123',
      templateTest: true,
      data: 'Data for ID: 123',
    })
  })

  it('notifies subscribers of test://watched-resource when it changes, and only them', async () => {
    const updates = async () => {
      const from = conn.wire.length
      await conn.client.callTool({ name: 'test_update_watched_resource', arguments: {} })
      return conn.wire
        .slice(from)
        .filter((m) => m.method === 'notifications/resources/updated')
        .map((m) => m.params?.uri)
    }
    await conn.client.subscribeResource({ uri: 'test://watched-resource' })
    assert.deepEqual(await updates(), ['test://watched-resource'])
    await conn.client.unsubscribeResource({ uri: 'test://watched-resource' })
    assert.deepEqual(await updates(), [])
  })

  // level set → the levels test_logging_tool (debug + info) gets through.
  const levels: Array<[level: 'debug' | 'info' | 'error', seen: string[]]> = [
    ['debug', ['debug', 'info']],
    ['info', ['info']],
    ['error', []],
  ]
  for (const [level, seen] of levels) {
    it(`logging/setLevel ${level} lets through ${seen.join(', ') || 'nothing'}`, async () => {
      await conn.client.setLoggingLevel(level)
      const from = conn.wire.length
      await conn.client.callTool({ name: 'test_logging_tool', arguments: {} })
      const logs = conn.wire.slice(from).filter((m) => m.method === 'notifications/message')
      assert.deepEqual(
        logs.map((m) => m.params?.level),
        seen,
      )
    })
  }

  it('sends the JSON Schema 2020-12 input schema keyword for keyword, in order', async () => {
    const from = conn.wire.length
    await conn.client.listTools()
    // On the wire: the SDK client's parsed result reorders keys.
    const reply = conn.wire.slice(from).find((m) => 'result' in m) as {
      result: { tools: Array<{ name: string; inputSchema: unknown }> }
    }
    const tool = reply.result.tools.find((t) => t.name === 'json_schema_2020_12_tool')
    assert.equal(JSON.stringify(tool?.inputSchema), JSON.stringify(JSON_SCHEMA_2020_12))
  })

  it('reports progress 0, 50, 100 for the request token', async () => {
    const from = conn.wire.length
    await conn.client.callTool({
      name: 'test_tool_with_progress',
      arguments: {},
      _meta: { progressToken: 'p-1' },
    })
    const steps = conn.wire
      .slice(from)
      .filter((m) => m.method === 'notifications/progress')
      .map((m) => [m.params?.progressToken, m.params?.progress])
    assert.deepEqual(steps, [
      ['p-1', 0],
      ['p-1', 50],
      ['p-1', 100],
    ])
  })
})

describe('conformance fixture with a client that declares sampling only', () => {
  let conn: Awaited<ReturnType<typeof connect>>
  before(async () => {
    conn = await connect({ sampling: {} }, (c) => {
      c.setRequestHandler('sampling/createMessage', () => ({
        role: 'assistant',
        model: 'test',
        content: { type: 'text', text: 'hi' },
      }))
    })
  })
  after(() => conn.client.close())

  it('test_input_required_result_capabilities completes with the sampling answer alone', async () => {
    const result = await conn.client.callTool({
      name: 'test_input_required_result_capabilities',
      arguments: {},
    })
    assert.equal(result.isError, undefined)
    assert.equal(textOf(result), 'sampling: hi; elicitation: unavailable')
  })
})

describe('conformance fixture with a client that declares nothing', () => {
  let conn: Awaited<ReturnType<typeof connect>>
  before(async () => (conn = await connect({})))
  after(() => conn.client.close())

  it('test_missing_capability fails with -32021 naming sampling (SEP-2575)', async () => {
    await assert.rejects(
      conn.client.callTool({ name: 'test_missing_capability', arguments: {} }),
      (err: { code?: number; data?: unknown }) => {
        assert.equal(err.code, -32021)
        assert.deepEqual(err.data, { requiredCapabilities: { sampling: {} } })
        return true
      },
    )
  })
})

/** A server process spoken to in raw JSON-RPC lines. */
function raw() {
  const child = spawn(process.execPath, [SERVER], { stdio: ['pipe', 'pipe', 'inherit'] })
  const queue: Wire[] = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout }).on('line', (l) => {
    queue.push(JSON.parse(l) as Wire)
    waiters.splice(0).forEach((w) => w())
  })
  return {
    send: (m: object) => child.stdin.write(`${JSON.stringify(m)}\n`),
    /** The next message the server writes. */
    async next(): Promise<Wire & { result?: unknown; error?: { code: number; data?: unknown } }> {
      while (queue.length === 0) await new Promise<void>((r) => waiters.push(r))
      return queue.shift()!
    },
    close: () => child.kill(),
  }
}

describe('conformance fixture over raw JSON-RPC', () => {
  const s = raw()
  after(() => s.close())
  const call = (id: number, name: string) =>
    s.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } })

  it('refuses a malformed answer (not an ElicitResult) with -32602', async () => {
    call(1, 'test_input_required_result_elicitation')
    assert.equal((await s.next()).id, 'user_name')
    s.send({ jsonrpc: '2.0', id: 'user_name', result: 12345 })
    const reply = await s.next()
    assert.equal(reply.id, 1)
    assert.equal(reply.error?.code, -32602)
  })

  it('fails fast when a fixed id is still outstanding, and frees it on cancellation', async () => {
    call(2, 'test_input_required_result_elicitation')
    assert.equal((await s.next()).id, 'user_name')
    call(3, 'test_input_required_result_elicitation')
    const clash = await s.next()
    assert.equal(clash.id, 3)
    assert.match(JSON.stringify(clash.error), /already outstanding/)
    // Cancelling call 2 withdraws its request; no reply for call 2 follows.
    s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 2 } })
    assert.deepEqual((await s.next()).params?.requestId, 'user_name')
    call(4, 'test_input_required_result_elicitation')
    assert.equal((await s.next()).id, 'user_name')
    s.send({
      jsonrpc: '2.0',
      id: 'user_name',
      result: { action: 'accept', content: { name: 'Ann' } },
    })
    const done = await s.next()
    assert.equal(done.id, 4)
    assert.deepEqual(done.result, { content: [{ type: 'text', text: 'Hello, Ann!' }] })
  })
})
