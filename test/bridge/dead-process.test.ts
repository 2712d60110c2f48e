// A process that exited is dead at once, though a descendant of its own holds its stdout open
// (servers/holder.js): `alive` turns false at the exit (or when its stdin breaks, EPIPE), `send`
// fails at once, and no process model hands it out while its stdout is still read: a pool take
// gets another process, a shared server's new session waits for the replacement (started at
// the exit, after the backoff), a lane is not leased on it. What it wrote before it exited
// still reaches its caller, and its exit is charged once, when its stdout ends, to those in
// flight then. Real processes; the gap is held open by the descendant until the test ends it
// (stopGrace 60 s), and every wait is for an event or for the process to be reaped.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { spawnChild, type Child } from '../../gateway/bridge/child.js'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ProcessPool } from '../../gateway/bridge/pool.js'
import { SharedCrashes } from '../../gateway/bridge/shared-crashes.js'
import { SharedServer } from '../../gateway/bridge/shared.js'
import { configSchema } from '../../gateway/config/schema.js'
import { outcomeText, startLaneEngine, toolCall } from '../helpers/lane-engine.js'
import { recorder } from '../helpers/log-recorder.js'
import { gone, pidsIn } from '../helpers/pids.js'
import { principal } from '../helpers/principal.js'
import { SERVERS_DIR } from '../helpers/stack.js'
import { reaped, waitFor } from '../helpers/wait-for.js'

const HOLDER = join(SERVERS_DIR, 'holder.js')
const dir = mkdtempSync(join(tmpdir(), 'dead-process-'))
const pidsFile = join(dir, 'holders')

/** Ends every descendant holding a stdout: the stdouts close, the exits are handled. */
function endHolders(): void {
  if (!existsSync(pidsFile)) return
  for (const pid of readFileSync(pidsFile, 'utf8').split('\n').filter(Boolean))
    try {
      process.kill(Number(pid))
    } catch {}
  writeFileSync(pidsFile, '')
}

const closing: (() => Promise<void>)[] = []
afterEach(async () => {
  endHolders()
  await Promise.all(closing.splice(0).map((c) => c()))
})

/** The gateway config of the holder server in `mode`, its config as the schema fills it in. */
function gatewayConfig(mode: string, extra: Record<string, unknown> = {}) {
  return configSchema.parse({
    servers: {
      holder: {
        command: process.execPath,
        args: [HOLDER],
        mode,
        // Longer than any test: the stdout stays open until the test ends the descendant.
        stopGrace: 60_000,
        respawnBackoff: 10,
        env: { HOLDER_PIDS_FILE: pidsFile },
        ...extra,
      },
    },
    limits: { sharedCrashesPerSubject: 3 },
  })
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) =>
  ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args },
  }) as JSONRPCMessage

/** The holder server in shared mode with its crash budget and a log recorder, started; closed after the test. */
function sharedHolder(config: ReturnType<typeof gatewayConfig>) {
  const { log, lines } = recorder()
  const crashes = new SharedCrashes({ config, log })
  const shared = new SharedServer({ name: 'holder', config: config.servers.holder!, log, crashes })
  closing.push(() => shared.close())
  shared.start()
  return { log, lines, crashes, shared }
}

/** The replies `child` hands on, by id, as promises. */
function replies(child: Child) {
  const waiting = new Map<unknown, (m: Record<string, any>) => void>()
  const got = new Map<unknown, Record<string, any>>()
  child.onmessage = (m) => {
    const r = m as Record<string, any>
    got.set(r.id, r)
    waiting.get(r.id)?.(r)
  }
  return (id: number) =>
    got.has(id)
      ? Promise.resolve(got.get(id)!)
      : new Promise<Record<string, any>>((resolve) => waiting.set(id, resolve))
}

