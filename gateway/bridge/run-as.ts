import { spawn, type StdioPipe } from 'node:child_process'
import { openSync, readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RunAs } from '../config/run-as.js'
import { procFind } from './proc-scan.js'

/*
 * The uids of `runAs` ranges: each live process of such a server runs as a uid no other live
 * process has, so none reads another's /proc/<pid>/environ (a user's credentials). A uid is
 * handed out again only once its process is gone and nothing else runs under it: what escaped
 * its process group (setsid) is killed first, by a helper running as that uid that signals every
 * process of its own (kill(2) with pid -1: atomic in the kernel, a forking process cannot
 * outrun it). Uids are an OS-wide resource: the bookkeeping is this process's, whatever
 * gateway (a test runs several) holds it; the ranges of other processes on the host (another
 * replica) must not overlap (README "Process isolation").
 */

/** How often a uid being swept is looked at for processes left, in ms (a pace; stopGrace bounds it). */
const SWEEP_POLL_MS = 50
/** Kill rounds on one uid before it is set aside (a process stuck in uninterruptible sleep). */
const SWEEP_ROUNDS = 2
/** Uids of one range tried in turn for one process before the range counts as used up. */
const TAKE_TRIES = 4

/** What a process is spawned as, and how its uid is given back once the process is gone. */
export interface UidLease {
  uid: number
  gid: number
  /** The process exited: its uid comes back once it is gone (its stop ladder over). */
  exited(): void
  /** The process is gone: its uid is swept, then free again (the least recently used last). */
  release(): void
}

/** No uid of the server's range is free: every one is a live process's, or being swept. */
export class NoFreeUid extends Error {}

/** Uids of live processes (and of those being swept), in every range: never handed out twice. */
const held = new Set<number>()

/** One range: the next uid never handed out, then those given back, least recently used first. */
interface Range {
  next: number
  to: number
  free: number[]
  /** Uids given back and being swept: free once their sweep is over. */
  sweeping: Set<Promise<void>>
  /** Leases whose process exited and is not gone yet: their uids come back within a stop ladder. */
  dying: number
  /** Those waiting for a uid to be given back. */
  waiting: Set<() => void>
}
const ranges = new Map<string, Range>()

/**
 * What a process of a server with `runAs` is spawned as: its fixed user, or the least recently
 * used free uid of its range, swept of any process left under it. Undefined without `runAs`.
 * @throws NoFreeUid when none of the range is free, or none could be swept
 */
export async function leaseUid(
  runAs: RunAs | undefined,
  graceMs: number,
): Promise<UidLease | undefined> {
  if (runAs === undefined) return undefined
  const { gid } = runAs
  if (runAs.uids === undefined) return { uid: runAs.uid!, gid, exited: () => {}, release: () => {} }
  const { from, to } = runAs.uids
  const key = `${from}-${to}`
  let range = ranges.get(key)
  if (range === undefined)
    ranges.set(
      key,
      (range = { next: from, to, free: [], sweeping: new Set(), dying: 0, waiting: new Set() }),
    )
  const setAside = new Set<number>()
  for (let tries = 0; tries < TAKE_TRIES; tries++) {
    const uid = await free(range)
    if (uid === undefined) break
    // Back to one that could not be swept just now: the others are no better.
    if (setAside.has(uid)) {
      range.free.push(uid)
      break
    }
    held.add(uid)
    // Nothing runs under it (its last process's escapees were swept when it was given back):
    // looked at again, since another process on the host may have started something since.
    if (await sweep(uid, gid, graceMs)) {
      const lease = range
      let released = false
      let dying = false
      return {
        uid,
        gid,
        exited: () => {
          if (dying || released) return
          dying = true
          lease.dying++
        },
        release: () => {
          if (released) return
          released = true
          if (dying) lease.dying--
          for (const wake of lease.waiting) wake()
          lease.waiting.clear()
          // Swept now, not when next taken: what escaped holds the user's credentials.
          const swept = sweep(uid, gid, graceMs).then(() => {
            held.delete(uid)
            lease.free.push(uid)
            lease.sweeping.delete(swept)
          })
          lease.sweeping.add(swept)
        },
      }
    }
    // Something under it survived SIGKILL: tried again last.
    held.delete(uid)
    range.free.push(uid)
    setAside.add(uid)
  }
  throw new NoFreeUid(`no free uid in ${key}`)
}

/**
 * Resolves once every uid given back so far is swept, free again (or set aside): for whoever
 * must know nothing runs under them any more (a test).
 */
export async function uidsSwept(): Promise<void> {
  await Promise.all([...ranges.values()].flatMap((r) => [...r.sweeping]))
}

