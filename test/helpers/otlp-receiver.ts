import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

/** One span as an OTLP/JSON export carried it, attributes flattened to plain values. */
export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  name: string
  /** OTLP `SpanKind`: 1 internal, 2 server, 3 client. */
  kind: number
  attributes: Record<string, unknown>
  /** OTLP `Status.code`: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string }
  links: { traceId: string; spanId: string }[]
  startNs: bigint
  endNs: bigint
  /** The resource's attributes (service.name, …). */
  resource: Record<string, unknown>
}

/** One data point of an OTLP/JSON histogram. */
export interface ReceivedPoint {
  metric: string
  unit: string | undefined
  attributes: Record<string, unknown>
  count: number
  sum: number
  bounds: number[]
}

/** One export request as it arrived. */
export interface Delivery {
  path: string
  contentType: string
  /** Its bytes as sent; empty when the receiver does not keep them. */
  body: Buffer
  size: number
}

export const SPAN_KIND = { internal: 1, server: 2, client: 3 } as const

/**
 * A real OTLP/HTTP receiver on 127.0.0.1 (the collector's `/v1/traces` and `/v1/metrics`),
 * answering as a collector does. JSON exports (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) are
 * decoded into spans and histogram points; protobuf ones are kept as bytes.
 */
export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT`: the value for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  readonly url: string
  readonly deliveries: Delivery[]
  readonly spans: ReceivedSpan[]
  readonly points: ReceivedPoint[]
  /** Resolves once a span matching `match` has arrived (at once if one has). */
  span(match: (s: ReceivedSpan) => boolean): Promise<ReceivedSpan>
  close(): Promise<void>
}

/** `keep: false`: count deliveries only, decoding and keeping nothing (the bench). */
export async function startOtlpReceiver(o: { keep?: boolean } = {}): Promise<OtlpReceiver> {
  const keep = o.keep ?? true
  const deliveries: Delivery[] = []
  const spans: ReceivedSpan[] = []
  const points: ReceivedPoint[] = []
  const waiters: { match: (s: ReceivedSpan) => boolean; resolve: (s: ReceivedSpan) => void }[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      const path = new URL(req.url ?? '/', 'http://x').pathname
      const contentType = String(req.headers['content-type'] ?? '')
      deliveries.push({ path, contentType, body: keep ? body : Buffer.alloc(0), size: body.length })
      if (keep && contentType.startsWith('application/json')) {
        const json = JSON.parse(body.toString('utf8'))
        if (path === '/v1/traces') {
          for (const span of decodeSpans(json)) {
            spans.push(span)
            for (const w of waiters.splice(0))
              if (w.match(span)) w.resolve(span)
              else waiters.push(w)
          }
        } else if (path === '/v1/metrics') points.push(...decodePoints(json))
      }
      // OTLP/HTTP: a full success is a 200 with an empty Export*ServiceResponse.
      res.writeHead(200, { 'content-type': contentType || 'application/json' })
      res.end(contentType.startsWith('application/json') ? '{}' : '')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    deliveries,
    spans,
    points,
    span(match) {
      const found = spans.find(match)
      if (found) return Promise.resolve(found)
      return new Promise((resolve) => waiters.push({ match, resolve }))
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

type Json = Record<string, unknown>

function decodeSpans(json: Json): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of (json.resourceSpans as Json[] | undefined) ?? []) {
    const resource = attributes((rs.resource as Json | undefined)?.attributes)
    for (const ss of (rs.scopeSpans as Json[] | undefined) ?? [])
      for (const s of (ss.spans as Json[] | undefined) ?? [])
        out.push({
          traceId: s.traceId as string,
          spanId: s.spanId as string,
          parentSpanId: (s.parentSpanId as string | undefined) || undefined,
          name: s.name as string,
          kind: s.kind as number,
          attributes: attributes(s.attributes),
          status: (s.status as { code: number; message?: string } | undefined) ?? { code: 0 },
          links: ((s.links as Json[] | undefined) ?? []).map((l) => ({
            traceId: l.traceId as string,
            spanId: l.spanId as string,
          })),
          startNs: BigInt(s.startTimeUnixNano as string | number),
          endNs: BigInt(s.endTimeUnixNano as string | number),
          resource,
        })
  }
  return out
}

function decodePoints(json: Json): ReceivedPoint[] {
  const out: ReceivedPoint[] = []
  for (const rm of (json.resourceMetrics as Json[] | undefined) ?? [])
    for (const sm of (rm.scopeMetrics as Json[] | undefined) ?? [])
      for (const m of (sm.metrics as Json[] | undefined) ?? []) {
        const histogram = m.histogram as { dataPoints?: Json[] } | undefined
        for (const p of histogram?.dataPoints ?? [])
          out.push({
            metric: m.name as string,
            unit: m.unit as string | undefined,
            attributes: attributes(p.attributes),
            count: Number(p.count),
            sum: Number(p.sum),
            bounds: ((p.explicitBounds as number[] | undefined) ?? []).map(Number),
          })
      }
  return out
}

/** OTLP/JSON `KeyValue[]` → a plain object. */
function attributes(list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const kv of (list as { key: string; value: Json }[] | undefined) ?? []) {
    const v = kv.value
    out[kv.key] =
      v.stringValue ??
      (v.intValue !== undefined ? Number(v.intValue) : undefined) ??
      v.doubleValue ??
      v.boolValue ??
      v
  }
  return out
}

/**
 * Runs `fn` (a stack's start) with telemetry exported to `receiver` as OTLP/JSON, metrics
 * exported only when flushed (no periodic export within a test).
 */
export function exportingTo<T>(receiver: OtlpReceiver, fn: () => Promise<T>): Promise<T> {
  return withEnv(
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_METRIC_EXPORT_INTERVAL: '3600000',
    },
    fn,
  )
}

/** Sets `vars` in process.env (the OpenTelemetry SDK reads it) while `fn` runs, then restores it. */
export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
  }
}