describe('a dead process: the process itself', () => {
  it('dead at its exit though its stdout is held open: alive false, send fails, its last reply read, gone when the stdout closes', async () => {
    const { log } = recorder()
    const child = await spawnChild(gatewayConfig('session').servers.holder!, log)
    closing.push(() => child.close())
    const reply = replies(child)
    let dead = 0
    let gone = 0
    child.ondead = () => dead++
    child.onexit = () => gone++
    await child.send(call(1, 'exit', { answer: true }))
    await reaped(child.pid)
    assert.equal(child.alive, false, 'dead at its exit')
    assert.equal(dead, 1)
    assert.equal(gone, 0, 'its stdout is still open')
    await assert.rejects(child.send(call(2, 'echo')), /exited/)
    // Written before it exited: read all the same.
    assert.equal((await reply(1)).result.content[0].text, 'last words')
    endHolders()
    await child.exited
    assert.deepEqual([dead, gone], [1, 1])
  })

  it('dead when its stdin breaks (EPIPE) though it runs on, and stopped', async () => {
    const config = gatewayConfig('session', {
      args: ['-e', "require('fs').closeSync(0); setInterval(() => {}, 60000)"],
      stopGrace: 100,
    }).servers.holder!
    const child = await spawnChild(config, pino({ level: 'silent' }))
    closing.push(() => child.close())
    let dead = 0
    child.ondead = () => dead++
    // Written until the broken pipe is heard (the first write may land before it closed).
    for (let id = 1; child.alive && id < 1000; id++)
      await child.send(call(id, 'echo')).catch(() => {})
    assert.equal(dead, 1)
    await assert.rejects(child.send(call(99, 'echo')), /exited/)
    // Of no use to anyone: stopped (SIGTERM after stopGrace), not left running.
    await child.exited
  })
})

describe('a dead process: no process model hands it out', () => {
  it('pool: a warm process that exited is not taken; the session gets a live one', async () => {
    const { log, line } = recorder()
    const config = gatewayConfig('session', { pool: { min: 1 } }).servers.holder!
    const pool = new ProcessPool({ name: 'holder', config, log })
    closing.push(() => pool.close())
    pool.start()
    const warm = (await line(/^warm server process ready$/)).pid as number
    process.kill(warm, 'SIGUSR2')
    await reaped(warm)
    const child = await pool.take(log)
    closing.push(() => child.close())
    assert.notEqual(child.pid, warm)
    assert.equal(child.alive, true)
    const reply = replies(child)
    await child.send(call(1, 'echo'))
    assert.equal((await reply(1)).result.content[0].text, `echo ${child.pid}`)
  })

  it('shared: a new session waits for the replacement; the last reply reaches its caller; the exit is charged once, at the end of its stdout', async () => {
    const { lines, crashes, shared } = sharedHolder(gatewayConfig('shared'))
    const alice = await shared.attach(principal('alice'))
    const bob = await shared.attach(principal('bob'))
    const aliceReply = replies(alice)
    const bobReply = replies(bob)
    // Bob's call is in flight when Alice's makes the process exit (answering her first).
    await bob.send(call(1, 'hang'))
    await alice.send(call(1, 'exit', { answer: true }))
    const old = alice.pid
    await reaped(old)
    const carol = await shared.attach(principal('carol'))
    assert.notEqual(carol.pid, old, 'attached to the replacement, not the dead process')
    const carolReply = replies(carol)
    await carol.send(call(7, 'echo'))
    assert.equal((await carolReply(7)).result.content[0].text, `echo ${carol.pid}`)
    assert.equal((await aliceReply(1)).result.content[0].text, 'last words')
    // Its stdout is still open: nobody charged yet, Bob still waiting.
    assert.equal(crashes.size, 0)
    endHolders()
    const lost = await bobReply(1)
    assert.equal(lost.error.code, -32000)
    await Promise.all([alice.exited, bob.exited])
    const charged = lines.filter((l) => /^shared server process exit charged/.test(l.msg))
    assert.deepEqual(
      charged.map((l) => l.blamed),
      [['bob']],
    )
    assert.equal(crashes.size, 1)
    // The replacement's sessions are not the dead process's: Carol's lives on.
    assert.equal(carol.alive, true)
    await carol.send(call(8, 'echo'))
    assert.equal((await carolReply(8)).result.content[0].text, `echo ${carol.pid}`)
    assert.equal(
      lines.filter((l) => l.msg === 'shared server process restarting').length,
      1,
      'one restart for one exit',
    )
  })

  it('lanes: a lane whose process exited is not leased; a new one serves; a last reply reaches its caller', async () => {
    const e = startLaneEngine(gatewayConfig('session'))
    closing.push(() => e.close())
    const first = Number(outcomeText(await e.call('holder', toolCall('echo'))).slice(5))
    assert.ok(first > 0)
    process.kill(first, 'SIGUSR2')
    await reaped(first)
    const second = Number(
      outcomeText(await e.call('holder', toolCall('echo', {}, { id: 2 }))).slice(5),
    )
    assert.ok(second > 0 && second !== first, `${second} after ${first}`)
    // A call that makes the process exit, answered first: the answer reaches the caller.
    const last = await e.call('holder', toolCall('exit', { answer: true }, { id: 3 }))
    assert.equal(outcomeText(last), 'last words')
  })
})

