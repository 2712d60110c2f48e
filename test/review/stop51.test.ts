// Stop 51: an outsider's attack, with a low-privilege token (and a second user's), on surfaces
// no review had taken apart: tasks (MCP 2025-11-25), resumability (Last-Event-ID), and trace
// context. Real gateways, real tokens from the test IdP, real stdio processes, raw HTTP.
// Findings (each a failing test first, then the fix):
// - shared mode: a task-augmented `tools/call` that also carried `_meta.progressToken` reached
//   the one process of every user with its `params.task` (the progress-token rewrite started
//   again from the client's params): the shared process ran it as a task, kept its result for
//   the ttl the client chose, and the client got a CreateTaskResult whose task no one can read
//   (tasks/* are unknown there). The task is dropped on that path too now.
// - where tasks are not offered (a shared process, for sessions and sessionless requests alike,
//   and an endpoint), a request's `_meta["io.modelcontextprotocol/related-task"]` reached the
//   process: one with the SDK's task message queue queued its answer for that task's
//   tasks/result (unknown there), so the call waited out its timeout and everyone's process
//   kept the answer for good, one per task id the client made up. The key is dropped there now.
// - tracing: a client's tool or prompt name, resource URI or request id was cut to 256 UTF-16
//   units for a span attribute, splitting an emoji's surrogate pair, and a lone surrogate the
//   client's JSON held (`"\ud800"`) went as it was, into the span name too: http/protobuf
//   writes it as invalid UTF-8 (a collector that checks refuses the batch, other users' spans
//   with it). And `mcp_edge.policy.rule` was not cut at all: `no tools rule matches <name>`
//   carried a 50,000-character tool name whole, on every refused call's span. Lone surrogates
//   are U+FFFD now, and the rule is cut like any client-sent value.
// What held is pinned as "held: …" (see the describe blocks).
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { openSession } from '../checklist/open-session.js'
import { startOtlpReceiver, withEnv, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { modernRequest } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { request } from 'undici'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import {
  connectClient,
  raw,
  rawStream,
  rememberSession,
  recorded,
  sessionlessPlain,
  sizeOf,
  queueServer,
  useTasksStack,
} from '../helpers/tasks-stack.js'

describe('stop 51: tasks in shared mode', () => {
  const tasks = useTasksStack()

  it('a task-augmented call with a progress token runs plain: no task reaches the shared process', async () => {
    const alice = await connectClient(tasks.stack, 'tasksshared', 'alice')
    try {
      for (const [i, name] of ['bulk', 'bulk_task'].entries()) {
        const messages = await rawStream('tasksshared', alice, 'tools/call', {
          name,
          arguments: { bytes: 100_000, parts: 50 },
          task: { ttl: 86_400_000 },
          _meta: { progressToken: `p${i}` },
        })
        const reply = messages.find((m) => m.id === 'raw')!
        assert.equal(
          reply.result?.task,
          undefined,
          `${name}: ${JSON.stringify(reply).slice(0, 300)}`,
        )
        if (name === 'bulk') assert.ok(sizeOf(reply.result) <= 4096, 'the shared cap')
      }
      const calls = recorded(tasks.record.shared).filter((m) => m.method === 'tools/call')
      assert.equal(calls.length, 2)
      for (const m of calls) assert.ok(!('task' in m.params!), JSON.stringify(m.params))
    } finally {
      await alice.close()
    }
  })

  it('held: sessionless (2026-07-28), session and shared servers: tasks/* are unknown, a task-augmented call runs plain', async () => {
    for (const [server, file] of [
      ['tasks', tasks.record.session],
      ['tasksshared', tasks.record.shared],
    ] as const) {
      const token = await tasks.stack.token('bob', { server })
      const seen = recorded(file).length
      for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel', 'tasks/list']) {
        const res = await request(
          tasks.stack.local(server),
          modernRequest(token, method, { taskId: 'a'.repeat(32) }),
        )
        const body = (await res.body.json()) as { error?: { code: number } }
        assert.equal(res.statusCode, 404, `${server} ${method}`)
        assert.equal(body.error?.code, -32601, `${server} ${method}`)
      }
      const res = await request(
        tasks.stack.local(server),
        modernRequest(
          token,
          'tools/call',
          { name: 'bulk', arguments: { bytes: 10 }, task: { ttl: 86_400_000 } },
          { name: 'bulk', meta: { progressToken: 'p' } },
        ),
      )
      const text = await res.body.text()
      assert.equal(res.statusCode, 200, text)
      assert.doesNotMatch(text, /"taskId"/, `${server}: no task created`)
      const got = recorded(file).slice(seen)
      assert.ok(!got.some((m) => m.method?.startsWith('tasks/')), `${server}: no tasks/*`)
      const calls = got.filter((m) => m.method === 'tools/call')
      assert.equal(calls.length, 1, `${server}: the call ran`)
      for (const m of calls)
        assert.ok(!('task' in m.params!), `${server}: ${JSON.stringify(m.params)}`)
    }
  })
})

