// The process-model sections of `npm run bench`, each on a gateway of its own:
// pool-warm / pool-cold (session start), shared (1,000 sessions on one process) and
// endpoint-start (initialize + tools/list on an endpoint over 20 backends, with spawn counts).
import { endpointStart, type EndpointStartResult, type EndpointStartSizes } from './endpoint-start.js'
import { withGateway } from './gateway-target.js'
import { poolStart, type PoolStartResult, type PoolStartSizes } from './pool-start.js'
import { sharedScale, type SharedScaleResult, type SharedScaleSizes } from './shared-scale.js'

/** Sizes of the process-model sections. */
export interface ProcessSizes {
  pool: PoolStartSizes
  /** pool.min of the warm row (the cold row has 0); pool.max of both. */
  warmMin: number
  poolMax: number
  shared: SharedScaleSizes
  endpoint: EndpointStartSizes
}

/** What the sections measured (a section that failed leaves its part empty). */
export interface ProcessResults {
  poolStart: PoolStartResult[]
  sharedScale?: SharedScaleResult
  endpointStart?: EndpointStartResult
}

/** The sections by BENCH_ROWS key; each adds to `out`. */
export function processSections(
  gateway: { root: string; echoJs: string },
  sizes: ProcessSizes,
  out: ProcessResults,
): [string, () => Promise<void>][] {
  const pool = (min: number, preinitialize = false) => async () => {
    const p = { min, max: sizes.poolMax, preinitialize }
    out.poolStart.push(await withGateway({ ...gateway, server: { pool: p } },
      (gw) => poolStart(gw, p, sizes.pool)))
  }
  return [
    ['pool-warm', pool(sizes.warmMin)],
    ['pool-preinit', pool(sizes.warmMin, true)],
    ['pool-cold', pool(0)],
    ['shared', async () => {
      // Every session is the one bench user's: the per-subject bounds must hold them all.
      const most = Math.max(1100, sizes.shared.sessions + 100)
      const limits = { maxSessions: most, maxSessionsPerSubject: most }
      const server = { mode: 'shared', maxSessionsPerSubject: most }
      out.sharedScale = await withGateway({ ...gateway, server, limits },
        (gw) => sharedScale(gw, sizes.shared))
    }],
    ['endpoint-start', async () => {
      out.endpointStart = await endpointStart(gateway, sizes.endpoint)
    }],
  ]
}
