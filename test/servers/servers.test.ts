import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Readable } from 'node:stream'
import { Client } from '@modelcontextprotocol/client'
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import type { CallToolResult, ClientCapabilities } from '@modelcontextprotocol/client'

/** Path of a compiled server, resolved from this file (dist/test/servers → dist/servers). */
const serverPath = (name: string) =>
  fileURLToPath(new URL(`../../servers/${name}.js`, import.meta.url))

interface Connection {
  client: Client
  transport: StdioClientTransport
}

/** Spawns dist/servers/<name>.js and connects an SDK client; the child's stderr is piped. */
async function connect(
  name: string,
  opts: { env?: Record<string, string>; capabilities?: ClientCapabilities } = {},
  setup?: (client: Client) => void,
): Promise<Connection> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [serverPath(name)],
    stderr: 'pipe',
    ...(opts.env ? { env: opts.env } : {}),
  })
  const client = new Client(
    { name: 'servers-test', version: '0.0.0' },
    { capabilities: opts.capabilities ?? {} },
  )
  setup?.(client)
  await client.connect(transport)
  return { client, transport }
}

/** The concatenated text content of a tool result. */
const textOf = (result: CallToolResult) =>
  result.content.map((c) => (c.type === 'text' ? c.text : '')).join('')

/** Resolves once the stream's accumulated output contains needle. */
const waitForOutput = (stream: Readable, needle: string) =>
  new Promise<string>((resolve) => {
    let seen = ''
    const onData = (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes(needle)) {
        stream.off('data', onData)
        resolve(seen)
      }
    }
    stream.on('data', onData)
  })

/** Collects pushed items; until(n) resolves once n items have arrived. */
function collector<T>() {
  const items: T[] = []
  const waiters: Array<[n: number, resolve: (items: T[]) => void]> = []
  return {
    push(item: T) {
      items.push(item)
      for (const [n, resolve] of waiters) if (items.length >= n) resolve(items)
    },
    until(n: number) {
      return new Promise<T[]>((resolve) =>
        items.length >= n ? resolve(items) : waiters.push([n, resolve]),
      )
    },
  }
}

describe('echo server', () => {
  let conn: Connection
  before(async () => (conn = await connect('echo')))
  after(() => conn.client.close())

  it('lists exactly one tool', async () => {
    const { tools } = await conn.client.listTools()
    assert.deepEqual(
      tools.map((t) => t.name),
      ['echo'],
    )
  })

  for (const text of ['hello', '', 'ünïcödé ✓', 'line\nbreak', 'x'.repeat(10_000)]) {
    it(`echoes ${JSON.stringify(text.slice(0, 12))} (${text.length} chars)`, async () => {
      const result = await conn.client.callTool({ name: 'echo', arguments: { text } })
      assert.equal(result.isError, undefined)
      assert.equal(textOf(result), text)
    })
  }

  it('rejects missing text', async () => {
    const result = await conn.client.callTool({ name: 'echo', arguments: {} })
    assert.equal(result.isError, true)
  })
})

describe('notes server', () => {
  let conn: Connection
  before(async () => (conn = await connect('notes')))
  after(() => conn.client.close())

  const steps: Array<[tool: string, args: Record<string, unknown>, text: string, isError?: true]> =
    [
      ['read_note', { name: 'welcome' }, 'Hello from the notes server.'],
      ['list_notes', {}, '["welcome"]'],
      ['write_note', { name: 'todo', text: 'buy milk' }, 'saved todo'],
      ['read_note', { name: 'todo' }, 'buy milk'],
      ['write_note', { name: 'todo', text: 'buy oat milk' }, 'saved todo'],
      ['read_note', { name: 'todo' }, 'buy oat milk'],
      ['list_notes', {}, '["welcome","todo"]'],
      ['delete_note', { name: 'todo' }, 'deleted todo'],
      ['delete_note', { name: 'todo' }, 'no note named todo', true],
      ['read_note', { name: 'todo' }, 'no note named todo', true],
      ['list_notes', {}, '["welcome"]'],
    ]
  // Sequential on purpose: each step depends on the previous state.
  for (const [i, [tool, args, text, isError]] of steps.entries()) {
    it(`step ${i + 1}: ${tool} ${JSON.stringify(args)} → ${text}`, async () => {
      const result = await conn.client.callTool({ name: tool, arguments: args })
      assert.equal(textOf(result), text)
      assert.equal(result.isError, isError)
    })
  }

  it('annotates read-only and destructive tools', async () => {
    const { tools } = await conn.client.listTools()
    const hints = Object.fromEntries(
      tools.map((t) => [t.name, [t.annotations?.readOnlyHint, t.annotations?.destructiveHint]]),
    )
    assert.deepEqual(hints, {
      list_notes: [true, undefined],
      read_note: [true, undefined],
      write_note: [false, true],
      delete_note: [false, true],
    })
  })
})

