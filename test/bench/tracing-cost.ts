// What the tracing facade costs one request, measured apart from the gateway: the calls the
// request path makes for a traced tools/call (begin, auth, the message's span, policy and
// lease steps, the CLIENT span with its _meta, the end with the metric), in a process of its
// own so its CPU time is the facade's and the SDK's (exporting included), not the machine's
// other load. Off, unsampled (always_off) and sampled (always_on, exported over OTLP
// http/protobuf to the bench's receiver). `node dist/test/bench/tracing-cost.js --measure`.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { pino } from 'pino'
import { outcomeOf, startTracing } from '../../gateway/observability/tracing.js'

/** CPU µs per request of one mode. */
export interface TracingCostRow {
  mode: 'off' | 'unsampled' | 'sampled'
  requests: number
  cpuUsPerRequest: number
}

const REQUESTS = 20_000
const WARMUP = 2_000

/** Runs each mode in a fresh process; `endpoint` is the OTLP receiver's base URL. */
export async function tracingCost(endpoint: string): Promise<TracingCostRow[]> {
  const script = fileURLToPath(import.meta.url)
  const rows: TracingCostRow[] = []
  const modes: [TracingCostRow['mode'], Record<string, string>][] = [
    ['off', {}],
    ['unsampled', { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: 'always_off' }],
    ['sampled', { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: 'always_on' }],
  ]
  for (const [mode, env] of modes) {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')),
    )
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--measure'], {
      env: {
        ...clean,
        ...env,
        OTEL_BSP_MAX_QUEUE_SIZE: '65536',
        OTEL_BSP_SCHEDULE_DELAY: '1000',
      },
    })
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as { cpuUsPerRequest: number }
    rows.push({ mode, requests: REQUESTS, cpuUsPerRequest: r.cpuUsPerRequest })
  }
  return rows
}

export function tracingCostText(rows: readonly TracingCostRow[]): string {
  const off = rows.find((r) => r.mode === 'off')?.cpuUsPerRequest ?? 0
  return [
    `tracing facade alone, CPU µs per traced tools/call (${REQUESTS} requests, exporting included):`,
    ...rows.map(
      (r) =>
        `  ${r.mode}: ${r.cpuUsPerRequest.toFixed(2)} µs` +
        (r.mode === 'off' ? '' : ` (+${(r.cpuUsPerRequest - off).toFixed(2)} over off)`),
    ),
  ].join('\n')
}

/** One simulated request through the facade, as http/mcp.ts and bridge/session.ts call it. */
async function measure(): Promise<void> {
  const tracing = await startTracing(pino({ level: 'silent' }))
  const headers = new Headers({
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  })
  const reply = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'hi' }] } }
  const one = (i: number) => {
    const trace = tracing.on ? tracing.begin(headers, '127.0.0.1') : undefined
    if (trace === undefined) return
    trace.step('auth').end()
    const params = { name: 'echo', arguments: { text: 'hi' }, _meta: { progressToken: i } }
    const span = trace.message({
      method: 'tools/call',
      id: i,
      params,
      server: 'echo',
      sessionId: 'session-id',
      protocolVersion: '2025-11-25',
    })
    const policy = trace.step('policy')
    span.decision('allow', 'policies/demo.yaml:12 echo')
    policy.end()
    trace.step('lease').end()
    span.take()
    span.toChild({ jsonrpc: '2.0', id: i, method: 'tools/call', params }, { server: 'echo' })
    span.end(outcomeOf(reply))
    trace.done()
  }
  for (let i = 0; i < WARMUP; i++) one(i)
  await tracing.flush()
  const before = process.cpuUsage()
  for (let i = 0; i < REQUESTS; i++) {
    one(i)
    // Exports as they go under load (a batch of 512 spans every ~128 requests), never more
    // at once than the exporter takes.
    if (i % 256 === 255) await tracing.flush()
  }
  await tracing.flush()
  const used = process.cpuUsage(before)
  await tracing.close()
  console.log(JSON.stringify({ cpuUsPerRequest: (used.user + used.system) / REQUESTS }))
}

if (process.argv.includes('--measure')) await measure()
