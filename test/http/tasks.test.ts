// Tasks (MCP 2025-11-25) through a real gateway, a real task-capable stdio server
// (servers/tasks.ts) and real SDK clients: a task's result is held to its tool's output cap; a
// task the session did not see created gets the server's strictest cap; policy decides a
// task-augmented call like any; malformed task ids reach no process; shared processes and
// endpoints offer no tasks, so no session reaches another's.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import {
  CallToolResultSchema,
  CreateTaskResultSchema,
  ListTasksResultSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { request } from 'undici'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const node = process.execPath
const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8')
const tasksServer = (o: Record<string, unknown>) => ({
  command: node,
  args: [join(SERVERS_DIR, 'tasks.js')],
  ...o,
})
const access = (tools: string) => `    access: ["mcp:read"]\n    tools: { ${tools} }\n`

let stack: Stack
let record: { session: string; shared: string }
before(async () => {
  const { mkdtempSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-tasks-'))
  record = { session: join(dir, 'session.jsonl'), shared: join(dir, 'shared.jsonl') }
  for (const f of Object.values(record)) writeFileSync(f, '')
  stack = await startStack({
    servers: {
      // bulk's cap is 20 kB; the strictest the server has is 2 kB (a pattern no tool matches).
      tasks: tasksServer({
        env: { FIXTURE_RECORD_FILE: record.session },
        output: { maxResultBytes: 50_000, tools: { bulk: 20_000, 'none*': 2000 } },
      }),
      tasksrefuse: tasksServer({ output: { overflow: 'refuse', tools: { 'bulk*': 2048 } } }),
      tasksshared: tasksServer({
        mode: 'shared',
        env: { FIXTURE_RECORD_FILE: record.shared },
        output: { maxResultBytes: 4096 },
      }),
    },
    config: { endpoints: { taskep: { servers: ['tasks'], prefix: '{server}_' } } },
    policy: `${TEST_POLICY}  tasks:\n${access('forever: deny, "*": ["mcp:read"]')}  tasksrefuse:\n${access('"*": ["mcp:read"]')}  tasksshared:\n${access('"*": ["mcp:read"]')}`,
  })
})
after(() => stack.close())

/** The token each client connected with: its raw requests go on its own session. */
const tokens = new WeakMap<Client, string>()

async function sdk(server: string, client = 'alice') {
  const c = new Client({ name: 'tasks', version: '0' })
  const token = await stack.token(client, { server })
  tokens.set(c, token)
  await c.connect(
    new StreamableHTTPClientTransport(new URL(stack.local(server)), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return c
}

type Raw = { result?: Record<string, unknown>; error?: { code: number; message: string } }

/**
 * One raw JSON-RPC request on an open session (the SDK would refuse to send hostile params), to
 * a server by name or to an endpoint's URL.
 */
async function raw(server: string, client: Client, method: string, params: unknown): Promise<Raw> {
  const messages = await rawStream(server, client, method, params)
  return messages.find((m) => m.id === 'raw') ?? (messages[0] as Raw)
}

type Message = Raw & { id?: unknown; method?: string; params?: Record<string, unknown> }

/** Every message a raw request's answer carries (its SSE events, or its JSON body). */
async function rawStream(
  server: string,
  client: Client,
  method: string,
  params: unknown,
  token = tokens.get(client)!,
): Promise<Message[]> {
  const transport = (client as unknown as { _transport: StreamableHTTPClientTransport })._transport
  const res = await request(server.startsWith('http') ? server : stack.local(server), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-session-id': transport.sessionId!,
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 'raw', method, params }),
  })
  const text = await res.body.text()
  if (!(res.headers['content-type'] ?? '').includes('text/event-stream')) return [JSON.parse(text)]
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l.length > 6)
    .map((l) => JSON.parse(l.slice(6)))
}

async function createTask(server: string, client: Client, tool: string, args: object) {
  const r = await raw(server, client, 'tools/call', { name: tool, arguments: args, task: {} })
  const taskId = (r.result?.task as { taskId?: unknown } | undefined)?.taskId
  assert.equal(typeof taskId, 'string', JSON.stringify(r))
  return taskId as string
}

const seen = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { method?: string; params?: Record<string, unknown> })

