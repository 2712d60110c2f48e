// Stop 28 (brief review36): an outside attacker with low-privilege tokens (several accounts)
// against last stop's new code: each shared process exit charged to the subjects in flight
// (bridge/shared-crashes.ts, replica.ts, channel.ts). Real processes, a real gateway and IdP,
// raw HTTP; the crash windows' clock is the test's (nothing sleeps).
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { RPC_RATE_LIMITED } from '../../gateway/http/respond.js'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { SharedCrashes } from '../../gateway/bridge/shared-crashes.js'
import { configSchema } from '../../gateway/config/schema.js'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { postMcp, type McpAnswer } from '../helpers/post-mcp.js'
import { principal } from '../helpers/principal.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const WINDOW = 600_000
const REQUEST_TIMEOUT = 60_000
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop28-'))
const recordOf = (server: string) => join(dir, `${server}.jsonl`)
const got = (server: string, text: string) =>
  existsSync(recordOf(server)) && readFileSync(recordOf(server), 'utf8').includes(text)
/**
 * The server without the SDK in shared mode: the cases ask of it pid, gate and crash, and its
 * ~16 starts and restarts each paid the SDK's imports (~0.2 s of CPU) in the fixture.
 */
const shared = (name: string) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'plain.js')],
  mode: 'shared',
  respawnBackoff: 10,
  respawnBackoffMax: 80,
  respawnStableAfter: 3600_000,
  requestTimeout: REQUEST_TIMEOUT,
  env: { PLAIN_RECORD_FILE: recordOf(name) },
})
// The plain server behind a wrapper whose first start also starts a helper holding its stdout (a
// server running a background command): when the server exits, its stdout stays open until
// the test ends the helper (its pid in a file). Restarts start none.
const helperPid = join(dir, 'leaky-helper.pid')
const wrapper = join(dir, 'leaky.mjs')
writeFileSync(
  wrapper,
  `import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
if (!existsSync(${JSON.stringify(helperPid)})) {
  const helper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)'], {
    stdio: ['ignore', 'inherit', 'ignore'],
    detached: true,
  })
  helper.unref()
  writeFileSync(${JSON.stringify(helperPid)}, String(helper.pid))
}
await import(${JSON.stringify(join(SERVERS_DIR, 'plain.js'))})
`,
)
const SERVERS = {
  leaky: {
    ...shared('leaky'),
    args: [wrapper],
    // Longer than the helper lives: the gateway waits for the stdout, as for any slow close.
    stopGrace: 60_000,
  },
  probed: { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] },
  held: shared('held'),
  pair: { ...shared('pair'), replicas: 2 },
  trio: { ...shared('trio'), replicas: 2 },
  stale: shared('stale'),
  recent: shared('recent'),
  // The fixture: it answers a cancelled call, then exits (FIXTURE_ANSWER_CANCELLED_THEN_EXIT).
  racer: {
    ...shared('racer'),
    args: [join(SERVERS_DIR, 'fixture.js')],
    env: { FIXTURE_RECORD_FILE: recordOf('racer'), FIXTURE_ANSWER_CANCELLED_THEN_EXIT: '1' },
  },
}
const POLICY =
  TEST_POLICY +
  Object.keys(SERVERS)
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')

let now = 1_000_000
let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { limits: { sharedCrashesPerSubject: 1, sharedCrashesWindow: WINDOW } },
    sharedClock: () => now,
  })
})
after(async () => {
  // The helper holds the leaky process's stdout: ended (if a test did not), or closing waits.
  try {
    process.kill(Number(readFileSync(helperPid, 'utf8')))
  } catch {}
  await stack.close()
  rmSync(dir, { recursive: true, force: true })
})

const tokenOf = (sub: string, server: string) => stack.forge({ sub, aud: stack.endpoint(server) })

async function initialize(sub: string, server: string, version = '2025-11-25'): Promise<McpAnswer> {
  return postMcp(
    stack.local(server),
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: version,
        capabilities: {},
        clientInfo: { name: 'c', version: '0' },
      },
    },
    { authorization: `Bearer ${await tokenOf(sub, server)}` },
  )
}

