// Where tasks (MCP 2025-11-25) are not offered, through a real gateway, a real task-capable
// stdio server (servers/tasks.ts) and real SDK clients: a shared process and an endpoint
// advertise no tasks and run a task-augmented call plain, capped, and refuse tasks/*, so no
// session reaches another's. The stack: helpers/tasks-stack.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import {
  connectClient,
  raw,
  recorded,
  rememberSession,
  sizeOf,
  useTasksStack,
} from '../helpers/tasks-stack.js'

const tasks = useTasksStack()

describe("tasks, shared mode: not offered, so no session reaches another's", () => {
  it('no tasks capability, no taskSupport; a task-augmented call runs plain, capped', async () => {
    const client = await connectClient(tasks.stack, 'tasksshared')
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
      assert.ok(sizeOf(r.result) <= 4096)
    } finally {
      await client.close()
    }
  })

  it('tasks/* of another user are refused, and the shared process sees none of it', async () => {
    const bob = await connectClient(tasks.stack, 'tasksshared', 'bob')
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
      const got = recorded(tasks.record.shared)
      assert.ok(!got.some((m) => m.method?.startsWith('tasks/')), 'no tasks/* reached the process')
      assert.ok(!got.some((m) => m.params !== undefined && 'task' in m.params), 'no params.task')
    } finally {
      await bob.close()
    }
  })
})

describe('tasks at an endpoint: not offered', () => {
  it('an endpoint offers no tasks: tools without taskSupport, calls run plain, tasks/* unknown', async () => {
    const token = await tasks.stack.token('alice', { resource: `${tasks.stack.url}/mcp/taskep` })
    const client = new Client({ name: 'tasks', version: '0' })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${tasks.stack.url}/mcp/taskep`), {
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
      assert.ok(sizeOf(plain) <= 20_000, "the backend tool's own cap")
      rememberSession(client, tasks.stack, token)
      for (const method of ['tasks/list', 'tasks/get', 'tasks/result', 'tasks/cancel']) {
        const r = await raw(`${tasks.stack.url}/mcp/taskep`, client, method, {
          taskId: 'a'.repeat(32),
        })
        assert.equal(r.error?.code, -32601, `${method}: ${JSON.stringify(r)}`)
      }
    } finally {
      await client.close()
    }
  })
})
