// One user must not be able to crash-loop a shared process (one process serving every user):
// each exit is charged to the subjects with requests in flight on it (divided among them), a
// subject charged limits.sharedCrashesPerSubject times in the window is refused (429, -32029,
// Retry-After) on that server while everyone else goes on, and the restart delay keeps doubling
// until a process served respawnStableAfter. The real gateway, a real IdP, the plain server (no SDK)
// (its `crash` tool exits before answering; PLAIN_CRASH_ON exits on another method), raw HTTP.
// The windows' clock is the test's: nothing sleeps, the delays are read from the log.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { RPC_RATE_LIMITED } from '../../gateway/http/respond.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { postMcp, type McpAnswer } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const WINDOW = 60_000
const MAX = 3
/** Longer than the window: a run between two crashes of one test is never stable by accident. */
const STABLE = 120_000
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-shared-crashes-'))
writeFileSync(join(dir, 'dead-mode'), 'exit')
/** The plain server records every message it receives in this file. */
const recordOf = (server: string) => join(dir, `${server}.jsonl`)
/** Whether `server`'s process received a message whose JSON holds `text`. */
const got = (server: string, text: string) =>
  existsSync(recordOf(server)) && readFileSync(recordOf(server), 'utf8').includes(text)
/**
 * The plain server in shared mode, restarted 10 ms after an exit, doubling up to 80 ms. Not the
 * fixture: what is under test is the gateway's count of exits, and the ~40 restarts here each
 * paid the SDK's imports (~0.2 s of CPU) in the fixture.
 */
const shared = (extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'plain.js')],
  mode: 'shared',
  respawnBackoff: 10,
  respawnBackoffMax: 80,
  respawnStableAfter: STABLE,
  ...extra,
})
const SERVERS = {
  crashy: shared({ env: { PLAIN_RECORD_FILE: recordOf('crashy') } }),
  // Exits on a prompts/list, as a server might on any method it handles badly.
  lister: shared({ env: { PLAIN_CRASH_ON: 'prompts/list' } }),
  // Exits on a cancellation: the crash comes after the gateway forgot the cancelled request.
  canceller: shared({
    env: {
      PLAIN_CRASH_ON: 'notifications/cancelled',
      PLAIN_RECORD_FILE: recordOf('canceller'),
    },
  }),
  batchy: shared(),
  modern: shared(),
  legacy: shared(),
  backend: shared(),
  pair: shared({ replicas: 2 }),
  // Exits at once, before it answers initialize: it never becomes ready.
  dead: shared({
    command: process.execPath,
    args: [join(SERVERS_DIR, 'flaky.js')],
    env: { FLAKY_STARTS_FILE: join(dir, 'dead-starts'), FLAKY_MODE_FILE: join(dir, 'dead-mode') },
  }),
}
const POLICY =
  TEST_POLICY +
  Object.keys(SERVERS)
    .map(
      (s) =>
        `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    prompts: { "*": allow }\n`,
    )
    .join('')

let now = 1_000_000
let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: {
      limits: { sharedCrashesPerSubject: MAX, sharedCrashesWindow: WINDOW },
      endpoints: { agg: { servers: ['backend'] } },
    },
    sharedClock: () => now,
  })
})
after(async () => {
  await stack.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A token of its own subject for `server` (or the endpoint at `/mcp/<server>`). */
const tokenOf = (sub: string, server: string) => stack.forge({ sub, aud: stack.endpoint(server) })

const initializeOf = (version: string) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'c', version: '0' } },
})

/** A session-era initialize of `server` as `sub`. */
async function initialize(sub: string, server: string, version = '2025-11-25') {
  return postMcp(stack.local(server), initializeOf(version), {
    authorization: `Bearer ${await tokenOf(sub, server)}`,
  })
}

