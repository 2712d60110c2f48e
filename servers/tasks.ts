#!/usr/bin/env node
// tasks: a stdio MCP server that runs tools as tasks (MCP 2025-11-25, experimental), with the
// SDK's own task support (the v1 SDK's: v2 has the task schemas but no task store yet). Tests
// only. Its task store knows no sessions (stdio has none): every task is everyone's, which is
// what a shared process makes of it.
import { appendFileSync } from 'node:fs'
import {
  InMemoryTaskMessageQueue,
  InMemoryTaskStore,
} from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod/v4'

const taskStore = new InMemoryTaskStore()
const server = new McpServer(
  { name: 'tasks', version: '1.0.0' },
  {
    capabilities: {
      tools: {},
      tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } },
    },
    taskStore,
    // TASKS_MESSAGE_QUEUE=1: the SDK's queue of task messages, as a server that sends requests
    // within tasks keeps: a request naming a related task has its answer queued for that task.
    ...(process.env.TASKS_MESSAGE_QUEUE === '1' && {
      taskMessageQueue: new InMemoryTaskMessageQueue(),
    }),
  },
)

/** `bytes` characters of text, in `parts` items (a large result, to hold to a cap). */
const bulk = (bytes: number, parts: number): CallToolResult => ({
  content: Array.from({ length: parts }, (_, i) => ({
    type: 'text' as const,
    text: String(i % 10).repeat(Math.ceil(bytes / parts)),
  })),
})

const bulkInput = {
  bytes: z.number().int().min(0).max(10_000_000),
  parts: z.number().int().min(1).max(1000).optional(),
}

// A task whose result is stored at once: the client polls tasks/get, then reads tasks/result.
for (const [name, taskSupport] of [
  ['bulk', 'optional'],
  ['bulk_task', 'required'],
] as const)
  server.experimental.tasks.registerToolTask(
    name,
    {
      description: 'Return `bytes` characters of text in `parts` items, as a task',
      inputSchema: bulkInput,
      execution: { taskSupport },
    },
    {
      async createTask({ bytes, parts }, extra) {
        const task = await extra.taskStore.createTask({ ttl: extra.taskRequestedTtl ?? 60_000 })
        await extra.taskStore.storeTaskResult(task.taskId, 'completed', bulk(bytes, parts ?? 1))
        return { task }
      },
      getTask: (_args, extra) => extra.taskStore.getTask(extra.taskId),
      getTaskResult: (_args, extra) =>
        extra.taskStore.getTaskResult(extra.taskId) as Promise<CallToolResult>,
    },
  )

// A task that never ends on its own (cancelled, or left working).
server.experimental.tasks.registerToolTask(
  'forever',
  {
    description: 'A task that stays working until cancelled',
    execution: { taskSupport: 'required' },
  },
  {
    async createTask(extra) {
      return { task: await extra.taskStore.createTask({ ttl: 60_000 }) }
    },
    getTask: (extra) => extra.taskStore.getTask(extra.taskId),
    getTaskResult: (extra) =>
      extra.taskStore.getTaskResult(extra.taskId) as Promise<CallToolResult>,
  },
)

// A task whose status message is as long as asked (a server that talks too much).
server.experimental.tasks.registerToolTask(
  'chatty',
  {
    description: 'A working task whose status message is `chars` characters long',
    inputSchema: { chars: z.number().int().min(0).max(1_000_000) },
    execution: { taskSupport: 'required' },
  },
  {
    async createTask({ chars }, extra) {
      const task = await extra.taskStore.createTask({ ttl: 60_000 })
      await extra.taskStore.updateTaskStatus(task.taskId, 'working', 'é'.repeat(chars))
      return { task: { ...task, statusMessage: 'é'.repeat(chars) } }
    },
    getTask: (_args, extra) => extra.taskStore.getTask(extra.taskId),
    getTaskResult: (_args, extra) =>
      extra.taskStore.getTaskResult(extra.taskId) as Promise<CallToolResult>,
  },
)

// A plain tool that moves a working task on: the SDK's task store sends the task's
// notifications/tasks/status as it updates it (shared/protocol.js requestTaskStore).
server.registerTool(
  'nudge',
  {
    description: 'Set the status message of working task `taskId` (a status notification follows)',
    inputSchema: { taskId: z.string(), message: z.string() },
  },
  async ({ taskId, message }, extra) => {
    await extra.taskStore!.updateTaskStatus(taskId, 'working', message)
    return { content: [{ type: 'text', text: `nudged ${taskId}` }] }
  },
)

// A plain tool, never a task: its result as large as asked.
server.registerTool(
  'plain',
  { description: 'Return `bytes` characters of text in `parts` items', inputSchema: bulkInput },
  ({ bytes, parts }) => bulk(bytes, parts ?? 1),
)

const transport = new StdioServerTransport()
await server.connect(transport)

// Record every received message before the SDK handles it, so tests can prove what reached us.
const recordFile = process.env.FIXTURE_RECORD_FILE
if (recordFile) {
  const handle = transport.onmessage
  transport.onmessage = (message) => {
    appendFileSync(recordFile, `${JSON.stringify(message)}\n`)
    handle?.(message)
  }
}
