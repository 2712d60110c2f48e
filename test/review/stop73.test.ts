// Stop 73, an outside review of `servers.<name>.runAs` (bridge/run-as.ts, bridge/child.ts): where
// a process under a range uid could still reach another user's secrets once its uid is handed
// out again, and what held. Real processes under real uids (this machine and CI run as root).
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { spawnChild, type Child } from '../../gateway/bridge/child.js'
import { leaseUid, NoFreeUid, uidsSwept } from '../../gateway/bridge/run-as.js'
import { runAsHostProblems, runAsSchema, type RunAsHost } from '../../gateway/config/run-as.js'
import { configSchema } from '../../gateway/config/schema.js'
import { createAuditLog } from '../../gateway/observability/audit.js'
import { auditEvent } from '../helpers/audit-event.js'
import { toolText } from '../helpers/tool-text.js'
import { waitFor } from '../helpers/wait-for.js'

/** Uids whose every process is SIGKILLed whatever a test ended in (a hopper has no one pid). */
const uidsUsed: number[] = []
after(() => {
  for (const uid of uidsUsed)
    spawnSync(process.execPath, ['-e', "process.kill(-1, 'SIGKILL')"], { uid, gid: uid })
})

/**
 * A process under `uid` that never keeps its pid: it forks and exits in a loop (each generation
 * a new `sh`, in a session of its own), writing a byte on the stdout it inherits each time. Its
 * stdout: bytes while one generation lives, its end once none does.
 */