describe('tickets server', () => {
  const sha8 = (k: string) => createHash('sha256').update(k).digest('hex').slice(0, 8)
  const LONG = 'tk_live_0123456789-abcd'
  const SHORT = 'short-key'
  const cases: Array<{ name: string; key?: string; steps: Array<[string, unknown, string]> }> = [
    {
      name: 'no key: it starts and lists its tools, and every call says the key is missing',
      steps: [
        [
          'list_tickets',
          {},
          'TICKETS_API_KEY is not set: the tickets API needs your own API key (behind mcp-edge, set it on the account page)',
        ],
        [
          'create_ticket',
          { title: 'x' },
          'TICKETS_API_KEY is not set: the tickets API needs your own API key (behind mcp-edge, set it on the account page)',
        ],
      ],
    },
    {
      name: 'a key of 16 characters or more: named by its last 4 and its fingerprint, never itself',
      key: LONG,
      steps: [
        ['list_tickets', {}, `[]\n[API key …abcd, sha256 ${sha8(LONG)}]`],
        [
          'create_ticket',
          { title: 'printer on fire' },
          `opened T-1: printer on fire\n[API key …abcd, sha256 ${sha8(LONG)}]`,
        ],
        [
          'list_tickets',
          {},
          `[{"id":"T-1","title":"printer on fire","status":"open"}]\n[API key …abcd, sha256 ${sha8(LONG)}]`,
        ],
      ],
    },
    {
      name: 'a shorter key: named by its fingerprint alone (its last 4 would show too much of it)',
      key: SHORT,
      steps: [['list_tickets', {}, `[]\n[API key with sha256 ${sha8(SHORT)}]`]],
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const conn = await connect('tickets', { env: c.key ? { TICKETS_API_KEY: c.key } : {} })
      try {
        const { tools } = await conn.client.listTools()
        assert.deepEqual(
          tools.map((t) => t.name),
          ['list_tickets', 'create_ticket'],
        )
        for (const [tool, args, text] of c.steps) {
          const result = await conn.client.callTool({ name: tool, arguments: args as never })
          assert.equal(textOf(result), text)
          assert.equal(result.isError, c.key ? undefined : true)
          if (c.key) assert.ok(!textOf(result).includes(c.key), 'the key itself never comes back')
        }
      } finally {
        await conn.client.close()
      }
    })
  }
})

