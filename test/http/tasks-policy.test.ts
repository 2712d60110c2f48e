// Tasks (MCP 2025-11-25) in session mode under today's policy, through a real gateway, a real
// task-capable stdio server (servers/tasks.ts) and real SDK clients: a task's status, result and
// status notifications are its tool's, decided anew after each policy reload and by the
// session's latest token; what is refused reaches no process. The stack: helpers/tasks-stack.ts.
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import type { Client } from '@modelcontextprotocol/client'
import { editPolicy, type PolicyEdit } from '../helpers/policy-edit.js'
import {
  connectClient,
  createTask,
  raw,
  type RawMessage,
  rawStream,
  recorded,
  TASKS_TOOLS,
  useTasksStack,
} from '../helpers/tasks-stack.js'

/** The policy as started: each test edits it, and it is loaded again after each. */
let policy: PolicyEdit
const tasks = useTasksStack((t) => {
  policy = editPolicy(t.stack)
})
afterEach(() => policy.restore())

describe("tasks, session mode: a task's status and result are its tool's, by today's policy", () => {
  it('a tool denied after its task began: tasks/get and tasks/result refused, the process asked nothing', async () => {
    const client = await connectClient(tasks.stack, 'tasks')
    try {
      const taskId = await createTask('tasks', client, 'bulk', { bytes: 100 })
      const before = recorded(tasks.record.session).length
      policy.replace(TASKS_TOOLS, 'tools: { forever: deny, bulk: deny, "*": ["mcp:read"] }')
      for (const method of ['tasks/get', 'tasks/result']) {
        const r = await raw('tasks', client, method, { taskId })
        assert.equal(r.error?.code, -32010, `${method}: ${JSON.stringify(r)}`)
        assert.match(r.error!.message, /denied by policy/)
      }
      // The refusals name the task's tool in the audit, and nothing reached the process.
      const audited = tasks.stack
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
      assert.equal(recorded(tasks.record.session).length, before)
      // Allowed again: the same session gets the result, held to bulk's cap.
      policy.restore()
      const r = await raw('tasks', client, 'tasks/result', { taskId })
      assert.equal(r.error, undefined, JSON.stringify(r))
      assert.equal((r.result!.content as unknown[]).length > 0, true)
    } finally {
      await client.close()
    }
  })

  it('a task id the session never saw created (or forgot): status and result refused, the process asked nothing; cancel goes by access', async () => {
    const client = await connectClient(tasks.stack, 'tasks')
    try {
      for (const method of ['tasks/get', 'tasks/result']) {
        const r = await raw('tasks', client, method, { taskId: 'never-created' })
        assert.equal(r.error?.code, -32010, `${method}: ${JSON.stringify(r)}`)
      }
      assert.ok(!recorded(tasks.record.session).some((m) => m.params?.taskId === 'never-created'))
      const c = await raw('tasks', client, 'tasks/cancel', { taskId: 'never-created' })
      assert.notEqual(c.error?.code, -32010, JSON.stringify(c))
      assert.ok(recorded(tasks.record.session).some((m) => m.params?.taskId === 'never-created'))
    } finally {
      await client.close()
    }
  })

  it('tasks/list shows only the tasks whose tool the caller may call now', async () => {
    const client = await connectClient(tasks.stack, 'tasks')
    try {
      const bulk = await createTask('tasks', client, 'bulk', { bytes: 10 })
      const other = await createTask('tasks', client, 'bulk_task', { bytes: 10 })
      const ids = async () =>
        ((await raw('tasks', client, 'tasks/list', {})).result!.tasks as { taskId: string }[]).map(
          (t) => t.taskId,
        )
      const all = await ids()
      assert.ok(all.includes(bulk) && all.includes(other), JSON.stringify(all))
      policy.replace(TASKS_TOOLS, 'tools: { forever: deny, bulk: deny, "*": ["mcp:read"] }')
      const now = await ids()
      assert.ok(!now.includes(bulk), 'the denied tool’s task is hidden')
      assert.ok(now.includes(other), 'the other stays')
    } finally {
      await client.close()
    }
  })
})

describe("tasks, session mode: a task's status notifications are its tool's, by today's policy", () => {
  const statuses = (messages: RawMessage[]) =>
    messages
      .filter((m) => m.method === 'notifications/tasks/status')
      .map((m) => [m.params?.taskId, m.params?.statusMessage])
  const createdId = (messages: RawMessage[]) => {
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
  const deny = (tools: string) => policy.replace(TASKS_TOOLS, `tools: { ${tools} }`)

  it('reaches the session while the tool is allowed; withheld once a reload denies it, and again after', async () => {
    const client = await connectClient(tasks.stack, 'tasks')
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
      policy.restore()
      assert.deepEqual(await nudge(client, taskId, 'three'), [[taskId, 'three']])
    } finally {
      await client.close()
    }
  })

  it("withheld when the session's latest token lacks the scope the task's tool needs", async () => {
    deny('forever: deny, chatty: ["mcp:write"], "*": ["mcp:read"]')
    const client = await connectClient(tasks.stack, 'tasks', 'dev')
    try {
      const wide = await tasks.stack.token('dev', { server: 'tasks', scope: 'mcp:read mcp:write' })
      const narrow = await tasks.stack.token('dev', { server: 'tasks', scope: 'mcp:read' })
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
      await client.close()
    }
  })
})
