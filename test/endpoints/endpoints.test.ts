// Aggregating endpoints end to end: real IdP tokens, the real gateway, real stdio backends
// (echo, notes, the fixture, a server that cannot start), the SDK v2 client in both eras and
// the SDK v1 client. Names, policy on each backend's own names, calls, prompts, resources,
// progress, elicitation, list changes, cancellation, pagination, collisions, long names, a
// failing backend, audiences, and which processes a user's list starts.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const fixture = join(SERVERS_DIR, 'fixture.js')
const LONG = '{server}_with_a_prefix_long_enough_to_push_names_past_the_limit_'
const POLICY =
  `${TEST_POLICY}  secretive:\n    access: ["mcp:admin"]\n    tools: { "*": ["mcp:admin"] }\n` +
  `  conformance:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    prompts: { "*": allow }\n    resources: { "test://static-text": deny, "*": ["mcp:read"] }\n` +
  ['plain1', 'plain2']
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { echo: ["mcp:read"] }\n`)
    .join('') +
  '  promptsonly:\n    access: ["mcp:read"]\n    prompts: { "*": allow }\n'
/** Echo processes of the tools-only endpoint, told apart by this last argument (echo ignores it). */
const TOOLS_ONLY = 'tools-only'
/** The prompts-only server's processes, told apart by this last argument. */
const PROMPTS_ONLY = 'prompts-only'
// A server with one prompt (listed and got) and no tools: its initialize result has no `tools` capability.
const PROMPTS_ONLY_SERVER =
  "require('readline').createInterface({ input: process.stdin }).on('line', (l) => { const m = JSON.parse(l); if (m.id === undefined || m.method === undefined) return; " +
  "const result = m.method === 'initialize' ? { protocolVersion: m.params.protocolVersion, capabilities: { prompts: {} }, serverInfo: { name: 'prompts-only', version: '0' } } : m.method === 'prompts/list' ? { prompts: [{ name: 'hello' }] } : m.method === 'prompts/get' ? { messages: [{ role: 'user', content: { type: 'text', text: 'hello' } }] } : m.method === 'ping' ? {} : undefined; " +
  "process.stdout.write(JSON.stringify(result ? { jsonrpc: '2.0', id: m.id, result } : { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } }) + '\\n') })"

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      secretive: { command: process.execPath, args: [fixture, 'secretive'] },
      plain1: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js'), TOOLS_ONLY] },
      plain2: { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js'), TOOLS_ONLY] },
      promptsonly: { command: process.execPath, args: ['-e', PROMPTS_ONLY_SERVER, PROMPTS_ONLY] },
      conformance: { command: process.execPath, args: [join(SERVERS_DIR, 'conformance.js')] },
    },
    config: {
      endpoints: {
        all: {
          path: '/mcp',
          servers: ['echo', 'notes', 'fixture', 'broken', 'secretive'],
          description: 'Every tool you may use',
        },
        bare: { servers: ['echo', 'echojson'], prefix: '' },
        paged: { servers: ['fixture'], pageSize: 3 },
        long: { servers: ['notes'], prefix: LONG },
        watch: { servers: ['fixture', 'conformance'] },
        quick: { servers: ['fixture'] },
        toolsonly: { servers: ['plain1', 'plain2'] },
        prompting: { servers: ['promptsonly'] },
      },
    },
  })
})
after(() => stack.close())

const url = (path: string) => `${stack.url}${path}`
const tokenFor = (client: string, path: string) => stack.token(client, { resource: url(path) })
const textOf = (r: unknown) =>
  ((r as { content: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('')

async function connect(
  client: string,
  path = '/mcp',
  o: {
    era?: 'session' | typeof V
    capabilities?: Record<string, unknown>
    setup?: (c: Client) => void
  } = {},
): Promise<Client> {
  const c = new Client(
    { name: `endpoint-${client}`, version: '0' },
    {
      capabilities: o.capabilities ?? {},
      ...(o.era === V ? { versionNegotiation: { mode: { pin: V } } } : {}),
    },
  )
  o.setup?.(c)
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url(path)), {
      requestInit: { headers: { authorization: `Bearer ${await tokenFor(client, path)}` } },
    }),
  )
  return c
}

async function allTools(c: Client): Promise<string[]> {
  const names: string[] = []
  let cursor: string | undefined
  do {
    const page = await c.listTools(cursor === undefined ? {} : { cursor })
    names.push(...page.tools.map((t) => t.name))
    cursor = page.nextCursor
  } while (cursor !== undefined)
  return names
}

/** Live processes started with `marker` as their last argument (the fixture's name tag). */
function processes(marker: string): number {
  const out = execFileSync('ps', ['-o', 'args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
  return out.split('\n').filter((l) => l.trim().endsWith(` ${marker}`)).length
}

for (const era of ['session', V] as const) {
  describe(`an endpoint over several servers (${era})`, () => {
    it("lists every backend's tools the caller may use under their prefix, and calls them", async () => {
      const c = await connect('alice', '/mcp', { era })
      try {
        const names = await allTools(c)
        for (const n of [
          'echo_echo',
          'notes_list_notes',
          'notes_read_note',
          'fixture_pid',
          'fixture_notify',
        ])
          assert.ok(names.includes(n), `${n} in ${names.join(' ')}`)
        for (const n of ['notes_write_note', 'notes_delete_note', 'fixture_crash'])
          assert.ok(!names.includes(n), `${n} is hidden from alice`)
        assert.ok(
          !names.some((n) => n.startsWith('secretive_')),
          'a backend alice may not use is not listed',
        )
        assert.ok(names.every((n) => n.length <= 64 && /^[A-Za-z0-9_.-]+$/.test(n)))
        assert.equal(
          textOf(await c.callTool({ name: 'echo_echo', arguments: { text: 'through /mcp' } })),
          'through /mcp',
        )
        assert.match(
          textOf(await c.callTool({ name: 'notes_read_note', arguments: { name: 'welcome' } })),
          /./,
        )
      } finally {
        await c.close()
      }
    })

    it('prompts and resources of a backend, under public names', async () => {
      const c = await connect('alice', '/mcp', { era })
      try {
        const prompts = await c.listPrompts()
        assert.ok(prompts.prompts.some((p) => p.name === 'fixture_greet'))
        const got = await c.getPrompt({ name: 'fixture_greet', arguments: { name: 'Ada' } })
        assert.match(JSON.stringify(got.messages), /Say hello to Ada/)
        const resources = await c.listResources()
        assert.ok(
          resources.resources.some((r) => r.uri === 'fixture://hello'),
          'a URI only one backend lists keeps its form',
        )
        const read = await c.readResource({ uri: 'fixture://hello' })
        assert.equal((read.contents[0] as { text: string }).text, 'hello')
      } finally {
        await c.close()
      }
    })

    it('unknown names, and tools of backends the caller may not use, are not found; a denied tool is refused', async () => {
      const c = await connect('alice', '/mcp', { era })
      try {
        await assert.rejects(c.callTool({ name: 'no_such_tool', arguments: {} }), /no tool named/)
        await assert.rejects(c.callTool({ name: 'secretive_pid', arguments: {} }), /no tool named/)
        await assert.rejects(c.callTool({ name: 'echo', arguments: {} }), /no tool named/)
        await assert.rejects(
          c.callTool({ name: 'fixture_crash', arguments: {} }),
          /denied by policy/,
        )
      } finally {
        await c.close()
      }
    })

    it('a resource no backend serves is not found, and the error names its URI (SEP-2164)', async () => {
      const c = await connect('alice', '/mcp', { era })
      try {
        const uri = 'fixture://no-such-resource'
        await assert.rejects(
          c.readResource({ uri }),
          (err: { code?: unknown; data?: { uri?: unknown } }) => {
            assert.equal(err.code, -32602)
            assert.equal(err.data?.uri, uri)
            return true
          },
        )
      } finally {
        await c.close()
      }
    })
  })
}

describe('an endpoint: what a session carries', () => {
  it('progress and logs of a call, a server→client request (elicitation), and a list change reach the client', async () => {
    const changed: string[] = []
    const c = await connect('alice', '/mcp', {
      capabilities: { elicitation: {} },
      setup: (x) => {
        x.setRequestHandler('elicitation/create', async () => ({
          action: 'accept',
          content: { answer: 'from the client' },
        }))
        x.setNotificationHandler(
          'notifications/tools/list_changed',
          () => void changed.push('tools'),
        )
      },
    })
    try {
      const progress: number[] = []
      assert.equal(
        textOf(
          await c.callTool(
            { name: 'fixture_notify', arguments: { count: 3 } },
            { onprogress: (p) => void progress.push(p.progress) },
          ),
        ),
        'notified 3',
      )
      assert.deepEqual(progress, [1, 2, 3])
      assert.match(
        textOf(await c.callTool({ name: 'fixture_elicit', arguments: { message: 'name?' } })),
        /from the client/,
      )
      await c.callTool({ name: 'fixture_list_changed', arguments: {} })
      await waitFor(() => changed.length > 0, 'the list change reached the client')
      assert.deepEqual(changed, ['tools'])
    } finally {
      await c.close()
    }
  })

  it('a cancelled call is cancelled at its backend', async () => {
    const c = await connect('alice')
    try {
      const ac = new AbortController()
      let started!: () => void
      const running = new Promise<void>((r) => (started = r))
      const call = c.callTool(
        { name: 'fixture_slow', arguments: { ms: 30_000, every: 20 } },
        { signal: ac.signal, onprogress: () => started() },
      )
      await running
      ac.abort()
      await assert.rejects(call)
      // The next call runs at once on a free process.
      assert.equal(
        textOf(await c.callTool({ name: 'echo_echo', arguments: { text: 'after' } })),
        'after',
      )
    } finally {
      await c.close()
    }
  })
})

describe('endpoint names', () => {
  it('the same tool on two backends with no prefix: each gets a stable hashed name and reaches its own backend', async () => {
    const c = await connect('alice', '/mcp/bare')
    try {
      const names = await allTools(c)
      assert.equal(names.length, 2)
      assert.ok(!names.includes('echo'), 'neither keeps the bare colliding name')
      for (const n of names)
        assert.equal(textOf(await c.callTool({ name: n, arguments: { text: n } })), n)
      const again = await connect('bob', '/mcp/bare')
      try {
        assert.deepEqual(
          (await allTools(again)).sort(),
          [...names].sort(),
          'the same names for every user',
        )
      } finally {
        await again.close()
      }
    } finally {
      await c.close()
    }
  })

  it('names past 64 characters get a short form within 64, and it calls the right tool', async () => {
    const c = await connect('alice', '/mcp/long')
    try {
      const names = await allTools(c)
      assert.ok(names.length >= 2)
      assert.ok(
        names.every((n) => n.length <= 64),
        names.join(' '),
      )
      const list = names.find((n) => n.includes('list'))
      assert.ok(list, names.join(' '))
      assert.match(textOf(await c.callTool({ name: list!, arguments: {} })), /welcome/)
    } finally {
      await c.close()
    }
  })

  it('pagination spans the merged list; a forged cursor is refused', async () => {
    const token = await tokenFor('alice', '/mcp/paged')
    let id = 1
    const page = async (cursor?: string) => {
      const body = {
        jsonrpc: '2.0',
        id: id++,
        method: 'tools/list',
        params: {
          ...(cursor !== undefined ? { cursor } : {}),
          _meta: {
            'io.modelcontextprotocol/protocolVersion': V,
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }
      const res = await request(url('/mcp/paged'), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': V,
          'mcp-method': 'tools/list',
        },
        body: JSON.stringify(body),
      })
      return (await res.body.json()) as {
        result?: { tools: { name: string }[]; nextCursor?: string }
        error?: { code: number; message: string }
      }
    }
    const names: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const p = await page(cursor)
      assert.ok(p.result, JSON.stringify(p))
      assert.ok(p.result.tools.length <= 3)
      names.push(...p.result.tools.map((t) => t.name))
      cursor = p.result.nextCursor
      pages++
    } while (cursor !== undefined)
    assert.ok(pages > 1)
    const whole = await connect('alice', '/mcp')
    try {
      const expected = (await allTools(whole)).filter((n) => n.startsWith('fixture_'))
      assert.deepEqual([...names].sort(), [...expected].sort())
    } finally {
      await whole.close()
    }
    const first = await page()
    for (const forged of [
      `${first.result!.nextCursor!.slice(0, -2)}AA`,
      'not-a-cursor',
      '',
      'x'.repeat(5000),
    ]) {
      const r = await page(forged)
      assert.equal(r.error?.code, -32602, `${forged.slice(0, 20)}: ${JSON.stringify(r)}`)
    }
  })
})

describe('endpoint resources and audiences', () => {
  it('has its own metadata, and a token for a server is not good at the endpoint (nor the reverse)', async () => {
    const meta = (await (
      await request(url('/.well-known/oauth-protected-resource/mcp'))
    ).body.json()) as { resource: string; scopes_supported: string[] }
    assert.equal(meta.resource, url('/mcp'))
    assert.ok(meta.scopes_supported.includes('mcp:read'))
    const post = async (path: string, token: string) => {
      const res = await request(url(path), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'x', version: '0' },
          },
        }),
      })
      await res.body.dump()
      return { status: res.statusCode, challenge: String(res.headers['www-authenticate'] ?? '') }
    }
    const serverToken = await stack.token('alice', { server: 'echo' })
    const endpointToken = await tokenFor('alice', '/mcp')
    const a = await post('/mcp', serverToken)
    assert.equal(a.status, 401)
    assert.match(
      a.challenge,
      /resource_metadata="[^"]*\/\.well-known\/oauth-protected-resource\/mcp"/,
    )
    assert.equal((await post('/mcp/echo', endpointToken)).status, 401)
    assert.equal((await post('/mcp', endpointToken)).status, 200)
  })

  it("a missing scope on a backend's tool is a step-up challenge naming the endpoint", async () => {
    const token = await tokenFor('alice', '/mcp')
    const body = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: {
        name: 'notes_write_note',
        arguments: { name: 'x', text: 'y' },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }
    const res = await request(url('/mcp'), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': V,
        'mcp-method': 'tools/call',
        'mcp-name': 'notes_write_note',
      },
      body: JSON.stringify(body),
    })
    await res.body.dump()
    assert.equal(res.statusCode, 403)
    assert.match(
      String(res.headers['www-authenticate']),
      /insufficient_scope.*mcp:write.*oauth-protected-resource\/mcp"/,
    )
  })
})

describe("an endpoint's subscriptions/listen (2026-07-28)", () => {
  it('acknowledges first, then carries the asked-for list changes of every backend, stamped with the subscription id', async () => {
    const token = await tokenFor('alice', '/mcp/watch')
    const s = await listenAt(
      '/mcp/watch',
      token,
      { toolsListChanged: true, promptsListChanged: true },
      4242,
    )
    try {
      assert.equal(s.status, 200)
      await waitFor(() => s.events.length >= 1)
      assert.equal(s.events[0]!.method, 'notifications/subscriptions/acknowledged')
      assert.deepEqual(s.events[0]!.params.notifications, {
        toolsListChanged: true,
        promptsListChanged: true,
      })
      assert.equal(s.events[0]!.params._meta[SUBSCRIPTION_ID], 4242)
      await callAt('/mcp/watch', token, 'fixture_list_changed')
      await waitFor(() => s.events.length >= 2)
      await callAt('/mcp/watch', token, 'conformance_test_trigger_prompt_change')
      await waitFor(() => s.events.length >= 3)
      assert.deepEqual(
        s.events.slice(1).map((e) => [e.method, e.params._meta[SUBSCRIPTION_ID]]),
        [
          ['notifications/tools/list_changed', 4242],
          ['notifications/prompts/list_changed', 4242],
        ],
      )
      // Another user's changes are not this stream's: delivered to that user's stream (sent
      // with the same notification), never to this one.
      const bob = await tokenFor('bob', '/mcp/watch')
      const bobs = await listenAt('/mcp/watch', bob, { toolsListChanged: true }, 1)
      try {
        await waitFor(() => bobs.events.length >= 1, "bob's stream is acknowledged")
        await callAt('/mcp/watch', bob, 'fixture_list_changed')
        await waitFor(() => bobs.events.length >= 2, "bob's stream heard bob's change")
      } finally {
        bobs.close()
      }
      assert.equal(s.events.length, 3)
    } finally {
      s.close()
    }
  })

  it('sends only what the filter asks for', async () => {
    const token = await tokenFor('alice', '/mcp/watch')
    const s = await listenAt('/mcp/watch', token, { promptsListChanged: true }, 5)
    // Asks for both: once it heard both, so did the stream under test whatever it lets through.
    const all = await listenAt(
      '/mcp/watch',
      token,
      { toolsListChanged: true, promptsListChanged: true },
      6,
    )
    try {
      await waitFor(() => s.events.length >= 1)
      await waitFor(() => all.events.length >= 1)
      assert.deepEqual(s.events[0]!.params.notifications, { promptsListChanged: true })
      // One process, one after the other: the tools change would arrive first.
      await callAt('/mcp/watch', token, 'conformance_test_trigger_tool_change')
      await callAt('/mcp/watch', token, 'conformance_test_trigger_prompt_change')
      await waitFor(() => s.events.length >= 2)
      await waitFor(() => all.events.length >= 3, 'the other stream heard both changes')
      assert.deepEqual(
        s.events.slice(1).map((e) => e.method),
        ['notifications/prompts/list_changed'],
      )
    } finally {
      s.close()
      all.close()
    }
  })

  it('resource subscriptions by public URI reach their backend under its policy; updates come back by public URI', async () => {
    const token = await tokenFor('alice', '/mcp/watch')
    const s = await listenAt(
      '/mcp/watch',
      token,
      {
        resourceSubscriptions: [
          'test://watched-resource',
          'test://static-text',
          'nowhere://at-all',
        ],
      },
      77,
    )
    try {
      await waitFor(() => s.events.length >= 1)
      assert.deepEqual(
        s.events[0]!.params.notifications,
        { resourceSubscriptions: ['test://watched-resource'] },
        'a denied URI and one no backend serves are left out',
      )
      const refusal = stack
        .audit()
        .find((e) => e.method === 'subscriptions/listen' && e.name === 'test://static-text')
      assert.equal(refusal?.decision, 'deny')
      await callAt('/mcp/watch', token, 'conformance_test_update_watched_resource')
      const update = await waitFor(() =>
        s.events.find((e) => e.method === 'notifications/resources/updated'),
      )
      assert.equal(update.params.uri, 'test://watched-resource')
      assert.equal(update.params._meta[SUBSCRIPTION_ID], 77)
    } finally {
      s.close()
    }
  })
})

describe('an endpoint starts only what a user needs', () => {
  it("a user's list never starts a backend they may not use; a failing backend is left out, counted and told", async () => {
    const before = processes('secretive')
    const warnings: string[] = []
    const c = await connect('dev', '/mcp', {
      setup: (x) =>
        x.setNotificationHandler(
          'notifications/message',
          (n) => void warnings.push(String(n.params.data)),
        ),
    })
    try {
      const names = await allTools(c)
      assert.ok(names.includes('notes_write_note'), 'dora may write')
      assert.equal(processes('secretive'), before, 'no process of a server dora may not use')
      assert.ok(
        warnings.some((w) => /broken/.test(w)),
        warnings.join(' | '),
      )
      const metrics = await (await request(stack.gateway.metricsUrl)).body.text()
      assert.match(
        metrics,
        /mcp_edge_endpoint_backends_skipped_total\{endpoint="all",server="broken"\} [1-9]/,
      )
    } finally {
      await c.close()
    }
  })

  it('a call whose result names no resource waits for no resource list; a read, which needs the URIs, lists them', async () => {
    const record = join(stack.dir, 'fixture-record.jsonl')
    const lists = () =>
      (existsSync(record) ? readFileSync(record, 'utf8') : '')
        .split('\n')
        .filter((l) => l.includes('"method":"resources/list"')).length
    const c = await connect('alice', '/mcp/quick')
    try {
      const before = lists()
      assert.match(textOf(await c.callTool({ name: 'fixture_pid', arguments: {} })), /^\d+$/)
      assert.equal(lists(), before, 'no resources/list reached the backend for a plain tool result')
      await c.readResource({ uri: 'fixture://hello' })
      assert.equal(
        lists(),
        before + 1,
        "the endpoint's first read lists the backend's resources once",
      )
    } finally {
      await c.close()
    }
  })
})

describe('an endpoint starts only what a user needs: after the list', () => {
  it('a call runs on the process the list started; none starts to learn that tools-only backends have no resources', async () => {
    const c = await connect('bob', '/mcp/toolsonly')
    try {
      assert.deepEqual((await allTools(c)).sort(), ['plain1_echo', 'plain2_echo'])
      assert.equal(processes(TOOLS_ONLY), 2, 'one process per backend for the list')
      assert.equal(
        textOf(await c.callTool({ name: 'plain1_echo', arguments: { text: 'once' } })),
        'once',
      )
      assert.equal(processes(TOOLS_ONLY), 2, 'no process started by the call')
    } finally {
      await c.close()
    }
  })
})

describe('an endpoint starts only what a user needs: a backend without tools', () => {
  it("once a process of a backend has said it offers no tools, no user's tools/list starts one of it", async () => {
    const bob = await connect('bob', '/mcp/prompting')
    try {
      assert.deepEqual(
        (await bob.listPrompts()).prompts.map((p) => p.name),
        ['promptsonly_hello'],
      )
      assert.equal(processes(PROMPTS_ONLY), 1, "bob's process, for the prompts")
    } finally {
      await bob.close()
    }
    const alice = await connect('alice', '/mcp/prompting')
    try {
      assert.deepEqual(await allTools(alice), [])
      assert.equal(processes(PROMPTS_ONLY), 1, "none started for alice's tools/list")
      // Control: what alice does need of the backend starts her own process.
      const got = await alice.getPrompt({ name: 'promptsonly_hello' })
      assert.deepEqual(
        got.messages.map((m) => m.content),
        [{ type: 'text', text: 'hello' }],
      )
      assert.equal(processes(PROMPTS_ONLY), 2, "alice's process, for her prompts/get")
    } finally {
      await alice.close()
    }
  })
})

describe("an endpoint's log", () => {
  it('answered requests at /mcp log their HTTP line at debug, as at /mcp/<server> (their audit event says the rest)', async () => {
    const before = stack.logLines.length
    const c = await connect('alice', '/mcp')
    try {
      assert.equal(
        textOf(await c.callTool({ name: 'echo_echo', arguments: { text: 'quiet' } })),
        'quiet',
      )
    } finally {
      await c.close()
    }
    const lines = stack.logLines
      .slice(before)
      .map((l) => JSON.parse(l) as { level: number; msg: string; path?: string; status?: number })
    const http = lines.filter((l) => l.msg === 'request' && l.path === '/mcp')
    assert.ok(http.length >= 3, 'initialize, initialized, the call')
    for (const l of http) assert.equal(l.level, 20, JSON.stringify(l)) // pino's debug
  })
})

describe('an endpoint with the SDK v1 client', () => {
  it('lists and calls', async () => {
    const { Client: V1 } = await import('@modelcontextprotocol/sdk/client/index.js')
    const { StreamableHTTPClientTransport: V1Transport } = await import(
      '@modelcontextprotocol/sdk/client/streamableHttp.js'
    )
    const c = new V1({ name: 'v1', version: '0' })
    await c.connect(
      new V1Transport(new URL(url('/mcp')), {
        requestInit: { headers: { authorization: `Bearer ${await tokenFor('alice', '/mcp')}` } },
      }),
    )
    try {
      const { tools } = await c.listTools()
      assert.ok(tools.some((t) => t.name === 'echo_echo'))
      assert.equal(textOf(await c.callTool({ name: 'echo_echo', arguments: { text: 'v1' } })), 'v1')
    } finally {
      await c.close()
    }
  })
})

describe('an endpoint over the legacy HTTP+SSE transport (2024-11-05)', () => {
  it('lists and calls under the same names, with its own resource', async () => {
    const { Client: V1 } = await import('@modelcontextprotocol/sdk/client/index.js')
    const { SSEClientTransport } = await import('@modelcontextprotocol/sdk/client/sse.js')
    const token = await tokenFor('alice', '/sse/all')
    const c = new V1({ name: 'legacy', version: '0' })
    await c.connect(
      new SSEClientTransport(new URL(url('/sse/all')), {
        eventSourceInit: {
          fetch: (u, init) =>
            fetch(u, {
              ...init,
              headers: {
                ...(init?.headers as Record<string, string>),
                authorization: `Bearer ${token}`,
              },
            }),
        },
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      const { tools } = await c.listTools()
      assert.ok(tools.some((t) => t.name === 'notes_read_note'))
      assert.ok(!tools.some((t) => t.name === 'notes_write_note'))
      assert.equal(
        textOf(await c.callTool({ name: 'echo_echo', arguments: { text: 'legacy' } })),
        'legacy',
      )
      await assert.rejects(c.callTool({ name: 'fixture_crash', arguments: {} }), /denied by policy/)
    } finally {
      await c.close()
    }
    const meta = (await (
      await request(url('/.well-known/oauth-protected-resource/sse/all'))
    ).body.json()) as { resource: string }
    assert.equal(meta.resource, url('/sse/all'))
  })
})

const SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId'

/** A 2026-07-28 request body and the standard headers a conforming client sends with it. */
function modern(method: string, params: Record<string, unknown>, id: number) {
  const body = {
    jsonrpc: '2.0',
    id,
    method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': V,
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  }
  const name = params.name
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': V,
    'mcp-method': method,
    ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
  }
  return { body: JSON.stringify(body), headers }
}

let nextId = 1000

/** Calls a tool at an endpoint (2026-07-28); resolves once it answered. */
async function callAt(path: string, token: string, name: string): Promise<void> {
  const { body, headers } = modern('tools/call', { name, arguments: {} }, nextId++)
  const res = await request(url(path), {
    method: 'POST',
    headers: { ...headers, authorization: `Bearer ${token}` },
    body,
  })
  const text = await res.body.text()
  assert.equal(res.statusCode, 200, text)
  assert.doesNotMatch(text, /"error"/, text)
}

/** Opens a subscriptions/listen stream at an endpoint; its messages are collected as they arrive. */
async function listenAt(
  path: string,
  token: string,
  notifications: Record<string, unknown>,
  id: number,
) {
  const { body, headers } = modern('subscriptions/listen', { notifications }, id)
  const ac = new AbortController()
  const res = await request(url(path), {
    method: 'POST',
    headers: { ...headers, authorization: `Bearer ${token}` },
    body,
    signal: ac.signal,
  })
  const events: Record<string, any>[] = []
  let buffer = ''
  res.body.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
    let i
    while ((i = buffer.indexOf('\n\n')) !== -1) {
      const data = buffer
        .slice(0, i)
        .split('\n')
        .find((l) => l.startsWith('data: '))
      buffer = buffer.slice(i + 2)
      if (data) events.push(JSON.parse(data.slice(6)))
    }
  })
  res.body.on('error', () => {})
  return { status: res.statusCode, events, close: () => ac.abort() }
}
