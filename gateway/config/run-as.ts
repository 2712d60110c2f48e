import { readFileSync } from 'node:fs'
import { z } from 'zod'

/*
 * `servers.<name>.runAs`: the OS user a server's processes run as. A uid of their own is what
 * keeps one process from reading another's /proc/<pid>/environ (a user's credentials), the
 * gateway's, and the gateway's secret files: Linux lets only the same uid (or CAP_SYS_PTRACE)
 * do that. Checked here: the shape, the sizes, overlaps, and that this gateway may do it.
 */

/** The largest uid or gid: (uid_t)-1 is "unchanged" to setuid(2). */
const MAX_OS_ID = 4_294_967_294

/** A uid or gid a server process runs as: never 0 (root would read everything). */
const osId = z
  .number({ error: 'a number (a uid or gid)' })
  .int('a whole number')
  .min(1, 'never 0 (root)')
  .max(MAX_OS_ID, `at most ${MAX_OS_ID}`)

/** `"from-to"` or `[from, to]`, both included, from ≤ to. */
const uidRange = z
  .union(
    [
      z
        .string()
        .regex(/^\s*\d{1,10}\s*-\s*\d{1,10}\s*$/, 'a range "from-to" of uids, or [from, to]')
        .transform((s) => s.split('-').map((n) => Number(n.trim()))),
      z.tuple([z.unknown(), z.unknown()]),
    ],
    { error: 'a range "from-to" of uids, or [from, to]' },
  )
  .pipe(z.tuple([osId, osId]))
  .refine(([from, to]) => from <= to, 'from must not exceed to (an empty range)')
  .transform(([from, to]) => ({ from, to }))

/**
 * `{ uids: "200000-200999", gid }`: each live process of the server gets a uid of its own from
 * the range (the least recently used), and `gid` with no supplementary groups; `{ uid, gid }`:
 * every process of the server runs as that one user. Absent: the gateway's own user.
 */
export const runAsSchema = z
  .strictObject({
    uids: uidRange.optional(),
    uid: osId.optional(),
    gid: osId,
  })
  .refine((r) => (r.uids === undefined) !== (r.uid === undefined), {
    error: 'runAs needs either uids (a range, a uid per process) or uid (one user), not both',
  })

export type RunAs = z.infer<typeof runAsSchema>

/** The uids `runAs` spans, both included. */
export function runAsSpan(r: RunAs): { from: number; to: number } {
  return r.uids ?? { from: r.uid!, to: r.uid! }
}

/** A server's config as the checks here read it. */
interface RunAsServer {
  runAs?: RunAs
  mode: 'session' | 'shared'
  pool: { max: number }
  replicas: number
}

/** Where a problem is, and what it is. */
export interface RunAsIssue {
  path: (string | number)[]
  message: string
}

/**
 * What the servers' `runAs` ask for that cannot hold: a range smaller than the processes the
 * server may run at once (`pool.max` in session mode, `replicas` in shared mode: a process past
 * it would find no uid), and two servers whose uids overlap (a process of one could read the
 * other's).
 */
export function runAsProblems(servers: Record<string, RunAsServer>): RunAsIssue[] {
  const problems: RunAsIssue[] = []
  const seen: { name: string; from: number; to: number }[] = []
  for (const [name, s] of Object.entries(servers)) {
    if (s.runAs === undefined) continue
    const span = runAsSpan(s.runAs)
    if (s.runAs.uids !== undefined) {
      const size = span.to - span.from + 1
      const [needed, bound] =
        s.mode === 'shared' ? [s.replicas, 'replicas'] : [s.pool.max, 'pool.max']
      if (size < needed)
        problems.push({
          path: ['servers', name, 'runAs', 'uids'],
          message: `holds ${size} uids, fewer than ${bound} (${needed}): each live process needs a uid of its own`,
        })
    }
    const other = seen.find((o) => o.from <= span.to && span.from <= o.to)
    if (other !== undefined)
      problems.push({
        path: ['servers', name, 'runAs'],
        message: `overlaps the uids of server ${other.name}: a process of one could read the other's`,
      })
    seen.push({ name, ...span })
  }
  return problems
}

/** What this gateway process is, as the host checks read it. */
export interface RunAsHost {
  platform: NodeJS.Platform
  /** Its effective uid. */
  uid: number
  /** Its effective gid and supplementary groups: those its files may be readable by. */
  gids?: number[]
  /** Its effective capabilities (CapEff in /proc/self/status); undefined where unreadable. */
  capabilities: bigint | undefined
}

/** Linux capability numbers (linux/capability.h). */
const CAP_KILL = 5n
const CAP_SETGID = 6n
const CAP_SETUID = 7n
const NEEDED = [
  ['CAP_SETUID', CAP_SETUID],
  ['CAP_SETGID', CAP_SETGID],
  ['CAP_KILL', CAP_KILL],
] as const

/** This process, read from the OS. */
export function thisHost(): RunAsHost {
  let capabilities: bigint | undefined
  try {
    const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'))
    capabilities = line ? BigInt(`0x${line[1]}`) : undefined
  } catch {}
  const gids = [process.getegid?.(), ...(process.getgroups?.() ?? [])].filter(
    (g) => g !== undefined,
  )
  return { platform: process.platform, uid: process.geteuid?.() ?? -1, gids, capabilities }
}

/**
 * What keeps this gateway from running the servers' processes as their `runAs` users: not
 * Linux; without CAP_SETUID and CAP_SETGID (to start them, and drop the supplementary groups)
 * and CAP_KILL (the stop ladder signals a process of another uid, and one that ignores its
 * closed stdin would run on); a range holding the gateway's own uid; a gid of the gateway's.
 */
export function runAsHostProblems(
  servers: Record<string, { runAs?: RunAs }>,
  host: RunAsHost,
): RunAsIssue[] {
  const problems: RunAsIssue[] = []
  for (const [name, s] of Object.entries(servers)) {
    if (s.runAs === undefined) continue
    const path = ['servers', name, 'runAs']
    if (host.platform !== 'linux') {
      problems.push({ path, message: 'needs Linux' })
      continue
    }
    const missing = NEEDED.filter(
      ([, bit]) => host.capabilities === undefined || ((host.capabilities >> bit) & 1n) === 0n,
    ).map(([cap]) => cap)
    if (missing.length > 0)
      problems.push({
        path,
        message: `needs the gateway to run as root or with CAP_SETUID, CAP_SETGID and CAP_KILL; it lacks ${missing.join(', ')}`,
      })
    const span = runAsSpan(s.runAs)
    if (span.from <= host.uid && host.uid <= span.to)
      problems.push({
        path,
        message: `holds the gateway's own uid ${host.uid}: its processes could read the gateway's secrets`,
      })
    if (host.gids?.includes(s.runAs.gid))
      problems.push({
        path,
        message: `gid ${s.runAs.gid} is the gateway's own group: its processes could read the gateway's group-readable files`,
      })
  }
  return problems
}