describe('fixture server', () => {
  const caps: ClientCapabilities = {
    sampling: {},
    elicitation: { form: {} },
    roots: { listChanged: true },
  }
  const logs = collector<unknown>()
  const listChanged = collector<string>()
  // The SDK client dispatches notifications a microtask after responses, so its own onprogress
  // loses progress that arrives in the same read as the result; observe the wire instead.
  const progress = collector<{ progressToken: unknown; progress: number; total?: number }>()
  let conn: Connection
  /** Client side of the server→client round trips: answers from the request itself. */
  const answer = (c: Client) => {
    c.setRequestHandler('sampling/createMessage', (req) => {
      const content = req.params.messages[0]?.content
      const text = content && !Array.isArray(content) && content.type === 'text' ? content.text : ''
      return { role: 'assistant', model: 'test', content: { type: 'text', text: `re: ${text}` } }
    })
    c.setRequestHandler('elicitation/create', (req) => ({
      action: 'accept',
      content: { answer: `yes to ${req.params.message}` },
    }))
    c.setRequestHandler('roots/list', () => ({
      roots: [{ uri: 'file:///tmp/project', name: 'project' }],
    }))
    c.setNotificationHandler('notifications/message', (n) => logs.push(n.params))
    c.setNotificationHandler('notifications/progress', (n) => progress.push(n.params))
    c.setNotificationHandler('notifications/tools/list_changed', (n) => listChanged.push(n.method))
  }
  const env = { FIXTURE_MARK: 'marked' }
  before(async () => (conn = await connect('fixture', { env, capabilities: caps }, answer)))
  after(() => conn.client.close())

  const call = (name: string, args: Record<string, unknown> = {}) =>
    conn.client.callTool({ name, arguments: args })

  it('pid matches the spawned process', async () => {
    assert.equal(textOf(await call('pid')), String(conn.transport.pid))
  })

  it('env reports env, pid, argv and cwd', async () => {
    const info = JSON.parse(textOf(await call('env')))
    assert.equal(info.env.FIXTURE_MARK, 'marked')
    assert.equal(info.pid, conn.transport.pid)
    assert.equal(info.argv[1], serverPath('fixture'))
    assert.equal(info.cwd, process.cwd())
  })

  it('notify sends log notifications and progress for the request', async () => {
    const result = await conn.client.callTool({
      name: 'notify',
      arguments: { count: 3 },
      _meta: { progressToken: 'notify-token' },
    })
    assert.equal(textOf(result), 'notified 3')
    const got = await progress.until(3)
    assert.deepEqual(
      got.map((p) => [p.progressToken, p.progress, p.total]),
      [
        ['notify-token', 1, 3],
        ['notify-token', 2, 3],
        ['notify-token', 3, 3],
      ],
    )
    const messages = await logs.until(3)
    assert.deepEqual(messages[0], { level: 'info', data: 'notification 1 of 3', logger: 'fixture' })
  })

  const roundTrips: Array<[tool: string, args: Record<string, unknown>, expect: string]> = [
    ['sample', { prompt: 'hi' }, 're: hi'],
    [
      'elicit',
      { message: 'continue?' },
      JSON.stringify({ action: 'accept', content: { answer: 'yes to continue?' } }),
    ],
    ['roots', {}, JSON.stringify({ roots: [{ uri: 'file:///tmp/project', name: 'project' }] })],
  ]
  for (const [tool, args, expect] of roundTrips) {
    it(`${tool} round-trips through the client`, async () => {
      const result = await call(tool, args)
      assert.equal(result.isError, undefined)
      assert.equal(textOf(result), expect)
    })
  }

  it('slow waits; a cancelled call rejects and the server keeps serving', async () => {
    assert.equal(textOf(await call('slow', { ms: 5 })), 'done')
    const abort = new AbortController()
    const pending = conn.client.callTool(
      { name: 'slow', arguments: { ms: 60_000 } },
      { signal: abort.signal },
    )
    abort.abort('test cancel')
    await assert.rejects(pending)
    assert.equal(textOf(await call('pid')), String(conn.transport.pid))
  })

  it('stderr writes to the child stderr', async () => {
    const stderr = conn.transport.stderr as Readable
    const seen = waitForOutput(stderr, 'fixture-stderr-line')
    assert.equal(textOf(await call('stderr', { text: 'fixture-stderr-line' })), 'ok')
    assert.match(await seen, /fixture-stderr-line\n/)
  })

  for (const [i, present] of [true, false].entries()) {
    it(`list_changed ${present ? 'adds' : 'removes'} the dummy tool and notifies`, async () => {
      assert.equal(textOf(await call('list_changed')), 'ok')
      assert.equal((await listChanged.until(i + 1))[i], 'notifications/tools/list_changed')
      const { tools } = await conn.client.listTools({}, { cacheMode: 'refresh' })
      assert.equal(
        tools.some((t) => t.name === 'dummy'),
        present,
      )
    })
  }

  it('exposes the greet prompt and the hello resource', async () => {
    const prompt = await conn.client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } })
    assert.deepEqual(prompt.messages[0]?.content, { type: 'text', text: 'Say hello to Ada.' })
    const { contents } = await conn.client.readResource({ uri: 'fixture://hello' })
    assert.equal(contents[0] && 'text' in contents[0] ? contents[0].text : undefined, 'hello')
  })
})

describe('fixture server without client capabilities', () => {
  let conn: Connection
  before(async () => (conn = await connect('fixture')))
  after(() => conn.client.close())

  const cases: Array<[tool: string, args: Record<string, unknown>, message: RegExp]> = [
    ['sample', { prompt: 'hi' }, /does not support sampling/],
    ['elicit', { message: 'ok?' }, /does not support form elicitation/],
    ['roots', {}, /does not support listing roots/],
  ]
  for (const [tool, args, message] of cases) {
    it(`${tool} returns isError`, async () => {
      const result = await conn.client.callTool({ name: tool, arguments: args })
      assert.equal(result.isError, true)
      assert.match(textOf(result), message)
    })
  }
})

describe('fixture crash', () => {
  for (const code of [undefined, 3]) {
    it(`crash ${code ?? '(default)'} fails the call and ends the process`, async (t) => {
      const conn = await connect('fixture')
      t.after(() => conn.client.close())
      const pid = conn.transport.pid
      assert.ok(pid)
      const closed = new Promise<void>((resolve) => (conn.client.onclose = resolve))
      const stderr = waitForOutput(conn.transport.stderr as Readable, 'crashing')
      await assert.rejects(
        conn.client.callTool({ name: 'crash', arguments: code === undefined ? {} : { code } }),
      )
      await closed
      assert.match(await stderr, new RegExp(`exit code ${code ?? 1}`))
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
    })
  }
})

describe('fixture FIXTURE_RECORD_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fixture-record-'))
  const file = join(dir, 'received.jsonl')
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('records every received message, in order', async (t) => {
    const conn = await connect('fixture', { env: { FIXTURE_RECORD_FILE: file } })
    t.after(() => conn.client.close())
    await conn.client.callTool({ name: 'pid', arguments: {} })
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
    type Received = { method?: string; params?: { name?: string } }
    const received = lines.map((l) => JSON.parse(l) as Received)
    assert.deepEqual(
      received.map((m) => m.method),
      ['initialize', 'notifications/initialized', 'tools/call'],
    )
    assert.equal(received[2]?.params?.name, 'pid')
  })
})
