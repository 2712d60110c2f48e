// Benchmark: tools/call of the echo tool through stdio, the SDK's Streamable HTTP server,
// mcp-edge (session mode, sessionless 2026-07-28, an endpoint over 4 servers), supergateway and
// mcp-proxy, each HTTP row as 16 sessions (×16s) and as 16 calls in flight on one session
// (×16/1s), every row started fresh in each of BENCH_REPS repetitions (rows interleaved) and
// reported as medians, with the relay targets' ratios. In a repetition every row is started
// and its first session opened, then the one-at-a-time calls ("seq p50": BENCH_WARMUP untimed
// rounds, then BENCH_CALLS timed ones, 1000 by default) run with every row's calls interleaved
// call by call in a shuffled order each round (sequential.ts), so every row meets the same
// spells of the shared machine; then every row is stopped, and each row is started again for
// its load, run with no other row alive (idle rows cost the measured one CPU), and stopped.
// The table shows each seq p50 with its repetitions' lowest and highest, the ratio block the
// one-at-a-time ratio's range repetition by repetition. Then mcp-edge's process models (session
// start from a warm pool, cold, and back to back with the default config; shared mode with 1,000
// sessions; memory) and an endpoint over 20 servers (without BENCH_ROWS: every row and the
// sections DEFAULT_SECTIONS names: 4 to 6 minutes on 2 cores). `npm run bench`; sizes via BENCH_CALLS,
// BENCH_CONCURRENT_CALLS, BENCH_WARMUP, BENCH_LOAD_WARMUP, BENCH_REPS, BENCH_POOL_*,
// BENCH_START_* (BENCH_START_POOLS="burst=8;burst=16": more session-start rows, the default
// config with those pool settings), BENCH_SHARED_*, BENCH_MEMORY_*, BENCH_ENDPOINT_*; rows and sections via
// BENCH_ROWS (keys in rows.ts and process-sections.ts; `all` for every one; the tracing rows,
// e.g. edge-traced and edge-unsampled, and tracing-cost run only when named or with `all`);
// BENCH_MEMORY_GC=1
// runs the memory section's gateway with --expose-gc and forces full collections at each point
// (a diagnostic: live heap against garbage not collected yet). BENCH_PROFILE=1
// runs the edge ×16/1s row's gateway with --cpu-prof into dist/bench-profile/, BENCH_PROFILE=<keys>
// (e.g. edge-2026-1s) those rows' gateways (read it with `node dist/test/bench/profile-summary.js`;
// for 10 s of load alone: BENCH_PROFILE=edge-2026-1s BENCH_ROWS=edge-2026-1s BENCH_REPS=1
// BENCH_CONCURRENT_CALLS=10000). Writes dist/bench-results.json.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { endpointSummary } from './endpoint-start.js'
import { type FirstSession, measure, openFirst, type RowResult, type Sizes } from './measure.js'
import { medianRow } from './medians.js'
import { benchPolicy } from './policy.js'
import { CLK_TCK } from './proc.js'
import {
  endpointText,
  memorySummary,
  memoryText,
  poolSummary,
  poolText,
  sessionStartSummary,
  sessionStartText,
  sharedSummary,
  sharedText,
} from './process-report.js'
import { processSections, type ProcessResults, type ProcessSizes } from './process-sections.js'
import { startPools } from './session-start.js'
import { relayRatios, relayText } from './ratios.js'
import { interleaved } from './sequential.js'
import {
  aggregateSummary,
  aggregateText,
  summary,
  summaryText,
  table,
  type RowFailure,
} from './report.js'
import { benchRows, PROFILABLE, profileDir, profiledRows, type RowSpec } from './rows.js'
import { closeSink, sinkTotals, sinkUrl } from './otel-sink.js'
import { tracingCost, tracingCostText, type TracingCostRow } from './tracing-cost.js'
import { tracingCosts, tracingText } from './tracing-report.js'
import type { Target } from './target.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const ECHO_JS = join(ROOT, 'dist/servers/echo.js')

