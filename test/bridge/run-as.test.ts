// `servers.<name>.runAs` (bridge/run-as.ts, bridge/child.ts): each live process of a server with
// a uid range runs as a uid no other live process has, with the range's gid and no supplementary
// groups; a uid is handed out again, least recently used first, only once its process and what
// escaped its group (setsid) are gone; the stop ladder ends a process of another uid; warm and
// shared processes have theirs from spawn; a range every uid of which is held is a 503. Without
// runAs a process still runs as the gateway's user and reads the gateway's environment (the
// documented default). Real processes as real uids (this machine and CI run as root); every
// wait is for an event or a process to be gone, never for a time.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, afterEach, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { goneOf, spawnChild, type Child } from '../../gateway/bridge/child.js'
import { leaseUid, uidsSwept } from '../../gateway/bridge/run-as.js'
import { configSchema } from '../../gateway/config/schema.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { gone } from '../helpers/pids.js'
import { firstData } from '../helpers/sse.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { toolText } from '../helpers/tool-text.js'

/**
 * A stdio MCP server without the SDK: `read` gives back the file at `path` (or the error),
 * `whoami` its pid, uid, gid and groups, `exit` exits (`exitHolding` leaving a descendant holding its stdout), `escape` starts a process in a session of its own
 * (setsid: out of its group, which the stop ladder signals) and gives back its pid. With
 * PROBE_STUBBORN set it ignores SIGTERM and its stdin closing.
 */
const PROBE = `
const fs = require('node:fs')
if (process.env.PROBE_STUBBORN) { process.on('SIGTERM', () => {}); setInterval(() => {}, 60000) }
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const m = JSON.parse(l)
  if (m.id === undefined) return
  const ok = (result) => send({ jsonrpc: '2.0', id: m.id, result })
  const text = (t) => ok({ content: [{ type: 'text', text: typeof t === 'string' ? t : JSON.stringify(t) }] })
  if (m.method === 'initialize')
    return ok({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} },
      serverInfo: { name: 'probe', version: '0' } })
  if (m.method === 'ping') return ok({})
  if (m.method === 'tools/list')
    return ok({ tools: ['read', 'whoami', 'escape', 'exit', 'exitHolding'].map((name) => ({ name, inputSchema: { type: 'object' } })) })
  if (m.method === 'tools/call') {
    const { name, arguments: a } = m.params
    if (name === 'read') {
      try { return text(fs.readFileSync(a.path, 'latin1')) } catch (e) { return text(String(e)) }
    }
    if (name === 'whoami')
      return text({ pid: process.pid, uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() })
    if (name === 'exit') process.exit(3)
    if (name === 'exitHolding') {
      // A descendant in its group holds its stdout: it is gone only once the ladder ended that.
      require('node:child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'],
        { stdio: ['ignore', 'inherit', 'ignore'] })
      process.exit(3)
    }
    if (name === 'escape') {
      const c = require('node:child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'],
        { detached: true, stdio: 'ignore' })
      c.unref()
      return text({ pid: c.pid })
    }
  }
  send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no' } })
})`

const quiet = pino({ level: 'silent' })

/** A server running PROBE, parsed as the gateway would. */
function probe(extra: Record<string, unknown>) {
  return configSchema.parse({
    servers: {
      probe: { command: process.execPath, args: ['-e', PROBE], stopGrace: 200, ...extra },
    },
  }).servers.probe!
}

/** The uids (real, effective, saved, fs), gids and supplementary groups the kernel holds for `pid`. */
function credentialsOf(pid: number): { uids: number[]; gids: number[]; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1')
  const line = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)![1]!.trim()
  return {
    uids: line('Uid').split(/\s+/).map(Number),
    gids: line('Gid').split(/\s+/).map(Number),
    groups: line('Groups'),
  }
}

/** Calls `name` on `child` (no handshake: PROBE needs none) and gives back its text, parsed. */
async function call(child: Child, name: string, args: Record<string, unknown> = {}) {
  return JSON.parse(await toolText(child, name, args)) as Record<string, unknown>
}

const started: Child[] = []
const strays: number[] = []
afterEach(async () => {
  for (const pid of strays.splice(0))
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  await Promise.all(started.splice(0).map((c) => c.close()))
})

async function spawned(config: ReturnType<typeof probe>): Promise<Child> {
  const child = await spawnChild(config, quiet)
  started.push(child)
  return child
}

