import {
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  defaultTextMapSetter,
  diag,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Histogram,
  type Link,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator, getNumberFromEnv } from '@opentelemetry/core'
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
import type { HttpTrace, McpMessage, McpSpan, Outcome, Step, StepName, Tracing } from './tracing.js'

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

/** Streamable HTTP and legacy SSE both run over HTTP on TCP (conventions: `network.*`). */
const HTTP_TRANSPORT = { 'network.transport': 'tcp', 'network.protocol.name': 'http' } as const

/** Longest value taken from a client into an attribute or span name; longer is cut. */
const MAX_ATTRIBUTE = 256
/** A target longer than this is left out of the span name (names must stay low-cardinality). */
const MAX_TARGET = 128
/** A `traceparent` or `tracestate` longer than this is ignored unread (W3C: 512 is enough). */
const MAX_CARRIER_VALUE = 512

interface Instruments {
  tracer: Tracer | undefined
  operation: Histogram | undefined
  userAttributes: boolean
}

const propagator = new W3CTraceContextPropagator()

/** HTTP headers as a carrier; a duplicated header arrives joined by `, ` and fails to parse. */
const headerGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => bounded(h.get(key)),
}

/** `params._meta` as a carrier (SEP-414: the W3C keys unprefixed); only strings count. */
const metaGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (m) => Object.keys(m),
  get: (m, key) => (Object.hasOwn(m, key) ? bounded(m[key]) : undefined),
}

function bounded(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= MAX_CARRIER_VALUE ? value : undefined
}

/** A valid remote parent from a carrier, or undefined (malformed, all-zero ids, absent). */
function remoteParent<C>(carrier: C, getter: TextMapGetter<C>): Context | undefined {
  const ctx = propagator.extract(ROOT_CONTEXT, carrier, getter)
  const parent = trace.getSpanContext(ctx)
  return parent && isSpanContextValid(parent) ? ctx : undefined
}

class HttpRequestTrace implements HttpTrace {
  private readonly start = now()
  /** Steps timed before the first message's span existed. */
  private readonly early: EarlyStep[] = []
  private readonly spans: McpMessageSpan[] = []
  private headerParent: Context | undefined | null = null

  constructor(
    private readonly i: Instruments,
    private readonly headers: Headers,
    private readonly client: string | undefined,
  ) {}

  step(name: StepName): Step {
    const first = this.spans[0]
    if (first) return first.step(name)
    const step = new EarlyStep(name)
    this.early.push(step)
    return step
  }

  message(m: McpMessage): McpSpan {
    // Extracted once per HTTP request, and only when a message needs it.
    if (this.headerParent === null) this.headerParent = remoteParent(this.headers, headerGetter)
    const meta = m.params?._meta
    const metaParent =
      typeof meta === 'object' && meta !== null && !Array.isArray(meta)
        ? remoteParent(meta as Record<string, unknown>, metaGetter)
        : undefined
    // Conventions (Context propagation): the context in `params._meta` is the parent; the
    // transport's own context, when it differs, is linked.
    const parent = metaParent ?? this.headerParent ?? ROOT_CONTEXT
    const headerContext = this.headerParent && trace.getSpanContext(this.headerParent)
    const links: Link[] =
      metaParent && headerContext ? [{ context: headerContext, attributes: {} }] : []
    const span = new McpMessageSpan(this.i, m, parent, links, this.start, this.client)
    if (this.spans.length === 0) for (const step of this.early.splice(0)) step.attach(span)
    this.spans.push(span)
    return span
  }

  done(outcome?: Outcome): void {
    for (const span of this.spans) if (!span.taken) span.end(outcome)
  }
}

/** A step timed before there was a span to hang it on (auth runs before the body is read). */
class EarlyStep implements Step {
  private readonly start = now()
  private finish: number | undefined
  private error: string | undefined
  private owner: McpMessageSpan | undefined

  constructor(private readonly name: StepName) {}

  end(error?: string): void {
    if (this.finish !== undefined) return
    this.finish = now()
    this.error = error
    this.owner?.childStep(this.name, this.start, this.finish, this.error)
  }

  attach(owner: McpMessageSpan): void {
    if (this.finish === undefined) this.owner = owner
    else owner.childStep(this.name, this.start, this.finish, this.error)
  }
}

class LiveStep implements Step {
  private ended = false
  constructor(private readonly span: Span) {}

  end(error?: string): void {
    if (this.ended) return
    this.ended = true
    if (error !== undefined) failed(this.span, error)
    this.span.end(now())
  }
}