/**
 * How many `bytes`-long lines, written one a turn, a process's stdin pipe takes before one
 * waits (the pipe is full), measured on a process of the same kind that reads nothing.
 */
async function pipeTakes(bytes: number): Promise<number> {
  const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000)'], {
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  await new Promise((r) => proc.once('spawn', r))
  proc.stdin.on('error', () => {})
  const line = `${'x'.repeat(bytes - 1)}\n`
  let n = 0
  try {
    while (proc.stdin.writableLength === 0 && n < 100_000) {
      proc.stdin.write(line)
      n++
      await new Promise((r) => setImmediate(r))
    }
    return n - 1
  } finally {
    proc.kill('SIGKILL')
  }
}

const cancel = (id: number) =>
  ({
    jsonrpc: '2.0',
    method: 'notifications/cancelled',
    params: { requestId: id, reason: 'x' },
  }) as JSONRPCMessage

/**
 * The shared holder with Alice's `stall` holding its process (it reads nothing more, its stdin
 * pipe full behind her fillers) and Bob's one request taken by write() behind hers: it never
 * reaches the process. `bobSent` settles once its write is done ('sent') or failed.
 */
async function bobBehindAFullPipe() {
  const base = gatewayConfig('shared')
  const config = { ...base, limits: { ...base.limits, sharedCrashesPerSubject: 1 } }
  const { lines, crashes, shared } = sharedHolder(config)
  const alice = await shared.attach(principal('alice'))
  const bob = await shared.attach(principal('bob'))
  const aliceReply = replies(alice)
  // Alice's call holds the process: it reads nothing more, its stdin pipe fills.
  await alice.send(call(1, 'stall'))
  assert.equal((await aliceReply(1)).result.content[0].text, 'stalled')
  const pad = 'x'.repeat(1000)
  const filler = (id: number) => call(id, 'echo', { pad })
  // As the process gets it: the id is the replica's (`s` and a few characters).
  const bytes = JSON.stringify({ ...filler(0), id: 's1f' }).length + 1
  // A few past full: the last of hers wait behind the pipe, under the stream's mark.
  const fill = (await pipeTakes(bytes)) + 4
  for (let id = 100; id < 100 + fill; id++) {
    void alice.send(filler(id)).catch(() => {})
    await new Promise((r) => setImmediate(r))
  }
  // Bob's one request: write() takes it behind hers; it never reaches the process.
  const bobSent = bob.send(call(1, 'echo')).then(
    () => 'sent',
    () => 'not sent',
  )
  return { lines, crashes, alice, bob, bobSent }
}