const int = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`)
  return v
}

const sizes: Sizes = {
  calls: int('BENCH_CALLS', 1000),
  concurrentCalls: int('BENCH_CONCURRENT_CALLS', 2000),
  concurrency: 16,
  warmup: int('BENCH_WARMUP', 100),
  loadWarmup: int('BENCH_LOAD_WARMUP', 500),
}
const REPS = int('BENCH_REPS', 3)
const PROFILED = profiledRows(process.env.BENCH_PROFILE)
const PROFILE = PROFILED.length > 0

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
  start: {
    starts: int('BENCH_START_SESSIONS', 20),
    warmup: int('BENCH_START_WARMUP', 2),
    pools: startPools(process.env.BENCH_START_POOLS),
  },
  shared: {
    sessions: int('BENCH_SHARED_SESSIONS', 1000),
    inFlight: int('BENCH_SHARED_IN_FLIGHT', 64),
    calls: int('BENCH_SHARED_CALLS', 16_000),
    warmup: int('BENCH_SHARED_WARMUP', 2000),
    sequential: int('BENCH_SHARED_SEQUENTIAL', 1000),
  },
  memory: {
    sessions: int('BENCH_MEMORY_SESSIONS', 1000),
    churn: int('BENCH_MEMORY_CHURN', 10_000),
    settleMs: int('BENCH_MEMORY_SETTLE_MS', 5000),
    gc: process.env.BENCH_MEMORY_GC === '1',
  },
  endpoint: {
    backends: int('BENCH_ENDPOINT_BACKENDS', 20),
    partial: int('BENCH_ENDPOINT_PARTIAL', 5),
    runs: int('BENCH_ENDPOINT_RUNS', 5),
    warm: int('BENCH_ENDPOINT_WARM', 10),
  },
}
const processResults: ProcessResults = { poolStart: [], sessionStart: [] }
let tracingFacade: TracingCostRow[] | undefined
const SECTIONS: [string, () => Promise<void>][] = [
  ...processSections({ root: ROOT, echoJs: ECHO_JS }, processSizes, processResults),
  // The tracing facade's own CPU per request, off / unsampled / sampled (run when named).
  ['tracing-cost', async () => void (tracingFacade = await tracingCost(await sinkUrl()))],
]
const ROWS = benchRows({
  root: ROOT,
  echoJs: ECHO_JS,
  concurrency: sizes.concurrency,
  profile: PROFILED,
})
/**
 * Sections run without BENCH_ROWS, beside every row: the ones the relay issue's targets name.
 * The others (pool-*, shared, endpoint-start: another three minutes) run when named or with
 * BENCH_ROWS=all.
 */
const DEFAULT_SECTIONS = ['session-start', 'memory']

/** The 1, 5 and 15 minute load averages, as `uptime` prints them. */
const loadText = (l: number[]) => l.map((v) => v.toFixed(2)).join(', ')

/** Seconds since `t0`, for the progress lines. */
const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`

/** A row started, its first session open, for the rest of its repetition. */
interface Opened {
  spec: RowSpec
  target: Target
  first: FirstSession
  /** Its start and first session, ms. */
  startMs: number
}

/** A row's failure: reported (with the server's problems and latest log lines), not thrown. */
function rowFailed(
  spec: RowSpec,
  target: Target | undefined,
  rep: number,
  err: unknown,
  failures: RowFailure[],
): void {
  const error = err instanceof Error ? err.message : String(err)
  failures.push({ row: `${target?.name ?? spec.name} (rep ${rep})`, error })
  console.error(`rep ${rep}: ${target?.name ?? spec.name}: FAILED: ${error}`)
  for (const p of target?.problems() ?? []) console.error(`  ${p}`)
  const recent = target?.recentLog() ?? []
  if (recent.length > 0) console.error('  latest log lines (access log left out):')
  for (const l of recent) console.error(`    ${l}`)
}

const stopRow = (spec: RowSpec, target: Target | undefined) =>
  target?.stop().catch((err: Error) => {
    console.error(`${spec.key}: stop failed: ${err.message}`)
  })

/**
 * One repetition: every row's server started and its first session opened; then the calls one
 * at a time, every row's interleaved call by call (sequential.ts); then every row stopped, and
 * each row's load on its own: the row started again (its first session, start time and idle RSS
 * from this start), loaded and stopped, with no other row alive. A failing row is reported and
 * left out; the others go on.
 */
