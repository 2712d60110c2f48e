// Stop 26d (brief review33): an outside attacker of the per-subject process-start budget and of
// the stderr redactor's additions. Real processes, a real gateway and IdP, raw HTTP or the SDK.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { pino } from 'pino'
import { request } from 'undici'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { ProcessStarts } from '../../gateway/bridge/process-starts.js'
import { configSchema } from '../../gateway/config/schema.js'
import { RPC_RATE_LIMITED } from '../../gateway/http/respond.js'
import { principal } from '../helpers/principal.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { scriptStderrLogged, stderrLogged } from '../helpers/stderr-log.js'
import { waitFor } from '../helpers/wait-for.js'

/** Pieces of `value` of `n` characters (every start). */
const pieces = (value: string, n: number) =>
  Array.from({ length: value.length - n + 1 }, (_, i) => value.slice(i, i + n))

describe('stop26d: a value split over more than two stderr lines', () => {
  // A server wrapping its lines at a width under half the value (a terminal-width logger, a
  // fixed-column dump): the value spans three, four or more lines. Only the line before was
  // joined to the next: a line wholly inside the value, and the one after it, showed their part.
  const value = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2GiQw7Er'
  for (const width of [16, 10, 20]) {
    it(`wrapped at ${width} columns: no line shows 8 characters of it`, async () => {
      const text = `token=${value} ok`
      const wrapped: string[] = []
      for (let i = 0; i < text.length; i += width) wrapped.push(text.slice(i, i + width))
      assert.ok(wrapped.length >= 3)
      const out = await stderrLogged(`${wrapped.join('\n')}\r\nafter\n`, [value])
      assert.equal(out.length, wrapped.length + 1, out.join('\n'))
      for (const line of out)
        for (const p of pieces(value, 8)) assert.ok(!line.includes(p), `${p} shows in ${line}`)
      assert.equal(out.at(-1), 'after')
    })
  }
})

describe('stop26d: a value split after a line cut at lineMax', () => {
  // The line before a split is cut where the gateway stops holding it (lineMax plus the
  // longest written form of a value): the rest of it was dropped as it came, its end with it,
  // so the next line was joined to the wrong characters and showed all of the value but the
  // characters that ended the line before.
  const value = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2GiQw7Er'
  for (const k of [1, 3, 20]) {
    it(`a line of 5000 characters ending with the value's first ${k}: the rest is blotted`, async () => {
      const text = `${'x'.repeat(5000)}${value.slice(0, k)}\n${value.slice(k)} ok\nafter\n`
      const out = await stderrLogged(text, [value], { lineMax: 80 })
      assert.equal(out.length, 3, out.join('\n'))
      assert.equal(out[1], '[redacted] ok')
      assert.equal(out[2], 'after')
      for (const line of out)
        for (const p of pieces(value, 8)) assert.ok(!line.includes(p), `${p} shows in ${line}`)
    })
  }
  it('a line cut two characters before its end, the value begun before the cut', async () => {
    // lineMax 80 plus the value's widest form (10 characters a byte) are kept: x up to 10 of
    // the value kept, 2 past the cut.
    const kept = 80 + value.length * 10
    const text = `${'x'.repeat(kept - 10)}${value.slice(0, 12)}\n${value.slice(12)} ok\n`
    const out = await stderrLogged(text, [value], { lineMax: 80 })
    assert.equal(out[1], '[redacted] ok', out.join('\n'))
  })
  it('the same over many small writes (the cut line arrives in chunks)', async () => {
    const parts = [...Array.from({ length: 50 }, () => 'y'.repeat(100)), value.slice(0, 5)]
    const script = `const p = ${JSON.stringify(parts)}; let i = 0; const w = () => { if (i < p.length) process.stderr.write(p[i++], w); else process.stderr.write(${JSON.stringify(`\n${value.slice(5)} ok\n`)}) }; w()`
    const lines = await scriptStderrLogged(script, [value], { lineMax: 80 })
    assert.equal(lines.at(-1), '[redacted] ok', lines.join('\n'))
  })
})