describe('runAs: a uid of its own for each live process', () => {
  it('two live processes have different uids from the range, its gid, and no supplementary groups', async () => {
    const config = probe({ runAs: { uids: '200100-200102', gid: 200100 }, pool: { max: 3 } })
    // The gateway with supplementary groups of its own: none may reach a child.
    const before = process.getgroups!()
    process.setgroups!([0, 4242])
    try {
      const [a, b] = [await spawned(config), await spawned(config)]
      const [ca, cb] = [credentialsOf(a.pid), credentialsOf(b.pid)]
      assert.deepEqual(ca.uids, [200100, 200100, 200100, 200100])
      assert.deepEqual(cb.uids, [200101, 200101, 200101, 200101])
      for (const c of [ca, cb]) {
        assert.deepEqual(c.gids, [200100, 200100, 200100, 200100])
        assert.equal(c.groups, '', 'no supplementary group of the gateway')
      }
      // What the process itself sees agrees (getgroups(2) may list the effective gid too).
      assert.deepEqual(await call(a, 'whoami'), {
        pid: a.pid,
        uid: 200100,
        gid: 200100,
        groups: [200100],
      })
    } finally {
      process.setgroups!(before)
    }
  })

  it('a uid comes back only once its process and what escaped its group (setsid) are gone', async () => {
    const config = probe({ runAs: { uids: [200110, 200111], gid: 200110 }, pool: { max: 2 } })
    const a = await spawned(config)
    const b = await spawned(config)
    assert.equal(credentialsOf(a.pid).uids[0], 200110)
    assert.equal(credentialsOf(b.pid).uids[0], 200111)
    const { pid: escaped } = (await call(a, 'escape')) as { pid: number }
    strays.push(escaped)
    assert.equal(gone(escaped), false, 'the escapee runs')
    assert.equal(credentialsOf(escaped).uids[0], 200110, 'under the uid of its process')
    // Its process ends; the escapee is in a session of its own and outlives the group's ladder.
    await a.close()
    await goneOf(a)
    // The only uid that can be free: waited for while it is swept, not refused.
    const c = await spawned(config)
    assert.equal(credentialsOf(c.pid).uids[0], 200110)
    assert.ok(gone(escaped), 'what ran under the uid was ended before it was handed out again')
  })

  it('the least recently used uid first: never used ones, then in the order they were given back', async () => {
    const config = probe({ runAs: { uids: '200115-200117', gid: 200115 }, pool: { max: 3 } })
    const [a, b, c] = [await spawned(config), await spawned(config), await spawned(config)]
    assert.deepEqual(
      [a, b, c].map((x) => credentialsOf(x.pid).uids[0]),
      [200115, 200116, 200117],
    )
    for (const x of [b, a]) {
      await x.close()
      await goneOf(x)
      await uidsSwept()
    }
    const [d, e] = [await spawned(config), await spawned(config)]
    assert.equal(credentialsOf(d.pid).uids[0], 200116)
    assert.equal(credentialsOf(e.pid).uids[0], 200115)
  })

  it('the stop ladder ends a process of another uid that ignores its stdin closing and SIGTERM', async () => {
    const config = probe({
      runAs: { uids: '200120-200120', gid: 200120 },
      pool: { max: 1 },
      env: { PROBE_STUBBORN: '1' },
    })
    const child = await spawned(config)
    assert.equal(credentialsOf(child.pid).uids[0], 200120)
    await child.close()
    assert.ok(gone(child.pid), 'SIGKILL reached it')
  })

  it('a fixed uid: every process of the server runs as that one user', async () => {
    const config = probe({ runAs: { uid: 200130, gid: 200131 } })
    const [a, b] = [await spawned(config), await spawned(config)]
    for (const c of [a, b]) {
      assert.deepEqual(credentialsOf(c.pid).uids, [200130, 200130, 200130, 200130])
      assert.deepEqual(credentialsOf(c.pid).gids, [200131, 200131, 200131, 200131])
    }
  })
})