describe("tasks, session mode: the result of a task is held to its tool's cap", () => {
  it("tasks/result is cut to the tool's cap; asked again, to the strictest", async () => {
    const client = await sdk('tasks')
    try {
      const taskId = await createTask('tasks', client, 'bulk', { bytes: 200_000, parts: 100 })
      const first = await raw('tasks', client, 'tasks/result', { taskId })
      const result = first.result!
      assert.ok(size(result) <= 20_000 && size(result) > 10_000, String(size(result)))
      const meta = result._meta as Record<string, { of?: number; taskId?: string }>
      assert.ok(meta['mcp-edge/truncated']!.of! > 200_000)
      assert.equal(meta['io.modelcontextprotocol/related-task']!.taskId, taskId)
      // Delivered, asked again (an answer lost on the way): still the tool's cap, not none.
      const again = await raw('tasks', client, 'tasks/result', { taskId })
      assert.ok(size(again.result) <= 20_000 && size(again.result) > 10_000)
      // The same tool called directly: the same 20 kB cap.
      const direct = await raw('tasks', client, 'tools/call', {
        name: 'plain',
        arguments: { bytes: 200_000, parts: 100 },
      })
      assert.ok(size(direct.result) <= 50_000 && size(direct.result) > 20_000)
    } finally {
      await client.close()
    }
  })

  it("a task's status message is cut to 1,000 characters wherever it shows; a short one is not touched", async () => {
    const client = await sdk('tasks')
    try {
      const created = await raw('tasks', client, 'tools/call', {
        name: 'chatty',
        arguments: { chars: 10_000 },
        task: {},
      })
      assert.ok(created.result, JSON.stringify(created).slice(0, 500))
      const task = created.result!.task as { taskId: string; statusMessage: string }
      const got = (await raw('tasks', client, 'tasks/get', { taskId: task.taskId })).result!
      const listed = (
        (await raw('tasks', client, 'tasks/list', {})).result!.tasks as {
          taskId: string
          statusMessage?: string
        }[]
      ).find((t) => t.taskId === task.taskId)!
      for (const [where, message] of [
        ['created', task.statusMessage],
        ['tasks/get', got.statusMessage],
        ['tasks/list', listed.statusMessage],
      ] as const) {
        assert.equal(typeof message, 'string', where)
        assert.ok((message as string).length <= 1000, `${where}: ${(message as string).length}`)
        assert.match(message as string, /^é{990,999}…$/, where)
      }
      const short = await raw('tasks', client, 'tools/call', {
        name: 'chatty',
        arguments: { chars: 1000 },
        task: {},
      })
      const shortTask = short.result!.task as { taskId: string; statusMessage: string }
      assert.equal(shortTask.statusMessage, 'é'.repeat(1000))
      const shortGot = await raw('tasks', client, 'tasks/get', { taskId: shortTask.taskId })
      assert.equal(shortGot.result!.statusMessage, 'é'.repeat(1000))
    } finally {
      await client.close()
    }
  })

  it('refuse: a task result over its cap is an error result, audited and counted', async () => {
    const client = await sdk('tasksrefuse')
    try {
      const taskId = await createTask('tasksrefuse', client, 'bulk_task', { bytes: 10_000 })
      const r = await raw('tasksrefuse', client, 'tasks/result', { taskId })
      assert.equal(r.result!.isError, true)
      assert.match(
        (r.result!.content as { text: string }[])[0]!.text,
        /larger than the 2\.0 kB this gateway passes on/,
      )
      const meta = r.result!._meta as Record<string, { taskId?: string }>
      assert.equal(meta['io.modelcontextprotocol/related-task']!.taskId, taskId)
      const audited = stack
        .audit()
        .filter((e) => e.server === 'tasksrefuse' && e.method === 'tasks/result')
      assert.ok(
        audited.some((e) => /^refused \d+ bytes over the output cap$/.test(String(e.outcome))),
      )
      const text = await (await request(`${stack.url}/metrics`)).body.text()
      assert.match(
        text,
        /mcp_edge_results_capped_total\{server="tasksrefuse",action="refused"\} [1-9]/,
      )
    } finally {
      await client.close()
    }
  })

  it("another session's task is not found; its tasks/list shows only its own", async () => {
    const alice = await sdk('tasks')
    const bob = await sdk('tasks', 'bob')
    try {
      const taskId = await createTask('tasks', alice, 'bulk', { bytes: 10 })
      const mine = await raw('tasks', alice, 'tasks/list', {})
      assert.ok(JSON.stringify(mine).includes(taskId))
      // Unknown to Bob's session: its status and result refused by the gateway (no tool to
      // decide them by); a cancel reaches Bob's own process, which has no such task.
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel']) {
        const r = await raw('tasks', bob, method, { taskId })
        const code = method === 'tasks/cancel' ? -32602 : -32010
        assert.equal(r.error?.code, code, `${method}: ${JSON.stringify(r)}`)
      }
      const theirs = await raw('tasks', bob, 'tasks/list', {})
      assert.ok(!JSON.stringify(theirs).includes(taskId))
    } finally {
      await alice.close()
      await bob.close()
    }
  })

  it('a task-augmented call is decided like any call: a denied tool never runs', async () => {
    const client = await sdk('tasks')
    try {
      const r = await raw('tasks', client, 'tools/call', { name: 'forever', task: {} })
      assert.equal(r.error?.code, -32010, JSON.stringify(r))
      assert.match(r.error!.message, /denied by policy/)
      assert.ok(!seen(record.session).some((m) => m.params?.name === 'forever'))
    } finally {
      await client.close()
    }
  })

  it('malformed task ids are refused (-32602) before any process sees them', async () => {
    const client = await sdk('tasks')
    try {
      const taskId = await createTask('tasks', client, 'bulk', { bytes: 10 })
      assert.equal((await raw('tasks', client, 'tasks/get', { taskId })).result?.taskId, taskId)
      const hostile: unknown[] = [
        42,
        null,
        '',
        { id: 'x' },
        'x'.repeat(1025),
        'a\u0000b',
        'a\nb',
        'a\u2028b',
      ]
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel'])
        for (const taskId of hostile) {
          const r = await raw('tasks', client, method, { taskId })
          assert.equal(r.error?.code, -32602, `${method} ${JSON.stringify(taskId)}`)
        }
      const reached = seen(record.session).filter(
        (m) =>
          m.method !== undefined &&
          ['tasks/get', 'tasks/result', 'tasks/cancel'].includes(m.method),
      )
      assert.ok(reached.length > 0, 'a well-formed task id does reach it')
      for (const m of reached) {
        const id = m.params?.taskId
        assert.ok(typeof id === 'string' && /^[0-9a-f]{32}$/.test(id), JSON.stringify(m))
      }
    } finally {
      await client.close()
    }
  })
})