async function runRep(rows: RowSpec[], rep: number, failures: RowFailure[]): Promise<RowResult[]> {
  const opened: Opened[] = []
  for (const spec of rows) {
    const t0 = performance.now()
    let target: Target | undefined
    try {
      target = await spec.start()
      const first = await openFirst(target)
      opened.push({ spec, target, first, startMs: performance.now() - t0 })
    } catch (err) {
      rowFailed(spec, target, rep, err, failures)
      await stopRow(spec, target)
    }
  }
  const t0 = performance.now()
  const failed = new Set<number>()
  const sequential = await interleaved(
    opened.map((o) => ({ call: () => o.first.session.call() })),
    sizes.warmup,
    sizes.calls,
    (i, err) => {
      failed.add(i)
      rowFailed(opened[i]!.spec, opened[i]!.target, rep, err, failures)
    },
  )
  console.log(`rep ${rep}: ${opened.length} rows one call at a time, interleaved: ${since(t0)}`)
  // Every row stopped before any load: a load runs with no other row alive. Idle servers of the
  // other rows (their timers, idle collections, 40-odd processes) cost the measured row CPU and
  // wake-ups, and the more the earlier it came in the list.
  for (const { spec, target, first } of opened) {
    await first.session.close().catch(() => {})
    await stopRow(spec, target)
  }
  const results: RowResult[] = []
  for (const [i, { spec }] of opened.entries()) {
    if (failed.has(i)) continue
    const t0 = performance.now()
    let target: Target | undefined
    try {
      target = await spec.start()
      const first = await openFirst(target)
      const startMs = performance.now() - t0
      const t1 = performance.now()
      // Closes every session of the row, the first one too.
      const r = { ...(await measure(spec.key, target, first, sequential[i]!, sizes)), rep }
      if (spec.profiled && target.pid !== undefined) {
        // The profile-summary reads the load's window from here (the profile covers the whole life).
        writeFileSync(
          join(profileDir(ROOT), `window-${target.pid}.json`),
          `${JSON.stringify({ row: r.row, rep, pid: target.pid, loadWindowUs: r.loadWindowUs })}\n`,
        )
      }
      console.log(
        `rep ${rep}: ${r.row}: started again in ${(startMs / 1000).toFixed(1)} s, load done in ` +
          `${since(t1)} (${r.processes} processes under load)`,
      )
      results.push(r)
    } catch (err) {
      rowFailed(spec, target, rep, err, failures)
    } finally {
      await stopRow(spec, target)
    }
  }
  return results
}

