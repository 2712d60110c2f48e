// An endpoint's session-era sessions count toward their user's and the gateway's session bounds
// (limits.maxSessionsPerSubject, limits.maxSessions) together with server sessions and lanes, not
// in a count of their own: a user at their bound is refused at the endpoint and at a server alike,
// with the refusal a server session gets there (429 subject_session_limit / 503
// too_many_sessions, the same text), and no process starts for it; another user still opens.
// Ending one (DELETE, the legacy stream closed, the idle reaper) gives its place back, and at the
// bound the least recently used idle session gives way, of a server or of an endpoint alike.
// Real gateway, real conformance processes, the SDK v2 client holding sessions (each listens, so
// none is idle); the refused opens are raw, in every era that opens a session.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { request } from 'undici'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ownerKey } from '../../gateway/bridge/session.js'
import { initBody } from '../checklist/open-session.js'
import { openAndDelete, stubbornServer } from '../helpers/held-stacks.js'
import { listeningClient } from '../helpers/listening-client.js'
import { pidsIn } from '../helpers/pids.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ERAS = ['2025-03-26', '2025-06-18', '2025-11-25', 'legacy'] as const
type Era = (typeof ERAS)[number]

const ALLOW = '    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n'
const POLICY = `${TEST_POLICY}  eb:\n${ALLOW}  pb:\n${ALLOW}  stub:\n${ALLOW}`
/** The stubborn helpers `stub`'s processes started (servers/holder.js). */
const stubPids = join(mkdtempSync(join(tmpdir(), 'endpoint-bounds-')), 'pids')
const killStubs = () => {
  for (const pid of pidsIn(stubPids))
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
}
const conformance = (name: string) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'conformance.js'), name],
  pool: { min: 0 },
})

/** The live processes of the conformance server started as `name`. */
function pidsOf(name: string): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
  return out
    .split('\n')
    .filter((l) => l.trim().endsWith(` ${name}`))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
}

const USER_LIMIT =
  'you have 2 sessions in use on this gateway (sessionless requests count as sessions), the most allowed; end one (DELETE) or retry later'

let stack: Stack
let clock = Date.now()
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      eb: conformance('eb'),
      pb: conformance('pb'),
      // Its group outlives its session (a helper ignoring SIGTERM) until the test ends it.
      stub: stubbornServer(stubPids),
    },
    config: {
      limits: { maxSessionsPerSubject: 2, maxSessions: 4 },
      endpoints: { agg: { servers: ['eb'], idleTimeout: 1000 } },
    },
    sessionClock: () => clock,
  })
})
after(async () => {
  killStubs()
  await stack.close()
})

const aggUrl = () => `${stack.url}/mcp/agg`
const held: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.allSettled(held.splice(0).map((c) => c.close()))
  await waitFor(() => stack.gateway.registry.bounds.count(scopeOf({})) === 0, 'every hold gone')
})

const tokenFor = (user: string, target: 'agg' | 'pb') =>
  stack.token(user, { resource: target === 'agg' ? aggUrl() : stack.endpoint('pb') })
const urlOf = (target: 'agg' | 'pb') => (target === 'agg' ? aggUrl() : stack.local('pb'))

/**
 * A session held by the SDK client, once its listening stream is open (it is never idle then);
 * `end` DELETEs it, as the afterEach does.
 */
async function hold(user: string, target: 'agg' | 'pb') {
  const { c, end } = await listeningClient(
    urlOf(target),
    await tokenFor(user, target),
    `bounds-${user}`,
  )
  held.push({ close: end })
  return { c, end }
}

interface Answer {
  status: number
  headers: Record<string, unknown>
  text: string
}

