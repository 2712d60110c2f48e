// A server that cannot start is not spawned again on every request: the real gateway, a real
// IdP and the flaky fixture (it records each start in a file and reads what to do from
// another), raw HTTP. The backoff's clock is the test's: windows end without sleeping.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-starts-'))
const file = (server: string, what: 'starts' | 'mode') => join(dir, `${server}-${what}`)
// Windows of 1 s, 2 s, 4 s…: Retry-After tells a doubled window from the first.
const flaky = (server: string, extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'flaky.js')],
  env: { FLAKY_STARTS_FILE: file(server, 'starts'), FLAKY_MODE_FILE: file(server, 'mode') },
  respawnBackoff: 1000,
  ...extra,
})
/** The pids of the fixture's starts so far (one line per start). */
const pids = (server: string) =>
  existsSync(file(server, 'starts'))
    ? readFileSync(file(server, 'starts'), 'utf8').split('\n').filter(Boolean).map(Number)
    : []
/** Times the fixture started so far. */
const starts = (server: string) =>
  existsSync(file(server, 'starts'))
    ? readFileSync(file(server, 'starts'), 'utf8').split('\n').filter(Boolean).length
    : 0
const setMode = (server: string, mode: 'exit' | 'hang' | 'serve' | 'fragile') =>
  writeFileSync(file(server, 'mode'), mode)

let now = Date.now()
let stack: Stack
const tokens = new Map<string, string>()
const FLAKY_POLICY = (s: string) =>
  `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

before(async () => {
  for (const s of ['flaky', 'sloth', 'mender', 'stall', 'crowd', 'queue'])
    setMode(s, s === 'sloth' ? 'hang' : 'exit')
  setMode('fragile', 'fragile')
  stack = await startStack({
    servers: {
      flaky: flaky('flaky'),
      // Never answers initialize: a start fails once its timeout passes.
      sloth: flaky('sloth', { requestTimeout: 300, initializeTimeout: 300 }),
      mender: flaky('mender'),
      // Its probe hangs until the test ends its process.
      stall: flaky('stall', { requestTimeout: 60_000, initializeTimeout: 60_000 }),
      // Exits on an initialize from a client named `crash`; serves every other.
      fragile: flaky('fragile'),
      // Like stall, with room for three sessions and lanes in all.
      crowd: flaky('crowd', { requestTimeout: 60_000, initializeTimeout: 60_000, maxSessions: 3 }),
      queue: flaky('queue', { requestTimeout: 60_000, initializeTimeout: 60_000 }),
    },
    config: {
      endpoints: {
        all: { path: '/mcp', servers: ['echo', 'flaky'] },
        slow: { servers: ['echo', 'sloth'] },
        stalls: { servers: ['echo', 'stall'] },
        fragiles: { servers: ['echo', 'fragile'] },
      },
    },
    policy:
      TEST_POLICY +
      ['flaky', 'sloth', 'mender', 'stall', 'fragile', 'crowd', 'queue'].map(FLAKY_POLICY).join(''),
    startClock: () => now,
  })
})
after(async () => {
  await stack.close()
  rmSync(dir, { recursive: true, force: true })
})

async function tokenOf(client: string, server: string): Promise<string> {
  const key = `${client} ${server}`
  let t = tokens.get(key)
  if (t === undefined) {
    const resource = server === '' ? `${stack.url}/mcp` : stack.endpoint(server)
    t = await stack.token(client, { resource })
    tokens.set(key, t)
  }
  return t
}

interface Answer {
  status: number
  retryAfter: string | undefined
  sessionId: string | undefined
  json: {
    id?: unknown
    result?: Record<string, unknown>
    error?: { code: number; message: string; data?: unknown }
  }
}

async function post(
  server: string,
  body: unknown,
  o: { client?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await request(server === '' ? `${stack.url}/mcp` : stack.local(server), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${await tokenOf(o.client ?? 'alice', server)}`,
      ...o.headers,
    },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const data = text.startsWith('event:') || text.startsWith('id:') ? lastEvent(text) : text
  return {
    status: res.statusCode,
    retryAfter: res.headers['retry-after'] as string | undefined,
    sessionId: res.headers['mcp-session-id'] as string | undefined,
    json: data ? JSON.parse(data) : {},
  }
}