/** Every request method the fixture process received, in order. */
function fixtureMethods(stack: Stack): string[] {
  const file = join(stack.dir, 'fixture-record.jsonl')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { method?: string }).method ?? '')
    .filter((m) => !m.startsWith('notifications/'))
}

describe('stop 51: what a client sends reaches span attributes well-formed', () => {
  // fixture: only echo_args, no prompts, no resources: every case below is refused.
  const POLICY = TEST_POLICY.replace(
    'crash: deny\n      "*": ["mcp:read"]\n    prompts: { "*": allow }\n    resources: { "*": allow }',
    'echo_args: ["mcp:read"]',
  )
  let receiver: OtlpReceiver
  let stack: Stack
  let alice: string
  before(async () => {
    assert.notEqual(POLICY, TEST_POLICY)
    receiver = await startOtlpReceiver()
    stack = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_METRIC_EXPORT_INTERVAL: '3600000',
      },
      () => startStack({ policy: POLICY }),
    )
    alice = await stack.token('alice', { server: 'fixture' })
  })
  after(async () => {
    await stack.close()
    await receiver.close()
  })

  const EMOJI = '\u{1F600}'
  // [case, JSON-RPC id, method, params]: an emoji across the 256-unit cut, or a lone surrogate.
  const CASES: [string, string, string, Record<string, unknown>][] = [
    [
      'a tool name cut inside an emoji',
      'ts-1',
      'tools/call',
      { name: `${'a'.repeat(255)}${EMOJI}` },
    ],
    ['a lone surrogate in a tool name', 'ts-2', 'tools/call', { name: 'x\ud800y' }],
    ['a tool name of 50,000 characters', 'ts-7', 'tools/call', { name: 'z'.repeat(50_000) }],
    [
      'a prompt name cut inside an emoji',
      'ts-3',
      'prompts/get',
      { name: `${'p'.repeat(255)}${EMOJI}` },
    ],
    [
      'a resource URI cut inside an emoji',
      'ts-4',
      'resources/read',
      { uri: `file:///${'u'.repeat(247)}${EMOJI}` },
    ],
    [
      'a request id cut inside an emoji',
      `ts-5${'i'.repeat(251)}${EMOJI}`,
      'tools/call',
      { name: 'nope' },
    ],
    ['a lone surrogate in a request id', 'ts-6\udfff', 'tools/call', { name: 'nope' }],
  ]
  for (const [what, id, method, params] of CASES)
    it(`${what}: refused; no value of the SERVER span is a lone surrogate or over 256 units`, async () => {
      const sid = await openSession(stack, 'fixture', alice)
      const seen = fixtureMethods(stack).length
      // JSON.stringify writes a lone surrogate as its \u escape: the gateway parses it back.
      const res = await postMcp(
        stack.local('fixture'),
        JSON.stringify({ jsonrpc: '2.0', id, method, params }),
        { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
      )
      assert.equal(res.status, 200, res.text)
      assert.ok(res.json().error, res.text)
      await stack.gateway.tracing.flush()
      const prefix = id.slice(0, 4)
      const span = await receiver.span((s) =>
        String(s.attributes['jsonrpc.request.id']).startsWith(prefix),
      )
      const strings = [
        span.name,
        span.status.message ?? '',
        ...Object.values(span.attributes).filter((v): v is string => typeof v === 'string'),
      ]
      for (const v of strings)
        assert.ok(!/\p{Cs}/u.test(v), `not well-formed: ${JSON.stringify(v)}`)
      // Each value at most 256 units (a span name: a method and a target of at most 128).
      for (const v of strings) assert.ok(v.length <= 512, `${v.length} long: ${v.slice(0, 80)}`)
      assert.deepEqual(fixtureMethods(stack).slice(seen), [], 'the process saw nothing')
    })
})

