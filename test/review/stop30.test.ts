// Stop 30 (brief review30): an outside attacker against live29's dead processes (a process is
// dead at its exit or a broken stdin, its stdout read to the end while its replacement starts:
// bridge/child.ts, replica.ts, channel.ts, pool.ts) and the bound on a shared server's charged
// subjects (shared-crashes.ts, limits.sharedCrashesSubjects). Real processes; every wait is for
// an event, a reaped pid or a line, never for a time.
import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Child } from '../../gateway/bridge/child.js'
import { SharedCrashes } from '../../gateway/bridge/shared-crashes.js'
import { SharedServer } from '../../gateway/bridge/shared.js'
import { configSchema } from '../../gateway/config/schema.js'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { recorder } from '../helpers/log-recorder.js'
import { principal } from '../helpers/principal.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { reaped } from '../helpers/wait-for.js'

const dir = mkdtempSync(join(tmpdir(), 'stop30-'))
const forgerPid = join(dir, 'forger.pid')
const holderPids = join(dir, 'holders')

// A shared server whose `exit` tool leaves a descendant holding its stdout; on SIGUSR1 that
// descendant writes replies, progress and cancellations for every id the gateway is likely to
// have given out (`s0`… and `p0`…, base 36), then exits (the dead process's stdout closes).
const forger = join(dir, 'forger.mjs')
writeFileSync(
  forger,
  `import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const FORGE = \`
process.on('SIGUSR1', () => {
  const out = []
  const ids = Array.from({ length: 200 }, (_, i) => i.toString(36))
  for (const i of ids)
    out.push(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p' + i, progress: 1, message: 'forged' } }))
  for (const i of ids)
    out.push(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 's' + i, reason: 'forged' } }))
  for (const i of ids)
    out.push(JSON.stringify({ jsonrpc: '2.0', id: 's' + i, result: { content: [{ type: 'text', text: 'forged' }] } }))
  process.stdout.write(out.join('\\\\n') + '\\\\n', () => process.exit(0))
})
setTimeout(() => {}, 600000)
\`
createInterface({ input: process.stdin }).on('line', (line) => {
  let m
  try { m = JSON.parse(line) } catch { return }
  if (m.id === undefined) return
  const result = (r) => send({ jsonrpc: '2.0', id: m.id, result: r })
  if (m.method === 'initialize')
    return result({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'forger', version: '1' } })
  if (m.method !== 'tools/call') return result({})
  if (m.params.name === 'hang') return
  if (m.params.name === 'exit') {
    const d = spawn(process.execPath, ['-e', FORGE], { stdio: ['ignore', 'inherit', 'ignore'] })
    writeFileSync(${JSON.stringify(forgerPid)}, String(d.pid))
    // Its SIGUSR1 handler is set before the gateway learns the pid (it reads the file after the exit).
    setTimeout(() => process.exit(6), 300)
    return
  }
  return result({ content: [{ type: 'text', text: 'echo ' + process.pid }] })
})
`,
)

const closing: (() => Promise<void>)[] = []
afterEach(async () => {
  const pids = [forgerPid, holderPids].flatMap((f) =>
    existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [],
  )
  for (const pid of pids)
    try {
      process.kill(Number(pid))
    } catch {}
  writeFileSync(holderPids, '')
  await Promise.all(closing.splice(0).map((c) => c()))
})

function gatewayConfig(extra: Record<string, unknown> = {}) {
  return configSchema.parse({
    servers: {
      forger: {
        command: process.execPath,
        args: [forger],
        mode: 'shared',
        // Longer than any test: the stdout stays open until the descendant exits.
        stopGrace: 60_000,
        respawnBackoff: 10,
        ...extra,
      },
    },
    limits: { sharedCrashesPerSubject: 3 },
  })
}

const call = (id: number, name: string, meta?: Record<string, unknown>) =>
  ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: {}, ...(meta ? { _meta: meta } : {}) },
  }) as JSONRPCMessage

/** Everything `child` hands on, kept, and its replies by id as promises. */
function inbox(child: Child) {
  const all: Record<string, any>[] = []
  const events = new EventEmitter()
  child.onmessage = (m) => {
    all.push(m as Record<string, any>)
    events.emit('m', m)
  }
  const reply = async (id: number) => {
    for (;;) {
      const r = all.find((m) => m.id === id && m.method === undefined)
      if (r !== undefined) return r
      await once(events, 'm')
    }
  }
  return { all, reply }
}