const NO_STEP: Step = { end() {} }

class McpMessageSpan implements McpSpan {
  taken = false
  private readonly span: Span | undefined
  private readonly attributes: Attributes
  private client: Span | undefined
  private ended = false
  private allowed = false

  constructor(
    private readonly i: Instruments,
    private readonly m: McpMessage,
    parent: Context,
    links: Link[],
    private readonly start: number,
    clientAddress: string | undefined,
  ) {
    const { name, attributes } = describe(m)
    this.attributes = attributes
    if (i.tracer === undefined) return
    // The SDK's samplers decide without the attributes: an unsampled span is given none.
    const span = i.tracer.startSpan(
      name,
      { kind: SpanKind.SERVER, startTime: start, links },
      parent,
    )
    this.span = span
    if (!span.isRecording()) return
    const own: Attributes = {
      ...attributes,
      ...HTTP_TRANSPORT,
      'mcp_edge.server': m.server,
      ...(m.transport === 'sse' && { 'mcp_edge.transport': 'sse' }),
    }
    if (m.id !== undefined) own['jsonrpc.request.id'] = clip(String(m.id))
    if (m.sessionId !== undefined) own['mcp.session.id'] = m.sessionId
    if (i.userAttributes) {
      if (clientAddress !== undefined) own['client.address'] = clientAddress
      if (m.subject !== undefined) own['user.id'] = m.subject
    }
    span.setAttributes(own)
  }

  /** Whether the span is sampled: an unsampled one gets no child spans (its context still flows). */
  private get recording(): boolean {
    return this.span?.isRecording() === true
  }

  step(name: StepName): Step {
    if (!this.recording) return NO_STEP
    return new LiveStep(this.i.tracer!.startSpan(name, { startTime: now() }, this.context()))
  }

  childStep(name: StepName, start: number, end: number, error: string | undefined): void {
    if (!this.recording) return
    const span = this.i.tracer!.startSpan(name, { startTime: start }, this.context())
    if (error !== undefined) failed(span, error)
    span.end(end)
  }

  decision(effect: string, rule: string): void {
    this.allowed = effect === 'allow' || effect === 'filter'
    if (!this.recording) return
    this.span!.setAttributes({ 'mcp_edge.policy.decision': effect, 'mcp_edge.policy.rule': rule })
  }

  session(id: string | undefined, protocolVersion: string | undefined): void {
    if (protocolVersion !== undefined)
      this.attributes['mcp.protocol.version'] = clip(protocolVersion)
    if (!this.recording) return
    if (id !== undefined) this.span!.setAttribute('mcp.session.id', id)
    if (protocolVersion !== undefined)
      this.span!.setAttribute('mcp.protocol.version', clip(protocolVersion))
  }

  take(): void {
    this.taken = true
  }

  toChild<T>(message: T, to?: { id?: string | number; server?: string }): T {
    // No span (metrics only): the message goes as the client sent it.
    if (this.span === undefined) return message
    this.client?.end(now())
    const msg = message as { method?: unknown; params?: Record<string, unknown> }
    const method = typeof msg.method === 'string' ? msg.method : this.m.method
    const { name, attributes } = describe({ ...this.m, method, params: msg.params })
    attributes['network.transport'] = 'pipe'
    attributes['mcp_edge.server'] = to?.server ?? this.m.server
    const id = to?.id ?? this.m.id
    if (id !== undefined) attributes['jsonrpc.request.id'] = clip(String(id))
    if (this.attributes['mcp.protocol.version'] !== undefined)
      attributes['mcp.protocol.version'] = this.attributes['mcp.protocol.version']
    this.client = this.i.tracer!.startSpan(
      name,
      { kind: SpanKind.CLIENT, startTime: now(), attributes },
      this.context(),
    )
    const carrier: Record<string, string> = {}
    propagator.inject(trace.setSpan(ROOT_CONTEXT, this.client), carrier, defaultTextMapSetter)
    const previous = msg.params?._meta
    const meta: Record<string, unknown> =
      typeof previous === 'object' && previous !== null && !Array.isArray(previous)
        ? { ...(previous as Record<string, unknown>) }
        : {}
    meta.traceparent = carrier.traceparent
    // The client's tracestate belongs to its trace, which the gateway's span continues (the
    // SDK carries it over); a stale one is never left beside a new traceparent.
    if (carrier.tracestate) meta.tracestate = carrier.tracestate
    else delete meta.tracestate
    return { ...message, params: { ...msg.params, _meta: meta } }
  }