describe("stop 51: a client's related-task _meta where tasks are not offered", () => {
  // A shared task server with the SDK's task message queue: a request naming a related task
  // has its answer queued for that task (for tasks/result), not sent.
  const RELATED = 'io.modelcontextprotocol/related-task'
  let stack: Stack
  const shared = queueServer({ mode: 'shared' })
  // Session mode, behind an endpoint (which offers no tasks either); both record in one file.
  const file = shared.record
  const session = queueServer({ env: { TASKS_MESSAGE_QUEUE: '1', FIXTURE_RECORD_FILE: file } })
  before(async () => {
    stack = await startStack({
      servers: { tasksq: shared.server, tasksqs: session.server },
      config: { endpoints: { taskqep: { servers: ['tasksqs'], prefix: '{server}_' } } },
      policy: `${TEST_POLICY}${['tasksq', 'tasksqs'].map((n) => `  ${n}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`).join('')}`,
    })
  })
  after(() => stack.close())

  const calls = () => recorded(file).filter((m) => m.method === 'tools/call')
  const related = (taskId: string) => ({ [RELATED]: { taskId } })
  /** The process got one call since `before` calls, without the related task. */
  const plainSince = (before: number) => {
    const seen = calls().slice(before)
    assert.equal(seen.length, 1)
    assert.equal((seen[0]!.params!._meta as Record<string, unknown>)?.[RELATED], undefined)
  }
  /** A session-era call of `tool` naming a related task, on `client`'s session, then closed. */
  const callNaming = async (where: string, client: Client, tool: string, taskId: string) => {
    try {
      const r = await raw(where, client, 'tools/call', {
        name: tool,
        arguments: { bytes: 10 },
        _meta: related(taskId),
      })
      assert.ok(r.result?.content, JSON.stringify(r))
    } finally {
      await client.close()
    }
  }

  it('shared, session era: answered, and the process never sees the related task', async () => {
    const before = calls().length
    await callNaming('tasksq', await connectClient(stack, 'tasksq', 'alice'), 'plain', 'no-task')
    plainSince(before)
  })

  it('shared, sessionless (2026-07-28): answered, and the process never sees the related task', async () => {
    const token = await stack.token('bob', { server: 'tasksq' })
    const before = calls().length
    const { status, text } = await sessionlessPlain(
      stack,
      'tasksq',
      token,
      related('no-such-task-2'),
    )
    assert.equal(status, 200, text)
    assert.match(text, /"content"/)
    plainSince(before)
  })

  it('an endpoint over a session-mode server: answered, and the process never sees the related task', async () => {
    const url = `${stack.url}/mcp/taskqep`
    const token = await stack.token('alice', { resource: url })
    const client = new Client({ name: 'stop51', version: '0' })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    const before = calls().length
    rememberSession(client, stack, token)
    await callNaming(url, client, 'tasksqs_plain', 'no-task-3')
    plainSince(before)
  })
})