describe('stop30: a dead shared process is read to the end while its replacement serves', () => {
  it("what the dead process's stdout still writes reaches only its own sessions: no forged reply, progress or cancellation for a request on the replacement", async () => {
    const { log } = recorder()
    const config = gatewayConfig()
    const crashes = new SharedCrashes({ config, log })
    const shared = new SharedServer({
      name: 'forger',
      config: config.servers.forger!,
      log,
      crashes,
    })
    closing.push(() => shared.close())
    shared.start()
    const alice = await shared.attach(principal('alice'))
    const aliceIn = inbox(alice)
    const old = alice.pid
    await alice.send(call(1, 'exit'))
    await reaped(old)
    // The replacement: Bob's request (and progress token) are the replica's next ids.
    const bob = await shared.attach(principal('bob'))
    assert.notEqual(bob.pid, old)
    const bobIn = inbox(bob)
    await bob.send(call(1, 'hang', { progressToken: 'bob-token' }))
    // The dead process's stdout (its descendant) writes for every likely id, then closes.
    process.kill(Number(readFileSync(forgerPid, 'utf8')), 'SIGUSR1')
    await alice.exited
    // All it wrote was read before its stdout ended (and Alice's session with it).
    assert.ok(aliceIn.all.length > 0)
    await bob.send(call(2, 'echo'))
    assert.equal((await bobIn.reply(2)).result.content[0].text, `echo ${bob.pid}`)
    assert.deepEqual(
      bobIn.all.filter((m) => m.id !== 2),
      [],
      "nothing of the dead process reached Bob's session on the replacement",
    )
    assert.equal(bob.alive, true)
  })
})

// A shared server whose `closein` tool closes its stdin (answered first) and ignores SIGTERM:
// it runs on, deaf, until the gateway writes to it (EPIPE) and stops it with SIGKILL.
const deaf = join(dir, 'deaf.mjs')
writeFileSync(
  deaf,
  `import { closeSync } from 'node:fs'
import { createInterface } from 'node:readline'
process.on('SIGTERM', () => {})
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let m
  try { m = JSON.parse(line) } catch { return }
  if (m.id === undefined) return
  const result = (r) => send({ jsonrpc: '2.0', id: m.id, result: r })
  if (m.method === 'initialize')
    return result({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'deaf', version: '1' } })
  if (m.method !== 'tools/call') return result({})
  if (m.params.name === 'hang') return
  if (m.params.name === 'closein') {
    result({ content: [{ type: 'text', text: 'deaf now' }] })
    rl.close()
    closeSync(0)
    setInterval(() => {}, 600000)
    return
  }
  return result({ content: [{ type: 'text', text: 'echo ' + process.pid }] })
})
`,
)

describe('stop30: held, a shared process whose stdin broke while it runs on', () => {
  it('dead at the broken pipe, stopped though it ignores SIGTERM, restarted once, its sessions ended, its exit charged once to those in flight', async () => {
    const { log, lines } = recorder()
    const config = gatewayConfig({ args: [deaf], stopGrace: 100 })
    const crashes = new SharedCrashes({ config, log })
    const shared = new SharedServer({
      name: 'forger',
      config: config.servers.forger!,
      log,
      crashes,
    })
    closing.push(() => shared.close())
    shared.start()
    const alice = await shared.attach(principal('alice'))
    const bob = await shared.attach(principal('bob'))
    const aliceIn = inbox(alice)
    const bobIn = inbox(bob)
    const old = alice.pid
    await bob.send(call(1, 'hang'))
    await alice.send(call(1, 'closein'))
    assert.equal((await aliceIn.reply(1)).result.content[0].text, 'deaf now')
    // Carol attached to it before anything was written: her writes break the pipe.
    const carol = await shared.attach(principal('carol'))
    assert.equal(carol.pid, old)
    let sent = 0
    for (let id = 1; carol.alive && id < 1000; id++, sent++)
      await carol.send(call(id, 'echo')).catch(() => {})
    assert.equal(carol.alive, false, `dead after ${sent} writes`)
    // Not attached to any more: the next session is on the replacement.
    const dave = await shared.attach(principal('dave'))
    assert.notEqual(dave.pid, old)
    const daveIn = inbox(dave)
    // Stopped (SIGTERM ignored: SIGKILL) and read to the end: its sessions end.
    await reaped(old)
    await Promise.all([alice.exited, bob.exited, carol.exited])
    assert.equal((await bobIn.reply(1)).error.code, -32000)
    const charged = lines.filter((l) => /^shared server process exit charged/.test(l.msg))
    // Once; Bob's call was in flight, Alice's answered. (Carol's first write may count as in
    // flight though the pipe was broken: its write is taken before the EPIPE is heard.)
    assert.equal(charged.length, 1)
    assert.ok(charged[0]!.blamed.includes('bob'), charged[0]!.blamed)
    assert.ok(!charged[0]!.blamed.includes('alice'), charged[0]!.blamed)
    assert.equal(lines.filter((l) => l.msg === 'shared server process restarting').length, 1)
    await dave.send(call(1, 'echo'))
    assert.equal((await daveIn.reply(1)).result.content[0].text, `echo ${dave.pid}`)
  })
})

