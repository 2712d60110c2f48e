// Benchmark: tools/call of the echo tool through stdio, the SDK's Streamable HTTP server,
// mcp-edge and supergateway, then mcp-edge's process models (session start from a warm pool
// or a cold spawn; shared mode with 1,000 sessions), and an aggregated endpoint: a row over 4
// echo backends, and opening one over 20 (cold and warm, with spawn counts). `npm run bench`;
// sizes via BENCH_CALLS, BENCH_CONCURRENT_CALLS, BENCH_WARMUP, BENCH_POOL_*, BENCH_SHARED_*,
// BENCH_ENDPOINT_*; rows and sections via BENCH_ROWS=stdio,sdk,edge,aggregate,edge-2026,
// supergateway,pool-warm,pool-preinit,pool-cold,shared,endpoint-start.
// Writes dist/bench-results.json.
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { aggregateTarget } from './aggregate-target.js'
import { gatewayTarget } from './gateway-target.js'
import { sdkHttpTarget, supergatewayTarget } from './http-targets.js'
import { measure, type RowResult, type Sizes } from './measure.js'
import { CLK_TCK } from './proc.js'
import { endpointSummary } from './endpoint-start.js'
import { endpointText, poolSummary, poolText, sharedSummary, sharedText } from './process-report.js'
import { processSections, type ProcessResults, type ProcessSizes } from './process-sections.js'
import { aggregateSummary, aggregateText, summary, summaryText, table, type RowFailure } from './report.js'
import { benchPolicy } from './policy.js'
import { stdioTarget } from './stdio-target.js'
import type { Target } from './target.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const ECHO_JS = join(ROOT, 'dist/servers/echo.js')

