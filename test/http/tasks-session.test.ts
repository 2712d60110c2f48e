// Tasks (MCP 2025-11-25) in session mode through a real gateway, a real task-capable stdio
// server (servers/tasks.ts) and real SDK clients: a task's result is held to its tool's output
// cap, over Streamable HTTP and legacy HTTP+SSE; a task the session did not see created gets the
// server's strictest cap; a task-augmented call is decided like any; malformed task ids reach no
// process; no session reaches another's tasks. The stack: helpers/tasks-stack.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import {
  CallToolResultSchema,
  CreateTaskResultSchema,
  ListTasksResultSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { request } from 'undici'
import {
  connectClient,
  createTask,
  raw,
  recorded,
  sizeOf,
  useTasksStack,
} from '../helpers/tasks-stack.js'

const tasks = useTasksStack()

describe("tasks, session mode: the result of a task is held to its tool's cap", () => {
  it("tasks/result is cut to the tool's cap; asked again, to the strictest", async () => {
    const client = await connectClient(tasks.stack, 'tasks')
    try {
      const taskId = await createTask('tasks', client, 'bulk', { bytes: 200_000, parts: 100 })
      const first = await raw('tasks', client, 'tasks/result', { taskId })
      const result = first.result!
      assert.ok(sizeOf(result) <= 20_000 && sizeOf(result) > 10_000, String(sizeOf(result)))
      const meta = result._meta as Record<string, { of?: number; taskId?: string }>
      assert.ok(meta['mcp-edge/truncated']!.of! > 200_000)
      assert.equal(meta['io.modelcontextprotocol/related-task']!.taskId, taskId)
      // Delivered, asked again (an answer lost on the way): still the tool's cap, not none.
      const again = await raw('tasks', client, 'tasks/result', { taskId })
      assert.ok(sizeOf(again.result) <= 20_000 && sizeOf(again.result) > 10_000)
      // The same tool called directly: the same 20 kB cap.
      const direct = await raw('tasks', client, 'tools/call', {
        name: 'plain',
        arguments: { bytes: 200_000, parts: 100 },
      })
      assert.ok(sizeOf(direct.result) <= 50_000 && sizeOf(direct.result) > 20_000)
    } finally {
      await client.close()
    }
  })

  it("a task's status message is cut to 1,000 characters wherever it shows; a short one is not touched", async () => {
    const client = await connectClient(tasks.stack, 'tasks')
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
    const client = await connectClient(tasks.stack, 'tasksrefuse')
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
      const audited = tasks.stack
        .audit()
        .filter((e) => e.server === 'tasksrefuse' && e.method === 'tasks/result')
      assert.ok(
        audited.some((e) => /^refused \d+ bytes over the output cap$/.test(String(e.outcome))),
      )
      const text = await (await request(`${tasks.stack.url}/metrics`)).body.text()
      assert.match(
        text,
        /mcp_edge_results_capped_total\{server="tasksrefuse",action="refused"\} [1-9]/,
      )
    } finally {
      await client.close()
    }
  })

  it("another session's task is not found; its tasks/list shows only its own", async () => {
    const alice = await connectClient(tasks.stack, 'tasks')
    const bob = await connectClient(tasks.stack, 'tasks', 'bob')
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
    const client = await connectClient(tasks.stack, 'tasks')
    try {
      const r = await raw('tasks', client, 'tools/call', { name: 'forever', task: {} })
      assert.equal(r.error?.code, -32010, JSON.stringify(r))
      assert.match(r.error!.message, /denied by policy/)
      assert.ok(!recorded(tasks.record.session).some((m) => m.params?.name === 'forever'))
    } finally {
      await client.close()
    }
  })

  it('malformed task ids are refused (-32602) before any process sees them', async () => {
    const client = await connectClient(tasks.stack, 'tasks')
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
      const reached = recorded(tasks.record.session).filter(
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

describe('tasks over legacy HTTP+SSE (a session too)', () => {
  it("legacy HTTP+SSE: a task result is held to its tool's cap", async () => {
    const client = new V1Client({ name: 'legacy', version: '0' })
    const token = await tasks.stack.token('alice', { server: 'tasks' })
    await client.connect(
      new SSEClientTransport(new URL(`${tasks.stack.url}/sse/tasks`), {
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
      assert.ok(sizeOf(result) <= 20_000, String(sizeOf(result)))
      const list = await client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema)
      assert.ok(list.tasks.some((t) => t.taskId === created.task.taskId))
    } finally {
      await client.close()
    }
  })
})