async function main(): Promise<number> {
  // `node --test dist/test/` runs every file under a test/ folder, this one too: not a test.
  if (process.env.NODE_TEST_CONTEXT !== undefined) {
    console.log('bench: skipped under node --test (run: node dist/test/bench/run.js)')
    return 0
  }
  const start = performance.now()
  const all = [...ROWS.map((r) => r.key), ...SECTIONS.map(([k]) => k)]
  const asked = process.env.BENCH_ROWS
  const wanted =
    asked === 'all'
      ? all
      : asked === undefined
        ? [...ROWS.filter((r) => !r.optional).map((r) => r.key), ...DEFAULT_SECTIONS]
        : asked.split(',')
  const unknown = wanted.filter((k) => !all.includes(k))
  if (unknown.length > 0) {
    throw new Error(`BENCH_ROWS: unknown ${unknown.join(', ')}; known: ${all.join(', ')}`)
  }
  const rows = ROWS.filter((r) => wanted.includes(r.key))
  const unprofiled = PROFILED.filter((k) => !rows.some((r) => r.key === k && r.profiled))
  if (unprofiled.length > 0) {
    const can = ROWS.filter((r) => PROFILABLE.has(r.key.replace(/-1s$/, ''))).map((r) => r.key)
    throw new Error(
      `BENCH_PROFILE: ${unprofiled.join(', ')} not run or not a gateway row ` +
        `(BENCH_ROWS must name it too); gateway rows: ${can.join(', ')}`,
    )
  }
  if (PROFILE) {
    rmSync(profileDir(ROOT), { recursive: true, force: true })
    mkdirSync(profileDir(ROOT), { recursive: true })
  }
  const failures: RowFailure[] = []
  const host = `node ${process.version}; ${cpus().length} CPUs; CLK_TCK ${CLK_TCK}`
  // What else ran on the machine: a lone call's latency is mostly process wake-ups, which a
  // busy machine delays (the figures of one build moved ×1.8 between runs).
  const loadStart = loadavg()
  console.log(`sizes: ${JSON.stringify(sizes)}; ${REPS} repetitions; ${host}`)
  console.log(`load average at start: ${loadText(loadStart)}`)
  console.log(`process-model sizes: ${JSON.stringify(processSizes)}`)
  const skipped = all.filter((k) => !wanted.includes(k))
  if (skipped.length > 0)
    console.log(`not run: ${skipped.join(', ')} (BENCH_ROWS=all runs every one)`)

  // Rows interleaved: a repetition runs every row once, so a slow spell of the machine falls
  // on one repetition of many rows, and each row's median drops it.
  const reps = new Map<string, RowResult[]>()
  for (let rep = 1; rep <= REPS; rep++) {
    for (const r of await runRep(rows, rep, failures))
      reps.set(r.key, [...(reps.get(r.key) ?? []), r])
  }
  const results = rows.flatMap((spec) => {
    const runs = reps.get(spec.key)
    return runs ? [medianRow(runs)] : []
  })

  for (const [key, run] of SECTIONS) {
    if (!wanted.includes(key)) continue
    const t0 = performance.now()
    try {
      await run()
      console.log(`${key}: done in ${since(t0)}`)
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      failures.push({ row: key, error })
      console.error(`${key}: FAILED: ${error}`)
    }
  }

  if (results.length > 0) console.log(`\n${table(results, REPS)}\n`)
  for (const r of results) {
    console.log(
      `${r.row}: ${r.concurrencyMode}; ${r.processes} processes under load; children woke ` +
        `${r.childWakeupsPerCall.toFixed(2)}×/call, ${r.childrenStarted} started and ` +
        `${r.childrenEnded} ended during the load`,
    )
    for (const p of r.problems) console.log(`  ${p}`)
  }
  const ratios = relayRatios(results)
  if (ratios.length > 0) console.log(`\n${relayText(ratios)}`)
  const s = summary(results)
  if (s) console.log(`\n${summaryText(s)}`)
  const agg = aggregateSummary(results)
  if (agg.length > 0) console.log(`\n${aggregateText(agg)}`)
  const tracing = tracingCosts(results)
  const exported = await sinkTotals()
  await closeSink()
  if (tracing.length > 0) console.log(`\n${tracingText(tracing, JSON.stringify(exported))}`)
  if (tracingFacade) console.log(`\n${tracingCostText(tracingFacade)}`)
  const policy = benchPolicy()
  console.log(
    `\npolicy (${policy.rules} rules): decision ${policy.decideUs.toFixed(2)} µs per gated call; ` +
      `tools/list filtering ${policy.filterUs.toFixed(2)} µs per list of ${policy.listSize} ` +
      `(target < 50 µs per message: ${policy.decideUs < 50 && policy.filterUs < 50 ? 'PASS' : 'FAIL'})`,
  )
  const { poolStart: pool, sessionStart: starts, sharedScale: shared } = processResults
  const { memory: mem, endpointStart: endpoint } = processResults
  if (pool.length > 0) console.log(`\n${poolText(pool)}`)
  if (starts.length > 0) console.log(`\n${sessionStartText(starts)}`)
  if (shared) console.log(`\n${sharedText(shared)}`)
  if (mem) console.log(`\n${memoryText(mem)}`)
  if (endpoint) console.log(`\n${endpointText(endpoint)}`)
  for (const f of failures) console.log(`FAILED ${f.row}: ${f.error}`)
  if (PROFILE) {
    console.log(
      `\nprofiles of the gateway of ${PROFILED.join(', ')} in ${profileDir(ROOT)}; summary: ` +
        'node dist/test/bench/profile-summary.js',
    )
  }

  mkdirSync(join(ROOT, 'dist'), { recursive: true })
  const out = join(ROOT, 'dist/bench-results.json')
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpus: cpus().length,
        loadAverage: { start: loadStart, end: loadavg() },
        clkTck: CLK_TCK,
        sizes,
        reps: REPS,
        rows: results,
        repetitions: Object.fromEntries(reps),
        failures,
        relayTargets: ratios,
        summary: s,
        aggregate: agg,
        tracing,
        tracingExported: exported,
        tracingFacade,
        policy,
        processSizes,
        poolStart: pool,
        poolStartSummary: poolSummary(pool),
        sessionStart: starts,
        sessionStartSummary: sessionStartSummary(starts),
        sharedScale: shared,
        sharedScaleSummary: shared && sharedSummary(shared),
        memory: mem,
        memorySummary: mem && memorySummary(mem),
        endpointStart: endpoint,
        endpointStartSummary: endpoint && endpointSummary(endpoint),
      },
      null,
      2,
    )}\n`,
  )
  console.log(
    `\nwrote ${out} (${since(start)} in all; load average at end: ${loadText(loadavg())})`,
  )
  return failures.length === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