function pidHopper(uid: number, gid: number, killer = false) {
  // A killer also sends SIGKILL to every other process of its uid each time (the sweep's helper).
  const hop = `${killer ? 'kill -9 -1; ' : ''}printf x; sh -c "$HOP" & exit 0`
  const first = spawn('setsid', ['sh', '-c', hop], {
    uid,
    gid,
    cwd: '/',
    env: { HOP: hop, PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  uidsUsed.push(uid)
  return first.stdout
}

/** Whether `out` gets bytes after now (true) or has ended or ends (false): one of the two comes. */
function stillWriting(out: NodeJS.ReadableStream & { readableEnded: boolean }): Promise<boolean> {
  if (out.readableEnded) return Promise.resolve(false)
  return new Promise((resolve) => {
    out.once('data', () => resolve(true))
    out.once('end', () => resolve(false))
  })
}

describe('runAs sweep: nothing of a uid survives its being given back', () => {
  it('a process that forks and exits in a loop (a new pid each time, out of its group) is killed, not missed by the /proc scan', async () => {
    const runAs = { uids: { from: 273_100, to: 273_100 }, gid: 273_100 }
    const lease = (await leaseUid(runAs, 200))!
    const out = pidHopper(lease.uid, lease.gid)
    // It runs: its first bytes came.
    await new Promise((resolve) => out.once('data', resolve))
    out.on('data', () => {})
    lease.exited()
    lease.release()
    await uidsSwept()
    // The uid is free again, and would go to the next user's process: nothing of the last may run.
    assert.equal(await stillWriting(out), false, 'a process of the swept uid still runs')
  })

  it('one whose leader thread exited (a zombie in /proc) while its other threads run is killed', async (t) => {
    // Python's ctypes ends the main thread alone (pthread_exit): /proc says Z, a thread writes on.
    if (spawnSync('python3', ['-c', 'import ctypes']).status !== 0) return t.skip('no python3')
    const runAs = { uids: { from: 273_103, to: 273_103 }, gid: 273_103 }
    const lease = (await leaseUid(runAs, 200))!
    uidsUsed.push(lease.uid)
    const threads = spawn(
      'python3',
      [
        '-c',
        'import threading, ctypes, os, time\n' +
          'def w():\n  while True: os.write(1, b"x"); time.sleep(0.01)\n' +
          'threading.Thread(target=w).start()\nctypes.CDLL(None).pthread_exit(None)',
      ],
      { uid: lease.uid, gid: lease.gid, cwd: '/', stdio: ['ignore', 'pipe', 'ignore'] },
    )
    const out = threads.stdout
    // Its leader is a zombie (what the scan passes over), its thread still writing.
    await waitFor(() => /^State:\s*Z/m.test(readFileSync(`/proc/${threads.pid}/status`, 'latin1')))
    await new Promise((resolve) => out.once('data', resolve))
    out.on('data', () => {})
    lease.exited()
    lease.release()
    await uidsSwept()
    assert.equal(await stillWriting(out), false, 'a thread of the swept uid still runs')
  })

  it('one that also kills every other process of its uid (the helper too) keeps its uid from being handed out', async () => {
    const runAs = { uids: { from: 273_101, to: 273_101 }, gid: 273_101 }
    const lease = (await leaseUid(runAs, 200))!
    const out = pidHopper(lease.uid, lease.gid, true)
    try {
      await new Promise((resolve) => out.once('data', resolve))
      out.on('data', () => {})
      lease.exited()
      lease.release()
      await uidsSwept()
      // The helper never gets to kill(-1); the gateway's own SIGKILL to the pids a scan found may
      // catch one generation or not: the uid goes to no one unless nothing runs under it.
      const next = await leaseUid(runAs, 200).catch((err: unknown) => err)
      if (next instanceof NoFreeUid) return
      assert.ok(!(next instanceof Error), String(next))
      assert.equal(await stillWriting(out), false, 'handed out while a process of it still runs')
      ;(next as { release(): void }).release()
      await uidsSwept()
    } finally {
      // Its next printf gets SIGPIPE: the chain ends.
      out.destroy()
    }
  })
})

/**
 * A stdio server without the SDK and without a handshake: `read` gives back the file at `path`
 * (or the error), `write` writes `text` to `path` as any program would (the umask it got).
 */
const PROBE = `
const fs = require('node:fs')
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const m = JSON.parse(l)
  const { name, arguments: a } = m.params
  let t
  try { t = name === 'read' ? fs.readFileSync(a.path, 'latin1') : (fs.writeFileSync(a.path, a.text), 'ok') }
  catch (e) { t = e.code }
  send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: t }] } })
})`

/** A server config as the gateway parses it, PROBE or `command`. */
function server(extra: Record<string, unknown>) {
  return configSchema.parse({
    servers: { p: { command: process.execPath, args: ['-e', PROBE], stopGrace: 200, ...extra } },
  }).servers.p!
}

const quiet = pino({ level: 'silent' })
const children: Child[] = []
after(() => Promise.all(children.map((c) => c.close())))
async function started(config: ReturnType<typeof server>): Promise<Child> {
  const child = await spawnChild(config, quiet)
  children.push(child)
  return child
}

describe('runAs: what a process under a range uid can reach (held)', () => {
  it('it inherits no descriptor of the gateway beyond its stdio pipes (one the gateway inherited is /dev/null)', async () => {
    // A gateway started with a descriptor open across exec (fd 40 here: a supervisor's pipe, a
    // file an operator handed it; node marks those up to the first gap past 15 close-on-exec,
    // not one past it) starts a process under a range uid and lists that one's.
    const script = `
      const fs = await import('node:fs')
      const { spawnChild } = await import(process.env.CHILD)
      const { configSchema } = await import(process.env.SCHEMA)
      const { pino } = await import(process.env.PINO)
      const config = configSchema.parse({ servers: { p: { command: 'sleep', args: ['600'], stopGrace: 200,
        runAs: { uids: '273110-273110', gid: 273110 }, pool: { max: 1 } } } }).servers.p
      const child = await spawnChild(config, pino({ level: 'silent' }))
      const fds = fs.readdirSync('/proc/' + child.pid + '/fd')
      process.stdout.write(JSON.stringify(fds.map((fd) => [fd, fs.readlinkSync('/proc/' + child.pid + '/fd/' + fd)])))
      await child.close()`
    const gateway = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: {
        PATH: process.env.PATH,
        CHILD: new URL('../../gateway/bridge/child.js', import.meta.url).href,
        SCHEMA: new URL('../../gateway/config/schema.js', import.meta.url).href,
        PINO: import.meta.resolve('pino'),
      },
      stdio: [
        'ignore',
        'pipe',
        'inherit',
        ...Array.from({ length: 37 }, () => 'ignore' as const),
        'pipe',
      ],
    })
    let out = ''
    gateway.stdout!.on('data', (d) => (out += d))
    const code = await new Promise((resolve) => gateway.once('close', resolve))
    assert.equal(code, 0)
    const fds = JSON.parse(out) as [string, string][]
    // Fd 40, and whatever this test's runner handed down too.
    assert.ok(
      fds.some(([fd]) => fd === '40'),
      JSON.stringify(fds),
    )
    for (const [fd, target] of fds)
      if (Number(fd) < 3) assert.match(target, /^socket:/)
      else assert.equal(target, '/dev/null', `fd ${fd} is the gateway's ${target}`)
  })

  it("it cannot read the gateway's environment, nor another range process's", async () => {
    const config = server({ runAs: { uids: '273111-273112', gid: 273111 }, pool: { max: 2 } })
    const [a, b] = [await started(config), await started(config)]
    assert.equal(await toolText(a, 'read', { path: `/proc/${process.pid}/environ` }), 'EACCES')
    assert.equal(await toolText(a, 'read', { path: `/proc/${b.pid}/environ` }), 'EACCES')
  })
})

describe('runAs: files a process leaves behind (todo: design)', () => {
  after(() => {
    for (const uid of [273113, 273114])
      rmSync(`/tmp/stop73-${uid === 273113 ? 'left' : 'shared'}-${uid}`, { force: true })
  })
  it('todo: a file a process left in /tmp is not read by the next process handed its uid', {
    todo: "a uid is swept of processes, not of files: what user A left under it (/tmp, /dev/shm, a HOME gid may write) is the next user's, owned by the uid it gets; needs a private /tmp and HOME per lease (mount namespace) or a sweep of what the uid owns",
  }, async () => {
    const config = server({ runAs: { uids: '273113-273113', gid: 273113 }, pool: { max: 1 } })
    const path = '/tmp/stop73-left-273113'
    const alice = await started(config)
    assert.equal(await toolText(alice, 'write', { path, text: 'alice-token' }), 'ok')
    await alice.close()
    await uidsSwept()
    const bob = await started(config)
    assert.notEqual(await toolText(bob, 'read', { path }), 'alice-token')
  })

  it("todo: a file one range process writes (the gateway's umask 022) is not read by another's uid", {
    todo: "a process gets the gateway's umask (022): what it writes is world-readable, to every other uid of the range; a umask 077 for runAs processes would close it",
  }, async () => {
    const config = server({ runAs: { uids: '273114-273115', gid: 273114 }, pool: { max: 2 } })
    const path = '/tmp/stop73-shared-273114'
    const [alice, bob] = [await started(config), await started(config)]
    assert.equal(await toolText(alice, 'write', { path, text: 'alice-token' }), 'ok')
    assert.notEqual(await toolText(bob, 'read', { path }), 'alice-token')
  })
})

describe("runAs config: a gid the gateway's files are readable by", () => {
  // A gateway with the capabilities but not root: its secret files (sealing keys, pins, audit)
  // readable by its group, as 0640 files are.
  const gateway: RunAsHost = { platform: 'linux', uid: 1000, gids: [1000, 27], capabilities: 0xe0n }
  const check = (runAs: Record<string, unknown>) =>
    runAsHostProblems({ files: { runAs: runAsSchema.parse(runAs) } }, gateway).map((p) => p.message)

  it("refuses the gateway's own gid, or one of its groups, as runAs.gid", () => {
    for (const gid of [1000, 27])
      for (const runAs of [
        { uids: '200000-200009', gid },
        { uid: 200000, gid },
      ])
        assert.deepEqual(check(runAs), [
          `gid ${gid} is the gateway's own group: its processes could read the gateway's group-readable files`,
        ])
  })

  it('a gid of its own loads', () =>
    assert.deepEqual(check({ uids: '200000-200009', gid: 200000 }), []))
})

describe('runAs: files the gateway creates (todo: an operator decision)', () => {
  it('todo: the audit file the gateway creates is not read by a process under a range uid', {
    todo: "the audit file is created with the gateway's umask (0644): every user's subject and tool calls are readable by every runAs process; README now says to run the gateway with umask 077 (systemd UMask=0077) with runAs; a mode 0600 here would break a log shipper running as another user",
  }, async () => {
    const dir = mkdtempSync('/tmp/stop73-audit-')
    // Where an audit log lives (/var/log/mcp-edge): a folder anyone may enter.
    chmodSync(dir, 0o755)
    try {
      const log = createAuditLog(`${dir}/audit.log`, pino({ level: 'silent' }))
      log.record(auditEvent('alice@example.com'))
      await log.flush()
      log.close?.()
      const read = spawnSync(
        process.execPath,
        [
          '-e',
          'process.stdout.write(require("fs").readFileSync(process.argv[1], "latin1"))',
          `${dir}/audit.log`,
        ],
        { uid: 273116, gid: 273116, encoding: 'latin1' },
      )
      assert.doesNotMatch(read.stdout, /alice@example\.com/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