  childDone(outcome?: Outcome): void {
    const client = this.client
    if (client === undefined) return
    this.client = undefined
    if (outcome) record(client, outcome)
    client.end(now())
  }

  end(outcome?: Outcome): void {
    if (this.ended) return
    this.ended = true
    this.childDone(outcome)
    const finish = now()
    if (this.span) {
      if (outcome) record(this.span, outcome)
      this.span.end(finish)
    }
    if (this.i.operation === undefined) return
    // Metric attributes stay low-cardinality: a tool or prompt name is kept only when the
    // policy allowed it and the server answered without a protocol error (a made-up name
    // from a client would otherwise open a series of its own).
    const named = this.allowed && outcome?.code === undefined
    const attributes: Attributes = { ...HTTP_TRANSPORT }
    for (const [key, value] of Object.entries(this.attributes)) {
      if (key === 'mcp.resource.uri') continue
      if (!named && (key === 'gen_ai.tool.name' || key === 'gen_ai.prompt.name')) continue
      attributes[key] = value
    }
    const error = errorType(outcome)
    if (error !== undefined) attributes['error.type'] = error
    if (outcome?.code !== undefined) attributes['rpc.response.status_code'] = String(outcome.code)
    this.i.operation.record((finish - this.start) / 1000, attributes)
  }

  private context(): Context {
    return trace.setSpan(ROOT_CONTEXT, this.span!)
  }
}

/**
 * The span name and the attributes the conventions define for one MCP message (Server span,
 * Attributes): `{mcp.method.name} {target}`, the target being the tool or prompt name; the
 * resource URI is an attribute, never part of the name.
 */
function describe(m: McpMessage): { name: string; attributes: Attributes } {
  const attributes: Attributes = { 'mcp.method.name': clip(m.method) }
  if (m.protocolVersion !== undefined) attributes['mcp.protocol.version'] = clip(m.protocolVersion)
  const p = m.params
  let target: string | undefined
  if (m.method === 'tools/call' && typeof p?.name === 'string') {
    target = p.name
    attributes['gen_ai.tool.name'] = clip(p.name)
    attributes['gen_ai.operation.name'] = 'execute_tool'
  } else if (m.method === 'prompts/get' && typeof p?.name === 'string') {
    target = p.name
    attributes['gen_ai.prompt.name'] = clip(p.name)
  } else if (RESOURCE_METHODS.has(m.method) && typeof p?.uri === 'string') {
    attributes['mcp.resource.uri'] = clip(p.uri)
  }
  const method = clip(m.method)
  const name = target !== undefined && target.length <= MAX_TARGET ? `${method} ${target}` : method
  return { name, attributes }
}

const RESOURCE_METHODS = new Set(['resources/read', 'resources/subscribe', 'resources/unsubscribe'])

/**
 * Conventions (Recording errors): `error.type` is the JSON-RPC error code as a string, or
 * `tool_error` for a tool result flagged `isError`; the span's status is then ERROR, its
 * description the error's message.
 */
function record(span: Span, outcome: Outcome): void {
  const error = errorType(outcome)
  if (error === undefined) return
  span.setAttribute('error.type', error)
  if (outcome.code !== undefined)
    span.setAttribute('rpc.response.status_code', String(outcome.code))
  span.setStatus({
    code: SpanStatusCode.ERROR,
    ...(outcome.message !== undefined && { message: clip(outcome.message) }),
  })
}

function errorType(outcome: Outcome | undefined): string | undefined {
  if (outcome === undefined) return undefined
  if (outcome.errorType !== undefined) return outcome.errorType
  if (outcome.code !== undefined) return String(outcome.code)
  return outcome.toolError ? 'tool_error' : undefined
}

function failed(span: Span, error: string): void {
  span.setAttribute('error.type', error)
  span.setStatus({ code: SpanStatusCode.ERROR })
}

function clip(value: string): string {
  return value.length <= MAX_ATTRIBUTE ? value : value.slice(0, MAX_ATTRIBUTE)
}

/** Epoch milliseconds with sub-millisecond precision: every span's start and end. */
function now(): number {
  return performance.timeOrigin + performance.now()
}

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

function diagLog(log: Logger) {
  const warn = (message: string, ...args: unknown[]) =>
    log.warn({ detail: args.map((a) => (a instanceof Error ? a.message : a)) }, message)
  return {
    error: warn,
    warn,
    info: () => {},
    debug: () => {},
    verbose: () => {},
  }
}