async function open(
  sub: string,
  server: string,
  version = '2025-11-25',
): Promise<Record<string, string>> {
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

const restarts = (server: string) =>
  stack.logLines
    .map((l) => JSON.parse(l) as { msg?: string; server?: string })
    .filter((l) => l.msg === 'shared server process restarting' && l.server === server).length

/** `sub`'s call on `server` runs at the process; the client then cancels it (no answer comes). */
async function cancelOne(sub: string, server: string, marker: string): Promise<void> {
  const s = await open(sub, server)
  const pending = call(server, s, 'gate', 7, { name: marker })
  await waitFor(() => got(server, marker), 'the call runs at the process')
  const cancel = await postMcp(
    stack.local(server),
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7 } },
    s,
  )
  assert.equal(cancel.status, 202, cancel.text)
  await pending
}

/** `sub` crashes `server`'s process with a call of its own, and it is restarting. */
async function crash(sub: string, server: string): Promise<void> {
  const before = restarts(server)
  const s = await open(sub, server)
  const a = await call(server, s, 'crash')
  assert.equal(a.json().error?.code, -32000, a.text)
  await waitFor(() => restarts(server) > before, 'the process exited and restarts')
  await waitFor(async () => (await initialize('probe', server)).status === 200, 'back up')
}

async function answerOf(res: Awaited<ReturnType<typeof request>>): Promise<McpAnswer> {
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
}

function assertRefused(a: McpAnswer): void {
  assert.equal(a.status, 429, a.text)
  assert.equal(a.json().error?.code, RPC_RATE_LIMITED)
}

