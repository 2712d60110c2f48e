import { DiagLogLevel, diag } from '@opentelemetry/api'
import { getNumberFromEnv } from '@opentelemetry/core'
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources'
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics'
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base'
import type { Logger } from 'pino'
import type { TelemetryExporter, TelemetrySettings } from './telemetry-env.js'
import { HTTP_TRANSPORT, clip } from './otel-attributes.js'
import { HttpRequestTrace, type Instruments } from './otel-spans.js'
import { ListedNames } from './listed-names.js'
import type { Tracing } from './tracing.js'

/**
 * Tracing with the official OpenTelemetry JS SDK, loaded by tracing.ts only when the
 * environment turns it on. Spans and metrics follow the OpenTelemetry semantic conventions for
 * MCP (semantic-conventions-genai, docs/gen-ai/mcp.md): a SERVER span per MCP request or
 * notification the gateway receives, named `{mcp.method.name} {target}`; a CLIENT span per
 * request it relays to a process, whose context goes to the process in `params._meta`; the
 * `mcp.server.operation.duration` and `mcp.server.session.duration` histograms. The SDK reads
 * its own variables (endpoint, headers, timeout, sampler, batch and limits); nothing here
 * registers a global provider, so several gateways in one process stay apart.
 */
export async function startOtel(s: TelemetrySettings, log: Logger): Promise<Tracing> {
  // The SDK's own failures (an export that cannot reach the collector) go to the log.
  diag.setLogger(diagLog(log.child({ component: 'otel' })), {
    logLevel: DiagLogLevel.WARN,
    suppressOverrideMessage: true,
  })
  // `service.name` is mcp-edge unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says
  // otherwise: the environment's resource is merged last and wins.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'mcp-edge' }))
    .merge(detectResources({ detectors: [envDetector] }))
  const tracerProvider =
    s.traces &&
    new BasicTracerProvider({
      resource,
      spanProcessors: [new BatchSpanProcessor(await spanExporter(s.traces))],
    })
  // Specification defaults: export every 60 s, each export given at most 30 s.
  const interval = getNumberFromEnv('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000
  const meterProvider =
    s.metrics &&
    new MeterProvider({
      resource,
      readers: [
        new PeriodicExportingMetricReader({
          exporter: await metricExporter(s.metrics),
          exportIntervalMillis: interval,
          // The SDK refuses a timeout above the interval: a short interval alone shortens it.
          exportTimeoutMillis: Math.min(
            getNumberFromEnv('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000,
            interval,
          ),
        }),
      ],
    })
  const meter = meterProvider?.getMeter('mcp-edge')
  const instruments: Instruments = {
    tracer: tracerProvider?.getTracer('mcp-edge'),
    operation: meter?.createHistogram('mcp.server.operation.duration', {
      unit: 's',
      description:
        'MCP request or notification duration as observed on the receiver from the time it was received until the result or ack is sent.',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    listed: meter && new ListedNames(),
    userAttributes: s.userAttributes,
  }
  const sessions = meter?.createHistogram('mcp.server.session.duration', {
    unit: 's',
    description: 'The duration of the MCP session as observed on the MCP server.',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  log.info(
    {
      traces: s.traces && exporterName(s.traces),
      metrics: s.metrics && exporterName(s.metrics),
      userAttributes: s.userAttributes,
    },
    'OpenTelemetry on',
  )
  return {
    on: true,
    begin: (headers, client) => new HttpRequestTrace(instruments, headers, client),
    listed(server, method, result) {
      instruments.listed?.record(server, method, result)
    },
    sessionEnded(e) {
      sessions?.record(e.durationMs / 1000, {
        ...HTTP_TRANSPORT,
        ...(e.protocolVersion && { 'mcp.protocol.version': clip(e.protocolVersion) }),
        ...(e.error && { 'error.type': e.error }),
      })
    },
    async flush() {
      await Promise.all([
        tracerProvider?.forceFlush().catch((err: Error) => log.warn({ err }, 'span export failed')),
        meterProvider
          ?.forceFlush()
          .catch((err: Error) => log.warn({ err }, 'metric export failed')),
      ])
    },
    async close() {
      // Both flush what they hold before they stop; a collector that is down costs at most
      // the exporters' timeout, and is logged, never thrown at the close path.
      await Promise.all([
        tracerProvider?.shutdown().catch((err: Error) => log.warn({ err }, 'span export failed')),
        meterProvider?.shutdown().catch((err: Error) => log.warn({ err }, 'metric export failed')),
      ])
    },
  }
}

/** The conventions' `ExplicitBucketBoundaries` for both duration histograms, in seconds. */
const DURATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]

function exporterName(e: TelemetryExporter): string {
  return e.kind === 'otlp' ? `otlp ${e.protocol}` : e.kind
}

async function spanExporter(e: TelemetryExporter): Promise<SpanExporter> {
  if (e.kind === 'console') return new ConsoleSpanExporter()
  // Each reads its endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables.
  if (e.protocol === 'http/json')
    return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
  return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter()
}

async function metricExporter(e: TelemetryExporter): Promise<PushMetricExporter> {
  if (e.kind === 'console') return new ConsoleMetricExporter()
  if (e.protocol === 'http/json')
    return new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter()
  return new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter()
}

/**
 * The SDK's own warnings, with what an exporter URL holds of a credential taken out: the SDK
 * quotes an `OTEL_EXPORTER_OTLP_*ENDPOINT` it cannot parse as written, and a collector's URL may
 * carry its password or API key (`https://user:key@…`, `?api_key=…`).
 */
function diagLog(log: Logger) {
  // The endpoints as written are blotted first: one that does not parse may hold what no
  // pattern of a URL finds (a quote, the SDK's own delimiter; `http//` with no colon).
  const endpoints = ENDPOINT_VARIABLES.flatMap((name) => process.env[name] || [])
  const clean = (t: string) =>
    withoutUrlCredentials(endpoints.reduce((t, e) => t.replaceAll(e, endpointShown(e)), t))
  const text = (a: unknown) => (typeof a === 'string' ? clean(a) : a)
  const warn = (message: string, ...args: unknown[]) =>
    log.warn({ detail: args.map((a) => text(a instanceof Error ? a.message : a)) }, clean(message))
  return {
    error: warn,
    warn,
    info: () => {},
    debug: () => {},
    verbose: () => {},
  }
}

/**
 * A URL's user information (RFC 3986 §3.2.1) and query (§3.4), anywhere in a text: blotted. Up
 * to the last `@`, and the query to its end: the URL the SDK quotes is one it could not parse, a
 * password's own `@`, `/` or `#` left unescaped perhaps.
 */
const URL_CREDENTIALS =
  /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)([^\s'"]*@)?([^\s'"?#]*)(\?[^\s'"]*)?/gi

function withoutUrlCredentials(text: string): string {
  return text.replace(
    URL_CREDENTIALS,
    (_, scheme: string, user: string | undefined, rest: string, query: string | undefined) =>
      `${scheme}${user ? '[redacted]@' : ''}${rest}${query ? '?[redacted]' : ''}`,
  )
}

/** The variables the SDK reads an exporter's endpoint from. */
const ENDPOINT_VARIABLES = ['', 'TRACES_', 'METRICS_', 'LOGS_'].map(
  (signal) => `OTEL_EXPORTER_OTLP_${signal}ENDPOINT`,
)

/** An endpoint as written, shown without what stands before its last `@` or after its `?`. */
function endpointShown(url: string): string {
  const at = url.lastIndexOf('@')
  const scheme = at === -1 ? '' : (/^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '')
  const rest = at === -1 ? url : `[redacted]@${url.slice(at + 1)}`
  const query = rest.indexOf('?')
  return `${scheme}${query === -1 ? rest : `${rest.slice(0, query)}?[redacted]`}`
}
