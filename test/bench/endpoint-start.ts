// Opening an endpoint over many backends: initialize + tools/list (then one call), cold (the
// first user on a fresh gateway: the backends' processes start) and warm (the backends' lists
// cached: a new session of the same user, and other users' first sessions), for a user allowed
// every backend and one allowed only some, with how many backend processes each step started.
import { Pool } from 'undici'
import { endpointOptions, PARTIAL_ROLE } from './aggregate-target.js'
import { withGateway } from './gateway-target.js'
import { HttpSession, WrongReply } from './mcp-http.js'
import { percentile } from './measure.js'
import { liveChildren, treeRssMb } from './proc.js'

/** Sizes of the endpoint-start section (env BENCH_ENDPOINT_*). */
export interface EndpointStartSizes {
  backends: number
  /** Of them, the backends the partial user's policy allows (the first ones). */
  partial: number
  /** Fresh gateways per kind of first user, each giving one cold sample. */
  runs: number
  /** Per gateway: warm sessions of the first user, and as many first sessions of each other kind of user. */
  warm: number
}

/** One session: times in ms, and the backend processes each step started. */
export interface EndpointSample {
  /** POST initialize → 200 with Mcp-Session-Id. */
  initMs: number
  /** The whole handshake (initialize, notifications/initialized). */
  handshakeMs: number
  listMs: number
  /** One tools/call of the first backend's echo tool, after the list. */
  callMs: number
  spawned: { handshake: number; list: number; call: number }
}

/** One row: a kind of session, over every gateway run. */
export interface EndpointStartRow {
  row: string
  samples: EndpointSample[]
}

/** The endpoint-start section. */
export interface EndpointStartResult {
  backends: number
  partial: number
  runs: number
  rows: EndpointStartRow[]
  /** The serving tree (gateway and backends) after each run's cold list by a user allowed every backend, MB. */
  coldTreeRssMb: number[]
  /** The same after a cold list by a user allowed `partial` backends, MB. */
  partialTreeRssMb: number[]
  problems: string[]
}

/** The gateway's live child processes (its backends': pool.min is 0, so none before a user). */
function children(pid: number): Set<number> {
  return new Set(liveChildren(pid).map((c) => c.pid))
}

/**
 * Runs `sizes.runs` pairs of fresh gateways with one endpoint over `sizes.backends` echo
 * servers. On the first of a pair: the first session of a user allowed every backend (cold),
 * then `warm` times a new session of that user, the first session of another such user, and
 * the first session of a user allowed only the first `sizes.partial` backends. On the second:
 * the first session of a user allowed `sizes.partial` backends (cold). Every session is the
 * handshake, a tools/list (verified to hold exactly the tools of the backends the user may
 * use), one call of the first backend's tool, and DELETE. Processes started are counted as the
 * gateway's new child pids after each step.
 */
