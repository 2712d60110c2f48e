// Where the tracing rows' gateways export: a real OTLP/HTTP receiver in the bench process (the
// test helper), started on first use and counting what arrives.
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'

let sink: Promise<OtlpReceiver> | undefined

/** The sampler of a tracing row: every trace recorded and exported, or none (context only). */
export type BenchSampler = 'always_on' | 'always_off'

/**
 * The environment of a gateway that traces into the bench's receiver with the specification's
 * default protocol (http/protobuf) and the SDK's batch processor, its queue raised so no span is
 * dropped under the bench's load (a dropped span would cost less than an exported one).
 */
export async function tracingEnv(sampler: BenchSampler): Promise<Record<string, string>> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: await sinkUrl(),
    OTEL_TRACES_SAMPLER: sampler,
    OTEL_BSP_MAX_QUEUE_SIZE: '65536',
    OTEL_BSP_SCHEDULE_DELAY: '1000',
    OTEL_METRIC_EXPORT_INTERVAL: '5000',
  }
}

/** The receiver's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`), started on first use. */
export async function sinkUrl(): Promise<string> {
  sink ??= startOtlpReceiver({ keep: false })
  return (await sink).url
}

/** What the receiver got: export requests and bytes, per path. */
export async function sinkTotals(): Promise<Record<string, { requests: number; bytes: number }>> {
  if (sink === undefined) return {}
  const totals: Record<string, { requests: number; bytes: number }> = {}
  for (const d of (await sink).deliveries) {
    const t = (totals[d.path] ??= { requests: 0, bytes: 0 })
    t.requests++
    t.bytes += d.size
  }
  return totals
}

/** Stops the receiver, if it was started. */
export async function closeSink(): Promise<void> {
  await (await sink)?.close()
}
