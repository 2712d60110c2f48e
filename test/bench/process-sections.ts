// The process-model sections of `npm run bench`, each on a gateway of its own:
// pool-warm / pool-preinit / pool-cold (session start, the pool refilled before each),
// session-start (20 back-to-back starts with the default config, and with a warm pool),
// shared (1,000 sessions on one process), memory (idle, 1,000 idle sessions, after 10,000
// opened and closed) and endpoint-start (initialize + tools/list on an endpoint over 20
// backends, with spawn counts).
import { DEFAULT_POOL_MIN } from '../../gateway/config/schema.js'
import {
  endpointStart,
  type EndpointStartResult,
  type EndpointStartSizes,
} from './endpoint-start.js'
import { withGateway } from './gateway-target.js'
import { gcProbeSetup, memory, type MemoryResult, type MemorySizes } from './memory.js'
import { poolStart, type PoolStartResult, type PoolStartSizes } from './pool-start.js'
import { sessionStart, type SessionStartResult, type SessionStartSizes } from './session-start.js'
import { sharedScale, type SharedScaleResult, type SharedScaleSizes } from './shared-scale.js'

/** Sizes of the process-model sections. */
export interface ProcessSizes {
  pool: PoolStartSizes
  /** pool.min of the warm row (the cold row has 0); pool.max of both. */
  warmMin: number
  poolMax: number
  shared: SharedScaleSizes
  endpoint: EndpointStartSizes
  start: SessionStartSizes
  memory: MemorySizes
}

/** What the sections measured (a section that failed leaves its part empty). */
export interface ProcessResults {
  poolStart: PoolStartResult[]
  sessionStart: SessionStartResult[]
  sharedScale?: SharedScaleResult
  memory?: MemoryResult
  endpointStart?: EndpointStartResult
}

/** The sections by BENCH_ROWS key; each adds to `out`. */
export function processSections(
  gateway: { root: string; echoJs: string },
  sizes: ProcessSizes,
  out: ProcessResults,
): [string, () => Promise<void>][] {
  const pool =
    (min: number, preinitialize = false) =>
    async () => {
      // A fixed pool (burst: min), so that the pool refilled before each start is pool.min.
      const p = { min, max: sizes.poolMax, preinitialize, burst: min }
      out.poolStart.push(
        await withGateway({ ...gateway, server: { pool: p } }, (gw) =>
          poolStart(gw, p, sizes.pool),
        ),
      )
    }
  // Every session of a shared-mode section is the one bench user's: the per-subject bounds
  // must hold them all.
  const sharedMode = (sessions: number) => {
    const most = Math.max(1100, sessions + 100)
    return {
      ...gateway,
      server: { mode: 'shared', maxSessionsPerSubject: most },
      limits: { maxSessions: most, maxSessionsPerSubject: most },
    }
  }
  return [
    ['pool-warm', pool(sizes.warmMin)],
    ['pool-preinit', pool(sizes.warmMin, true)],
    ['pool-cold', pool(0)],
    [
      'session-start',
      async () => {
        // The server as the config reference's defaults leave it: no pool settings at all.
        const min = sizes.warmMin
        const rows = [
          {
            row: `default config (pool.min ${DEFAULT_POOL_MIN})`,
            poolMin: DEFAULT_POOL_MIN,
            server: {},
          },
          { row: `warm pool (min ${min})`, poolMin: min, server: { pool: { min } } },
          // Pool settings to compare with the default (BENCH_START_POOLS), e.g. `burst=8`.
          ...sizes.start.pools.map((p) => ({
            row: `default config, ${Object.entries(p)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}`,
            poolMin: p.min ?? DEFAULT_POOL_MIN,
            server: { pool: p },
          })),
        ]
        for (const { server, ...row } of rows) {
          out.sessionStart.push(
            await withGateway({ ...gateway, server }, (gw) => sessionStart(gw, row, sizes.start)),
          )
        }
      },
    ],
    [
      'shared',
      async () => {
        out.sharedScale = await withGateway(sharedMode(sizes.shared.sessions), (gw) =>
          sharedScale(gw, sizes.shared),
        )
      },
    ],
    [
      'memory',
      async () => {
        // BENCH_MEMORY_GC=1: the probe is told where to write through the environment the
        // gateway inherits.
        const probe = sizes.memory.gc ? gcProbeSetup() : undefined
        if (probe) process.env.BENCH_GC_PROBE_DIR = probe.dir
        try {
          const o = { ...sharedMode(sizes.memory.sessions), nodeArgs: probe?.nodeArgs ?? [] }
          out.memory = await withGateway(o, (gw) => memory(gw, sizes.memory, probe?.dir))
        } finally {
          delete process.env.BENCH_GC_PROBE_DIR
        }
      },
    ],
    [
      'endpoint-start',
      async () => {
        out.endpointStart = await endpointStart(gateway, sizes.endpoint)
      },
    ],
  ]
}