describe("tasks, session mode: a task's status and result are its tool's, by today's policy", () => {
  const file = () => join(stack.dir, 'policy.yaml')
  let policy = ''
  before(() => {
    policy = readFileSync(file(), 'utf8')
  })
  after(() => {
    writeFileSync(file(), policy)
    assert.equal(stack.gateway.reloadPolicy()?.ok, true)
  })

  it('a tool denied after its task began: tasks/get and tasks/result refused, the process asked nothing', async () => {
    const client = await sdk('tasks')
    try {
      const taskId = await createTask('tasks', client, 'bulk', { bytes: 100 })
      const before = seen(record.session).length
      const denied = policy.replace(
        'tools: { forever: deny, "*": ["mcp:read"] }',
        'tools: { forever: deny, bulk: deny, "*": ["mcp:read"] }',
      )
      assert.notEqual(denied, policy)
      writeFileSync(file(), denied)
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      for (const method of ['tasks/get', 'tasks/result']) {
        const r = await raw('tasks', client, method, { taskId })
        assert.equal(r.error?.code, -32010, `${method}: ${JSON.stringify(r)}`)
        assert.match(r.error!.message, /denied by policy/)
      }
      // The refusals name the task's tool in the audit, and nothing reached the process.
      const audited = stack
        .audit()
        .filter((e) => e.server === 'tasks' && String(e.method).startsWith('tasks/'))
        .slice(-2)
      assert.deepEqual(
        audited.map((e) => [e.method, e.name, e.decision]),
        [
          ['tasks/get', 'bulk', 'deny'],
          ['tasks/result', 'bulk', 'deny'],
        ],
      )
      assert.equal(seen(record.session).length, before)
      // Allowed again: the same session gets the result, held to bulk's cap.
      writeFileSync(file(), policy)
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      const r = await raw('tasks', client, 'tasks/result', { taskId })
      assert.equal(r.error, undefined, JSON.stringify(r))
      assert.equal((r.result!.content as unknown[]).length > 0, true)
    } finally {
      await client.close()
    }
  })

  it('a task id the session never saw created (or forgot): status and result refused, the process asked nothing; cancel goes by access', async () => {
    const client = await sdk('tasks')
    try {
      for (const method of ['tasks/get', 'tasks/result']) {
        const r = await raw('tasks', client, method, { taskId: 'never-created' })
        assert.equal(r.error?.code, -32010, `${method}: ${JSON.stringify(r)}`)
      }
      assert.ok(!seen(record.session).some((m) => m.params?.taskId === 'never-created'))
      const c = await raw('tasks', client, 'tasks/cancel', { taskId: 'never-created' })
      assert.notEqual(c.error?.code, -32010, JSON.stringify(c))
      assert.ok(seen(record.session).some((m) => m.params?.taskId === 'never-created'))
    } finally {
      await client.close()
    }
  })

  it('tasks/list shows only the tasks whose tool the caller may call now', async () => {
    const client = await sdk('tasks')
    try {
      const bulk = await createTask('tasks', client, 'bulk', { bytes: 10 })
      const other = await createTask('tasks', client, 'bulk_task', { bytes: 10 })
      const ids = async () =>
        ((await raw('tasks', client, 'tasks/list', {})).result!.tasks as { taskId: string }[]).map(
          (t) => t.taskId,
        )
      const all = await ids()
      assert.ok(all.includes(bulk) && all.includes(other), JSON.stringify(all))
      writeFileSync(
        file(),
        policy.replace(
          'tools: { forever: deny, "*": ["mcp:read"] }',
          'tools: { forever: deny, bulk: deny, "*": ["mcp:read"] }',
        ),
      )
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      const now = await ids()
      assert.ok(!now.includes(bulk), 'the denied tool’s task is hidden')
      assert.ok(now.includes(other), 'the other stays')
    } finally {
      writeFileSync(file(), policy)
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      await client.close()
    }
  })
})

