// Stop 73, an outside review of `servers.<name>.runAs` (bridge/run-as.ts, bridge/child.ts): where
// a process under a range uid could still reach another user's secrets once its uid is handed
// out again, and what held. Real processes under real uids (this machine and CI run as root).
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { after, describe, it } from 'node:test'
import { leaseUid, NoFreeUid, uidsSwept } from '../../gateway/bridge/run-as.js'

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