/** The subjects each charged exit of the shared process was charged to, from the log. */
const chargedTo = (lines: Record<string, any>[]) =>
  lines.filter((l) => /^shared server process exit charged/.test(l.msg)).map((l) => l.blamed)

describe('a dead process: a request never written to it', () => {
  // Left alone, cancelled, or left by its closing session while its write waits: either way the
  // process never got it, and it cannot have crashed it.
  const drops: [string, (bob: Child) => Promise<void>][] = [
    ['left alone', async () => {}],
    // The cancel waits behind the pipe too: not waited for.
    [
      'cancelled by its client before its write was done',
      async (bob) => void bob.send(cancel(1)).catch(() => {}),
    ],
    ['left by its closing session before its write was done', (bob) => bob.close()],
  ]
  for (const [how, drop] of drops)
    it(`shared: one waiting behind a full pipe when the process is killed, ${how}, is not charged for its exit, nor counted while it dies`, async () => {
      const { lines, crashes, alice, bob, bobSent } = await bobBehindAFullPipe()
      await drop(bob)
      process.kill(alice.pid, 'SIGKILL')
      await reaped(alice.pid)
      assert.equal(await bobSent, 'not sent')
      // Its stdout is held open: the exit is not charged yet, only counted, Alice's whole.
      await waitFor(() => !alice.alive, 'the dead process seen')
      assert.throws(() => crashes.check('holder', principal('alice'), 'tools/call'), /retry in/)
      crashes.check('holder', principal('bob'), 'tools/call')
      endHolders()
      await Promise.all([alice.exited, bob.exited])
      assert.deepEqual(chargedTo(lines), [['alice']])
      crashes.check('holder', principal('bob'), 'tools/call')
    })

  it('shared: a crashing call cancelled in the turn it was sent still reached the process: its exit is charged', async () => {
    const { lines, crashes, shared } = sharedHolder(gatewayConfig('shared'))
    const bob = await shared.attach(principal('bob'))
    // Both in one write: the cancel is heard before the call's write is done.
    const sent = bob.send(call(1, 'exit'))
    await bob.send(cancel(1))
    await sent
    const pid = bob.pid
    await reaped(pid)
    endHolders()
    await bob.exited
    await waitFor(() => chargedTo(lines).length === 1, 'the exit charged')
    assert.deepEqual(chargedTo(lines), [['bob']])
    assert.equal(crashes.size, 1)
  })
})

describe('a dead process: a lane counts toward the bounds until its process is gone', () => {
  it('a lane whose process crashed leaving a helper that ignores SIGTERM: counted until the stop ladder ended it, the next request served then', async () => {
    const e = startLaneEngine(
      gatewayConfig('session', {
        env: { HOLDER_PIDS_FILE: pidsFile, HOLDER_START_HELPER: 'stubborn' },
        maxSessionsPerSubject: 1,
      }),
    )
    closing.push(() => e.close())
    const holder = scopeOf({ server: 'holder' })
    const first = Number(outcomeText(await e.call('holder', toolCall('echo'))).slice(5))
    const [helper] = pidsIn(pidsFile)
    try {
      assert.equal(e.lanes.count(holder), 1)
      process.kill(first, 'SIGKILL')
      await reaped(first)
      // Its stdout read: no longer a lane (leased by nobody), its helper still running.
      await waitFor(() => e.lanes.size === 0, 'the dead lane forgotten')
      assert.equal(gone(helper!), false)
      assert.equal(e.lanes.count(holder), 1, 'counted while its group is stopped')
      // At the bound: the next request waits for the ladder, then gets a process of its own.
      const next = e.call('holder', toolCall('echo', {}, { id: 2 }))
      process.kill(helper!, 'SIGKILL')
      const second = Number(outcomeText(await next).slice(5))
      assert.ok(second > 0 && second !== first, `${second} after ${first}`)
      assert.equal(e.lanes.count(holder), 1)
    } finally {
      for (const pid of pidsIn(pidsFile))
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
    }
  })
})
