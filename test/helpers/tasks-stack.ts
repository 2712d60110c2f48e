// One gateway in front of the task-capable stdio server (servers/tasks.ts) in three guises, and
// raw JSON-RPC requests on an SDK client's session (the SDK would refuse to send hostile
// params): for the tests of tasks (MCP 2025-11-25) through the real gateway.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { modernRequest } from './modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from './stack.js'

/** The tools rule of the `tasks` server as started: `forever` denied, the rest mcp:read. */
export const TASKS_TOOLS = 'tools: { forever: deny, "*": ["mcp:read"] }'

/** The stack, and the files where the session-mode and shared processes record each message. */
export interface TasksStack {
  stack: Stack
  record: { session: string; shared: string }
}

const tasksServer = (o: Record<string, unknown>) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'tasks.js')],
  ...o,
})
/**
 * A `tasks` server with the SDK's task message queue (a request naming a related task has its
 * answer queued for that task's tasks/result), recording each message in a new file; 5 s
 * requestTimeout. For the tests of a related task where tasks are not offered.
 */
export function queueServer(o: Record<string, unknown> = {}): {
  server: Record<string, unknown>
  record: string
} {
  const record = join(mkdtempSync(join(tmpdir(), 'mcp-edge-tasksq-')), 'record.jsonl')
  writeFileSync(record, '')
  const env = { TASKS_MESSAGE_QUEUE: '1', FIXTURE_RECORD_FILE: record }
  return { server: tasksServer({ env, requestTimeout: 5000, ...o }), record }
}
const access = (tools: string) => `    access: ["mcp:read"]\n    ${tools}\n`

/**
 * Starts the stack: `tasks` (session mode; bulk capped at 20 kB, the strictest cap 2 kB, results
 * at most 50 kB), `tasksrefuse` (over the cap: refused; bulk* 2 kB), `tasksshared` (shared mode,
 * 4 kB), and the endpoint `taskep` over `tasks`; each server mcp:read for every tool but
 * `tasks`' forever.
 */
export async function startTasksStack(): Promise<TasksStack> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-tasks-'))
  const record = { session: join(dir, 'session.jsonl'), shared: join(dir, 'shared.jsonl') }
  for (const f of Object.values(record)) writeFileSync(f, '')
  const stack = await startStack({
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
    policy: `${TEST_POLICY}  tasks:\n${access(TASKS_TOOLS)}  tasksrefuse:\n${access('tools: { "*": ["mcp:read"] }')}  tasksshared:\n${access('tools: { "*": ["mcp:read"] }')}`,
  })
  return { stack, record }
}

/**
 * The stack for the tests of the file that calls this: started before them (then `started` is
 * called with it), closed after (node:test hooks at the call site's level; root-level `before`
 * hooks do not wait for each other, so set-up that needs the stack goes in `started`).
 */
export function useTasksStack(started?: (t: TasksStack) => void): TasksStack {
  const t = {} as TasksStack
  before(async () => {
    Object.assign(t, await startTasksStack())
    started?.(t)
  })
  after(() => t.stack.close())
  return t
}

/** The size of a value as JSON, in bytes. */
export const sizeOf = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), 'utf8')

/** Each client's gateway and the token it connected with: its raw requests go on its session. */
const sessions = new WeakMap<Client, { stack: Stack; token: string }>()

/** Names the gateway and token of a client connected elsewhere (an endpoint), for raw(). */
export function rememberSession(client: Client, stack: Stack, token: string): void {
  sessions.set(client, { stack, token })
}

/** An SDK client of `server` with `user`'s token, connected (a session of its own). */
export async function connectClient(stack: Stack, server: string, user = 'alice'): Promise<Client> {
  const c = new Client({ name: 'tasks', version: '0' })
  const token = await stack.token(user, { server })
  rememberSession(c, stack, token)
  await c.connect(
    new StreamableHTTPClientTransport(new URL(stack.local(server)), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return c
}

/** A raw request's answer. */
export type RawAnswer = {
  result?: Record<string, unknown>
  error?: { code: number; message: string }
}
/** Any message of a raw request's answer: its reply, or a notification on the way. */
export type RawMessage = RawAnswer & {
  id?: unknown
  method?: string
  params?: Record<string, unknown>
}

/** One raw request (id "raw") on the client's session, to a server by name or a URL: its reply. */
export async function raw(
  server: string,
  client: Client,
  method: string,
  params: unknown,
): Promise<RawAnswer> {
  const messages = await rawStream(server, client, method, params)
  return messages.find((m) => m.id === 'raw') ?? (messages[0] as RawAnswer)
}

/** Every message a raw request's answer carries (its SSE events, or its JSON body). */
export async function rawStream(
  server: string,
  client: Client,
  method: string,
  params: unknown,
  token?: string,
): Promise<RawMessage[]> {
  const session = sessions.get(client)!
  const transport = (client as unknown as { _transport: StreamableHTTPClientTransport })._transport
  const res = await request(server.startsWith('http') ? server : session.stack.local(server), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token ?? session.token}`,
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

/** A task-augmented call of `tool`: the task's id (asserted a string). */
export async function createTask(
  server: string,
  client: Client,
  tool: string,
  args: object,
): Promise<string> {
  const r = await raw(server, client, 'tools/call', { name: tool, arguments: args, task: {} })
  const taskId = (r.result?.task as { taskId?: unknown } | undefined)?.taskId
  assert.equal(typeof taskId, 'string', JSON.stringify(r))
  return taskId as string
}

/** Every message a process recorded in `file`, in order. */
export const recorded = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { method?: string; params?: Record<string, unknown> })

/** A 2026-07-28 call of the `plain` tool of `server` (10 bytes) with `meta`, read whole. */
export async function sessionlessPlain(
  stack: Stack,
  server: string,
  token: string,
  meta: Record<string, unknown>,
): Promise<{ status: number; text: string }> {
  const res = await request(
    stack.local(server),
    modernRequest(
      token,
      'tools/call',
      { name: 'plain', arguments: { bytes: 10 } },
      { name: 'plain', meta },
    ),
  )
  return { status: res.statusCode, text: await res.body.text() }
}