describe("tasks, session mode: a task's status notifications are its tool's, by today's policy", () => {
  const file = () => join(stack.dir, 'policy.yaml')
  let policy = ''
  before(() => {
    policy = readFileSync(file(), 'utf8')
  })
  after(() => {
    writeFileSync(file(), policy)
    assert.equal(stack.gateway.reloadPolicy()?.ok, true)
  })
  const statuses = (messages: Message[]) =>
    messages
      .filter((m) => m.method === 'notifications/tasks/status')
      .map((m) => [m.params?.taskId, m.params?.statusMessage])
  const createdId = (messages: Message[]) => {
    const task = messages.find((m) => m.id === 'raw')?.result?.task as { taskId?: unknown }
    assert.equal(typeof task?.taskId, 'string', JSON.stringify(messages))
    return task.taskId as string
  }
  const nudge = async (client: Client, taskId: string, message: string, token?: string) => {
    const messages = await rawStream(
      'tasks',
      client,
      'tools/call',
      { name: 'nudge', arguments: { taskId, message } },
      token,
    )
    // The process did update the task (and so sent its notification) every time.
    const reply = messages.find((m) => m.id === 'raw')
    assert.deepEqual(reply?.result?.content, [{ type: 'text', text: `nudged ${taskId}` }])
    return statuses(messages)
  }
  const deny = (tools: string) => {
    const next = policy.replace(
      'tools: { forever: deny, "*": ["mcp:read"] }',
      `tools: { ${tools} }`,
    )
    assert.notEqual(next, policy)
    writeFileSync(file(), next)
    assert.equal(stack.gateway.reloadPolicy()?.ok, true)
  }

  it('reaches the session while the tool is allowed; withheld once a reload denies it, and again after', async () => {
    const client = await sdk('tasks')
    try {
      // chatty updates its task before answering: a status for a task the session's book does
      // not know yet, withheld (as tasks/list hides such a task).
      const created = await rawStream('tasks', client, 'tools/call', {
        name: 'chatty',
        arguments: { chars: 3 },
        task: {},
      })
      const taskId = createdId(created)
      assert.deepEqual(statuses(created), [])
      assert.deepEqual(await nudge(client, taskId, 'one'), [[taskId, 'one']])
      deny('forever: deny, chatty: deny, "*": ["mcp:read"]')
      assert.deepEqual(await nudge(client, taskId, 'two'), [])
      writeFileSync(file(), policy)
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      assert.deepEqual(await nudge(client, taskId, 'three'), [[taskId, 'three']])
    } finally {
      writeFileSync(file(), policy)
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      await client.close()
    }
  })

  it("withheld when the session's latest token lacks the scope the task's tool needs", async () => {
    deny('forever: deny, chatty: ["mcp:write"], "*": ["mcp:read"]')
    const client = await sdk('tasks', 'dev')
    try {
      const wide = await stack.token('dev', { server: 'tasks', scope: 'mcp:read mcp:write' })
      const narrow = await stack.token('dev', { server: 'tasks', scope: 'mcp:read' })
      const created = await rawStream(
        'tasks',
        client,
        'tools/call',
        { name: 'chatty', arguments: { chars: 3 }, task: {} },
        wide,
      )
      const taskId = createdId(created)
      assert.deepEqual(await nudge(client, taskId, 'wide', wide), [[taskId, 'wide']])
      assert.deepEqual(await nudge(client, taskId, 'narrow', narrow), [])
    } finally {
      writeFileSync(file(), policy)
      assert.equal(stack.gateway.reloadPolicy()?.ok, true)
      await client.close()
    }
  })
})

