import type { Logger } from 'pino'
import { telemetrySettings } from './telemetry-env.js'

/**
 * The gateway's tracing, as the request path sees it: a few calls that are no-ops when tracing
 * is off. The OpenTelemetry SDK sits behind it (otel.ts) and is loaded only when the `OTEL_*`
 * environment turns telemetry on, so a gateway without tracing pays one boolean check per
 * request and never loads a module of it.
 */
export interface Tracing {
  /** False when off: call sites skip building what only a span would read. */
  readonly on: boolean
  /**
   * Begins one HTTP request that carries MCP messages, at the endpoint's entry: its W3C
   * `traceparent` header is a candidate parent, `client` the caller's address.
   */
  begin(headers: Headers, client?: string): HttpTrace
  /**
   * A server's `tools/list` or `prompts/list` result, as it sent it: the names a tool or
   * prompt label of the operation metric may take (any other method is ignored).
   */
  listed(server: string, method: string, result: unknown): void
  /** A session ended (`mcp.server.session.duration`): how long it lasted, in ms. */
  sessionEnded(s: { durationMs: number; protocolVersion?: string; error?: string }): void
  /** Exports what is buffered now (tests; an operator's collector sees it within the batch delay). */
  flush(): Promise<void>
  /** Exports what is buffered and stops the exporters (the gateway's close path). */
  close(): Promise<void>
}

/** The gateway's own steps in serving a request, each a child span. */
export type StepName = 'auth' | 'policy' | 'lease'

/** A step under way; `end` once, with a low-cardinality error class when it failed. */
export interface Step {
  end(error?: string): void
}

/**
 * One HTTP request at the MCP endpoint. Steps before its body is read (auth) are timed and
 * become children of the first message's span once that exists; steps after it go under that
 * span directly.
 */
export interface HttpTrace {
  step(name: StepName): Step
  /**
   * The SERVER span of one MCP request or notification of the body, parented on the trace
   * context of its `params._meta` (SEP-414) when valid, else on the HTTP `traceparent`.
   */
  message(m: McpMessage): McpSpan
  /** Ends every message span the bridge did not take (refused, failed, or a notification). */
  done(outcome?: Outcome): void
}

/** What a span says of an MCP message. */
export interface McpMessage {
  method: string
  /** Absent for a notification. */
  id?: string | number
  params?: Record<string, unknown>
  /** The server (or endpoint) it is for. */
  server: string
  sessionId?: string
  protocolVersion?: string
  /** `http` (Streamable HTTP, both eras) or `sse` (the legacy 2024-11-05 transport). */
  transport?: 'http' | 'sse'
  /** The caller's `sub`: on the span only when user attributes are turned on. */
  subject?: string
}

/** How an MCP operation ended; nothing means success. */
export interface Outcome {
  /** The JSON-RPC error code of the reply. */
  code?: number
  message?: string
  /** The class of a failure that is no JSON-RPC error (e.g. `insufficient_scope`, `http_413`). */
  errorType?: string
  /** A `tools/call` result with `isError: true` (the convention's `tool_error`). */
  toolError?: boolean
}

/** The span of one MCP message, handed along with it to the bridge. */
export interface McpSpan {
  /** Time a step of the gateway's as a child span. */
  step(name: StepName): Step
  /** The policy's verdict and the rule that gave it. */
  decision(effect: string, rule: string): void
  /** The session, once it is known (an initialize learns its id and version late). */
  session(id: string | undefined, protocolVersion: string | undefined): void
  /** The bridge ends this span (with the request's reply): `done` leaves it alone. */
  take(): void
  /**
   * Starts the CLIENT span of the round trip to the process and returns the message to send:
   * a copy whose `params._meta` carries that span's `traceparent` (and `tracestate`), the
   * original when tracing is off. The span is named from the message as sent (an endpoint's
   * backend name, not the public one); `to` names the id the process sees, when rewritten,
   * and the backend server, when it is not the message's own.
   */
  toChild<T>(message: T, to?: { id?: string | number; server?: string }): T
  /** The process answered (or will not): ends the CLIENT span. */
  childDone(outcome?: Outcome): void
  /** Ends the span (and the CLIENT span, if still open), recording the operation's duration. */
  end(outcome?: Outcome): void
}

const NO_STEP: Step = { end() {} }

const NO_SPAN: McpSpan = {
  step: () => NO_STEP,
  decision() {},
  session() {},
  take() {},
  toChild: (message) => message,
  childDone() {},
  end() {},
}

const NO_HTTP: HttpTrace = { step: () => NO_STEP, message: () => NO_SPAN, done() {} }

/** Tracing off: every call a constant, nothing allocated. */
export const TRACING_OFF: Tracing = {
  on: false,
  begin: () => NO_HTTP,
  listed() {},
  sessionEnded() {},
  flush: async () => {},
  close: async () => {},
}

/** The trace of a request when tracing is off: call sites skip even reading headers for it. */
export const NO_HTTP_TRACE: HttpTrace = NO_HTTP

/**
 * Starts tracing and metrics when the environment turns them on (telemetry-env.ts), loading
 * the SDK then and only then.
 * @throws ConfigError when an `OTEL_*` variable names what the gateway cannot do
 */
export async function startTracing(
  log: Logger,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<Tracing> {
  const settings = telemetrySettings(env)
  if (settings === undefined) return TRACING_OFF
  const { startOtel } = await import('./otel.js')
  return startOtel(settings, log)
}

/**
 * How a JSON-RPC reply ended, as the conventions record it: its error code and message, or
 * `tool_error` for a `tools/call` result flagged `isError`. Undefined for a success. `redact`:
 * the process's own blotting of the user's credentials, for an error text it wrote (a tracing
 * backend is no place for them).
 */
export function outcomeOf(reply: unknown, redact?: (text: string) => string): Outcome | undefined {
  if (typeof reply !== 'object' || reply === null) return undefined
  const r = reply as { error?: unknown; result?: unknown }
  if (typeof r.error === 'object' && r.error !== null) {
    const e = r.error as { code?: unknown; message?: unknown }
    const text = typeof e.message === 'string' ? e.message : undefined
    const message = text !== undefined && redact !== undefined ? redact(text) : text
    // Conventions: `_OTHER` when the instrumentation has no better class.
    return typeof e.code === 'number' ? { code: e.code, message } : { errorType: '_OTHER', message }
  }
  const result = r.result as { isError?: unknown } | undefined
  if (typeof result === 'object' && result !== null && result.isError === true)
    return { toolError: true }
  return undefined
}
