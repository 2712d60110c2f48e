// A warm pool in front of a server that cannot start (pool.min: 1, as the embedded default
// config has it): the real gateway, a real IdP and the flaky fixture (it records each start in a
// file and reads what to do from another), raw HTTP. The pool's warm processes are starts like
// any other: they open the server's window, and the pool spawns nothing inside it. The
// backoff's clock is the test's: windows end when the test says so, and every wait is for an
// event (a log line, a file line), never for a duration.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { postMcp } from '../helpers/post-mcp.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-warm-starts-'))
const file = (server: string, what: 'starts' | 'mode') => join(dir, `${server}-${what}`)
// Windows of 10, 20, 40, 40… ms by the test's clock: the pool's own timers wake it every few
// ms of real time, so a pool that spawned inside a window would do so many times over.
const flaky = (server: string, extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'flaky.js')],
  env: { FLAKY_STARTS_FILE: file(server, 'starts'), FLAKY_MODE_FILE: file(server, 'mode') },
  pool: { min: 1 },
  respawnBackoff: 10,
  respawnBackoffMax: 40,
  ...extra,
})
/** Times the fixture started so far. */
const starts = (server: string) =>
  existsSync(file(server, 'starts'))
    ? readFileSync(file(server, 'starts'), 'utf8').split('\n').filter(Boolean).length
    : 0
const setMode = (server: string, mode: 'exit' | 'serve') =>
  writeFileSync(file(server, 'mode'), mode)

let now = Date.now()
let stack: Stack

/** A gateway of its own for each case (its clock moves only that case's windows), of `server`. */
function gatewayOf(server: string, extra: Record<string, unknown> = {}): void {
  before(async () => {
    setMode(server, 'exit')
    now = Date.now()
    stack = await startStack({
      servers: { [server]: flaky(server, extra) },
      policy: `${TEST_POLICY}  ${server}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
      startClock: () => now,
    })
  })
  after(() => stack.close())
}
after(() => rmSync(dir, { recursive: true, force: true }))

/** Log lines of `server` with this message (start). */
const logged = (server: string, msg: string) =>
  stack.logLines.filter((l) => l.includes(`"server":"${server}"`) && l.includes(`"msg":"${msg}`))
    .length
/** Windows the server's own failures opened (or doubled) so far. */
const windows = (server: string) => logged(server, `server ${server} failed to start; retrying`)
/** Times the pool looked whether it may spawn and was told to wait. */
const waits = (server: string) =>
  logged(server, 'warm processes wait for the server to start again')

/**
 * Waits until the pool was told five more times to wait for `server`'s window, or it spawned
 * (what a pool that ignores the window does), then says no process started meanwhile.
 */
async function assertHeld(server: string, spawned: number, what: string): Promise<void> {
  const seen = waits(server)
  await waitFor(() => waits(server) >= seen + 5 || starts(server) > spawned, what)
  assert.equal(starts(server), spawned, `${what}: nothing spawned inside the window`)
}

let nextId = 1
async function post(server: string, body: unknown, headers: Record<string, string> = {}) {
  const token = await stack.token('alice', { server })
  const res = await postMcp(stack.local(server), body, {
    authorization: `Bearer ${token}`,
    ...headers,
  })
  return {
    status: res.status,
    retryAfter: res.headers['retry-after'],
    sessionId: res.headers['mcp-session-id'] as string | undefined,
    text: res.text,
  }
}
const initialize = (server: string) =>
  post(server, {
    jsonrpc: '2.0',
    id: nextId++,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'warm-test', version: '0' },
    },
  })
const sessionless = (server: string) =>
  post(
    server,
    {
      jsonrpc: '2.0',
      id: nextId++,
      method: 'tools/list',
      params: {
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    },
    { 'mcp-protocol-version': V, 'mcp-method': 'tools/list' },
  )

describe('a warm pool whose server exits at once', () => {
  gatewayOf('warmbroken')
  it('opens the server window and spawns once per window, doubling, while requests get 503', async () => {
    const s = 'warmbroken'
    // The first warm process exits on its ping (prime), the next one (unprimed) while it waits:
    // the second is a failed start, and opens the window.
    await waitFor(() => windows(s) >= 1 || starts(s) >= 6, 'the first window')
    assert.equal(windows(s), 1, "the pool's failed start opened the server's window")
    let spawned = starts(s)
    assert.ok(spawned <= 2, `spawned ${spawned} before the first window`)
    await assertHeld(s, spawned, 'the first window')
    // Requests inside the window: refused at once, no process taken or spawned.
    for (const a of [await initialize(s), await sessionless(s)]) {
      assert.equal(a.status, 503, a.text)
      assert.equal(a.retryAfter, '1')
      assert.equal(a.sessionId, undefined)
    }
    assert.equal(starts(s), spawned)
    // Each window over: the pool's warm process is the probe (one spawn); its failure doubles
    // the window, up to respawnBackoffMax.
    for (const [i, ms] of [10, 20, 40, 40].entries()) {
      now += ms
      await waitFor(() => windows(s) >= i + 2, `window ${i + 2}`)
      spawned++
      assert.equal(starts(s), spawned, `one spawn for window ${i + 2}`)
      await assertHeld(s, spawned, `window ${i + 2}`)
    }
    assert.match(
      stack.logLines.findLast((l) => l.includes(`"msg":"server ${s} failed to start`)) ?? '',
      /"failure":"exit".*"retryAfterMs":40\b/,
    )
  })

  it('once fixed, the next window end warms a process; its session clears the server', async () => {
    const s = 'warmbroken'
    setMode(s, 'serve')
    const spawned = starts(s)
    now += 40
    // Warm as soon as spawned (unprimed): its line in the starts file comes once node runs it.
    await waitFor(
      () => stack.gateway.registry.warm(s) === 1 && starts(s) === spawned + 1,
      'a warm process',
    )
    const session = await initialize(s)
    assert.equal(session.status, 200, session.text)
    assert.ok(session.sessionId)
    assert.ok(stack.logLines.some((l) => l.includes(`"msg":"server ${s} started again"`)))
    assert.equal(stack.gateway.registry.starts.isFailing(s), false)
    // The pool refills as usual (the taken process is replaced).
    await waitFor(
      () => stack.gateway.registry.warm(s) === 1 && starts(s) === spawned + 2,
      'refilled',
    )
  })
})

describe('a warm pool that initializes its processes (preinitialize)', () => {
  // preinitialize: the pool's own initialize tells whether a warm process started.
  gatewayOf('warmspawn', { pool: { min: 1, preinitialize: true } })
  it('a process exiting before its initialize answered opens the window; the pool waits it out', async () => {
    const s = 'warmspawn'
    await waitFor(() => windows(s) >= 1 || starts(s) >= 6, 'the first window')
    assert.equal(windows(s), 1)
    const spawned = starts(s)
    assert.ok(spawned <= 2, `spawned ${spawned} before the first window`)
    assert.match(
      stack.logLines.findLast((l) => l.includes(`"msg":"server ${s} failed to start`)) ?? '',
      /"failure":"exit"/,
    )
    await assertHeld(s, spawned, 'inside the window')
    setMode(s, 'serve')
    now += 10
    await waitFor(() => stack.gateway.registry.warm(s) === 1, 'a warm process')
    assert.equal(starts(s), spawned + 1)
    // Its initialize answered: the server started again, without any session.
    assert.equal(stack.gateway.registry.starts.isFailing(s), false)
    assert.ok(stack.logLines.some((l) => l.includes(`"msg":"server ${s} started again"`)))
  })
})
