// fix52: what review51 left open, each a failing test first, then the fix.
// 1. A server that answers a call of a tool it never listed with an `isError` result (the
//    Python SDKs do) let a client's made-up names through to the OTLP operation histogram: one
//    series per name until the SDK's 2000 cap sent the real ones to its overflow series. A tool
//    name labels a series only when the server listed it.
// 2. A sessionless (2026-07-28) request to a session-mode server passed its related-task
//    `_meta` to the lane's process, which the gateway initialized without tasks and whose
//    tasks 2026-07-28 does not offer (they are an extension there): a process with the SDK's
//    task message queue queued the answer for a task no one asks about, and the client waited
//    until the request timed out. Dropped on a lane; a session-era session, where tasks are
//    offered, keeps it.
// 3. A server listing a tool named "" (the pin file refuses an empty name) made every write
//    of that server's pins fail: its new tools were held in memory and hidden, all of them. Now
//    the nameless one is refused alone (hidden, uncallable, logged once) and the rest pinned;
//    other degenerate names (spaces only, control characters, a lone surrogate, 10,000
//    characters) are pinned and survive the pin file's round trip.
// 4. A request that claims 2026-07-28 (its MCP-Protocol-Version header or its `_meta`) but is
//    no valid JSON-RPC request was handed to the session transport, which answered "the
//    Mcp-Session-Id header is required": a sessionless client was told to open a session. Now
//    400 -32600 saying which member is wrong; the process reads none of it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectAs } from '../helpers/sdk-session.js'
import { modernRequest } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { exportingTo, startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { loadPins } from '../../gateway/pins/file.js'
import { connectClient, raw, recorded, sessionlessPlain } from '../helpers/tasks-stack.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const LAX_POLICY = `${TEST_POLICY}
  lax:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  laxshared:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
`
const lax = (extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'lax.js')],
  ...extra,
})

describe('fix52 1: a tool name the server never listed labels no metric series', () => {
  let receiver: OtlpReceiver
  let stack: Stack
  before(async () => {
    receiver = await startOtlpReceiver()
    stack = await exportingTo(receiver, () =>
      startStack({
        policy: LAX_POLICY,
        servers: { lax: lax(), laxshared: lax({ mode: 'shared' }) },
        config: { endpoints: { laxep: { servers: ['lax'], prefix: '{server}_' } } },
      }),
    )
  })
  after(async () => {
    await stack.close()
    await receiver.close()
  })

  it('made-up names answered isError, on a session, a shared process and sessionless: no series of their own; the listed tool keeps its name', async () => {
    const invented = (where: string, i: number) => `zz-invented-${where}-${i}`
    for (const server of ['lax', 'laxshared']) {
      const { client } = await connectAs(stack, 'alice', server)
      try {
        // Called before any list: the server has listed nothing yet.
        const early = await client.callTool({ name: invented(`${server}-early`, 0) })
        assert.equal(early.isError, true)
        const { tools } = await client.listTools()
        assert.ok(tools.some((t) => t.name === 'known'))
        assert.equal((await client.callTool({ name: 'known' })).isError, undefined)
        for (let i = 0; i < 4; i++) {
          const r = await client.callTool({ name: invented(server, i) })
          assert.equal(r.isError, true, JSON.stringify(r))
        }
      } finally {
        await client.close()
      }
    }
    // An endpoint: its backend listed `known` (shown as lax_known); a name it does not publish
    // is refused before any backend.
    const { client } = await connectAs(stack, 'alice', 'laxep')
    try {
      const { tools } = await client.listTools()
      assert.ok(tools.some((t) => t.name === 'lax_known'))
      assert.equal((await client.callTool({ name: 'lax_known' })).isError, undefined)
      await assert.rejects(client.callTool({ name: invented('lax_endpoint', 0) }))
    } finally {
      await client.close()
    }
    // Sessionless (2026-07-28), the name also in the Mcp-Name header.
    const token = await stack.token('alice', { server: 'lax' })
    for (let i = 0; i < 3; i++) {
      const name = invented('sessionless', i)
      const res = await request(
        stack.local('lax'),
        modernRequest(token, 'tools/call', { name, arguments: {} }, { id: i + 1, name }),
      )
      const text = await res.body.text()
      assert.equal(res.statusCode, 200, text)
      assert.match(text, /"isError":true/)
    }
    await stack.gateway.tracing.flush()
    const tools = new Set(
      receiver.points
        .filter((p) => p.metric === 'mcp.server.operation.duration')
        .map((p) => p.attributes['gen_ai.tool.name'])
        .filter((n) => n !== undefined),
    )
    assert.deepEqual([...tools].sort(), ['known', 'lax_known'], 'only listed tools name a series')
    // The tool errors are still counted, without a name.
    assert.ok(
      receiver.points.some(
        (p) =>
          p.metric === 'mcp.server.operation.duration' &&
          p.attributes['error.type'] === 'tool_error' &&
          p.attributes['gen_ai.tool.name'] === undefined,
      ),
    )
    // held: /metrics (prom-client) has no tool label at all.
    const scrape = await request(`${stack.url}/metrics`)
    const text = await scrape.body.text()
    assert.equal(scrape.statusCode, 200)
    assert.doesNotMatch(text, /zz-invented/)
  })
})

describe('fix52 2: a related task reaches a lane of a session-mode server no more', () => {
  const RELATED = 'io.modelcontextprotocol/related-task'
  let stack: Stack
  let queued: string
  let plain: string
  const tasks = (env: Record<string, string>) => ({
    command: process.execPath,
    args: [join(SERVERS_DIR, 'tasks.js')],
    env,
    requestTimeout: 5000,
  })
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fix52-'))
    queued = join(dir, 'queued.jsonl')
    plain = join(dir, 'plain.jsonl')
    for (const f of [queued, plain]) writeFileSync(f, '')
    stack = await startStack({
      servers: {
        // With the SDK's task message queue: a request naming a related task has its answer
        // queued for that task's tasks/result.
        tasksq: tasks({ TASKS_MESSAGE_QUEUE: '1', FIXTURE_RECORD_FILE: queued }),
        tasksp: tasks({ FIXTURE_RECORD_FILE: plain }),
      },
      policy: `${TEST_POLICY}${['tasksq', 'tasksp'].map((n) => `  ${n}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`).join('')}`,
    })
  })
  after(() => stack.close())

  const calls = (file: string) => recorded(file).filter((m) => m.method === 'tools/call')
  const relatedOf = (m: { params?: Record<string, unknown> }) =>
    (m.params?._meta as Record<string, unknown> | undefined)?.[RELATED]

  /** A sessionless call of `plain` on tasksq with `meta`; the calls the process got since. */
  const sessionless = async (meta: Record<string, unknown>) => {
    const token = await stack.token('alice', { server: 'tasksq' })
    const seen = calls(queued).length
    const answer = await sessionlessPlain(stack, 'tasksq', token, meta)
    return { ...answer, got: calls(queued).slice(seen) }
  }

  for (const [label, value] of [
    ['a task id', { taskId: 'no-such-task' }],
    ['a task id and more', { taskId: 'no-such-task', more: { taskId: 'x' } }],
    ['an empty task id', { taskId: '' }],
  ] as const)
    it(`sessionless, the related task ${label}: answered, and the process never sees it`, async () => {
      const { status, text, got } = await sessionless({ [RELATED]: value, progressToken: 'p1' })
      assert.equal(status, 200, text)
      assert.match(text, /"content"/)
      assert.equal(got.length, 1)
      assert.equal(relatedOf(got[0]!), undefined)
      // The rest of _meta goes on (the progress token, as the lane's own).
      assert.notEqual((got[0]!.params!._meta as Record<string, unknown>).progressToken, undefined)
    })

  for (const [label, value] of [
    ['a string', 'no-such-task'],
    ['an empty object', {}],
    ['a number task id', { taskId: 7 }],
  ] as const)
    it(`held: sessionless, the related task ${label}: 400, the process sees nothing`, async () => {
      const { status, text, got } = await sessionless({ [RELATED]: value })
      assert.equal(status, 400, text)
      assert.deepEqual(got, [])
    })

  it('held: a session-era session, where tasks are offered, passes the related task on', async () => {
    const client = await connectClient(stack, 'tasksp')
    try {
      const seen = calls(plain).length
      const r = await raw('tasksp', client, 'tools/call', {
        name: 'plain',
        arguments: { bytes: 10 },
        _meta: { [RELATED]: { taskId: 'kept' } },
      })
      assert.ok(r.result?.content, JSON.stringify(r))
      const got = calls(plain).slice(seen)
      assert.equal(got.length, 1)
      assert.deepEqual(relatedOf(got[0]!), { taskId: 'kept' })
    } finally {
      await client.close()
    }
  })
})

describe('fix52 3: a tool named "" is refused alone; the server\'s other tools are pinned', () => {
  const SCHEMA = { type: 'object', properties: {} }
  const NAMES = [
    '',
    '   ',
    '\u0007bell\u001b[31m',
    '\u2028',
    'a\ud800b',
    'x'.repeat(10_000),
    'plain',
  ]
  const dir = mkdtempSync(join(tmpdir(), 'fix52-pins-'))
  const pinFile = join(dir, 'pins.yaml')
  const callsFile = join(dir, 'calls.jsonl')
  let stack: Stack
  before(async () => {
    writeFileSync(
      join(dir, 'tools.json'),
      JSON.stringify(NAMES.map((name) => ({ name, inputSchema: SCHEMA }))),
    )
    stack = await startStack({
      policy: `${TEST_POLICY}  pinned:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      servers: {
        pinned: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'pinned.js')],
          env: { PINNED_TOOLS: join(dir, 'tools.json'), PINNED_CALLS: callsFile },
          pinTools: true,
        },
      },
      config: { toolPins: { file: pinFile } },
    })
  })
  after(() => stack.close())

  const called = () => recorded(callsFile).map((m) => (m as { name?: string }).name)
  /** Names as an assertion may print them: a long one by its start and length. */
  const short = (names: Iterable<string>) =>
    [...names].map((n) => (n.length > 40 ? `${n.slice(0, 8)}…(${n.length})` : n)).sort()
  const EXPECTED = short(['announce', ...NAMES.slice(1)])

  it('listed twice: every other name shown and pinned (read back from the file), "" hidden, uncallable, logged once', async () => {
    writeFileSync(callsFile, '')
    const client = await connectClient(stack, 'pinned')
    try {
      for (let i = 0; i < 2; i++) {
        const listed = await raw('pinned', client, 'tools/list', {})
        const tools = (listed.result?.tools ?? []) as { name: string }[]
        const names = tools.map((t) => t.name)
        assert.deepEqual(short(names), EXPECTED)
      }
      const pins = loadPins(pinFile, 1024 * 1024).servers.get('pinned')!
      assert.deepEqual(short(pins.tools.keys()), EXPECTED)
      // Each read back as the server wrote it, not only its start.
      for (const name of NAMES.slice(1))
        assert.ok(pins.tools.has(name), JSON.stringify(name).slice(0, 40))
      assert.equal(pins.pending.size, 0)
      assert.equal(stack.gateway.toolPins?.refusal('pinned', 'plain'), undefined)
      // The nameless tool: refused at the gateway (no name to decide by), the process never called.
      const nameless = await raw('pinned', client, 'tools/call', { name: '', arguments: {} })
      assert.equal(nameless.error?.code, -32602, JSON.stringify(nameless))
      const ok = await raw('pinned', client, 'tools/call', { name: 'plain', arguments: {} })
      assert.ok(ok.result?.content, JSON.stringify(ok))
      assert.deepEqual(called(), ['plain'])
      const lines = stack.logLines.filter((l) => /tool pins: .*empty name/.test(l))
      assert.equal(lines.length, 1, lines.join('\n'))
      assert.match(lines[0]!, /"server":"pinned"/)
      assert.doesNotMatch(
        stack.logLines.join('\n'),
        /the pin file was not written/,
        'no write failed',
      )
      assert.ok(readFileSync(pinFile, 'utf8').includes('plain'))
    } finally {
      await client.close()
    }
  })
})