export async function endpointStart(
  gateway: { root: string; echoJs: string },
  sizes: EndpointStartSizes,
): Promise<EndpointStartResult> {
  if (sizes.partial > sizes.backends)
    throw new Error('BENCH_ENDPOINT_PARTIAL must not exceed BENCH_ENDPOINT_BACKENDS')
  const rows = {
    cold: [] as EndpointSample[],
    coldPartial: [] as EndpointSample[],
    same: [] as EndpointSample[],
    other: [] as EndpointSample[],
    otherPartial: [] as EndpointSample[],
  }
  const coldTreeRssMb: number[] = []
  const partialTreeRssMb: number[] = []
  const problems: string[] = []
  const { tools, ...options } = endpointOptions(gateway, sizes.backends, sizes.partial)
  const partialTools = tools.slice(0, sizes.partial)
  const full = ['mcp-user']
  const partial = [PARTIAL_ROLE]

  /** On a fresh gateway with these users: `steps`, given a session runner and each user's headers. */
  const onGateway = (
    run: number,
    users: string[][],
    steps: (
      session: (h: Record<string, string>, expect: string[]) => Promise<EndpointSample>,
      pid: number,
      users: Record<string, string>[],
    ) => Promise<void>,
  ) =>
    withGateway({ ...options, users }, async (gw) => {
      const pid = gw.child.pid
      if (pid === undefined) throw new Error('mcp-edge: no process')
      const client = new Pool(gw.origin, { connections: 2, pipelining: 1 })
      const ended = new Set<number>()
      const session = async (
        headers: Record<string, string>,
        expect: string[],
      ): Promise<EndpointSample> => {
        let live = children(pid)
        // New pids since the last step; pids gone (a process ended to make room) noted.
        const step = () => {
          const now = children(pid)
          for (const p of live) if (!now.has(p)) ended.add(p)
          const started = [...now].filter((p) => !live.has(p)).length
          live = now
          return started
        }
        const {
          session: s,
          ms: handshakeMs,
          initMs,
        } = await HttpSession.open(client, gw.path, headers)
        try {
          const handshake = step()
          const t0 = performance.now()
          const names = await s.listTools()
          const listMs = performance.now() - t0
          const list = step()
          if ([...names].sort().join() !== [...expect].sort().join()) {
            throw new WrongReply(`tools/list: ${names.join(', ')}; expected ${expect.join(', ')}`)
          }
          const t1 = performance.now()
          await s.callEcho(expect[0])
          const callMs = performance.now() - t1
          return { initMs, handshakeMs, listMs, callMs, spawned: { handshake, list, call: step() } }
        } finally {
          const status = await s.close()
          if (status !== 200 && problems.length < 5) problems.push(`DELETE: HTTP ${status}`)
        }
      }
      try {
        const before = children(pid).size
        if (before !== 0) problems.push(`run ${run}: ${before} processes before the first user`)
        await steps(session, pid, gw.users)
        if (ended.size > 0)
          problems.push(`run ${run}: ${ended.size} backend processes ended while sessions opened`)
        problems.push(...gw.problems().filter((p) => !p.startsWith('log lines')))
      } finally {
        await client.close()
      }
    })

  const warm = Array.from({ length: sizes.warm }, (_, i) => i + 1)
  for (let run = 0; run < sizes.runs; run++) {
    // user 0: every backend; 1…warm: other such users; warm+1…2·warm: users allowed `partial`.
    const users = [full, ...warm.map(() => full), ...warm.map(() => partial)]
    await onGateway(run, users, async (session, pid, h) => {
      rows.cold.push(await session(h[0]!, tools))
      coldTreeRssMb.push(treeRssMb(pid))
      for (const i of warm) {
        rows.same.push(await session(h[0]!, tools))
        rows.other.push(await session(h[i]!, tools))
        rows.otherPartial.push(await session(h[sizes.warm + i]!, partialTools))
      }
    })
    await onGateway(run, [partial], async (session, pid, h) => {
      rows.coldPartial.push(await session(h[0]!, partialTools))
      partialTreeRssMb.push(treeRssMb(pid))
    })
  }
  const n = sizes.backends
  const p = sizes.partial
  return {
    backends: n,
    partial: p,
    runs: sizes.runs,
    rows: [
      { row: `cold: first user (${n} of ${n}), fresh gateway`, samples: rows.cold },
      { row: `cold: first user (${p} of ${n}), fresh gateway`, samples: rows.coldPartial },
      { row: `warm: same user (${n} of ${n}), new session`, samples: rows.same },
      { row: `warm: another user (${n} of ${n}), first session`, samples: rows.other },
      { row: `warm: a user (${p} of ${n}), first session`, samples: rows.otherPartial },
    ],
    coldTreeRssMb,
    partialTreeRssMb,
    problems,
  }
}

/** `n`, or `min–max` when the samples differ. */
function range(values: number[]): string {
  const lo = Math.min(...values)
  const hi = Math.max(...values)
  return lo === hi ? String(lo) : `${lo}–${hi}`
}

/** p50 and p95 of each time, and the spawn counts, per row (for the report and the JSON). */
export function endpointSummary(r: EndpointStartResult) {
  return r.rows.map(({ row, samples }) => {
    const at = (f: (s: EndpointSample) => number) => ({
      p50: percentile(samples.map(f), 50),
      p95: percentile(samples.map(f), 95),
    })
    return {
      row,
      sessions: samples.length,
      initMs: at((s) => s.initMs),
      listMs: at((s) => s.listMs),
      initPlusListMs: at((s) => s.initMs + s.listMs),
      callMs: at((s) => s.callMs),
      spawned: {
        handshake: range(samples.map((s) => s.spawned.handshake)),
        list: range(samples.map((s) => s.spawned.list)),
        call: range(samples.map((s) => s.spawned.call)),
      },
    }
  })
}