describe('runAs through the gateway: warm, shared and sessionless processes; a range used up', () => {
  let stack: Stack
  const policy = (names: string[]) =>
    `roles: { mcp-user: ["mcp:read"] }\nservers:\n${[...names, 'echo']
      .map((n) => `  ${n}: { access: ["mcp:read"], tools: { "*": ["mcp:read"] } }`)
      .join('\n')}\n`
  const server = (extra: Record<string, unknown>) => ({
    command: process.execPath,
    args: ['-e', PROBE],
    ...extra,
  })
  before(async () => {
    stack = await startStack({
      servers: {
        plain: server({}),
        warm: server({
          runAs: { uids: '200140-200141', gid: 200140 },
          pool: { min: 1, max: 2, preinitialize: true },
        }),
        shared: server({ mode: 'shared', runAs: { uids: '200150-200150', gid: 200150 } }),
        restarts: server({
          mode: 'shared',
          runAs: { uids: '200155-200155', gid: 200155 },
          respawnBackoff: 10,
          stopGrace: 100,
        }),
        narrow: server({
          runAs: { uids: '200160-200160', gid: 200160 },
          pool: { max: 1 },
        }),
      },
      policy: policy(['plain', 'warm', 'shared', 'restarts', 'narrow']),
    })
  })
  after(() => stack?.close())

  /** `name` called on `server` for alice: the HTTP status and the tool's text (or the body). */
  async function tool(server: string, name: string, args: Record<string, unknown> = {}) {
    const token = await stack.token('alice', { server })
    const res = await request(stack.local(server), modernToolCall(token, name, args))
    const body = await res.body.text()
    const message = JSON.parse(firstData(body) ?? body) as {
      result?: { content: { text: string }[] }
    }
    return { status: res.statusCode, body, text: message.result?.content[0]?.text }
  }

  it("held, the documented default: without runAs a process reads the gateway's environment", async () => {
    const got = await tool('plain', 'read', { path: `/proc/${process.pid}/environ` })
    assert.equal(got.status, 200, got.body)
    assert.match(got.text!, /(^|\0)PATH=/)
    const who = JSON.parse((await tool('plain', 'whoami')).text!) as { uid: number }
    assert.equal(who.uid, process.getuid!())
  })

  it('a warm (preinitialized) process and a shared one run as uids of their ranges', async () => {
    const warm = JSON.parse((await tool('warm', 'whoami')).text!) as { uid: number; gid: number }
    assert.ok([200140, 200141].includes(warm.uid), String(warm.uid))
    assert.equal(warm.gid, 200140)
    const shared = JSON.parse((await tool('shared', 'whoami')).text!) as { uid: number }
    assert.equal(shared.uid, 200150)
    const read = await tool('warm', 'read', { path: `/proc/${process.pid}/environ` })
    assert.match(read.text!, /EACCES: permission denied/)
  })

  it("a shared process that crashed is replaced under its range's one uid once it is gone", async () => {
    const first = JSON.parse((await tool('shared', 'whoami')).text!) as { pid: number; uid: number }
    await tool('shared', 'exit')
    const next = JSON.parse((await tool('shared', 'whoami')).text!) as { pid: number; uid: number }
    assert.notEqual(next.pid, first.pid)
    assert.equal(next.uid, 200150)
    assert.ok(gone(first.pid))
  })

  it('a shared process restarting before the one it replaces is gone waits for its uid, no failed start', async () => {
    const first = JSON.parse((await tool('restarts', 'whoami')).text!) as { pid: number }
    await tool('restarts', 'exitHolding')
    const next = JSON.parse((await tool('restarts', 'whoami')).text!) as {
      pid: number
      uid: number
    }
    assert.notEqual(next.pid, first.pid)
    assert.equal(next.uid, 200155)
    const failed = stack.logLines.filter((l) => l.includes('shared server process failed to start'))
    assert.deepEqual(failed, [])
  })

  it('a range whose every uid is held is a 503 naming runAs.uids; served again once one is free', async () => {
    // Another holder of the same uids in this process (another gateway): none is free.
    const held = await leaseUid({ uids: { from: 200160, to: 200160 }, gid: 200160 }, 200)
    let released = false
    try {
      const got = await tool('narrow', 'whoami')
      assert.equal(got.status, 503, got.body)
      assert.match(got.body, /server narrow has no free uid in runAs.uids; retry later/)
      held!.release()
      released = true
      const again = await tool('narrow', 'whoami')
      assert.equal(again.status, 200, again.body)
      assert.equal((JSON.parse(again.text!) as { uid: number }).uid, 200160)
    } finally {
      if (!released) held!.release()
    }
  })
})