describe("tasks, shared mode: not offered, so no session reaches another's", () => {
  it('no tasks capability, no taskSupport; a task-augmented call runs plain, capped', async () => {
    const client = await sdk('tasksshared')
    try {
      assert.equal(client.getServerCapabilities()?.tasks, undefined)
      const tools = await client.listTools()
      for (const t of tools.tools) assert.equal(t.execution?.taskSupport, undefined, t.name)
      const r = await raw('tasksshared', client, 'tools/call', {
        name: 'bulk',
        arguments: { bytes: 100_000, parts: 50 },
        task: {},
      })
      assert.equal(r.result!.task, undefined, 'no task was created')
      assert.ok(size(r.result) <= 4096)
    } finally {
      await client.close()
    }
  })

  it('tasks/* of another user are refused, and the shared process sees none of it', async () => {
    const bob = await sdk('tasksshared', 'bob')
    try {
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel', 'tasks/list']) {
        const r = await raw(
          'tasksshared',
          bob,
          method,
          method === 'tasks/list' ? {} : { taskId: 'a'.repeat(32) },
        )
        assert.equal(r.error?.code, -32601, `${method}: ${JSON.stringify(r)}`)
      }
      const got = seen(record.shared)
      assert.ok(!got.some((m) => m.method?.startsWith('tasks/')), 'no tasks/* reached the process')
      assert.ok(!got.some((m) => m.params !== undefined && 'task' in m.params), 'no params.task')
    } finally {
      await bob.close()
    }
  })
})

describe('tasks at an endpoint and over legacy HTTP+SSE', () => {
  it('an endpoint offers no tasks: tools without taskSupport, calls run plain, tasks/* unknown', async () => {
    const token = await stack.token('alice', { resource: `${stack.url}/mcp/taskep` })
    const client = new Client({ name: 'tasks', version: '0' })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${stack.url}/mcp/taskep`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      assert.equal(client.getServerCapabilities()?.tasks, undefined)
      const tools = await client.listTools()
      assert.ok(tools.tools.some((t) => t.name === 'tasks_bulk'))
      for (const t of tools.tools) assert.equal(t.execution?.taskSupport, undefined, t.name)
      const plain = (await client.request({
        method: 'tools/call',
        params: { name: 'tasks_bulk', arguments: { bytes: 100_000 }, task: {} },
      } as never)) as Record<string, unknown>
      assert.equal(plain.task, undefined)
      assert.ok(size(plain) <= 20_000, "the backend tool's own cap")
      tokens.set(client, token)
      for (const method of ['tasks/list', 'tasks/get', 'tasks/result', 'tasks/cancel']) {
        const r = await raw(`${stack.url}/mcp/taskep`, client, method, { taskId: 'a'.repeat(32) })
        assert.equal(r.error?.code, -32601, `${method}: ${JSON.stringify(r)}`)
      }
    } finally {
      await client.close()
    }
  })

  it("legacy HTTP+SSE: a task result is held to its tool's cap", async () => {
    const client = new V1Client({ name: 'legacy', version: '0' })
    const token = await stack.token('alice', { server: 'tasks' })
    await client.connect(
      new SSEClientTransport(new URL(`${stack.url}/sse/tasks`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      const created = await client.request(
        { method: 'tools/call', params: { name: 'bulk', arguments: { bytes: 100_000 }, task: {} } },
        CreateTaskResultSchema,
      )
      const result = await client.request(
        { method: 'tasks/result', params: { taskId: created.task.taskId } },
        CallToolResultSchema,
      )
      assert.ok(size(result) <= 20_000, String(size(result)))
      const list = await client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema)
      assert.ok(list.tasks.some((t) => t.taskId === created.task.taskId))
    } finally {
      await client.close()
    }
  })
})
