import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** Kernel clock ticks per second (`getconf CLK_TCK`), read once. */
export const CLK_TCK =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** `own`: utime+stime; `ticks`: own plus cutime+cstime (reaped children). */
interface Stat {
  pid: number
  ppid: number
  own: number
  ticks: number
}

/** One /proc/<pid>/stat line; undefined if the process is gone. */
function readStat(pid: number): Stat | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // comm (field 2) may hold spaces and parentheses: split after its last ')'. proc(5):
  // 4 ppid, 14 utime, 15 stime, 16 cutime, 17 cstime; rest[0] is field 3.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const f = (n: number) => Number(rest[n - 3])
  const own = f(14) + f(15)
  return { pid, ppid: f(4), own, ticks: own + f(16) + f(17) }
}

function allStats(): Stat[] {
  const out: Stat[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = readStat(Number(name))
    if (s) out.push(s)
  }
  return out
}

/** `root` and every live descendant (ppid links), with their stats. */
function treeStats(root: number): Stat[] {
  const stats = allStats()
  const children = new Map<number, Stat[]>()
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s])
  const rootStat = stats.find((s) => s.pid === root)
  if (!rootStat) return []
  const out = [rootStat]
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!.pid) ?? []))
  return out
}

/** Pids of `root` and its live descendants. */
export function treePids(root: number): number[] {
  return treeStats(root).map((s) => s.pid)
}

/**
 * CPU ms used so far by the tree under `root`: utime+stime of each live process plus
 * cutime+cstime (children it has reaped), so processes that exited still count.
 */
export function treeCpuMs(root: number): number {
  return (treeStats(root).reduce((sum, s) => sum + s.ticks, 0) * 1000) / CLK_TCK
}

/** CPU ms of `root` itself (utime+stime), without its children. */
export function ownCpuMs(root: number): number {
  const stat = readStat(root)
  return stat === undefined ? NaN : (stat.own * 1000) / CLK_TCK
}

/**
 * How often each live descendant of `root` (not `root` itself) has gone to sleep and woken up
 * again so far: its main thread's voluntary context switches (proc(5) `voluntary_ctxt_switches`), by pid. A
 * stdio child wakes for input; unlike CPU time, the count does not grow when other processes
 * crowd the cores, so it tells a child fed more often apart from one slowed by its neighbours.
 */
export function childWakeups(root: number): Map<number, number> {
  const out = new Map<number, number>()
  for (const pid of treePids(root)) {
    if (pid === root) continue
    try {
      const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(
        readFileSync(`/proc/${pid}/status`, 'utf8'),
      )
      if (m) out.set(pid, Number(m[1]))
    } catch {
      // exited between listing and reading
    }
  }
  return out
}

/**
 * The children's activity between two `childWakeups` readings: wake-ups of those alive at both
 * (the gone ones' last counts are lost), and how many started and ended in between.
 */
export function wakeupsBetween(
  before: Map<number, number>,
  after: Map<number, number>,
): { wakeups: number; started: number; ended: number } {
  let wakeups = 0
  let started = 0
  for (const [pid, n] of after) {
    const was = before.get(pid)
    if (was === undefined) started++
    else wakeups += n - was
  }
  let ended = 0
  for (const pid of before.keys()) if (!after.has(pid)) ended++
  return { wakeups, started, ended }
}

/** Sum of VmRSS over the tree under `root`, in MB. */
export function treeRssMb(root: number): number {
  let kb = 0
  for (const pid of treePids(root)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      kb += Number(m?.[1] ?? 0)
    } catch {
      // exited between listing and reading
    }
  }
  return kb / 1024
}

/** Samples the tree's RSS every `everyMs` until stopped; returns the peak (MB). */
export function rssSampler(root: number, everyMs = 50): { stop(): number } {
  let peak = treeRssMb(root)
  const timer = setInterval(() => {
    peak = Math.max(peak, treeRssMb(root))
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      return Math.max(peak, treeRssMb(root))
    },
  }
}

/** VmRSS of `pid` alone, in MB (NaN if it is gone). */
export function ownRssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return Number(m?.[1] ?? NaN) / 1024
  } catch {
    return NaN
  }
}

/**
 * Of `pid`'s RSS, its own memory, in MB (NaN if it is gone): RssAnon + RssShmem (heap, malloc,
 * stacks), without RssFile (pages of the node binary and libraries, shared with other node
 * processes and dropped by the kernel under pressure).
 */
export function ownAnonMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k: string) =>
      Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
    return (kb('RssAnon') + kb('RssShmem')) / 1024
  } catch {
    return NaN
  }
}

/** glibc's HEAP_MAX_SIZE on 64-bit: each heap of a per-thread malloc arena is reserved this
 *  big and aligned to it. */
const ARENA_HEAP_BYTES = 64n * 1024n * 1024n

/**
 * Of an smaps(5) text, the resident KB of glibc's per-thread malloc arenas (a diagnostic: the
 * main thread's arena is `[heap]`, not counted). Each heap of such an arena is one anonymous
 * mapping that starts on a 64 MB boundary: its usable part `rw-p`, the rest of the 64 MB
 * reserved `---p` right after it (none once it is fully grown). Memory glibc keeps there may be
 * free: malloc_info tells; this says only how much of it is resident.
 */
export function arenaKb(smaps: string): number {
  const maps: { start: bigint; end: bigint; perms: string; anon: boolean; rssKb: number }[] = []
  for (const line of smaps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\S+)\s*(\S*)/.exec(line)
    if (m) {
      const [, start, end, perms, inode, path] = m
      const anon = inode === '0' && path === ''
      maps.push({
        start: BigInt(`0x${start}`),
        end: BigInt(`0x${end}`),
        perms: perms!,
        anon,
        rssKb: 0,
      })
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    const last = maps.at(-1)
    if (rss && last) last.rssKb = Number(rss[1])
  }
  let kb = 0
  maps.forEach((m, i) => {
    if (!m.anon || m.perms !== 'rw-p' || m.start % ARENA_HEAP_BYTES !== 0n) return
    const heapEnd = m.start + ARENA_HEAP_BYTES
    const next = maps[i + 1]
    const reserved =
      next?.anon && next.perms === '---p' && next.start === m.end && next.end === heapEnd
    if (m.end === heapEnd || reserved) kb += m.rssKb
  })
  return kb
}

/** Resident MB of `pid`'s per-thread malloc arenas ({@link arenaKb}; NaN if it is gone). */
export function ownArenaMb(pid: number): number {
  try {
    return arenaKb(readFileSync(`/proc/${pid}/smaps`, 'utf8')) / 1024
  } catch {
    return NaN
  }
}

/** A live (not zombie) direct child of a process and how long it has been running. */
export interface LiveChild {
  pid: number
  ageMs: number
}

/** The live direct children of `parent`; zombies (exited, not yet reaped) are left out. */
export function liveChildren(parent: number): LiveChild[] {
  const uptimeMs = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000
  const out: LiveChild[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let text: string
    try {
      text = readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch {
      continue
    }
    // proc(5): 3 state, 4 ppid, 22 starttime (ticks after boot); rest[0] is field 3.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
    if (Number(rest[1]) !== parent || rest[0] === 'Z' || rest[0] === 'X') continue
    out.push({ pid: Number(name), ageMs: uptimeMs - (Number(rest[19]) * 1000) / CLK_TCK })
  }
  return out
}
