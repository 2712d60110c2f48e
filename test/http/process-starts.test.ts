// A subject cannot make the gateway start processes in a loop: every process started for it
// (a session, a sessionless lane, an endpoint's backend, a replacement) counts against
// limits.processStartsPerSubject per processStartsWindow, here 3 per 60 s. The real gateway, a
// real IdP, servers that record each start in a file (the real spawns are counted), raw HTTP.
// The window's clock is the test's: it ends without sleeping.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import type { Principal } from '../../gateway/auth/principal.js'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ownerKey } from '../../gateway/bridge/session.js'
import { RPC_RATE_LIMITED } from '../../gateway/http/respond.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { postMcp, type McpAnswer } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const WINDOW = 60_000
const MAX = 3
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-process-starts-'))
const startsFile = (server: string) => join(dir, `${server}-starts`)
/** A flaky fixture in its serving mode: it appends its pid to its starts file as it starts. */
const counted = (server: string, extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'flaky.js')],
  env: { FLAKY_STARTS_FILE: startsFile(server) },
  ...extra,
})
/** Processes of `server` spawned so far (one line per start). */
const starts = (server: string) =>
  existsSync(startsFile(server))
    ? readFileSync(startsFile(server), 'utf8').split('\n').filter(Boolean).length
    : 0
/** The messages the `gated` fixture processes received, in order. */
const received = () =>
  existsSync(join(dir, 'gated-record'))
    ? readFileSync(join(dir, 'gated-record'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { method?: string })
    : []

const SERVERS = {
  counted: counted('counted'),
  legacy: counted('legacy'),
  warm: counted('warm', { pool: { min: 2 } }),
  // Demand warming on: a session finding the pool empty doubles the warm target (0 → 2 → 4…).
  ramp: counted('ramp', { pool: { min: 0, burst: 64 } }),
  ea: counted('ea'),
  one: counted('one', { mode: 'shared' }),
  // The fixture taking each user's own secret: a new value replaces the session's process.
  vault: {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'fixture.js')],
    credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
  },
  // The fixture, recording every message it receives: its gate tool waits until cancelled.
  gated: {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'fixture.js')],
    env: { FIXTURE_RECORD_FILE: join(dir, 'gated-record') },
  },
}
const POLICY =
  TEST_POLICY +
  Object.keys(SERVERS)
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')

let now = Date.now()
let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: {
      limits: { processStartsPerSubject: MAX, processStartsWindow: WINDOW },
      endpoints: { duo: { servers: ['ea', 'gated'] } },
    },
    processStartClock: () => now,
  })
})
after(async () => {
  await stack.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A token of its own subject for `server` (or the endpoint at `/mcp/<server>`). */
const tokenOf = (sub: string, server: string) => stack.forge({ sub, aud: stack.endpoint(server) })

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'looper', version: '0' },
  },
}

/** A session-era initialize of `server` as `sub`. */
async function initialize(sub: string, server: string): Promise<McpAnswer> {
  return postMcp(stack.local(server), INITIALIZE, {
    authorization: `Bearer ${await tokenOf(sub, server)}`,
  })
}

/** Ends a session with DELETE, and waits until the gateway let its process go. */
async function end(sub: string, server: string, answer: McpAnswer): Promise<void> {
  const res = await request(stack.local(server), {
    method: 'DELETE',
    headers: {
      authorization: `Bearer ${await tokenOf(sub, server)}`,
      'mcp-session-id': answer.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    },
  })
  await res.body.dump()
  assert.ok(res.statusCode < 300, `DELETE answered ${res.statusCode}`)
  await waitFor(() => held(sub) === 0, `the sessions of ${sub} ended`)
}

/** Sessions and lanes `sub` holds now. */
const held = (sub: string) =>
  stack.gateway.registry.bounds.count(
    scopeOf({ owner: ownerKey({ iss: stack.gateway.issuer!, sub }) }),
  )

/** The refusal every transport and era answers with: 429, Retry-After, -32029, data.retryAfter. */
function assertRefused(a: McpAnswer, retryAfter: number, id: unknown = null): void {
  assert.equal(a.status, 429, a.text)
  assert.equal(a.headers['retry-after'], String(retryAfter))
  assert.equal(a.headers['mcp-session-id'], undefined)
  const json = a.json()
  assert.equal(json.id, id)
  assert.equal(json.error.code, RPC_RATE_LIMITED)
  assert.equal(
    json.error.message,
    `you started ${MAX} server processes in ${WINDOW / 1000} s, the most allowed; retry in ${retryAfter} s`,
  )
  assert.deepEqual(json.error.data, { retryAfter })
}