describe('stop28: shared process exits charged to the subjects in flight', () => {
  it('a request its user cancelled minutes ago is not in flight: a later crash by someone else is not charged to that user', async () => {
    // The MCP SDK's servers never answer a cancelled request (spec: SHOULD NOT), so the
    // gateway's note that it may still run stayed for the process's whole life: whoever cancelled
    // a call (or whose call the gateway timed out, or who closed a session with one in flight)
    // was charged a share of the next exit, however much later. Two attacker accounts taking
    // turns, each crashing once after a victim's routine cancel, got the victim refused (1 of 1)
    // while each attacker stood at a half (medium: a low-privilege user locks another out of a
    // shared server). Now a cancelled request counts for requestTimeout after its cancel.
    for (const attacker of ['mallory-1', 'mallory-2']) {
      await cancelOne('victim', 'stale', `stale-${attacker}`)
      now += 2 * REQUEST_TIMEOUT
      await crash(attacker, 'stale')
    }
    const v = await initialize('victim', 'stale')
    assert.equal(v.status, 200, `the victim was refused: ${v.text}`)
    // Each attacker account was alone in flight at its crash: charged whole, refused.
    for (const attacker of ['mallory-1', 'mallory-2'])
      assertRefused(await initialize(attacker, 'stale'))
  })

  it('held: a call cancelled just before the crash is still charged to whoever cancelled it', async () => {
    // Cancel the crashing call at once: within requestTimeout the cancelled call still counts.
    await cancelOne('hider', 'recent', 'recent-hider')
    now += REQUEST_TIMEOUT / 2
    await crash('bystander', 'recent')
    // hider and bystander: a half each.
    await cancelOne('hider', 'recent', 'recent-hider-2')
    await crash('bystander-2', 'recent')
    assertRefused(await initialize('hider', 'recent'))
    assert.equal((await initialize('bystander', 'recent')).status, 200)
  })

  it('a cancel the process answers the call for, then exits on, is still charged to whoever cancelled', async () => {
    // The process answered the call once the cancel had left the gateway (it finished just as
    // the cancel came) and then exited handling the cancel: the late answer made the gateway
    // forget the call, and the exit was charged to no one. Measured with a server exiting on any
    // cancellation, a ping and its cancel escaped the charge 7 times in 10, so a user could crash
    // a shared process for everyone without ever reaching the allowance (medium). Now a cancelled
    // call counts for requestTimeout after its cancel, answered or not.
    const before = restarts('racer')
    const s = await open('sly', 'racer')
    const pending = call('racer', s, 'gate', 7, { name: 'sly' })
    await waitFor(() => got('racer', '"sly"'), 'the call runs at the process')
    const cancel = await postMcp(
      stack.local('racer'),
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7 } },
      s,
    )
    assert.equal(cancel.status, 202, cancel.text)
    await pending
    await waitFor(() => restarts('racer') > before, 'the process exited and restarts')
    assert.ok(
      stack.logLines.some((l) => l.includes('answered the cancelled request, exiting')),
      'the process answered the call before it exited',
    )
    // Alone in flight (a cancelled call of its own): charged whole, at the allowance (1).
    assertRefused(await initialize('sly', 'racer'))
  })

  // The channel audited its refusal (rate_limited, in shared-crashes.ts) and then delivered it
  // as the process's answer, which the session audited again as any answered request: `allow`
  // with outcome `error -32029`. One request, two lines that disagreed (and two decision
  // counts). Fixed by misc37: the channel marks its refusal (refused.ts markRefused) and the
  // session that relays it writes the one rate_limited line.
  it('a request refused inside a session (another replica still serves it) is one audit line', async () => {
    const a = await open('duo', 'pair')
    const b = await open('duo', 'pair')
    const pidOf = async (s: Record<string, string>) =>
      (await call('pair', s, 'pid', 11)).json().result.content[0].text as string
    assert.notEqual(await pidOf(a), await pidOf(b), 'one session on each replica')
    const before = restarts('pair')
    assert.equal((await call('pair', a, 'crash', 12)).json().error?.code, -32000)
    await waitFor(() => restarts('pair') > before, 'the process exited and restarts')
    const mark = stack.audit().length
    const refused = await call('pair', b, 'pid', 13)
    assert.equal(refused.json().error?.code, RPC_RATE_LIMITED, refused.text)
    const lines = stack
      .audit()
      .slice(mark)
      .filter((e) => e.sub === 'duo')
    assert.deepEqual(
      lines.map((e) => [e.method, e.decision, e.rule, e.outcome]),
      [['tools/call', 'rate_limited', 'limits.sharedCrashesPerSubject', 'refused']],
    )
  })

  it('sessionless, on a lane of its own the crash left running: 429 with Retry-After, one audit line', async () => {
    // A user's lane on one replica, its session on the other; crashing through the session
    // left the lane, and its next sessionless call went through it: answered 200 with the
    // refusal as the process's error (no 429, no Retry-After, unlike every other sessionless
    // refusal) and audited twice, rate_limited and allow/error (low). Now a shared server's
    // lease is refused before any lane, a held one too.
    const token = await tokenOf('trio', 'trio')
    const first = await answerOf(
      await request(stack.local('trio'), modernToolCall(token, 'pid', {}, { id: 1 })),
    )
    const lanePid = first.json().result.content[0].text
    const s = await open('trio', 'trio')
    const sessionPid = (await call('trio', s, 'pid', 11)).json().result.content[0].text
    assert.notEqual(lanePid, sessionPid, 'the lane and the session on different replicas')
    const before = restarts('trio')
    assert.equal((await call('trio', s, 'crash', 12)).json().error?.code, -32000)
    await waitFor(() => restarts('trio') > before, 'the process exited and restarts')
    const mark = stack.audit().length
    const a = await answerOf(
      await request(
        stack.local('trio'),
        modernToolCall(token, 'gate', { name: 'trio-marker' }, { id: 2 }),
      ),
    )
    assert.equal(a.status, 429, a.text)
    assert.equal(a.headers['retry-after'], String(WINDOW / 1000))
    assert.equal(a.json().id, 2)
    assert.equal(a.json().error?.code, RPC_RATE_LIMITED)
    assert.equal(got('trio', 'trio-marker'), false, 'the process saw nothing')
    assert.deepEqual(
      stack
        .audit()
        .slice(mark)
        .filter((e) => e.sub === 'trio')
        .map((e) => [e.method, e.name, e.decision, e.rule, e.outcome]),
      [['tools/call', 'gate', 'rate_limited', 'limits.sharedCrashesPerSubject', 'refused']],
    )
  })
})