/** An open in `era`, raw: its answer (a legacy stream opened is closed at once). */
async function open(era: Era, target: 'agg' | 'pb', user: string): Promise<Answer> {
  const auth = { authorization: `Bearer ${await tokenFor(user, target)}` }
  if (era === 'legacy') {
    const res = await request(`${stack.url}/sse/${target}`, {
      headers: { accept: 'text/event-stream', ...auth },
    })
    if (res.statusCode !== 200)
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    // Its first event (the endpoint) says it opened; then it ends.
    const events = res.body[Symbol.asyncIterator]()
    let text = ''
    while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
    res.body.destroy()
    return { status: 200, headers: res.headers, text }
  }
  const res = await postMcp(urlOf(target), initBody({}, era), auth)
  const sid = res.headers['mcp-session-id'] as string | undefined
  if (sid !== undefined) {
    const del = await request(urlOf(target), {
      method: 'DELETE',
      headers: { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': era },
    })
    await del.body.dump()
  }
  return { status: res.status, headers: res.headers, text: res.text }
}

const count = (user: string) =>
  stack.gateway.registry.bounds.count(
    scopeOf({ owner: ownerKey({ iss: stack.gateway.issuer!, sub: user } as never) }),
  )

/** The refusal a server session gets at limits.maxSessionsPerSubject, and nothing started. */
function assertRefused(a: Answer, what: string): void {
  assert.equal(a.status, 429, `${what}: ${a.status} ${a.text}`)
  assert.equal(a.headers['retry-after'], undefined, 'no made-up Retry-After')
  const body = JSON.parse(a.text)
  assert.equal(body.error.code, -32000, a.text)
  assert.equal(body.error.message, USER_LIMIT, what)
}

describe('endpoint sessions count toward limits.maxSessionsPerSubject (2) with server sessions', () => {
  for (const era of ERAS)
    it(`${era}: alice at her bound (an endpoint session and a server session) is refused at both; bob opens both`, async () => {
      await hold('alice', 'agg')
      await hold('alice', 'pb')
      assert.equal(count('alice'), 2)
      const processes = [pidsOf('eb').length, pidsOf('pb').length]
      assertRefused(await open(era, 'agg', 'alice'), 'at the endpoint')
      assertRefused(await open(era, 'pb', 'alice'), 'at the server')
      assert.deepEqual([pidsOf('eb').length, pidsOf('pb').length], processes, 'nothing started')
      assert.equal(count('alice'), 2)
      // Another user is not held to alice's bound.
      assert.equal((await open(era, 'agg', 'bob')).status, 200)
      assert.equal((await open(era, 'pb', 'bob')).status, 200)
    })

  it('two endpoint sessions (the SDK client) fill the bound: a server session is refused; one DELETEd, it opens and serves', async () => {
    const first = await hold('alice', 'agg')
    await hold('alice', 'agg')
    assertRefused(await open('2025-11-25', 'pb', 'alice'), 'at the server')
    await first.end()
    await waitFor(() => count('alice') === 1, 'the DELETEd session stops counting')
    const opened = await hold('alice', 'pb')
    const tools = await opened.c.listTools()
    assert.ok(tools.tools.length > 0)
  })

  it('a legacy endpoint session counts until its stream closes', async () => {
    await hold('alice', 'pb')
    const auth = { authorization: `Bearer ${await tokenFor('alice', 'agg')}` }
    const res = await request(`${stack.url}/sse/agg`, {
      headers: { accept: 'text/event-stream', ...auth },
    })
    assert.equal(res.statusCode, 200)
    const events = res.body[Symbol.asyncIterator]()
    let text = ''
    while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
    assert.equal(count('alice'), 2)
    assertRefused(await open('2025-06-18', 'agg', 'alice'), 'at the endpoint')
    res.body.destroy()
    await waitFor(() => count('alice') === 1, 'the closed stream stops counting')
    assert.equal((await open('2025-06-18', 'agg', 'alice')).status, 200)
  })

  it('an idle endpoint session reaped gives its place back', async () => {
    await hold('alice', 'pb')
    // A client that only POSTs: no stream, idle once initialized.
    const auth = { authorization: `Bearer ${await tokenFor('alice', 'agg')}` }
    const res = await postMcp(aggUrl(), initBody({}, '2025-11-25'), auth)
    assert.equal(res.status, 200, res.text)
    assert.equal(count('alice'), 2)
    clock += 120_000
    await waitFor(() => count('alice') === 1, 'the reaper ended it')
  })

  it("at the bound the least recently used idle session gives way, an endpoint's as a server's", async () => {
    await hold('alice', 'pb')
    const auth = { authorization: `Bearer ${await tokenFor('alice', 'agg')}` }
    const idle = await postMcp(aggUrl(), initBody({}, '2025-11-25'), auth)
    assert.equal(idle.status, 200, idle.text)
    const sid = idle.headers['mcp-session-id'] as string
    const reclaimed = () =>
      stack.logLines.filter((l) => l.includes('idle endpoint session reclaimed to make room'))
    const before = reclaimed().length
    // A server session opens in its place.
    const opened = await postMcp(stack.local('pb'), initBody({}, '2025-11-25'), {
      authorization: `Bearer ${await tokenFor('alice', 'pb')}`,
    })
    assert.equal(opened.status, 200, opened.text)
    held.push({
      close: async () => {
        await (
          await request(stack.local('pb'), {
            method: 'DELETE',
            headers: {
              authorization: `Bearer ${await tokenFor('alice', 'pb')}`,
              'mcp-session-id': opened.headers['mcp-session-id'] as string,
              'mcp-protocol-version': '2025-11-25',
            },
          })
        ).body.dump()
      },
    })
    assert.equal(reclaimed().length, before + 1)
    const gone = await postMcp(
      aggUrl(),
      { jsonrpc: '2.0', id: 2, method: 'ping' },
      {
        ...auth,
        'mcp-session-id': sid,
        'mcp-protocol-version': '2025-11-25',
      },
    )
    assert.equal(gone.status, 404, 'the idle endpoint session was the one ended')
    assert.equal(count('alice'), 2)
  })
})

describe('two endpoint opens waiting at the bound for the same ended process', () => {
  it('once it is gone, the first is counted before the second looks: one opens, the other is refused', async () => {
    await hold('alice', 'agg')
    // A server session of alice's, ended, its group left running (its helper ignores SIGTERM).
    const auth = { authorization: `Bearer ${await stack.token('alice', { server: 'stub' })}` }
    await openAndDelete(stack, 'stub', auth)
    assert.equal(count('alice'), 2, 'the ended one counts while its group is stopped')
    const waiting = () =>
      stack.logLines.filter((l) => l.includes('at a bound: waiting for ended sessions or lanes'))
        .length
    const before = waiting()
    const aliceAgg = { authorization: `Bearer ${await tokenFor('alice', 'agg')}` }
    const opens = [1, 2].map(() => postMcp(aggUrl(), initBody({}, '2025-11-25'), aliceAgg))
    await waitFor(() => waiting() >= before + 2, 'both opens waiting')
    killStubs()
    const answers = await Promise.all(opens)
    for (const a of answers) {
      const sid = a.headers['mcp-session-id'] as string | undefined
      if (sid === undefined) continue
      const headers = { ...aliceAgg, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }
      held.push({
        close: async () => (await request(aggUrl(), { method: 'DELETE', headers })).body.dump(),
      })
    }
    // As two server sessions do (ending-holds.test.ts): one opens, the other is refused (the
    // first, not answered yet, is not idle).
    assert.deepEqual(
      answers.map((a) => a.status).sort(),
      [200, 429],
      answers.map((a) => a.text).join('\n'),
    )
    assertRefused(answers.find((a) => a.status === 429)!, 'the second')
    assert.equal(count('alice'), 2)
  })
})

describe('at the bound, the idlest session gives way, of whichever kind', () => {
  /** A session of `target` that only POSTs (idle once open), opened at the clock's `at`; its id. */
  const idleOne = async (target: 'agg' | 'pb', at: number) => {
    clock = at
    const auth = { authorization: `Bearer ${await tokenFor('alice', target)}` }
    const res = await postMcp(urlOf(target), initBody({}, '2025-11-25'), auth)
    assert.equal(res.status, 200, res.text)
    const sid = res.headers['mcp-session-id'] as string
    const alive = async () =>
      (
        await postMcp(
          urlOf(target),
          { jsonrpc: '2.0', id: 2, method: 'ping' },
          {
            ...auth,
            'mcp-session-id': sid,
            'mcp-protocol-version': '2025-11-25',
          },
        )
      ).status === 200
    const end = async () =>
      (
        await request(urlOf(target), {
          method: 'DELETE',
          headers: { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
        })
      ).body.dump()
    held.push({ close: end })
    return { alive }
  }
  for (const [older, newer] of [
    ['agg', 'pb'],
    ['pb', 'agg'],
  ] as const)
    it(`the ${older === 'agg' ? 'endpoint' : 'server'} session, less recently used, is ended for a new one`, async () => {
      const base = clock
      const old = await idleOne(older, base + 10)
      const recent = await idleOne(newer, base + 20)
      clock = base + 30
      assert.equal(count('alice'), 2)
      assert.equal((await open('2025-11-25', newer, 'alice')).status, 200)
      assert.equal(await recent.alive(), true, 'the more recently used one stays')
      assert.equal(await old.alive(), false, 'the least recently used one was ended')
    })
})

describe('endpoint sessions count toward limits.maxSessions (4)', () => {
  it('alice and bob hold four: dora is refused 503 at the endpoint and at the server, with no process started', async () => {
    await hold('alice', 'agg')
    await hold('alice', 'pb')
    await hold('bob', 'agg')
    await hold('bob', 'agg')
    const processes = [pidsOf('eb').length, pidsOf('pb').length]
    for (const target of ['agg', 'pb'] as const) {
      const a = await open('2025-11-25', target, 'dev')
      assert.equal(a.status, 503, `${target}: ${a.text}`)
      assert.equal(
        JSON.parse(a.text).error.message,
        'the gateway is at its session limit; retry later',
      )
    }
    assert.deepEqual([pidsOf('eb').length, pidsOf('pb').length], processes, 'nothing started')
  })
})
