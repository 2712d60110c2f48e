// Process lifetimes: warm pools, limits, idle reaping, identity env, shared multiplexing,
// faults injected with the fixture server, and shutdown leaving no process behind.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { Pool } from 'undici'
import { IdleClock } from '../helpers/idle-clock.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const node = process.execPath
const SHARED_RECORD = join(mkdtempSync(join(tmpdir(), 'mcp-edge-shared-')), 'record.jsonl')
/** What the `shared` process received: a test acts once a call is there. */
const SHARED_CALLS = join(mkdtempSync(join(tmpdir(), 'mcp-edge-shared-')), 'calls.jsonl')
const sharedGot = (text: string) =>
  existsSync(SHARED_CALLS) && readFileSync(SHARED_CALLS, 'utf8').includes(text)
const fixture = join(SERVERS_DIR, 'fixture.js')
/**
 * Where a case needs of the process only that it starts, answers and ends (pools, limits,
 * reaping): the server without the SDK, whose imports cost each of their ~20 starts ~0.2 s of CPU.
 */
const plain = join(SERVERS_DIR, 'plain.js')
const SERVERS = {
  pooled: { command: node, args: [plain], pool: { min: 2, max: 4 } },
  limited: { command: node, args: [plain], maxSessions: 2, maxSessionsPerSubject: 1 },
  sleepy: { command: node, args: [plain], idleTimeout: 300 },
  identity: {
    command: node,
    args: [fixture],
    identityEnv: true,
    pool: { min: 1 },
    inheritEnv: ['MCP_EDGE_TEST_SHARED'],
  },
  // Only for the call that must be cut: every call here must beat its 1.5 s (others use fixture).
  faulty: { command: node, args: [fixture], requestTimeout: 1500 },
  flooded: { command: node, args: [fixture] },
  // A reply past maxMessageBytes (8 MB by default), one process for every user or one of its own.
  bigshared: { command: node, args: [fixture], mode: 'shared' },
  bigsession: { command: node, args: [fixture] },
  // Many sessions of one user on one cheap shared process: its bounds are raised.
  shared: {
    command: node,
    args: [fixture],
    mode: 'shared',
    maxSessionsPerSubject: 64,
    env: { FIXTURE_RECORD_FILE: SHARED_CALLS },
  },
  sharedrec: {
    command: node,
    args: [fixture],
    mode: 'shared',
    env: { FIXTURE_RECORD_FILE: SHARED_RECORD },
  },
  preinit: { command: node, args: [fixture], pool: { min: 2, preinitialize: true } },
  strict: {
    command: node,
    args: [fixture],
    pool: { min: 1 },
    env: { FIXTURE_STRICT_LIFECYCLE: '1' },
  },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map(
    (s) =>
      `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n`,
  )
  .join('')}`

/** The sessions' idle clock: the wall clock, unless a test holds it and moves it itself. */
const idleClock = new IdleClock()

let stack: Stack
let pool: Pool
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { limits: { maxSessionsPerSubject: 100 } },
    sessionClock: idleClock.now,
  })
  pool = new Pool(stack.url, { connections: 64 })
})
after(async () => {
  await pool.close()
  await stack.close()
})

const ACCEPT = 'application/json, text/event-stream'

async function rpc(server: string, token: string, body: unknown, sid?: string) {
  const res = await pool.request({
    path: `/mcp/${server}`,
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const sse = String(res.headers['content-type']).startsWith('text/event-stream')
  const messages = sse ? sseData(text).map((l) => JSON.parse(l)) : text ? [JSON.parse(text)] : []
  return { status: res.statusCode, headers: res.headers, messages, last: messages.at(-1) }
}

async function open(server: string, token: string, protocolVersion = '2025-11-25') {
  const init = await rpc(server, token, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 't', version: '0' } },
  })
  if (init.status !== 200) return { init, sid: '', call: async () => init }
  const sid = init.headers['mcp-session-id'] as string
  await rpc(server, token, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  let id = 1
  const call = (
    name: string,
    args: Record<string, unknown> = {},
    extra: { id?: number; meta?: Record<string, unknown> } = {},
  ) =>
    rpc(
      server,
      token,
      {
        jsonrpc: '2.0',
        id: extra.id ?? id++,
        method: 'tools/call',
        params: { name, arguments: args, ...(extra.meta ? { _meta: extra.meta } : {}) },
      },
      sid,
    )
  return { init, sid, call }
}

async function metric(line: string): Promise<string> {
  const text = await (await pool.request({ path: '/metrics', method: 'GET' })).body.text()
  return (
    text
      .split('\n')
      .find((l) => l.startsWith(line))
      ?.slice(line.length + 1) ?? ''
  )
}

const textOf = (m: { result?: { content?: { text: string }[] } } | undefined) =>
  m?.result?.content?.[0]?.text
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('session mode: the warm pool', () => {
  it('keeps pool.min processes ready, hands each to one session only, and refills', async () => {
    await waitFor(() => stack.gateway.registry.warm('pooled') === 2, 'the pool to fill')
    const token = await stack.token('alice', { server: 'pooled' })
    const pids = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const s = await open('pooled', token)
      assert.equal(s.init.status, 200)
      pids.add(textOf((await s.call('pid')).last)!)
    }
    assert.equal(pids.size, 4, 'four sessions, four different processes')
  })
})

describe('session mode: a pre-initialized pool', () => {
  it("answers each session's initialize from the process's own result, at the session's version", async () => {
    await waitFor(() => stack.gateway.registry.warm('preinit') === 2, 'the pool to fill')
    const token = await stack.token('alice', { server: 'preinit' })
    const seen = new Set<string>()
    for (const v of ['2025-06-18', '2025-11-25']) {
      const s = await open('preinit', token, v)
      assert.equal(s.init.last.result.protocolVersion, v)
      assert.equal(s.init.last.result.serverInfo.name, 'fixture')
      seen.add(textOf((await s.call('pid')).last)!)
      // The gateway promised the process no client capabilities: it may not ask the client.
      assert.equal((await s.call('sample', { prompt: 'hi' })).last.result.isError, true)
    }
    assert.equal(seen.size, 2, 'still one process per session')
  })
})

describe('session mode: a server that exits on a request before initialize', () => {
  it('still gets a warm pool, unprimed, and its sessions work', async () => {
    await waitFor(
      () => stack.logLines.some((l) => l.includes('warm processes are no longer primed')),
      'the priming fallback',
    )
    await waitFor(() => stack.gateway.registry.warm('strict') === 1, 'an unprimed warm process')
    const s = await open('strict', await stack.token('alice', { server: 'strict' }))
    assert.equal(s.init.status, 200)
    assert.match(textOf((await s.call('pid')).last)!, /^\d+$/)
  })
})

/** Holds a session's GET stream open (a listening client is never idle); returns its release. */
async function listen(server: string, token: string, sid: string): Promise<() => Promise<void>> {
  const ac = new AbortController()
  const get = await pool.request({
    path: `/mcp/${server}`,
    method: 'GET',
    headers: {
      accept: 'text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-session-id': sid,
    },
    signal: ac.signal,
  })
  assert.equal(get.statusCode, 200)
  get.body.on('error', () => {})
  get.body.resume()
  return async () => {
    ac.abort()
    // The stream counts until the gateway has seen it end.
    await waitFor(() => !stack.gateway.registry.isListening(sid), 'the stream to end')
  }
}

describe('limits', () => {
  it("maxSessionsPerSubject → 429 without a made-up Retry-After once none of the subject's sessions is idle; maxSessions → 503 likewise", async () => {
    const alice = await stack.token('alice', { server: 'limited' })
    const bob = await stack.token('bob', { server: 'limited' })
    const first = await open('limited', alice)
    assert.equal(first.init.status, 200)
    const release = await listen('limited', alice, first.sid)
    const again = await open('limited', alice)
    assert.equal(again.init.status, 429)
    // No honest figure: a place frees when a session ends (it said 5 s).
    assert.equal(again.init.headers['retry-after'], undefined)
    assert.match(again.init.last.error.message, /sessions in use on limited/)
    const ofBob = await open('limited', bob)
    assert.equal(ofBob.init.status, 200)
    const releaseBob = await listen('limited', bob, ofBob.sid)
    const third = await open('limited', await stack.token('dev', { server: 'limited' }))
    assert.equal(third.init.status, 503)
    assert.equal(third.init.headers['retry-after'], undefined)
    await release()
    await releaseBob()
  })

  it("an idle session is reclaimed, least recently used first, when its subject's limit is reached (never a busy one)", async () => {
    const alice = await stack.token('alice', { server: 'limited' })
    const older = await open('limited', alice)
    assert.equal(older.init.status, 200)
    // Idle: a new session of the same subject takes its place; the old id is gone (404).
    const newer = await open('limited', alice)
    assert.equal(newer.init.status, 200)
    assert.equal(
      (await rpc('limited', alice, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, older.sid))
        .status,
      404,
    )
    assert.equal(
      (await rpc('limited', alice, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, newer.sid))
        .status,
      200,
    )
    assert.match(
      await metric('mcp_edge_sessions_reclaimed_total{server="limited",reason="session limit"}'),
      /^\d+$/,
    )
  })

  it('at pool.max an idle session of the server makes room; with every session busy, 503', async () => {
    const token = await stack.token('bob', { server: 'pooled' })
    const held: { sid: string; release: () => Promise<void> }[] = []
    for (let i = 0; i < 4; i++) {
      const s = await open('pooled', token)
      assert.equal(s.init.status, 200)
      held.push({ sid: s.sid, release: await listen('pooled', token, s.sid) })
    }
    const over = await open('pooled', token)
    assert.equal(over.init.status, 503, 'pool.max reached, nothing idle')
    assert.match(over.init.last.error.message, /process limit/)
    await held[1]!.release()
    const room = await open('pooled', token)
    assert.equal(room.init.status, 200, 'the idle one made room')
    assert.equal(
      (await rpc('pooled', token, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, held[1]!.sid))
        .status,
      404,
    )
    for (const h of [held[0]!, held[2]!, held[3]!]) await h.release()
  })

  it('idle sessions are reaped after idleTimeout: the process ends, the id answers 404', async () => {
    const token = await stack.token('alice', { server: 'sleepy' })
    const s = await open('sleepy', token)
    const opened = stack.logLines
      .map((l) => JSON.parse(l))
      .filter((l) => l.msg === 'session opened' && l.server === 'sleepy')
      .at(-1)
    await waitFor(() => !alive(opened.pid), 'the idle process to end')
    const res = await rpc('sleepy', token, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, s.sid)
    assert.equal(res.status, 404)
  })
  it('a GET stream ends when the token that opened it expires', async () => {
    // Not sleepy: a session reaped before its GET arrives (300 ms) would race a busy machine.
    const exp = Math.floor(Date.now() / 1000) + 4
    const token = await stack.forge({ aud: stack.endpoint('fixture'), exp })
    const s = await open('fixture', token)
    // Without the expiry the stream would stay open: give up (and fail) after a while.
    const get = await pool.request({
      path: '/mcp/fixture',
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${token}`,
        'mcp-session-id': s.sid,
      },
      signal: AbortSignal.timeout(12_000),
    })
    assert.equal(get.statusCode, 200)
    await get.body.text()
    // Not at once: it lasted until the token's expiry, however long the opening took (a timer
    // may fire a millisecond before the wall clock reads its time).
    const early = exp * 1000 - Date.now()
    assert.ok(early <= 5, `the stream ended ${early} ms before the token expired`)
  })

  it('a session whose client holds its GET stream open is not idle; its idle time starts when the stream ends', async () => {
    // The idle clock stands still unless moved here: a slow open or GET cannot make the session
    // idle (300 ms) before its stream is open, and each step's idle time is exactly what is moved.
    idleClock.hold()
    try {
      const token = await stack.token('alice', { server: 'sleepy' })
      const s = await open('sleepy', token)
      assert.equal(s.init.status, 200)
      const ac = new AbortController()
      const get = await pool.request({
        path: '/mcp/sleepy',
        method: 'GET',
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${token}`,
          'mcp-session-id': s.sid,
        },
        signal: ac.signal,
      })
      assert.equal(get.statusCode, 200)
      get.body.on('error', () => {})
      get.body.resume()
      const opened = stack.logLines
        .map((l) => JSON.parse(l))
        .filter((l) => l.msg === 'session opened' && l.server === 'sleepy')
        .at(-1)
      idleClock.advance(1000)
      await idleClock.sweeps()
      // A reaped session leaves the registry at once: a request would find no session (404).
      const during = await rpc(
        'sleepy',
        token,
        { jsonrpc: '2.0', id: 9, method: 'tools/list' },
        s.sid,
      )
      assert.equal(during.status, 200, 'three idle timeouts passed with the stream open')
      // Long past that request too, still listening; then the stream ends: that is activity.
      idleClock.advance(1000)
      await idleClock.sweeps()
      ac.abort()
      await waitFor(() => !stack.gateway.registry.isListening(s.sid), 'the stream to end')
      await idleClock.sweeps()
      const after = await rpc(
        'sleepy',
        token,
        { jsonrpc: '2.0', id: 10, method: 'tools/list' },
        s.sid,
      )
      assert.equal(after.status, 200, 'idle since the stream ended, not since the last request')
      idleClock.advance(301)
      await waitFor(() => !alive(opened.pid), 'the session to be reaped once idle after its stream')
      assert.equal(
        (await rpc('sleepy', token, { jsonrpc: '2.0', id: 11, method: 'tools/list' }, s.sid))
          .status,
        404,
      )
    } finally {
      idleClock.release()
    }
  })
})

describe('environment', () => {
  it("a child sees the allow-list, inheritEnv and its env, never the gateway's other variables", async () => {
    process.env.MCP_EDGE_TEST_SHARED = 'visible'
    process.env.MCP_EDGE_TEST_SECRET = 's3cret'
    try {
      const s = await open('identity', await stack.token('alice', { server: 'identity' }))
      const env = JSON.parse(textOf((await s.call('env')).last)!).env as Record<string, string>
      assert.equal(env.MCP_EDGE_TEST_SHARED, 'visible')
      assert.equal(env.MCP_EDGE_TEST_SECRET, undefined)
      const allowed = new Set([
        'HOME',
        'LOGNAME',
        'PATH',
        'SHELL',
        'TERM',
        'USER',
        'MCP_EDGE_TEST_SHARED',
        'MCP_EDGE_SUBJECT',
        'MCP_EDGE_CLIENT_ID',
        'MCP_EDGE_SCOPES',
      ])
      assert.deepEqual(
        Object.keys(env).filter((k) => !allowed.has(k)),
        [],
      )
    } finally {
      delete process.env.MCP_EDGE_TEST_SHARED
      delete process.env.MCP_EDGE_TEST_SECRET
    }
  })

  it('stderr is logged with server and session tags, at most 50 lines per window', async () => {
    const s = await open('fixture', await stack.token('alice', { server: 'fixture' }))
    const pid = Number(textOf((await s.call('pid')).last))
    await s.call('stderr', { text: Array.from({ length: 80 }, (_, i) => `line ${i}`).join('\n') })
    const stderrLines = () =>
      stack.logLines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'server stderr' && l.pid === pid)
    await waitFor(() => stderrLines().length >= 50, 'the stderr lines')
    await s.call('pid')
    const logged = stderrLines()
    assert.equal(logged.length, 50)
    assert.equal(logged[0]!.server, 'fixture')
    assert.equal(typeof logged[0]!.session, 'string')
  })

  it('a stderr line that does not end is not held whole: 64 MB with no newline keeps lineMax of it', async () => {
    // readline held a line until its end came: a process writing stderr with no newline grew the
    // gateway's heap by all it wrote. Measured after a full GC, so only what is still held counts.
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const s = await open('fixture', await stack.token('alice', { server: 'fixture' }))
    const pid = Number(textOf((await s.call('pid')).last))
    gc()
    const before = process.memoryUsage().heapUsed
    // stderr to a pipe is written synchronously on Linux: when the call answers, the gateway
    // has read all of it but what the pipe still holds (64 KiB).
    assert.equal(
      textOf((await s.call('stderr_unended', { bytes: 64 * 1024 * 1024 })).last),
      'written',
    )
    gc()
    const held = process.memoryUsage().heapUsed - before
    assert.ok(
      held < 16 * 1024 * 1024,
      `the gateway holds ${(held / 2 ** 20).toFixed(1)} MB of the line`,
    )
    await s.call('stderr', { text: 'its end\nthe next line' })
    const stderrLines = () =>
      stack.logLines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.msg === 'server stderr' && l.pid === pid)
        .map((l) => l.stderr)
    await waitFor(() => stderrLines().includes('the next line'), 'the line after it')
    assert.deepEqual(stderrLines(), ['x'.repeat(2000), 'the next line'])
  })
})

describe('identityEnv', () => {
  it("hands the session's subject, client and scopes to its own process, never the token", async () => {
    await waitFor(
      () => stack.gateway.registry.warm('identity') === 1,
      'a warm process that must not be used',
    )
    const token = await stack.token('dev', { server: 'identity' })
    const s = await open('identity', token)
    const info = JSON.parse(textOf((await s.call('env')).last)!)
    assert.equal(info.env.MCP_EDGE_SUBJECT, 'dora')
    assert.equal(info.env.MCP_EDGE_CLIENT_ID, 'dev')
    assert.equal(info.env.MCP_EDGE_SCOPES, 'mcp:read mcp:write')
    assert.equal(JSON.stringify(info).includes(token), false)
    assert.equal(readFileSync(`/proc/${info.pid}/environ`, 'latin1').includes(token), false)
    assert.equal(stack.gateway.registry.warm('identity'), 1, 'the warm process was not handed out')
  })
})

describe('faults (fixture server)', () => {
  const token = () => stack.token('alice', { server: 'fixture' })

  it('junk lines on stdout are dropped; the session keeps working', async () => {
    const s = await open('fixture', await token())
    assert.equal(textOf((await s.call('stdout_junk', { lines: 1000 })).last), 'junk written')
    assert.equal(textOf((await s.call('pid')).last)?.match(/^\d+$/) !== null, true)
  })

  it('a request never answered fails within requestTimeout; others go on', async (t) => {
    const s = await open('faulty', await stack.token('alice', { server: 'faulty' }))
    // The cut, on the real clock: the process answers in 60 s, the gateway's 1.5 s runs out.
    const res = await s.call('slow', { ms: 60_000 })
    assert.equal(res.last.error?.code, -32001, JSON.stringify(res.last))
    // The follow-up's own 1.5 s would race a busy machine: its timer stays on a clock that does
    // not move, so only the process's answer can end it (the process's 1 ms is real).
    t.mock.timers.enable({ apis: ['setTimeout'] })
    try {
      assert.equal(textOf((await s.call('slow', { ms: 1 })).last), 'done')
    } finally {
      t.mock.timers.reset()
    }
  })

  it('a line larger than the message limit that is no reply (stdout flood) is dropped; the session goes on, memory bounded', async () => {
    const flooded = await stack.token('alice', { server: 'flooded' })
    const s = await open('flooded', flooded)
    const pid = textOf((await s.call('pid')).last)
    const rss = process.memoryUsage().rss
    const res = await s.call('stdout_junk', { bytes: 24 * 1024 * 1024 })
    assert.equal(textOf(res.last), 'junk written', JSON.stringify(res.last))
    assert.ok(
      process.memoryUsage().rss - rss < 200 * 1024 * 1024,
      'the gateway did not buffer the flood',
    )
    assert.equal(textOf((await s.call('pid')).last), pid, 'the same process answers')
    const logged = stack.logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter(
        (l) => l.msg === 'server process wrote a message larger than maxMessageBytes; dropped',
      )
      .filter((l) => l.pid === Number(pid))
    assert.equal(logged.length, 1)
    assert.ok(Number(logged[0]!.bytes) >= 24 * 1024 * 1024)
    assert.equal(logged[0]!.reply, undefined, 'junk names no request')
  })
})

/** The gateway's memory after full GCs: V8's heap plus the buffers outside it. */
function heldMemory(): number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  for (let i = 0; i < 3; i++) gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

const NINE_MB = 9 * 1024 * 1024

describe('a reply larger than maxMessageBytes', () => {
  for (const server of ['bigshared', 'bigsession']) {
    it(`${server}: is refused -32603 to its request alone; the process lives and answers the next request, memory bounded`, async () => {
      const alice = await stack.token('alice', { server })
      const bob = await stack.token('bob', { server })
      const a = await open(server, alice)
      const b = await open(server, bob)
      const pid = textOf((await a.call('pid')).last)
      const bPid = textOf((await b.call('pid')).last)
      if (server === 'bigshared') assert.equal(bPid, pid, 'one process for both users')
      // A reply that fits passes whole (the limit is on one line, not on a session).
      assert.equal(textOf((await a.call('big_text', { bytes: 1024 * 1024 })).last)?.length, 2 ** 20)
      const before = heldMemory()
      // Bob's call is in flight on the same process while Alice's huge reply is dropped.
      const slow = b.call('slow', { ms: 300 }, { id: 41 })
      const res = await a.call('big_text', { bytes: NINE_MB }, { id: 40 })
      assert.equal(res.status, 200)
      assert.equal(res.last.id, 40)
      assert.equal(res.last.error?.code, -32603, JSON.stringify(res.last).slice(0, 300))
      assert.match(res.last.error.message, /larger than maxMessageBytes/)
      assert.equal(res.messages.length, 1, 'nothing else reached the caller')
      const other = await slow
      assert.equal(other.last.id, 41)
      assert.equal(textOf(other.last), 'done', "the other user's call is answered normally")
      // The next requests, on both sessions, are answered by the same process.
      assert.equal(textOf((await a.call('pid')).last), pid)
      assert.equal(textOf((await b.call('pid')).last), bPid)
      assert.equal(
        textOf((await a.call('echo_args', { session: 1, i: 2 })).last),
        JSON.stringify({ session: 1, i: 2 }),
      )
      const held = heldMemory() - before
      assert.ok(held < 4 * 1024 * 1024, `the gateway holds ${(held / 2 ** 20).toFixed(1)} MB`)
      const logged = stack.logLines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter(
          (l) => l.msg === 'server process wrote a message larger than maxMessageBytes; dropped',
        )
        .filter((l) => l.pid === Number(pid))
      assert.equal(logged.length, 1)
      assert.ok(Number(logged[0]!.bytes) > NINE_MB)
      assert.equal(logged[0]!.maxMessageBytes, 8 * 1024 * 1024)
    })
  }
  it('sessionless (2026-07-28): the call gets -32603; the same process answers the next one', async () => {
    const token = await stack.token('alice', { server: 'bigsession' })
    const call = async (name: string, args: Record<string, unknown>, id: number) => {
      const res = await pool.request({
        path: '/mcp/bigsession',
        ...modernToolCall(token, name, args, { id }),
      })
      const text = await res.body.text()
      const data = sseData(text)
      return JSON.parse(data.length > 0 ? data.at(-1)! : text)
    }
    const pid = textOf(await call('pid', {}, 1))
    assert.match(String(pid), /^\d+$/)
    const big = await call('big_text', { bytes: NINE_MB }, 2)
    assert.equal(big.id, 2)
    assert.equal(big.error?.code, -32603, JSON.stringify(big).slice(0, 300))
    assert.match(big.error.message, /larger than maxMessageBytes/)
    assert.equal(textOf(await call('pid', {}, 3)), pid)
  })
})

describe('shared mode', () => {
  it('50 sessions × 100 calls with distinct arguments each get exactly their own answers, on one process', async () => {
    const token = await stack.token('alice', { server: 'shared' })
    const sessions = await Promise.all(Array.from({ length: 50 }, () => open('shared', token)))
    const pids = new Set(
      await Promise.all(sessions.map(async (s) => textOf((await s.call('pid')).last))),
    )
    assert.equal(pids.size, 1, 'one shared process')
    let mismatches = 0
    await Promise.all(
      sessions.map(async (s, n) => {
        for (let i = 0; i < 100; i++) {
          // Every session uses the same JSON-RPC ids: only rewriting keeps replies apart.
          const res = await s.call('echo_args', { session: n, i }, { id: 1000 + i })
          const got = textOf(res.last)
          if (res.last?.id !== 1000 + i || got !== JSON.stringify({ session: n, i })) mismatches++
        }
      }),
    )
    assert.equal(mismatches, 0)
  })

  it('initialize is answered from the cached result at the version the session asked for', async () => {
    const token = await stack.token('alice', { server: 'shared' })
    for (const v of ['2025-03-26', '2025-06-18', '2025-11-25']) {
      const s = await open('shared', token, v)
      assert.equal(s.init.last.result.protocolVersion, v)
      assert.equal(s.init.last.result.serverInfo.name, 'fixture')
    }
    assert.equal(
      (await open('shared', token, '1999-01-01')).init.last.result.protocolVersion,
      '2025-11-25',
    )
  })

  it('progress reaches only its own session; a cancellation cancels only its own request', async () => {
    const token = await stack.token('alice', { server: 'shared' })
    const a = await open('shared', token)
    const b = await open('shared', token)
    const [pa, pb] = await Promise.all([
      a.call('notify', { count: 3 }, { id: 7, meta: { progressToken: 'same' } }),
      b.call('notify', { count: 2 }, { id: 7, meta: { progressToken: 'same' } }),
    ])
    const progress = (r: typeof pa) =>
      r.messages
        .filter((m) => m.method === 'notifications/progress')
        .map((m) => [m.params.progressToken, m.params.progress, m.params.total])
    assert.deepEqual(progress(pa), [
      ['same', 1, 3],
      ['same', 2, 3],
      ['same', 3, 3],
    ])
    assert.deepEqual(progress(pb), [
      ['same', 1, 2],
      ['same', 2, 2],
    ])

    const slowA = a.call('slow', { ms: 2000 }, { id: 8 })
    const slowB = b.call('slow', { ms: 300 }, { id: 8 })
    await waitFor(
      () => sharedGot('"ms":2000') && sharedGot('"ms":300'),
      'both calls reached the process',
    )
    await rpc(
      'shared',
      token,
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 8 } },
      a.sid,
    )
    assert.equal(textOf((await slowB).last), 'done', "b's request with the same id ran to the end")
    const ra = await slowA
    assert.equal(ra.messages.length, 0, 'a was cancelled: its stream closed with no reply')
  })

  it('when the last subscriber of a resource closes, the shared process is told to unsubscribe', async () => {
    const token = await stack.token('alice', { server: 'sharedrec' })
    const a = await open('sharedrec', token)
    const b = await open('sharedrec', token)
    const uri = 'file:///watched'
    for (const s of [a, b])
      await rpc(
        'sharedrec',
        token,
        { jsonrpc: '2.0', id: 50, method: 'resources/subscribe', params: { uri } },
        s.sid,
      )
    const unsubscribes = () =>
      (existsSync(SHARED_RECORD) ? readFileSync(SHARED_RECORD, 'utf8') : '')
        .split('\n')
        .filter((l) => l.includes('"resources/unsubscribe"')).length
    const del = (sid: string) =>
      pool
        .request({
          path: '/mcp/sharedrec',
          method: 'DELETE',
          headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
        })
        .then((r) => r.body.dump())
    await del(a.sid)
    // b's next call is recorded after anything a's end sent the process before it.
    const pid = await rpc(
      'sharedrec',
      token,
      { jsonrpc: '2.0', id: 51, method: 'tools/call', params: { name: 'pid', arguments: {} } },
      b.sid,
    )
    assert.equal(pid.status, 200)
    assert.equal(unsubscribes(), 0, 'b still watches it')
    await del(b.sid)
    await waitFor(() => unsubscribes() === 1, 'resources/unsubscribe at the process')
  })

  it('a server→client request is refused in shared mode', async () => {
    const s = await open('shared', await stack.token('alice', { server: 'shared' }))
    const res = await s.call('sample', { prompt: 'hi' })
    assert.equal(res.last.result.isError, true)
  })

  it('a crash fails requests in flight, ends the sessions (404), and the process restarts', async () => {
    const token = await stack.token('alice', { server: 'shared' })
    const s = await open('shared', token)
    const pid = Number(textOf((await s.call('pid')).last))
    const pending = s.call('slow', { ms: 10_000 })
    await waitFor(() => sharedGot('"ms":10000'), 'the call reached the process')
    process.kill(pid, 'SIGKILL')
    assert.equal((await pending).last.error.code, -32000)
    assert.equal(
      (await rpc('shared', token, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, s.sid)).status,
      404,
    )
    const fresh = await open('shared', token)
    assert.equal(fresh.init.status, 200)
    assert.notEqual(Number(textOf((await fresh.call('pid')).last)), pid)
  })
})

describe('shutdown', () => {
  it('stops accepting, finishes requests in flight, then leaves no process behind', async () => {
    const own = await startStack({ servers: SERVERS, policy: POLICY })
    const http = new Pool(own.url, { connections: 8 })
    try {
      await waitFor(() => own.gateway.registry.warm('pooled') === 2, 'warm processes')
      const tokens: Record<string, string> = {
        fixture: await own.token('alice', { server: 'fixture' }),
        shared: await own.token('alice', { server: 'shared' }),
      }
      const post = async (server: string, body: unknown, sid?: string) => {
        const token = tokens[server]
        const res = await http.request({
          path: `/mcp/${server}`,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: ACCEPT,
            authorization: `Bearer ${token}`,
            ...(sid ? { 'mcp-session-id': sid } : {}),
          },
          body: JSON.stringify(body),
        })
        return {
          status: res.statusCode,
          sid: res.headers['mcp-session-id'] as string,
          text: await res.body.text(),
        }
      }
      const init = {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 't', version: '0' },
        },
      }
      // The call in flight is on the stack's fixture server, which records what reaches it.
      const a = await post('fixture', init)
      assert.equal(a.status, 200, a.text)
      assert.equal((await post('shared', init)).status, 200)
      const reached = () =>
        existsSync(join(own.dir, 'fixture-record.jsonl')) &&
        readFileSync(join(own.dir, 'fixture-record.jsonl'), 'utf8').includes('"name":"slow"')
      const inFlight = post(
        'fixture',
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'slow', arguments: { ms: 400 } },
        },
        a.sid,
      )
      // Shut down once the call is in the process's hands, not after a guess at how long that takes.
      await waitFor(reached, 'the slow call to reach its process')
      const lines = () => own.logLines.map((l) => JSON.parse(l) as Record<string, unknown>)
      const closing = own.close()
      const refused = await post(
        'fixture',
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        a.sid,
      ).catch(() => ({ status: 0 }))
      assert.ok(
        refused.status === 503 || refused.status === 0,
        `new requests are refused while draining (${refused.status})`,
      )
      const finished = await inFlight
      assert.equal(finished.status, 200)
      assert.match(finished.text, /"done"/, 'the request in flight finished')
      await closing
      const pids = lines()
        .filter(
          (l) =>
            typeof l.pid === 'number' &&
            /session opened|warm server process ready|shared server process ready/.test(
              String(l.msg),
            ),
        )
        .map((l) => l.pid as number)
      assert.ok(pids.length >= 4, `pids seen: ${pids.join(' ')}`)
      for (const pid of new Set(pids)) assert.equal(alive(pid), false, `process ${pid} is gone`)
    } finally {
      await http.close()
      await own.close()
    }
  })
})