/** A session of `server` opened as `sub`: the headers of its next requests. */
async function open(sub: string, server: string, version = '2025-11-25') {
  const a = await initialize(sub, server, version)
  assert.equal(a.status, 200, a.text)
  const headers = {
    authorization: `Bearer ${await tokenOf(sub, server)}`,
    'mcp-session-id': a.headers['mcp-session-id'] as string,
    'mcp-protocol-version': version,
  }
  await postMcp(
    stack.local(server),
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    headers,
  )
  return headers
}

const call = (server: string, s: Record<string, string>, name: string, id = 2, args = {}) =>
  postMcp(
    stack.local(server),
    { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } },
    s,
  )

/** Opens a session as `sub` and crashes `server`'s process with a tool call on it. */
async function crash(sub: string, server: string): Promise<void> {
  const s = await open(sub, server)
  const a = await call(server, s, 'crash')
  assert.equal(a.json().error?.code, -32000, a.text)
}

/** The restart delays of `server`'s shared process so far, as the log tells them. */
const delays = (server: string) =>
  stack.logLines
    .map((l) => JSON.parse(l) as { msg?: string; server?: string; inMs?: number })
    .filter((l) => l.msg === 'shared server process restarting' && l.server === server)
    .map((l) => l.inMs)
/** How often a process of `server` became ready so far (each replica's starts), from the log. */
const readies = (server: string) =>
  stack.logLines
    .map((l) => JSON.parse(l) as { msg?: string; server?: string })
    .filter((l) => l.msg === 'shared server process ready' && l.server === server).length

/** The refusal on every transport and era: 429, Retry-After, -32029, data.retryAfter. */
function assertRefused(a: McpAnswer, retryAfter: number, id: unknown = null): void {
  assert.equal(a.status, 429, a.text)
  assert.equal(a.headers['retry-after'], String(retryAfter))
  assert.equal(a.headers['mcp-session-id'], undefined)
  const json = a.json()
  assert.equal(json.id, id)
  assertRefusal(json.error, retryAfter)
}

/** The JSON-RPC error of such a refusal. */
function assertRefusal(error: unknown, retryAfter: number): void {
  assert.deepEqual(error, {
    code: RPC_RATE_LIMITED,
    message: `the shared server process exited too often with your requests in flight (at most ${MAX} in ${WINDOW / 1000} s); retry in ${retryAfter} s`,
    data: { retryAfter },
  })
}

/** The audit lines of requests refused to `sub` for crashing a shared process. */
const refusals = (sub: string) =>
  stack
    .audit()
    .filter(
      (e) =>
        e.sub === sub && e.rule === 'limits.sharedCrashesPerSubject' && e.outcome === 'refused',
    )

/** A raw answer read whole, as an McpAnswer. */
async function answer(res: Awaited<ReturnType<typeof request>>): Promise<McpAnswer> {
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
}