describe('fix52 4: a malformed 2026-07-28 request is told what is wrong, not to send a session id', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack()
  })
  after(() => stack.close())

  const META = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
  }
  const params = (i: number, meta: Record<string, unknown> = META) => ({
    name: 'echo_args',
    arguments: { fix52: i },
    _meta: meta,
  })
  const req = (extra: Record<string, unknown>, i: number) => ({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: params(i),
    ...extra,
  })
  // [case, body, what the message names]; `52040x` marks each in what the process read.
  const CASES: [string, Record<string, unknown>, RegExp][] = [
    ['a result member too', req({ result: {} }, 520401), /no "result" member/],
    ['an error member too', req({ error: { code: 1, message: 'x' } }, 520402), /no "error" member/],
    ['a fractional id', req({ id: 1.5 }, 520403), /id must be a string or an integer/],
    ['a null id', req({ id: null }, 520404), /id must be a string or an integer/],
    ['an object id', req({ id: { a: 1 } }, 520405), /id must be a string or an integer/],
    ['an unknown member', req({ extra: 1 }, 520406), /unknown member "extra"/],
    [
      'an unknown member with control characters',
      req({ 'x\u0000\u001b[31m\n': 1 }, 520407),
      /unknown member "x\\u0000\\u001b\[31m\\n"/,
    ],
    ['a long unknown member', req({ ['k'.repeat(5000)]: 1 }, 520408), /unknown member "k{64}…"/],
    ['jsonrpc 1.0', req({ jsonrpc: '1.0' }, 520409), /jsonrpc must be "2\.0"/],
    ['a number method', req({ method: 7 }, 520410), /method must be a string/],
    [
      'an object progress token',
      req({ params: params(520411, { ...META, progressToken: { a: 1 } }) }, 0),
      /progressToken must be a string or an integer/,
    ],
    [
      'a fractional progress token',
      req({ params: params(520412, { ...META, progressToken: 1.5 }) }, 0),
      /progressToken must be a string or an integer/,
    ],
    [
      'a related task that is no object',
      req({ params: params(520413, { ...META, 'io.modelcontextprotocol/related-task': 'x' }) }, 0),
      /related-task"\] must be an object with a string taskId/,
    ],
  ]
  /** What the fixture processes read so far (none started yet: nothing). */
  const seen = () => {
    const file = join(stack.dir, 'fixture-record.jsonl')
    return existsSync(file) ? readFileSync(file, 'utf8') : ''
  }

  for (const [by, headersOf] of [
    ['its header and _meta', (t: string) => modernRequest(t, 'tools/call', {}).headers],
    ['its _meta alone', (t: string) => ({ authorization: `Bearer ${t}` })],
  ] as const)
    it(`claimed by ${by}: each 400 -32600 naming the member, no session asked for, the process reads none`, async () => {
      const token = await stack.token('alice', { server: 'fixture' })
      for (const [what, body, named] of CASES) {
        const { status, text } = await postMcp(stack.local('fixture'), body, headersOf(token))
        assert.equal(status, 400, `${what}: ${text.slice(0, 300)}`)
        const answer = JSON.parse(text) as { error: { code: number; message: string } }
        assert.equal(answer.error.code, -32600, what)
        assert.match(answer.error.message, /not a valid 2026-07-28 JSON-RPC request/, what)
        assert.match(answer.error.message, named, what)
        assert.doesNotMatch(answer.error.message, /Mcp-Session-Id|initialize/i, what)
        assert.ok(answer.error.message.length < 300, what)
      }
      assert.doesNotMatch(seen(), /5204[01]\d/, 'the process read none of it')
      // A good one goes.
      const good = await request(
        stack.local('fixture'),
        modernRequest(
          token,
          'tools/call',
          { name: 'echo_args', arguments: { fix52: 520499 } },
          {
            name: 'echo_args',
          },
        ),
      )
      assert.equal(good.statusCode, 200, await good.body.text())
      assert.match(seen(), /520499/)
    })

  it("held: a session-era body that claims nothing is still the session transport's to refuse", async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const { status, text } = await postMcp(
      stack.local('fixture'),
      { jsonrpc: '2.0', id: 1.5, method: 'tools/list', extra: 1 },
      { authorization: `Bearer ${token}` },
    )
    assert.equal(status, 400, text)
    assert.doesNotMatch(text, /2026-07-28/)
  })
})