describe('stop28: held, a subject past its allowance reaches the process by no route', () => {
  it('new sessions of any era, sessionless calls and lists, another client of the same user, legacy streams: 429, -32029, nothing at the process', async () => {
    await crash('hostile', 'held')
    const marker = 'hostile-marker'
    const answer = answerOf
    const token = await tokenOf('hostile', 'held')
    const otherClient = await stack.forge({
      sub: 'hostile',
      aud: stack.endpoint('held'),
      azp: 'another-client',
      client_id: 'another-client',
    })
    const cases: [string, () => Promise<McpAnswer>, unknown][] = [
      ['initialize 2025-11-25', () => initialize('hostile', 'held'), null],
      ['initialize 2025-03-26', () => initialize('hostile', 'held', '2025-03-26'), null],
      ['initialize 2024-11-05', () => initialize('hostile', 'held', '2024-11-05'), null],
      [
        'sessionless tools/call',
        async () =>
          answer(
            await request(
              stack.local('held'),
              modernToolCall(token, 'gate', { name: `${marker}-1` }, { id: 41 }),
            ),
          ),
        41,
      ],
      [
        'sessionless tools/list',
        async () =>
          answer(
            await request(stack.local('held'), modernRequest(token, 'tools/list', {}, { id: 42 })),
          ),
        42,
      ],
      [
        'sessionless call, another client of the same user',
        async () =>
          answer(
            await request(
              stack.local('held'),
              modernToolCall(otherClient, 'gate', { name: `${marker}-2` }, { id: 43 }),
            ),
          ),
        43,
      ],
      [
        'legacy GET /sse',
        async () =>
          answer(
            await request(`${stack.url}/sse/held`, {
              headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
            }),
          ),
        null,
      ],
    ]
    for (const [what, send, id] of cases) {
      const mark = stack.audit().length
      const a = await send()
      assert.equal(a.status, 429, `${what}: ${a.text}`)
      assert.ok(Number(a.headers['retry-after']) > 0, what)
      assert.equal(a.json().id, id, what)
      assert.equal(a.json().error?.code, RPC_RATE_LIMITED, what)
      assert.equal(a.headers['mcp-session-id'], undefined, what)
      // One audit line, the refusal's (the audit is written before the answer goes).
      assert.deepEqual(
        stack
          .audit()
          .slice(mark)
          .filter((e) => e.sub === 'hostile')
          .map((e) => [e.decision, e.rule, e.outcome]),
        [['rate_limited', 'limits.sharedCrashesPerSubject', 'refused']],
        what,
      )
    }
    assert.equal(got('held', marker), false, 'the process saw none of it')
    // Another user is served.
    const other = await open('passer-by', 'held')
    assert.equal((await call('held', other, 'pid')).status, 200)
  })
})