describe('limits.sharedCrashesPerSubject and respawnStableAfter', () => {
  // First: `dead` fails from the stack's start, restarted every 80 ms until this test makes it
  // serve. Later in the file it ran ~80 starts (and their restarts) beside every other test.
  it('a process exiting before it is ready is restarted once per exit, each time later', async () => {
    await waitFor(() => delays('dead').length >= 6, 'six restarts were logged')
    // Stopped failing, so that the count below is final.
    writeFileSync(join(dir, 'dead-mode'), 'serve')
    await waitFor(() => readies('dead') === 1, 'the process is up')
    const starts = readFileSync(join(dir, 'dead-starts'), 'utf8').split('\n').filter(Boolean)
    const restarts = delays('dead')
    // One start at boot, then one per restart: no exit schedules two.
    assert.equal(starts.length, restarts.length + 1)
    assert.deepEqual(restarts.slice(0, 5), [10, 20, 40, 80, 80])
  })

  it('a user crashing the shared process is refused past the allowance; the restart delay doubles; another user works on', async () => {
    const t0 = now
    const bob = await open('bob', 'crashy')
    assert.equal((await call('crashy', bob, 'pid')).json().result?.content?.[0]?.type, 'text')
    for (let i = 0; i < MAX; i++) {
      now = t0 + i * 1000
      await crash('mallory', 'crashy')
    }
    // Each restart came twice as late: the process never served respawnStableAfter.
    await waitFor(() => delays('crashy').length === MAX, 'the restarts were logged')
    assert.deepEqual(delays('crashy'), [10, 20, 40])
    // Refused at once, before any process: 429, Retry-After until the oldest charge leaves.
    assertRefused(await initialize('mallory', 'crashy'), WINDOW / 1000 - 2)
    now = t0 + 30_000
    assertRefused(await initialize('mallory', 'crashy'), 30)
    const lines = refusals('mallory')
    assert.equal(lines.length, 2)
    assert.equal(lines[0]!.decision, 'rate_limited')
    assert.equal(lines[0]!.server, 'crashy')
    assert.equal(lines[0]!.method, 'initialize')
    const metrics = await (await request(`${stack.url}/metrics`)).body.text()
    assert.match(metrics, /mcp_edge_subject_shared_crashes_refused_total\{server="crashy"\} 2\b/)

    // Bob's session ended with the process (404: he initializes again), and he works on.
    assert.equal((await call('crashy', bob, 'pid', 3)).status, 404)
    const again = await open('bob', 'crashy')
    const pid = await call('crashy', again, 'pid', 4)
    assert.equal(pid.status, 200, pid.text)
    assert.match(pid.json().result.content[0].text, /^\d+$/)
    assert.equal(refusals('bob').length, 0)

    // The window slides: the oldest charge leaving lets mallory in again, for one more crash.
    now = t0 + WINDOW
    const ready = readies('crashy')
    await crash('mallory', 'crashy')
    assertRefused(await initialize('mallory', 'crashy'), 1)
    await waitFor(() => delays('crashy').length === MAX + 1, 'the restart was logged')
    assert.equal(delays('crashy').at(-1), 80, 'at respawnBackoffMax')

    // A process that served respawnStableAfter restarts after respawnBackoff again.
    await waitFor(() => readies('crashy') > ready, 'the process is back')
    now += STABLE
    await crash('trent', 'crashy')
    await waitFor(() => delays('crashy').length === MAX + 2, 'the restart was logged')
    assert.equal(delays('crashy').at(-1), 10)
  })

  it('a crash through another method (prompts/list) is charged the same', async () => {
    for (let i = 0; i < MAX; i++) {
      const s = await open('lister', 'lister')
      const a = await postMcp(
        stack.local('lister'),
        { jsonrpc: '2.0', id: 5, method: 'prompts/list' },
        s,
      )
      assert.equal(a.json().error?.code, -32000, a.text)
    }
    assertRefused(await initialize('lister', 'lister'), WINDOW / 1000)
    const other = await open('other', 'lister')
    assert.equal((await call('lister', other, 'pid')).status, 200)
  })

  it('a crashing call inside a batch is charged the same', async () => {
    for (let i = 0; i < MAX; i++) {
      const s = await open('batcher', 'batchy', '2025-03-26')
      const a = await postMcp(
        stack.local('batchy'),
        [
          { jsonrpc: '2.0', id: 1, method: 'ping' },
          { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'crash' } },
        ],
        s,
      )
      assert.equal(a.status, 200, a.text)
      assert.match(a.text, /-32000/)
    }
    assertRefused(await initialize('batcher', 'batchy', '2025-03-26'), WINDOW / 1000)
  })

  it('a cancel right after the crashing call, or a DELETE of its session, does not hide it', async () => {
    // The process exits on the cancellation, which the gateway sends once it forgot the call:
    // the client's own, or the one a DELETE of the session sends for its calls in flight.
    for (let i = 0; i < MAX; i++) {
      const s = await open('hider', 'canceller')
      const pending = call('canceller', s, 'gate', 7, { name: `never-${i}` })
      await waitFor(() => got('canceller', `never-${i}`), 'the call runs at the process')
      if (i % 2 === 0) {
        const cancel = await postMcp(
          stack.local('canceller'),
          {
            jsonrpc: '2.0',
            method: 'notifications/cancelled',
            params: { requestId: 7, reason: 'x' },
          },
          s,
        )
        assert.equal(cancel.status, 202, cancel.text)
      } else {
        const res = await request(stack.local('canceller'), { method: 'DELETE', headers: s })
        await res.body.dump()
        assert.ok(res.statusCode < 300, `DELETE answered ${res.statusCode}`)
      }
      await pending
      await waitFor(() => delays('canceller').length === i + 1, 'the process exited and restarts')
    }
    assertRefused(await initialize('hider', 'canceller'), WINDOW / 1000)
  })

  it('sessionless (2026-07-28): a crashing call loop is refused past the allowance', async () => {
    const token = await tokenOf('modernist', 'modern')
    for (let i = 0; i < MAX; i++) {
      const a = await answer(
        await request(stack.local('modern'), modernToolCall(token, 'crash', {}, { id: i + 1 })),
      )
      assert.equal(a.json().error?.code, -32000, a.text)
    }
    const mark = stack.audit().length
    assertRefused(
      await answer(
        await request(stack.local('modern'), modernToolCall(token, 'pid', {}, { id: 9 })),
      ),
      WINDOW / 1000,
      9,
    )
    assert.equal(refusals('modernist').length, 1)
    // The refused request's one line names it (the call and its tool), not `initialize`.
    const lines = stack
      .audit()
      .slice(mark)
      .filter((e) => e.sub === 'modernist')
    assert.deepEqual(
      lines.map((e) => [e.method, e.name, e.decision, e.rule]),
      [['tools/call', 'pid', 'rate_limited', 'limits.sharedCrashesPerSubject']],
    )
    // Another user's sessionless call runs.
    const other = await answer(
      await request(
        stack.local('modern'),
        modernToolCall(await tokenOf('innocent', 'modern'), 'pid', {}, { id: 3 }),
      ),
    )
    assert.equal(other.status, 200, other.text)
    assert.match(other.json().result.content[0].text, /^\d+$/)
  })

  it('legacy HTTP+SSE: crashing through /messages, then the stream is refused', async () => {
    const token = await tokenOf('oldtimer', 'legacy')
    for (let i = 0; i < MAX; i++) {
      const res = await request(`${stack.url}/sse/legacy`, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
      })
      assert.equal(res.statusCode, 200)
      const events = res.body[Symbol.asyncIterator]()
      let text = ''
      while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
      const endpoint = /event: endpoint\ndata: (.*)\n/.exec(text)![1]!
      const post = async (body: unknown) => {
        const r = await request(`${stack.url}${endpoint}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(body),
        })
        await r.body.dump()
        assert.equal(r.statusCode, 202)
      }
      await post(initializeOf('2024-11-05'))
      await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
      await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'crash' } })
      // The stream tells the call failed, then ends with the session.
      while (!text.includes('-32000')) {
        const next = await events.next()
        if (next.done) break
        text += String(next.value)
      }
      assert.match(text, /-32000/)
      res.body.destroy()
    }
    const res = await request(`${stack.url}/sse/legacy`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    })
    if (res.statusCode === 200) {
      res.body.destroy()
      assert.fail('a stream was opened past the allowance')
    }
    assertRefused(await answer(res), WINDOW / 1000)
  })

  it('an endpoint whose backend is shared: crashing through it is charged to the backend', async () => {
    const token = await tokenOf('aggressor', 'agg')
    const url = `${stack.url}/mcp/agg`
    for (let i = 0; i < MAX; i++) {
      const a = await answer(
        await request(url, modernToolCall(token, 'backend_crash', {}, { id: i + 1 })),
      )
      assert.equal(a.json().error?.code, -32000, a.text)
    }
    assertRefused(
      await answer(await request(url, modernToolCall(token, 'backend_pid', {}, { id: 8 }))),
      WINDOW / 1000,
      8,
    )
    // The endpoint's session era: the same refusal, as the answer to the call.
    const auth = { authorization: `Bearer ${token}` }
    const opened = await postMcp(url, initializeOf('2025-11-25'), auth)
    assert.equal(opened.status, 200, opened.text)
    const session = {
      ...auth,
      'mcp-session-id': opened.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    }
    await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)
    const refused = await postMcp(
      url,
      { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'backend_pid' } },
      session,
    )
    assert.equal(refused.status, 200, refused.text)
    assertRefusal(refused.json().error, WINDOW / 1000)
    // The backend itself refuses the same subject, and serves another.
    assertRefused(await initialize('aggressor', 'backend'), WINDOW / 1000)
    const other = await answer(
      await request(url, modernRequest(await tokenOf('bystander', 'agg'), 'tools/list', {})),
    )
    assert.equal(other.status, 200, other.text)
  })

  it('two attackers: each is refused after its own crashes; one with a victim in flight beside it shares the charge and is refused first', async () => {
    // Two attackers, each crashing alone: each is refused after its own MAX.
    for (let i = 0; i < MAX; i++) {
      await crash('m1', 'crashy')
      await crash('m2', 'crashy')
    }
    assertRefused(await initialize('m1', 'crashy'), WINDOW / 1000)
    assertRefused(await initialize('m2', 'crashy'), WINDOW / 1000)

    // An attacker crashing the process while a victim's call runs on it: each is charged half.
    // Two such crashes (1 each), then two alone (the attacker at 3): the attacker is refused,
    // the victim (at 1) is not.
    for (let i = 0; i < 2; i++) {
      const victim = await open('victim', 'crashy')
      const running = call('crashy', victim, 'gate', 7, { name: `v-${i}` })
      // The victim's call is in flight at the process before the attacker crashes it.
      await waitFor(() => got('crashy', `v-${i}`), "the victim's call runs at the process")
      await crash('m3', 'crashy')
      assert.equal((await running).json().error?.code, -32000)
    }
    const victim = await open('victim', 'crashy')
    await crash('m3', 'crashy')
    assert.equal((await call('crashy', victim, 'pid')).status, 404, 'its session ended')
    // Still allowed (2 charges): one more crash of its own, alone.
    await crash('m3', 'crashy')
    assertRefused(await initialize('m3', 'crashy'), WINDOW / 1000)
    const v = await open('victim', 'crashy')
    assert.equal((await call('crashy', v, 'pid')).status, 200)
    assert.equal(refusals('victim').length, 0)
  })

  it('shared by several replicas: a session on the replica still up is refused its next request', async () => {
    // Two sessions: one on each replica (the least loaded gets the next).
    const a = await open('duo', 'pair')
    const b = await open('duo', 'pair')
    const pidOf = async (s: Record<string, string>) =>
      Number((await call('pair', s, 'pid', 11)).json().result.content[0].text)
    const [pa, pb] = [await pidOf(a), await pidOf(b)]
    assert.notEqual(pa, pb)
    // Crashing the replica of `a` again and again (each new session lands there: it is empty).
    let s = a
    for (let i = 0; i < MAX; i++) {
      const ready = readies('pair')
      const r = await call('pair', s, 'crash', 12)
      assert.equal(r.json().error?.code, -32000, r.text)
      if (i === MAX - 1) break
      // Back up (a replica restarting takes no session), then the emptier of the two again.
      await waitFor(() => readies('pair') > ready, 'the crashed replica is back')
      s = await open('duo', 'pair')
      assert.equal((await pidOf(s)) === pb, false, 'on the replica that crashed')
    }
    // The session on the other replica lives on, and its next request is refused.
    const refused = await call('pair', b, 'pid', 13)
    assert.equal(refused.status, 200, refused.text)
    assert.equal(refused.json().id, 13)
    assertRefusal(refused.json().error, WINDOW / 1000)
    assert.equal(refusals('duo').at(-1)?.method, 'tools/call')
  })
})