describe('stop26d: a value split after a line the rate limit dropped', () => {
  // A line over linesPerWindow is not logged, and was not read either: the next line logged
  // (in the next window) was joined to the line before the dropped one, and showed all of a
  // value but the characters that ended the dropped line.
  it('the rest of the value on the first line of the next window is blotted', async () => {
    const value = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2GiQw7Er'
    const first = `logged\ndropped ${value.slice(0, 3)}\n`
    const script = `process.stderr.write(${JSON.stringify(first)}, () => setTimeout(() => process.stderr.write(${JSON.stringify(`${value.slice(3)} ok\n`)}), 1000))`
    const lines = await scriptStderrLogged(script, [value], { linesPerWindow: 1, window: 100 })
    assert.equal(lines[0], 'logged')
    for (const line of lines)
      for (const p of pieces(value, 8)) assert.ok(!line.includes(p), `${p} shows in ${line}`)
  })
})

describe('stop26d: a process-start refusal inside a session says when to retry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop26d-'))
  let now = Date.now()
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: {
        vault: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
        },
        // One process at most: while alice holds it, bob's starts are refused at pool.max.
        tight: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'flaky.js')],
          env: { FLAKY_STARTS_FILE: join(dir, 'tight-starts') },
          pool: { max: 1 },
        },
      },
      policy: `${TEST_POLICY}${['vault', 'tight'].map((n) => `  ${n}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`).join('')}`,
      config: { limits: { processStartsPerSubject: 2, processStartsWindow: 60_000 } },
      processStartClock: () => now,
    })
  })
  after(async () => {
    await stack.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const starts = () =>
    existsSync(join(dir, 'tight-starts'))
      ? readFileSync(join(dir, 'tight-starts'), 'utf8').split('\n').filter(Boolean).length
      : 0
  const INITIALIZE = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'x', version: '0' },
    },
  }

  // A start refused at the server's pool.max started no process: it was counted all the same,
  // so while other users held the server's processes, each 503 a user's client retried spent
  // its budget, and it got 429 for up to the window once a process was free.
  it("a start refused at pool.max (503, no process) does not spend the user's budget", async () => {
    const init = (sub: string) =>
      stack
        .forge({ sub, aud: stack.endpoint('tight') })
        .then((t) => postMcp(stack.local('tight'), INITIALIZE, { authorization: `Bearer ${t}` }))
    const alice = await init('alice26d')
    assert.equal(alice.status, 200, alice.text)
    const aliceHeaders = {
      authorization: `Bearer ${await stack.forge({ sub: 'alice26d', aud: stack.endpoint('tight') })}`,
      'mcp-session-id': alice.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    }
    await postMcp(
      stack.local('tight'),
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      aliceHeaders,
    )
    // Listening: not idle, so no start of bob's ends it to make room.
    const listening = new AbortController()
    const stream = await request(stack.local('tight'), {
      method: 'GET',
      headers: { ...aliceHeaders, accept: 'text/event-stream' },
      signal: listening.signal,
    })
    assert.equal(stream.statusCode, 200)
    await waitFor(
      () => stack.gateway.registry.isListening(aliceHeaders['mcp-session-id']),
      'alice listens',
    )
    for (let i = 0; i < 3; i++) {
      const refused = await init('bob26d')
      assert.equal(refused.status, 503, refused.text)
    }
    assert.equal(starts(), 1, 'only alice got a process')
    listening.abort()
    await stream.body.dump().catch(() => {})
    const res = await request(stack.local('tight'), { method: 'DELETE', headers: aliceHeaders })
    await res.body.dump()
    await waitFor(() => stack.gateway.registry.size === 0, "alice's session ended")
    // Its process exits after the session ends: bob's next start finds room once it is gone.
    let bob = await init('bob26d')
    while (bob.status === 503) {
      await new Promise((r) => setTimeout(r, 50))
      bob = await init('bob26d')
    }
    assert.equal(bob.status, 200, bob.text)
    assert.equal(starts(), 2)
  })

  // README "Process starts": -32029 with data.retryAfter on every transport and era; inside a
  // session (a replacement after the user's credentials changed) the same error. The session's
  // own answer had the code and text but no data: a client reading data.retryAfter found none.
  it('a replacement refused past the budget: -32029 with data.retryAfter (an integer >= 1)', async () => {
    const secrets = stack.gateway.secrets!
    const owner = { iss: stack.gateway.issuer!, sub: 'rotator26d' }
    await secrets.set(owner, 'vault_token', 'v0')
    const client = new Client({ name: 'rotator', version: '0' })
    const token = await stack.forge({ sub: 'rotator26d', aud: stack.endpoint('vault') })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('vault')), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    const call = () => client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
    try {
      await call()
      await secrets.set(owner, 'vault_token', 'v1')
      await call()
      await secrets.set(owner, 'vault_token', 'v2')
      now += 1500
      await assert.rejects(call(), (err: { code?: number; data?: { retryAfter?: unknown } }) => {
        assert.equal(err.code, RPC_RATE_LIMITED)
        assert.equal(err.data?.retryAfter, 59)
        return true
      })
    } finally {
      await client.close()
    }
  })
})