/** The tool names a tools/list answer holds. */
const toolNames = (a: Answer) =>
  ((a.json.result?.tools ?? []) as { name: string }[]).map((t) => t.name)

function lastEvent(text: string): string {
  const datas = text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
  return datas[datas.length - 1] ?? ''
}

let nextId = 1
/** A sessionless (2026-07-28) tools/list. */
const sessionless = (server: string, client = 'alice') => {
  const id = nextId++
  return post(
    server,
    {
      jsonrpc: '2.0',
      id,
      method: 'tools/list',
      params: {
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    },
    { client, headers: { 'mcp-protocol-version': V, 'mcp-method': 'tools/list' } },
  )
}
/** A session-era initialize (a new session), from a client app named `app`. */
const initialize = (server: string, client = 'alice', app = 'start-failures-test') =>
  post(
    server,
    {
      jsonrpc: '2.0',
      id: nextId++,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: app, version: '0' },
      },
    },
    { client },
  )

/** The refusal inside a window: 503, Retry-After, the JSON-RPC code, the message; no session. */
function assertRefused(a: Answer, server: string, seconds: number, what: string): void {
  assert.equal(a.status, 503, `${what}: ${JSON.stringify(a.json)}`)
  assert.equal(a.retryAfter, String(seconds), what)
  assert.equal(a.sessionId, undefined, what)
  assert.equal(a.json.error?.code, -32000, what)
  assert.equal(
    a.json.error?.message,
    `server ${server} could not be started; retrying in ${seconds} s`,
    what,
  )
  assert.deepEqual(a.json.error?.data, { retryAfter: seconds }, what)
}

const warnings = (server: string) =>
  stack.logLines.filter((l) =>
    l.includes(`"msg":"server ${server} failed to start; retrying after`),
  ).length

async function metric(name: string, server: string): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`"${server}"`))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