/**
 * A free uid of `range`, waited for while one is being swept (its process is gone and pool.max
 * no longer counts it: one /proc scan, unless something escaped), or while a process of the
 * range has exited and is not gone yet (within its stop ladder: a shared process restarting
 * while the one it replaces is being stopped). Undefined when none is free or coming.
 */
async function free(range: Range): Promise<number | undefined> {
  let uid = pick(range)
  while (uid === undefined && (range.sweeping.size > 0 || range.dying > 0)) {
    if (range.sweeping.size > 0) await Promise.race(range.sweeping)
    else await new Promise<void>((resolve) => range.waiting.add(resolve))
    uid = pick(range)
  }
  return uid
}

/** The least recently used uid of `range` no live process holds: never used ones first. */
function pick(range: Range): number | undefined {
  while (range.next <= range.to) {
    const uid = range.next++
    if (!held.has(uid)) return uid
  }
  for (let i = 0; i < range.free.length; i++) {
    if (held.has(range.free[i]!)) continue
    return range.free.splice(i, 1)[0]
  }
  return undefined
}

/**
 * Ends every process running as `uid` (real, effective or saved): resolves true once none is
 * left after the helper ran, false when none of SWEEP_ROUNDS rounds of `graceMs` got there.
 */
async function sweep(uid: number, gid: number, graceMs: number): Promise<boolean> {
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    // Killed even when a scan finds nothing: one that forks and exits in a loop (a pid never the
    // same twice) or whose leader is a zombie with threads running is in no scan. Swept only
    // once the helper ran: one killed by a process of the uid proves nothing.
    const ran = await killAll(uid, gid)
    const deadline = Date.now() + graceMs
    let left = await processesOf(uid)
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(SWEEP_POLL_MS)
      left = await processesOf(uid)
    }
    if (ran && left.length === 0) return true
  }
  return false
}

/**
 * SIGKILL to every process of `uid`: from a helper running as it (kill(-1) signals every process
 * the caller may signal, those of its own uid, itself excepted), and from the gateway to each
 * one a scan finds (its CAP_KILL) should the helper not run to its end. True once it did.
 */
async function killAll(uid: number, gid: number): Promise<boolean> {
  const helper = spawn(process.execPath, ['-e', "process.kill(-1, 'SIGKILL')"], {
    uid,
    gid,
    cwd: '/',
    env: {},
    // Run as the uid too: what the gateway inherited is no more its than the process's.
    stdio: runAsStdio().map((o, fd) => (fd < 3 ? 'ignore' : o)),
  })
  const ran = await new Promise<boolean>((resolve) => {
    helper.once('error', () => resolve(false))
    helper.once('exit', (code) => resolve(code === 0))
  })
  if (ran) return true
  for (const pid of await processesOf(uid))
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  return false
}

/** O_CLOEXEC as /proc/<pid>/fdinfo spells the flags (octal). */
const O_CLOEXEC = 0o2000000
let stdio: (StdioPipe | 'ignore' | number)[] | undefined

/**
 * The stdio of a process under a \`runAs\` uid: its three pipes, and /dev/null over every
 * descriptor this gateway inherited open across exec (without O_CLOEXEC: its own all have it)
 * from whoever started it (a supervisor's pipe, a file it was handed), which the process would
 * otherwise get as well: a stranger's uid reads and writes through it all the same.
 */
export function runAsStdio(): (StdioPipe | 'ignore' | number)[] {
  if (stdio !== undefined) return stdio
  const open: (StdioPipe | 'ignore' | number)[] = ['pipe', 'pipe', 'pipe']
  let nul: number | undefined
  for (const fd of readdirSync('/proc/self/fd').map(Number)) {
    if (fd < 3) continue
    let flags: string | undefined
    try {
      flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1]
    } catch {}
    if (flags === undefined || (Number.parseInt(flags, 8) & O_CLOEXEC) !== 0) continue
    open[fd] = nul ??= openSync('/dev/null', 'r+')
  }
  // Every index filled: spawn reads the array as a list, skipping holes.
  return (stdio = Array.from(open, (o) => o ?? 'ignore'))
}

/** Pids of processes (not zombies) whose real, effective, saved or fs uid is `uid` (Linux /proc). */
async function processesOf(uid: number): Promise<number[]> {
  const found = await procFind('status', (status) => {
    const state = /^State:\s*(\S)/m.exec(status)?.[1]
    if (state === 'Z' || state === 'X') return false
    return (/^Uid:\s*(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number) ?? []).includes(uid)
  })
  return found ?? []
}
