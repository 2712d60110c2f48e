// The spans of one HTTP request and of each MCP message in it: what the request path calls
// through tracing.ts when tracing is on.

import {
  ROOT_CONTEXT,
  SpanKind,
  defaultTextMapSetter,
  trace,
  type Attributes,
  type Context,
  type Histogram,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api'
import {
  HTTP_TRANSPORT,
  clip,
  describe,
  errorType,
  failed,
  now,
  record,
} from './otel-attributes.js'
import { MCP_METHODS } from '../policy/method-names.js'
import { headerGetter, metaGetter, propagator, remoteParent } from './otel-context.js'
import type { ListedNames } from './listed-names.js'
import type { HttpTrace, McpMessage, McpSpan, Outcome, Step, StepName } from './tracing.js'

/** What the spans record into: the tracer (none: metrics only) and the operation histogram. */
export interface Instruments {
  tracer: Tracer | undefined
  operation: Histogram | undefined
  /** What each server listed: a tool or prompt name labels the histogram only when listed. */
  listed: ListedNames | undefined
  userAttributes: boolean
}

export class HttpRequestTrace implements HttpTrace {
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
  /** The server and the name the process was asked for (an endpoint's backend, unclipped). */
  private target: { server: string; name: unknown } | undefined

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
    // A rule that matched nothing names what the client sent (`no tools rule matches <name>`).
    this.span!.setAttributes({
      'mcp_edge.policy.decision': effect,
      'mcp_edge.policy.rule': clip(rule),
    })
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
    const msg = message as { method?: unknown; params?: Record<string, unknown> }
    this.target = { server: to?.server ?? this.m.server, name: msg.params?.name }
    // No span (metrics only): the message goes as the client sent it.
    if (this.span === undefined) return message
    this.client?.end(now())
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
    // policy allowed it, the server answered without a protocol error and had listed it (a
    // server answering a made-up name with an `isError` result makes no protocol error). So is
    // a method name: one MCP does not name is `_OTHER` (as the HTTP conventions record
    // methods), or any client with a token fills the SDK's 2000 series per instrument and every
    // later one, real ones too, goes to its overflow series.
    const named = this.allowed && outcome?.code === undefined && this.listed()
    const attributes: Attributes = { ...HTTP_TRANSPORT }
    for (const [key, value] of Object.entries(this.attributes)) {
      if (key === 'mcp.resource.uri') continue
      if (!named && (key === 'gen_ai.tool.name' || key === 'gen_ai.prompt.name')) continue
      attributes[key] =
        key === 'mcp.method.name' && !MCP_METHODS.has(value as string) ? '_OTHER' : value
    }
    const error = errorType(outcome)
    if (error !== undefined) attributes['error.type'] = error
    if (outcome?.code !== undefined) attributes['rpc.response.status_code'] = String(outcome.code)
    this.i.operation.record((finish - this.start) / 1000, attributes)
  }

  /** Whether the server listed the tool or prompt the message names (none named: true). */
  private listed(): boolean {
    const kind =
      this.m.method === 'tools/call'
        ? 'tools'
        : this.m.method === 'prompts/get'
          ? 'prompts'
          : undefined
    if (kind === undefined) return true
    const server = this.target?.server ?? this.m.server
    const name = this.target !== undefined ? this.target.name : this.m.params?.name
    return typeof name === 'string' && this.i.listed?.has(server, kind, name) === true
  }

  private context(): Context {
    return trace.setSpan(ROOT_CONTEXT, this.span!)
  }
}