/** The audit lines of process starts refused for `sub`. */
const refusals = (sub: string) =>
  stack
    .audit()
    .filter(
      (e) =>
        e.sub === sub && e.rule === 'limits.processStartsPerSubject' && e.outcome === 'refused',
    )

/**
 * The audit lines of `sub` since `mark`: the refused request's one line, naming that request
 * (not the `initialize` of the process it needed) and the budget.
 */
function assertOneRefusal(
  sub: string,
  mark: number,
  want: { server: string; method: string; name?: string },
): void {
  const lines = stack
    .audit()
    .slice(mark)
    .filter((e) => e.sub === sub)
  assert.equal(lines.length, 1, JSON.stringify(lines))
  const { server, method, name, decision, rule, outcome } = lines[0]!
  assert.deepEqual(
    { server, method, name, decision, rule, outcome },
    {
      name: undefined,
      ...want,
      decision: 'rate_limited',
      rule: 'limits.processStartsPerSubject',
      outcome: 'refused',
    },
  )
}

describe('limits.processStartsPerSubject', () => {
  it('session era: an initialize+DELETE loop is refused past the budget; the server saw only its starts', async () => {
    const t0 = now
    for (let i = 0; i < MAX; i++) {
      now = t0 + i * 10_000
      const a = await initialize('looper', 'counted')
      assert.equal(a.status, 200, a.text)
      await end('looper', 'counted', a)
    }
    assert.equal(starts('counted'), MAX)
    // Again and again, later in the window: Retry-After is the time until the oldest start leaves it.
    for (const [at, retryAfter] of [
      [30_000, 30],
      [30_000, 30],
      [45_500, 15],
      [59_001, 1],
    ] as const) {
      now = t0 + at
      assertRefused(await initialize('looper', 'counted'), retryAfter)
    }
    assert.equal(starts('counted'), MAX, 'no process was spawned for a refused initialize')
    assert.equal(held('looper'), 0)
    // Audited and counted like other refusals.
    const lines = refusals('looper')
    assert.equal(lines.length, 4)
    assert.equal(lines[0]!.decision, 'rate_limited')
    assert.equal(lines[0]!.server, 'counted')
    const metrics = await (await request(`${stack.url}/metrics`)).body.text()
    assert.match(metrics, /mcp_edge_subject_process_starts_refused_total\{server="counted"\} 4\b/)

    // Another subject is not affected.
    const other = await initialize('bystander', 'counted')
    assert.equal(other.status, 200, other.text)
    await end('bystander', 'counted', other)

    // The window slides: the oldest start leaving frees one start, and only one.
    now = t0 + WINDOW
    const again = await initialize('looper', 'counted')
    assert.equal(again.status, 200, again.text)
    await end('looper', 'counted', again)
    assertRefused(await initialize('looper', 'counted'), 10)
    assert.equal(starts('counted'), MAX + 2)
  })

  it('a warm process handed out counts like a spawned one', async () => {
    await waitFor(() => starts('warm') === 2, 'the warm pool filled')
    for (let i = 0; i < MAX; i++) {
      const a = await initialize('warmer', 'warm')
      assert.equal(a.status, 200, a.text)
      await end('warmer', 'warm', a)
    }
    assertRefused(await initialize('warmer', 'warm'), WINDOW / 1000)
  })

  it('pool.burst: the warm processes a session makes the pool add are its subject’s starts; past the budget the pool is not raised', async () => {
    const t0 = now
    // One start left: its session's own process.
    const who = { iss: stack.gateway.issuer!, sub: 'rampant' } as Principal
    for (let i = 0; i < MAX - 1; i++) stack.gateway.registry.processStarts.take('ramp', who)
    const a = await initialize('rampant', 'ramp')
    assert.equal(a.status, 200, a.text)
    // Its miss would double the warm target (0 → 2): two spawns nobody paid for. Not raised.
    assert.equal(stack.gateway.registry.warmTarget('ramp'), 0)
    await end('rampant', 'ramp', a)
    assert.equal(starts('ramp'), 1, 'the session’s own process, and nothing else')
    assertRefused(await initialize('rampant', 'ramp'), WINDOW / 1000)
    assert.equal(stack.gateway.registry.warmTarget('ramp'), 0)

    // A subject with budget left pays for the raise: its process, then the two warm ones.
    const b = await initialize('payer', 'ramp')
    assert.equal(b.status, 200, b.text)
    assert.equal(stack.gateway.registry.warmTarget('ramp'), 2)
    await waitFor(() => stack.gateway.registry.warm('ramp') === 2, 'the two warm processes')
    await end('payer', 'ramp', b)
    assert.equal(starts('ramp'), 1 + MAX)
    // Its budget is spent: the next session is refused, the warm ones stay for others.
    assertRefused(await initialize('payer', 'ramp'), (t0 + WINDOW - now) / 1000)
    assert.equal(stack.gateway.registry.warm('ramp'), 2)
  })

  it('sessionless: a loop of calls cancelled mid-way is refused past the budget', async () => {
    const token = await tokenOf('canceller', 'gated')
    const initializes = () => received().filter((m) => m.method === 'initialize').length
    const calls = () => received().filter((m) => m.method === 'tools/call').length
    for (let i = 0; i < MAX; i++) {
      const before = calls()
      const abort = new AbortController()
      const pending = request(stack.local('gated'), {
        ...modernToolCall(token, 'gate', { name: `never-${i}` }, { id: i + 1 }),
        signal: abort.signal,
      }).catch(() => undefined)
      await waitFor(() => calls() > before, 'the call reached its process')
      abort.abort()
      await pending
      // A cancelled call's process is retired: the next one needs a new process.
      await waitFor(() => held('canceller') === 0, 'the lane of the cancelled call ended')
    }
    assert.equal(initializes(), MAX)
    const mark = stack.audit().length
    const res = await request(stack.local('gated'), modernToolCall(token, 'pid', {}, { id: 9 }))
    const text = await res.body.text()
    assertRefused(
      { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) },
      WINDOW / 1000,
      9,
    )
    assert.equal(initializes(), MAX, 'no process was started for the refused call')
    assert.equal(refusals('canceller').length, 1)
    assertOneRefusal('canceller', mark, { server: 'gated', method: 'tools/call', name: 'pid' })
  })

  it('an endpoint: each backend it starts counts; a cancel loop on one is refused past the budget', async () => {
    const token = await tokenOf('aggregator', 'duo')
    const url = `${stack.url}/mcp/duo`
    const calls = () => received().filter((m) => m.method === 'tools/call').length
    const list = async (id: number) => {
      const res = await request(url, modernRequest(token, 'tools/list', {}, { id }))
      return (await res.body.json()) as { result: { tools: { name: string }[] } }
    }
    // Two starts: a lane of each backend.
    const first = await list(1)
    assert.ok(
      first.result.tools.some((t) => t.name === 'gated_gate'),
      JSON.stringify(first),
    )
    assert.ok(first.result.tools.some((t) => t.name === 'ea_ping'))
    assert.equal(starts('ea'), 1)
    // A call cancelled mid-way retires its backend's process: the next one needs a start.
    const cancelled = async (id: number) => {
      const before = calls()
      const abort = new AbortController()
      const pending = request(url, {
        ...modernToolCall(token, 'gated_gate', { name: `never-${id}` }, { id }),
        signal: abort.signal,
      }).catch(() => undefined)
      await waitFor(() => calls() > before, 'the call reached its process')
      abort.abort()
      await pending
      await waitFor(() => held('aggregator') === 1, 'the lane of the cancelled call ended')
    }
    await cancelled(2)
    // The third start.
    await cancelled(3)
    const before = received().length
    const mark = stack.audit().length
    const res = await request(url, modernToolCall(token, 'gated_pid', {}, { id: 4 }))
    const text = await res.body.text()
    assertRefused(
      { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) },
      WINDOW / 1000,
      4,
    )
    assert.equal(received().length, before, 'no process of the endpoint saw the refused call')
    // The backend's own name: policy decided it there.
    assertOneRefusal('aggregator', mark, { server: 'gated', method: 'tools/call', name: 'pid' })
    // Lists go on from what the endpoint knows, starting nothing.
    const names = (await list(5)).result.tools.map((t) => t.name)
    assert.ok(names.includes('ea_ping') && names.includes('gated_gate'), names.join())
    assert.equal(received().length, before)
    assert.equal(starts('ea'), 1)
    assert.equal(refusals('aggregator').length, 1)

    // The endpoint's session era: the same refusal, as the answer to the call.
    const auth = { authorization: `Bearer ${token}` }
    const opened = await postMcp(url, INITIALIZE, auth)
    assert.equal(opened.status, 200, opened.text)
    const session = {
      ...auth,
      'mcp-session-id': opened.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    }
    await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)
    const call = { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'gated_pid' } }
    const sessionMark = stack.audit().length
    const answer = await postMcp(url, call, session)
    assert.equal(answer.status, 200, answer.text)
    assert.deepEqual(answer.json().error, {
      code: RPC_RATE_LIMITED,
      message: `you started ${MAX} server processes in ${WINDOW / 1000} s, the most allowed; retry in ${WINDOW / 1000} s`,
      data: { retryAfter: WINDOW / 1000 },
    })
    assert.equal(received().length, before)
    assert.equal(refusals('aggregator').length, 2)
    assertOneRefusal('aggregator', sessionMark, {
      server: 'gated',
      method: 'tools/call',
      name: 'pid',
    })
  })

  it('legacy HTTP+SSE: a stream opened past the budget gets the same refusal', async () => {
    const token = await tokenOf('old', 'legacy')
    for (let i = 0; i < MAX; i++) {
      const res = await request(`${stack.url}/sse/legacy`, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
      })
      assert.equal(res.statusCode, 200)
      const events = res.body[Symbol.asyncIterator]()
      let text = ''
      while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
      // Ended once its process is up, so that the start is seen in its file.
      await waitFor(() => starts('legacy') === i + 1, 'the process started')
      res.body.destroy()
      await waitFor(() => held('old') === 0, 'the legacy session ended')
    }
    const mark = stack.audit().length
    const res = await request(`${stack.url}/sse/legacy`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    })
    if (res.statusCode === 200) {
      res.body.destroy()
      assert.fail('a stream was opened past the budget')
    }
    const text = await res.body.text()
    assertRefused(
      { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) },
      WINDOW / 1000,
    )
    assert.equal(starts('legacy'), MAX)
    assertOneRefusal('old', mark, { server: 'legacy', method: 'GET /sse' })
  })

  it('credentials: a secret changed in a loop replaces the process until the budget says no; the session keeps its process', async () => {
    const secrets = stack.gateway.secrets!
    const owner = { iss: stack.gateway.issuer!, sub: 'rotator' }
    await secrets.set(owner, 'vault_token', 'v0')
    const client = new Client({ name: 'rotator', version: '0' })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('vault')), {
        requestInit: { headers: { authorization: `Bearer ${await tokenOf('rotator', 'vault')}` } },
      }),
    )
    const pidWith = async () => {
      const result = await client.callTool({
        name: 'credential',
        arguments: { name: 'VAULT_TOKEN' },
      })
      return (JSON.parse((result.content as { text: string }[])[0]!.text) as { pid: number }).pid
    }
    try {
      // The session's own start, then two replacements.
      const pids = [await pidWith()]
      for (const value of ['v1', 'v2']) {
        await secrets.set(owner, 'vault_token', value)
        pids.push(await pidWith())
      }
      assert.equal(new Set(pids).size, MAX, 'each value ran on a process of its own')
      await secrets.set(owner, 'vault_token', 'v3')
      const mark = stack.audit().length
      await assert.rejects(
        client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } }),
        (err: { code?: number; message: string }) =>
          err.code === RPC_RATE_LIMITED &&
          err.message.includes(`you started ${MAX} server processes in ${WINDOW / 1000} s`),
      )
      assert.equal(refusals('rotator').length, 1)
      // The call that needed the replacement, once (it was also audited `allow`, `error -32029`).
      assertOneRefusal('rotator', mark, {
        server: 'vault',
        method: 'tools/call',
        name: 'credential',
      })
      // Once the window moved on, the next request gets its process with the new value.
      now += WINDOW
      const next = await pidWith()
      assert.ok(!pids.includes(next))
    } finally {
      await client.close()
    }
  })

  it('a shared-mode server (one process for everyone) is not counted', async () => {
    await waitFor(() => starts('one') === 1, 'the shared process started')
    for (let i = 0; i < MAX * 3; i++) {
      const a = await initialize('sharer', 'one')
      assert.equal(a.status, 200, a.text)
      await end('sharer', 'one', a)
    }
    assert.equal(starts('one'), 1)
    assert.equal(refusals('sharer').length, 0)
  })
})