describe('stop26d: the process-start window and the wall clock', () => {
  // The window was measured with Date.now: a wall clock set back (NTP stepping, an operator,
  // a VM resumed) by an hour left a subject at its budget refused for the hour plus the
  // window, with a Retry-After of an hour. A window is a duration: a monotonic clock measures it.
  it('a wall clock set back an hour does not stretch a refusal past the window', () => {
    const config = configSchema.parse({
      servers: { s: { command: 'x' } },
      limits: { processStartsPerSubject: 2, processStartsWindow: 60_000 },
    })
    const real = Date.now
    let back = 0
    // The wall clock as the process reads it, set back below.
    Date.now = () => real() - back
    const starts = new ProcessStarts({ config, log: pino({ level: 'silent' }) })
    const alice = principal('alice')
    starts.take('s', alice)
    starts.take('s', alice)
    back = 3_600_000
    try {
      assert.throws(
        () => starts.take('s', alice),
        (err: unknown) => {
          assert.ok(err instanceof BridgeError && err.code === 'process_start_limit')
          assert.ok(err.retryAfter! >= 1 && err.retryAfter! <= 60, `Retry-After ${err.retryAfter}`)
          return true
        },
      )
    } finally {
      Date.now = real
    }
  })
})

describe("stop26d: a start past the budget ends no one else's session", () => {
  // At a bound (here limits.maxSessions: 1) an initialize makes room first, ending the least
  // recently used idle session, another user's included, and the budget was checked after:
  // a subject past its budget ended another user's idle session with each initialize, and
  // got 429, the eviction free of any start.
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: { one: { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] } },
      policy: `${TEST_POLICY}  one:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      config: { limits: { maxSessions: 1, processStartsPerSubject: 1 } },
    })
  })
  after(() => stack.close())

  it("alice past her budget gets 429; bob's idle session is left alone", async () => {
    const INIT = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'x', version: '0' },
      },
    }
    const headers = async (sub: string) => ({
      authorization: `Bearer ${await stack.forge({ sub, aud: stack.endpoint('one') })}`,
    })
    const alice = await postMcp(stack.local('one'), INIT, await headers('alice-b'))
    assert.equal(alice.status, 200, alice.text)
    const res = await request(stack.local('one'), {
      method: 'DELETE',
      headers: {
        ...(await headers('alice-b')),
        'mcp-session-id': alice.headers['mcp-session-id'] as string,
        'mcp-protocol-version': '2025-11-25',
      },
    })
    await res.body.dump()
    await waitFor(() => stack.gateway.registry.size === 0, "alice's session ended")
    const bob = await postMcp(stack.local('one'), INIT, await headers('bob-b'))
    assert.equal(bob.status, 200, bob.text)
    for (let i = 0; i < 3; i++) {
      const again = await postMcp(stack.local('one'), INIT, await headers('alice-b'))
      assert.equal(again.status, 429, again.text)
    }
    assert.equal(stack.gateway.registry.size, 1, "bob's session is still open")
  })

  it("the same with 2026-07-28 requests (a lane's process): 429, bob's session left alone", async () => {
    const token = await stack.forge({ sub: 'alice-b', aud: stack.endpoint('one') })
    for (let i = 0; i < 3; i++) {
      const res = await request(stack.local('one'), modernToolCall(token, 'pid', {}, { id: i + 1 }))
      const text = await res.body.text()
      assert.equal(res.statusCode, 429, text)
      assert.equal(JSON.parse(text).error.code, RPC_RATE_LIMITED)
    }
    assert.equal(stack.gateway.registry.size, 1, "bob's session is still open")
  })
})