describe('a server whose process exits at once', () => {
  it('fails its first start (502), then refuses every path with 503 and spawns nothing', async () => {
    const first = await sessionless('flaky')
    assert.equal(first.status, 502, JSON.stringify(first.json))
    assert.equal(starts('flaky'), 1)
    // The first window: respawnBackoff (1000 ms) → Retry-After 1 s.
    for (let i = 0; i < 5; i++) assertRefused(await sessionless('flaky'), 'flaky', 1, 'sessionless')
    for (const client of ['alice', 'bob', 'dev'])
      assertRefused(await initialize('flaky', client), 'flaky', 1, `initialize as ${client}`)
    // The id of the request is echoed on a sessionless refusal.
    const echoed = await sessionless('flaky')
    assert.equal(echoed.json.id, nextId - 1)
    assert.equal(starts('flaky'), 1, 'no process was spawned inside the window')
    assert.equal(warnings('flaky'), 1, 'logged once, not per request')
    assert.equal(await metric('mcp_edge_server_start_failures_total', 'flaky'), 1)
    assert.equal(await metric('mcp_edge_server_starts_refused_total', 'flaky'), 9)
  })

  it('the legacy HTTP+SSE transport opens no session either: 503, no spawn', async () => {
    const res = await request(`${stack.url}/sse/flaky`, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${await tokenOf('bob', 'flaky')}`,
      },
    })
    const json = JSON.parse(await res.body.text())
    assertRefused(
      {
        status: res.statusCode,
        retryAfter: res.headers['retry-after'] as string,
        sessionId: undefined,
        json,
      },
      'flaky',
      1,
      'GET /sse',
    )
    assert.equal(starts('flaky'), 1)
  })

  it('an endpoint leaves it out of its lists at once, counted as skipped, spawning nothing', async () => {
    const skipped = await metric('mcp_edge_endpoint_backends_skipped_total', 'flaky')
    for (let i = 0; i < 3; i++) {
      const listed = await sessionless('')
      assert.equal(listed.status, 200, JSON.stringify(listed.json))
      const names = toolNames(listed)
      assert.ok(names.includes('echo_echo'), names.join())
      assert.ok(!names.some((n) => n.startsWith('flaky')), names.join())
    }
    assert.equal(starts('flaky'), 1)
    assert.equal(await metric('mcp_edge_endpoint_backends_skipped_total', 'flaky'), skipped + 3)
  })

  it('after the window one probe spawns; its failure doubles the window', async () => {
    now += 1000
    // The probe is a start the gateway initializes itself (a session-era initialize is the
    // client's: it never probes the server's window, see 'fails for its own user only').
    const probe = await sessionless('flaky')
    assert.equal(probe.status, 502, JSON.stringify(probe.json))
    assert.equal(starts('flaky'), 2)
    // 2000 ms now: half of it later, still refused.
    now += 1000
    assertRefused(await sessionless('flaky'), 'flaky', 1, 'inside the doubled window')
    assert.equal(starts('flaky'), 2)
    assert.equal(warnings('flaky'), 2)
  })

  it('concurrent requests during a probe spawn once: the others wait for its outcome', async () => {
    now += 1000
    const answers = await Promise.all([
      sessionless('flaky', 'alice'),
      sessionless('flaky', 'bob'),
      sessionless('flaky', 'admin'),
      sessionless('flaky', 'dev'),
    ])
    assert.equal(starts('flaky'), 3, 'one probe, one process')
    // The probe failed (502); the rest heard it: 4 s now.
    const refused = answers.filter((a) => a.status === 503)
    assert.equal(refused.length, 3, JSON.stringify(answers.map((a) => a.status)))
    for (const a of refused) assertRefused(a, 'flaky', 4, 'waited for the probe')
    const probe = answers.find((a) => a.status !== 503)!
    assert.equal(probe.status, 502, JSON.stringify(probe.json))
    // A session-era initialize inside the server's window is refused all the same.
    assertRefused(await initialize('flaky', 'dev'), 'flaky', 4, 'initialize')
    assert.equal(starts('flaky'), 3)
  })
})

describe('a server that never answers initialize', () => {
  it('a timed-out initialize fails the start: what follows is refused without a spawn', async () => {
    const first = await sessionless('sloth')
    assert.equal(first.status, 502, JSON.stringify(first.json))
    assert.equal(starts('sloth'), 1)
    assertRefused(await initialize('sloth', 'bob'), 'sloth', 1, 'initialize')
    assertRefused(await sessionless('sloth'), 'sloth', 1, 'sessionless')
    const listed = await sessionless('slow', 'dev')
    assert.equal(listed.status, 200)
    const names = toolNames(listed)
    assert.deepEqual(names, ['echo_echo'])
    assert.equal(starts('sloth'), 1)
    assert.equal(warnings('sloth'), 1)
  })

  it('a sessionless start that times out is a 502 once, then 503', async () => {
    now += 1000
    const probe = await sessionless('sloth')
    assert.equal(probe.status, 502, JSON.stringify(probe.json))
    assert.equal(starts('sloth'), 2)
    assertRefused(await sessionless('sloth', 'bob'), 'sloth', 2, 'after the probe')
    assert.equal(starts('sloth'), 2)
  })
})

describe('a server that is fixed', () => {
  it('recovers with the first probe after its window, and serves every path again', async () => {
    assert.equal((await sessionless('mender')).status, 502)
    assertRefused(await initialize('mender'), 'mender', 1, 'broken')
    setMode('mender', 'serve')
    // Fixed, but inside its window: still refused, still no spawn.
    assertRefused(await sessionless('mender'), 'mender', 1, 'fixed inside the window')
    assert.equal(starts('mender'), 1)
    now += 1000
    const served = await sessionless('mender')
    assert.equal(served.status, 200, JSON.stringify(served.json))
    assert.deepEqual(toolNames(served), ['ping'])
    assert.equal(starts('mender'), 2)
    assert.ok(stack.logLines.some((l) => l.includes('"msg":"server mender started again"')))
    const session = await initialize('mender', 'bob')
    assert.equal(session.status, 200, JSON.stringify(session.json))
    assert.ok(session.sessionId)
    // A later failure starts at the first delay again (1 s, not 2).
    setMode('mender', 'exit')
    assert.equal((await sessionless('mender', 'dev')).status, 502)
    assertRefused(await sessionless('mender', 'admin'), 'mender', 1, 'failing again')
  })
})

describe('a probe that hangs', () => {
  it('holds every other start (no spawn), while an endpoint lists without the server at once', async () => {
    assert.equal((await sessionless('stall')).status, 502)
    setMode('stall', 'hang')
    now += 1000
    const probe = sessionless('stall')
    await waitFor(() => starts('stall') === 2)
    let settled = 0
    const waiting = [
      sessionless('stall', 'bob'),
      initialize('stall', 'dev'),
      sessionless('stall', 'admin'),
      initialize('stall', 'bob'),
    ].map((p) => p.finally(() => settled++))
    // The endpoint does not wait for the probe: it answers while the probe still hangs.
    const listed = await sessionless('stalls', 'dev')
    assert.equal(listed.status, 200, JSON.stringify(listed.json))
    const names = toolNames(listed)
    assert.deepEqual(names, ['echo_echo'])
    assert.equal(settled, 0, 'the others wait for the probe')
    assert.equal(starts('stall'), 2)
    // The probe's process ends before it answered: the start failed, and everyone hears it.
    process.kill(pids('stall')[1]!)
    const failed = await probe
    assert.equal(failed.status, 502, JSON.stringify(failed.json))
    for (const a of await Promise.all(waiting)) assertRefused(a, 'stall', 2, 'after the probe')
    assert.equal(starts('stall'), 2, 'one probe, one process')
  })
})

describe('initializes waiting for a probe', () => {
  it("hold no slot: one client's cannot fill the server's bound for the others", async () => {
    assert.equal((await sessionless('crowd')).status, 502)
    setMode('crowd', 'hang')
    now += 1000
    // The probe (a lane: one of the server's three) hangs until the test ends its process.
    const probe = sessionless('crowd')
    await waitFor(() => starts('crowd') === 2)
    const { registry } = stack.gateway
    // Alice's client sends two initializes: they wait for the probe's outcome.
    const alice = [initialize('crowd', 'alice'), initialize('crowd', 'alice')]
    await waitFor(() => registry.starts.waiting === 2)
    assert.equal(registry.count(scopeOf({ server: 'crowd' })), 0, 'waiting, they hold no slot')
    // Bob's waits as well, rather than being refused at the server's bound (the probe's lane
    // and Alice's two initializes would fill it).
    let bobAnswered = false
    const bob = initialize('crowd', 'bob').finally(() => (bobAnswered = true))
    await waitFor(() => registry.starts.waiting === 3 || bobAnswered)
    assert.equal(bobAnswered, false, 'bob waits for the probe like alice')
    process.kill(pids('crowd')[1]!)
    assert.equal((await probe).status, 502)
    for (const a of [...(await Promise.all(alice)), await bob])
      assertRefused(a, 'crowd', 2, 'after the probe')
    assert.equal(starts('crowd'), 2)
    assert.equal(registry.count(scopeOf({ server: 'crowd' })), 0)
  })
})

describe('sessionless requests waiting for a probe', () => {
  it('hold no place under the bounds while they wait', async () => {
    assert.equal((await sessionless('queue')).status, 502)
    setMode('queue', 'hang')
    now += 1000
    const probe = sessionless('queue', 'alice')
    await waitFor(() => starts('queue') === 2)
    const { bounds, starts: memory } = stack.gateway.registry
    const held = () => bounds.count(scopeOf({ server: 'queue' }))
    assert.equal(held(), 1, "the probe's lane")
    const waiting = memory.waiting
    const others = [sessionless('queue', 'bob'), sessionless('queue', 'admin')]
    await waitFor(() => memory.waiting === waiting + 2)
    assert.equal(held(), 1, 'the waiting requests hold no lane')
    process.kill(pids('queue')[1]!)
    assert.equal((await probe).status, 502)
    for (const a of await Promise.all(others)) assertRefused(a, 'queue', 2, 'after the probe')
    assert.equal(starts('queue'), 2)
    assert.equal(held(), 0)
  })
})

describe('a session-era start that fails', () => {
  it("fails for its own user only: one user's initialize cannot get the server refused for everyone", async () => {
    // Alice's client sends an initialize the server cannot take: the process exits.
    const crashed = await initialize('fragile', 'alice', 'crash')
    assert.equal(crashed.sessionId, undefined)
    assert.ok(crashed.json.error, JSON.stringify(crashed.json))
    assert.equal(starts('fragile'), 1)
    assert.equal(
      stack.logLines.filter((l) =>
        l.includes('"msg":"server fragile failed to start a session of '),
      ).length,
      1,
    )
    assert.equal(warnings('fragile'), 0, 'the server itself is not failing')
    // Alice is refused for her window, whatever her client sends now; nothing spawns.
    assertRefused(await initialize('fragile', 'alice'), 'fragile', 1, 'alice again')
    assert.equal(starts('fragile'), 1)
    // Bob, and Alice's own sessionless calls (initialized by the gateway), are served.
    const bob = await initialize('fragile', 'bob')
    assert.equal(bob.status, 200, JSON.stringify(bob.json))
    assert.ok(bob.sessionId)
    const sessionlessAlice = await sessionless('fragile', 'alice')
    assert.equal(sessionlessAlice.status, 200, JSON.stringify(sessionlessAlice.json))
    assert.deepEqual(toolNames(sessionlessAlice), ['ping'])
    const listed = await sessionless('fragiles', 'dev')
    assert.ok(toolNames(listed).includes('fragile_ping'), toolNames(listed).join())
    // Her window over, her next initialize is her probe: it starts, and she is served again.
    now += 1000
    const again = await initialize('fragile', 'alice')
    assert.equal(again.status, 200, JSON.stringify(again.json))
    assert.ok(again.sessionId)
  })
})

describe('/readyz', () => {
  it('warns of each server failing to start, how and until when; users only counted; still ready', async () => {
    // A spawn error (the stack's `broken`: no such command), and a user's own window: Bob's
    // client crashes the fragile server's initialize.
    assert.equal((await sessionless('broken')).status, 502)
    const crashed = await initialize('fragile', 'bob', 'crash')
    assert.equal(crashed.sessionId, undefined)
    const res = await request(`${stack.url}/readyz`)
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, text)
    const body = JSON.parse(text) as {
      status: string
      warnings: string[]
      failingServers: {
        server: string
        failures: number
        retryIn: number
        probing: boolean
        lastFailure: string
      }[]
      failingUserStarts: number
    }
    assert.equal(body.status, 'ready')
    const of = (server: string) => body.failingServers.find((f) => f.server === server)
    // flaky: three failed starts in a row, each the process exiting; sloth: two timeouts.
    const cases = [
      {
        server: 'flaky',
        failures: 3,
        lastFailure: 'exit',
        words: 'exited before answering initialize',
      },
      {
        server: 'sloth',
        failures: 2,
        lastFailure: 'timeout',
        words: 'did not answer initialize in time',
      },
      { server: 'broken', failures: 1, lastFailure: 'spawn', words: 'could not be spawned' },
      // Failing again after it served: counted from one again.
      {
        server: 'mender',
        failures: 1,
        lastFailure: 'exit',
        words: 'exited before answering initialize',
      },
    ]
    for (const c of cases) {
      const f = of(c.server)
      assert.ok(f, `${c.server} listed: ${text}`)
      assert.equal(f.failures, c.failures, c.server)
      assert.equal(f.lastFailure, c.lastFailure, c.server)
      assert.equal(f.probing, false, c.server)
      const warning = body.warnings.find((w) => w.startsWith(`server ${c.server} cannot start: `))
      assert.ok(warning, `${c.server} warned: ${text}`)
      assert.ok(warning.includes(`${c.failures} failed start`), warning)
      assert.ok(warning.includes(`the last ${c.words}`), warning)
    }
    assert.equal(of('broken')!.retryIn, 1)
    assert.ok(
      body.warnings.includes(
        `server broken cannot start: 1 failed start in a row, the last could not be spawned; the next start is tried in 1 s`,
      ),
      text,
    )
    // Servers that start are not listed, nor are users' own windows: a count, no subject.
    for (const server of ['echo', 'fragile']) assert.equal(of(server), undefined, server)
    assert.equal(body.failingUserStarts, 1)
    assert.ok(
      body.warnings.includes(
        "1 user start of their own failing (a session's own initialize, identityEnv or credentials): only those users are refused meanwhile",
      ),
      text,
    )
    // Nothing of the users, nor of the processes' environment (the fixture's file paths).
    for (const secret of ['bob', 'alice', dir]) assert.ok(!text.includes(secret), secret)
  })
})