describe('stop30: an exit not charged yet (its stdout still read) counts against its culprit', () => {
  it('the culprit of a crash is refused at once, before the dead process is read to the end: it cannot crash each replacement meanwhile', async () => {
    const { log, lines } = recorder()
    const config = configSchema.parse({
      servers: {
        holder: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'holder.js')],
          mode: 'shared',
          // The descendant holds the dead process's stdout this long at most.
          stopGrace: 60_000,
          respawnBackoff: 10,
          env: { HOLDER_PIDS_FILE: holderPids },
        },
      },
      limits: { sharedCrashesPerSubject: 1 },
    })
    const crashes = new SharedCrashes({ config, log })
    const shared = new SharedServer({
      name: 'holder',
      config: config.servers.holder!,
      log,
      crashes,
    })
    closing.push(() => shared.close())
    shared.start()
    const mallory = await shared.attach(principal('mallory'))
    const old = mallory.pid
    await mallory.send(call(1, 'exit'))
    await reaped(old)
    // The replacement is up (Bob is on it), the dead process's stdout still open: not charged yet.
    const bob = await shared.attach(principal('bob'))
    assert.notEqual(bob.pid, old)
    assert.equal(crashes.size, 0)
    const refused = (err: unknown) =>
      err instanceof BridgeError && err.code === 'shared_crash_limit'
    await assert.rejects(shared.attach(principal('mallory'), 'tools/call'), refused)
    // Bob, not in flight at the crash, is not.
    const bob2 = await shared.attach(principal('bob'))
    assert.equal(bob2.pid, bob.pid)
    // Once the dead process is read to the end, its exit is charged once: still refused.
    for (const pid of readFileSync(holderPids, 'utf8').split('\n').filter(Boolean))
      process.kill(Number(pid))
    await mallory.exited
    assert.equal(crashes.size, 1)
    await assert.rejects(shared.attach(principal('mallory'), 'tools/call'), refused)
    const charged = lines.filter((l) => /^shared server process exit charged/.test(l.msg))
    assert.deepEqual(
      charged.map((l) => l.blamed),
      [['mallory']],
    )
  })
})

describe('stop30: held, a crash loop restarts no faster than the backoff', () => {
  it('each death of a shared process (its stdout held open) starts one replacement, each after a doubled delay', async () => {
    const { log, lines } = recorder()
    const config = configSchema.parse({
      servers: {
        holder: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'holder.js')],
          mode: 'shared',
          stopGrace: 60_000,
          respawnBackoff: 10,
          respawnBackoffMax: 80,
          respawnStableAfter: 3600_000,
          env: { HOLDER_PIDS_FILE: holderPids },
        },
      },
      limits: { sharedCrashesPerSubject: 0 },
    })
    const shared = new SharedServer({ name: 'holder', config: config.servers.holder!, log })
    closing.push(() => shared.close())
    shared.start()
    const pids = new Set<number>()
    for (let i = 0; i < 5; i++) {
      const c = await shared.attach(principal('mallory'))
      assert.ok(!pids.has(c.pid), 'a new process each time')
      pids.add(c.pid)
      await c.send(call(1, 'exit'))
      await reaped(c.pid)
    }
    // The fifth replacement: five deaths, five restarts, six processes ready.
    const last = await shared.attach(principal('bob'))
    assert.ok(!pids.has(last.pid))
    const delays = lines
      .filter((l) => l.msg === 'shared server process restarting')
      .map((l) => l.inMs)
    assert.deepEqual(delays, [10, 20, 40, 80, 80])
    assert.equal(lines.filter((l) => l.msg === 'shared server process ready').length, 6)
  })
})