describe("stop28: held, another subject's session id answers exactly as an unknown one", () => {
  // Status, body and every header but the per-response ones (date, request id) alike, on every
  // transport that takes a session id: nothing tells a probe the id exists (session-probe.ts).
  const PER_RESPONSE = new Set(['date', 'x-request-id', 'content-length'])
  const shape = async (res: Awaited<ReturnType<typeof request>>) => {
    const text = await res.body.text()
    const headers = Object.fromEntries(
      Object.entries(res.headers).filter(([k]) => !PER_RESPONSE.has(k.toLowerCase())),
    )
    return { status: res.statusCode, headers, text }
  }
  const list = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' })
  it('POST, GET and DELETE /mcp and legacy POST /messages', async () => {
    const alice = await open('alice', 'probed')
    const id = alice['mcp-session-id']!
    const unknown = randomBytes(id.length / 2).toString('hex')
    const bob = `Bearer ${await tokenOf('bob', 'probed')}`
    const modern = (method: string, sid: string) =>
      request(stack.local('probed'), {
        method: method as 'POST',
        headers: {
          authorization: bob,
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-11-25',
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        ...(method === 'POST' ? { body: list } : {}),
      })
    const legacy = (sid: string) =>
      request(`${stack.url}/messages/probed?sessionId=${sid}`, {
        method: 'POST',
        headers: { authorization: bob, 'content-type': 'application/json' },
        body: list,
      })
    for (const [what, send] of [
      ['POST /mcp', (sid: string) => modern('POST', sid)],
      ['GET /mcp', (sid: string) => modern('GET', sid)],
      ['DELETE /mcp', (sid: string) => modern('DELETE', sid)],
      ['POST /messages', legacy],
    ] as const) {
      const a = await shape(await send(unknown))
      const b = await shape(await send(id))
      assert.equal(a.status, 404, `${what}: ${a.text}`)
      assert.deepEqual(b, a, what)
    }
    // Alice's session lives on.
    assert.equal((await call('probed', alice, 'pid')).status, 200)
  })
})

describe('stop28: a shared process that exited while a helper holds its stdout', () => {
  // child.ts calls a process alive until its stdout closes (every message it wrote is read),
  // up to stopGrace after its exit when a helper it started holds the pipe. Meanwhile the
  // replica still looks ready: a new session attaches to the dead process (its initialize is
  // answered from the cache) and its call fails at once (the stdin closed with the exit), yet
  // the call stayed in the process's requests in flight, so when the stdout finally closed that
  // user was charged a share of an exit it had no part in. An attacker crashing a server that
  // runs background commands got every user active in that window charged with it, diluting
  // its own share (low: server-specific, at most stopGrace). Then a request that could not be
  // written was not in flight. Now (live29) the exit alone makes the process dead: a new
  // session attaches to its replacement, started at once (after the backoff), and its calls are
  // answered there; the exit is charged once, when the stdout closes, to those in flight then.
  it('a session opened after its exit is served by the replacement, and not charged for the exit', async () => {
    const a = await open('arsonist', 'leaky')
    const pid = Number((await call('leaky', a, 'pid')).json().result.content[0].text)
    const before = restarts('leaky')
    // Its answer comes once the exit is handled: not waited for here.
    const crashed = call('leaky', a, 'crash', 3)
    await waitFor(() => {
      try {
        process.kill(pid, 0)
        return false
      } catch {
        return true
      }
    }, 'the process exited (its helper lives on)')
    const mark = stack.logLines.length
    // Restarting already, though its stdout is still open.
    assert.equal(restarts('leaky'), before + 1)
    const late = await initialize('latecomer', 'leaky')
    assert.equal(late.status, 200, late.text)
    const s = {
      authorization: `Bearer ${await tokenOf('latecomer', 'leaky')}`,
      'mcp-session-id': late.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    }
    await postMcp(stack.local('leaky'), { jsonrpc: '2.0', method: 'notifications/initialized' }, s)
    const c = await call('leaky', s, 'pid', 4)
    const served = Number(c.json().result?.content[0].text)
    assert.ok(served > 0 && served !== pid, c.text)
    // The helper ends: the stdout closes, the exit is handled.
    process.kill(Number(readFileSync(helperPid, 'utf8')))
    const crash = await crashed
    assert.ok(crash.json().error, crash.text)
    await waitFor(
      () =>
        stack.logLines
          .slice(mark)
          .some((l) =>
            (JSON.parse(l) as { msg?: string }).msg?.startsWith(
              'shared server process exit charged',
            ),
          ),
      'the exit was charged',
    )
    const charged = stack.logLines
      .slice(mark)
      .map((l) => JSON.parse(l) as { msg?: string; blamed?: string[] })
      .filter((l) => l.msg?.startsWith('shared server process exit charged'))
    assert.deepEqual(
      charged.map((l) => l.blamed),
      [['arsonist']],
    )
    // The latecomer's session is on the replacement: it lives on.
    assert.equal(restarts('leaky'), before + 1)
    assert.ok((await call('leaky', s, 'pid', 5)).json().result, 'still served')
  })
})

describe('stop28: SharedCrashes against accounts taking turns', () => {
  it('a bystander in flight at every exit is refused while two attacker accounts alternating are not', {
    todo: 'design: per-subject shares cannot tell two accounts of one attacker from two users; see report',
  }, () => {
    const config = configSchema.parse({
      servers: { s: { command: 'x', mode: 'shared' } },
      limits: { sharedCrashesWindow: WINDOW, sharedCrashesPerSubject: 3 },
    })
    const crashes = new SharedCrashes({ config, log: pino({ level: 'silent' }), now: () => 0 })
    for (let i = 0; i < 6; i++)
      crashes.crashed('s', [principal(i % 2 === 0 ? 'm1' : 'm2'), principal('busy-victim')])
    const refused = (sub: string) => {
      try {
        crashes.check('s', principal(sub), 'tools/call')
        return false
      } catch (err) {
        assert.ok(err instanceof BridgeError)
        return true
      }
    }
    // Each attacker account stands at 1.5 of 3, the victim at 3: the victim alone is refused.
    assert.equal(refused('m1') || refused('m2'), true, 'an attacker account is refused first')
  })
})
