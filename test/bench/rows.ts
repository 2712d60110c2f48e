// The rows of `npm run bench`'s table: every server under test in both load shapes, 16
// sessions with one call in flight each (`×16s`) and 16 calls in flight on one session
// (`×16/1s`), each started fresh for every repetition.
import { join } from 'node:path'
import { aggregateTarget } from './aggregate-target.js'
import { gatewayTarget } from './gateway-target.js'
import { mcpProxyTarget, sdkHttpTarget, supergatewayTarget, type RowShape } from './http-targets.js'
import { tracingEnv } from './otel-sink.js'
import { stdioTarget } from './stdio-target.js'
import type { Target } from './target.js'

/** One row: its BENCH_ROWS key, name and shape, and how to start its server. */
export interface RowSpec extends RowShape {
  key: string
  start: () => Promise<Target> | Target
  /** Whether its gateway runs with --cpu-prof into the profile folder (BENCH_PROFILE). */
  profiled: boolean
  /** Run only when BENCH_ROWS names it (or is `all`): the tracing rows. */
  optional?: boolean
}

/**
 * The tracing rows (run when named: BENCH_ROWS=edge,edge-traced,edge-unsampled,…): the `edge`
 * and `edge-2026` gateways exporting to a real OTLP receiver, every trace sampled
 * (`always_on`) or none (`always_off`: spans are not recorded, the context still flows).
 */
export const TRACING_ROWS = [
  'edge-traced',
  'edge-unsampled',
  'edge-2026-traced',
  'edge-2026-unsampled',
]

/** Where a profiled row's gateway writes its .cpuprofile (and the bench its load window). */
export const profileDir = (root: string) => join(root, 'dist/bench-profile')

/** The row profiled with BENCH_PROFILE=1: mcp-edge in session mode, 16 in flight on one session. */
export const PROFILED_ROW = 'edge-1s'

/** The HTTP rows (both shapes) whose server is one mcp-edge gateway process. */
export const PROFILABLE: ReadonlySet<string> = new Set(['edge', 'edge-2026', ...TRACING_ROWS])

/**
 * The rows BENCH_PROFILE names: `1` for PROFILED_ROW, else row keys separated by commas (any
 * row whose server is mcp-edge's gateway, e.g. `edge-2026-1s`); unset or empty: none.
 */
export function profiledRows(value: string | undefined): string[] {
  if (value === undefined || value === '' || value === '0') return []
  if (value === '1') return [PROFILED_ROW]
  return value.split(',').map((k) => k.trim())
}

/**
 * Every row, stdio first, then the HTTP rows as 16 sessions, then the same rows as one
 * session. `concurrency` is the calls in flight; `profile`: the keys of the rows whose gateway
 * runs with --cpu-prof (profiledRows).
 */
export function benchRows(o: {
  root: string
  echoJs: string
  concurrency: number
  profile: readonly string[]
}): RowSpec[] {
  const n = o.concurrency
  // A profiled row's gateway writes its .cpuprofile beside the bench's load windows.
  const prof = (key: string) =>
    o.profile.includes(key)
      ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir(o.root)}`] }
      : {}
  // Every session of a row is the one bench user's: the server's per-subject bound
  // (maxSessionsPerSubject, default 8) must hold them all, or the gateway ends the least
  // recently used idle one to make room, and its next call is a 404.
  const edge = { root: o.root, echoJs: o.echoJs, server: { maxSessionsPerSubject: n } }
  const bin = (p: string) => join(o.root, 'node_modules', p)
  const http: [string, string, (shape: RowShape, key: string) => Promise<Target>][] = [
    [
      'sdk',
      'SDK HTTP floor',
      (s) => sdkHttpTarget(join(o.root, 'dist/test/bench/sdk-http-server.js'), s),
    ],
    ['edge', 'edge', (s, key) => gatewayTarget({ ...edge, ...prof(key) }, s)],
    [
      'edge-2026',
      'edge-2026 sessionless',
      (s, key) => gatewayTarget({ ...edge, ...prof(key) }, s, true, s.oneSession ? 1 : n),
    ],
    [
      'aggregate',
      'aggregate (4 backends)',
      (s) => aggregateTarget({ root: o.root, echoJs: o.echoJs }, s),
    ],
    [
      'edge-traced',
      'edge traced',
      async (s, key) =>
        gatewayTarget({ ...edge, ...prof(key), env: await tracingEnv('always_on') }, s),
    ],
    [
      'edge-unsampled',
      'edge unsampled',
      async (s, key) =>
        gatewayTarget({ ...edge, ...prof(key), env: await tracingEnv('always_off') }, s),
    ],
    [
      'edge-2026-traced',
      'edge-2026 traced',
      async (s, key) =>
        gatewayTarget(
          { ...edge, ...prof(key), env: await tracingEnv('always_on') },
          s,
          true,
          s.oneSession ? 1 : n,
        ),
    ],
    [
      'edge-2026-unsampled',
      'edge-2026 unsampled',
      async (s, key) =>
        gatewayTarget(
          { ...edge, ...prof(key), env: await tracingEnv('always_off') },
          s,
          true,
          s.oneSession ? 1 : n,
        ),
    ],
    [
      'supergateway',
      'supergateway',
      (s) => supergatewayTarget(bin('.bin/supergateway'), o.echoJs, s),
    ],
    [
      'mcp-proxy',
      'mcp-proxy',
      (s) => mcpProxyTarget(bin('mcp-proxy/dist/bin/mcp-proxy.mjs'), o.echoJs, s),
    ],
  ]
  const rows: RowSpec[] = [
    {
      key: 'stdio',
      name: `stdio floor ×${n}/1s`,
      oneSession: true,
      profiled: false,
      start: () => stdioTarget(o.echoJs, `stdio floor ×${n}/1s`),
    },
  ]
  for (const oneSession of [false, true]) {
    for (const [base, label, start] of http) {
      const key = oneSession ? `${base}-1s` : base
      const shape = { name: `${label} ×${n}${oneSession ? '/1s' : 's'}`, oneSession }
      // Only rows whose server is one gateway process (not the peers, the SDK or an endpoint).
      const profiled = o.profile.includes(key) && PROFILABLE.has(base)
      const optional = TRACING_ROWS.includes(base)
      rows.push({ key, ...shape, profiled, optional, start: () => start(shape, key) })
    }
  }
  return rows
}