const int = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`)
  return v
}

const sizes: Sizes = {
  calls: int('BENCH_CALLS', 2000),
  concurrentCalls: int('BENCH_CONCURRENT_CALLS', 5000),
  concurrency: 16,
  warmup: int('BENCH_WARMUP', 200),
}

const processSizes: ProcessSizes = {
  // Sessions one at a time; before each, the pool is full again and every warm process has
  // run BENCH_POOL_SETTLE_MS (pool-start.ts).
  pool: {
    sessions: int('BENCH_POOL_SESSIONS', 50),
    warmup: int('BENCH_POOL_WARMUP', 5),
    settleMs: int('BENCH_POOL_SETTLE_MS', 250),
  },
  warmMin: 4,
  poolMax: 16,
  shared: {
    sessions: int('BENCH_SHARED_SESSIONS', 1000),
    inFlight: int('BENCH_SHARED_IN_FLIGHT', 64),
    calls: int('BENCH_SHARED_CALLS', 16_000),
    warmup: int('BENCH_SHARED_WARMUP', 2000),
    sequential: int('BENCH_SHARED_SEQUENTIAL', 1000),
  },
  endpoint: {
    backends: int('BENCH_ENDPOINT_BACKENDS', 20),
    partial: int('BENCH_ENDPOINT_PARTIAL', 5),
    runs: int('BENCH_ENDPOINT_RUNS', 5),
    warm: int('BENCH_ENDPOINT_WARM', 10),
  },
}
const processResults: ProcessResults = { poolStart: [] }
const SECTIONS = processSections({ root: ROOT, echoJs: ECHO_JS }, processSizes, processResults)

// Every session of a row is the one bench user's: the server's per-subject bound
// (maxSessionsPerSubject, default 8) must hold them all, or the gateway ends the least recently
// used idle one to make room, and its next call is a 404.
const EDGE = { root: ROOT, echoJs: ECHO_JS, server: { maxSessionsPerSubject: sizes.concurrency } }

const ROWS: [string, () => Promise<Target> | Target][] = [
  ['stdio', () => stdioTarget(ECHO_JS)],
  ['sdk', () => sdkHttpTarget(join(ROOT, 'dist/test/bench/sdk-http-server.js'))],
  ['edge', () => gatewayTarget(EDGE)],
  ['aggregate', () => aggregateTarget({ root: ROOT, echoJs: ECHO_JS })],
  ['edge-2026', () => gatewayTarget(EDGE, true)],
  ['supergateway', () => supergatewayTarget(join(ROOT, 'node_modules/.bin/supergateway'), ECHO_JS)],
]

async function main(): Promise<number> {
  // `node --test dist/test/` runs every file under a test/ folder, this one too: not a test.
  if (process.env.NODE_TEST_CONTEXT !== undefined) {
    console.log('bench: skipped under node --test (run: node dist/test/bench/run.js)')
    return 0
  }
  const all = [...ROWS, ...SECTIONS].map(([k]) => k)
  const wanted = (process.env.BENCH_ROWS ?? all.join(',')).split(',')
  const unknown = wanted.filter((k) => !all.includes(k))
  if (unknown.length > 0) {
    throw new Error(`BENCH_ROWS: unknown ${unknown.join(', ')}; known: ${all.join(', ')}`)
  }
  const results: RowResult[] = []
  const failures: RowFailure[] = []
  const host = `node ${process.version}; ${cpus().length} CPUs; CLK_TCK ${CLK_TCK}`
  console.log(`sizes: ${JSON.stringify(sizes)}; ${host}`)
  console.log(`process-model sizes: ${JSON.stringify(processSizes)}`)
  for (const [key, start] of ROWS) {
    if (!wanted.includes(key)) continue
    let target: Target | undefined
    try {
      target = await start()
      const r = await measure(target, sizes)
      results.push(r)
      console.log(`${r.row}: done (${r.processes} processes in the serving tree under load)`)
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      failures.push({ row: target?.name ?? key, error })
      console.error(`${target?.name ?? key}: FAILED: ${error}`)
      for (const p of target?.problems() ?? []) console.error(`  ${p}`)
      const recent = target?.recentLog() ?? []
      if (recent.length > 0) console.error('  latest log lines (access log left out):')
      for (const l of recent) console.error(`    ${l}`)
    } finally {
      await target?.stop().catch((err: Error) => {
        console.error(`${key}: stop failed: ${err.message}`)
      })
    }
  }

  for (const [key, run] of SECTIONS) {
    if (!wanted.includes(key)) continue
    try {
      await run()
      console.log(`${key}: done`)
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      failures.push({ row: key, error })
      console.error(`${key}: FAILED: ${error}`)
    }
  }

  if (results.length > 0) console.log(`\n${table(results)}\n`)
  for (const r of results) {
    const own = r.rootCpuMsPerCall
    const split = `CPU/call ${own.toFixed(3)} ms in the root process, `
      + `${(r.cpuMsPerCall - own).toFixed(3)} ms in its children`
    console.log(`${r.row}: concurrency = ${r.concurrencyMode}; `
      + `${r.processes} processes under load; ${split}`)
    for (const p of r.problems) console.log(`  ${p}`)
  }
  const s = summary(results)
  if (s) console.log(`\n${summaryText(s)}`)
  const agg = aggregateSummary(results)
  if (agg) console.log(`\n${aggregateText(agg)}`)
  const policy = benchPolicy()
  console.log(`\npolicy (${policy.rules} rules): decision ${policy.decideUs.toFixed(2)} µs per gated call; `
    + `tools/list filtering ${policy.filterUs.toFixed(2)} µs per list of ${policy.listSize} `
    + `(target < 50 µs per message: ${policy.decideUs < 50 && policy.filterUs < 50 ? 'PASS' : 'FAIL'})`)
  const { poolStart: pool, sharedScale: shared, endpointStart: endpoint } = processResults
  if (pool.length > 0) console.log(`\n${poolText(pool)}`)
  if (shared) console.log(`\n${sharedText(shared)}`)
  if (endpoint) console.log(`\n${endpointText(endpoint)}`)
  for (const f of failures) console.log(`FAILED ${f.row}: ${f.error}`)

  mkdirSync(join(ROOT, 'dist'), { recursive: true })
  const out = join(ROOT, 'dist/bench-results.json')
  writeFileSync(out, `${JSON.stringify({
    date: new Date().toISOString(), node: process.version, cpus: cpus().length, clkTck: CLK_TCK,
    sizes, rows: results, failures, summary: s, aggregate: agg, policy,
    processSizes,
    poolStart: pool,
    poolStartSummary: poolSummary(pool),
    sharedScale: shared,
    sharedScaleSummary: shared && sharedSummary(shared),
    endpointStart: endpoint,
    endpointStartSummary: endpoint && endpointSummary(endpoint),
  }, null, 2)}\n`)
  console.log(`\nwrote ${out}`)
  return failures.length === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
