// What spans and the operation metric say of an MCP message, and how an outcome is recorded,
// as the OpenTelemetry semantic conventions for MCP write it (docs/gen-ai/mcp.md).

import { SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api'
import type { McpMessage, Outcome } from './tracing.js'

/** Streamable HTTP and legacy SSE both run over HTTP on TCP (conventions: `network.*`). */
export const HTTP_TRANSPORT = {
  'network.transport': 'tcp',
  'network.protocol.name': 'http',
} as const

/** Longest value taken from a client into an attribute or span name; longer is cut. */
export const MAX_ATTRIBUTE = 256
/** A target longer than this is left out of the span name (names must stay low-cardinality). */
const MAX_TARGET = 128
/** A `traceparent` or `tracestate` longer than this is ignored unread (W3C: 512 is enough). */
export const MAX_CARRIER_VALUE = 512

/**
 * The span name and the attributes the conventions define for one MCP message (Server span,
 * Attributes): `{mcp.method.name} {target}`, the target being the tool or prompt name; the
 * resource URI is an attribute, never part of the name.
 */
export function describe(m: McpMessage): { name: string; attributes: Attributes } {
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
  const name =
    target !== undefined && target.length <= MAX_TARGET ? `${method} ${clip(target)}` : method
  return { name, attributes }
}

const RESOURCE_METHODS = new Set(['resources/read', 'resources/subscribe', 'resources/unsubscribe'])

/**
 * Conventions (Recording errors): `error.type` is the JSON-RPC error code as a string, or
 * `tool_error` for a tool result flagged `isError`; the span's status is then ERROR, its
 * description the error's message.
 */
export function record(span: Span, outcome: Outcome): void {
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

export function errorType(outcome: Outcome | undefined): string | undefined {
  if (outcome === undefined) return undefined
  if (outcome.errorType !== undefined) return outcome.errorType
  if (outcome.code !== undefined) return String(outcome.code)
  return outcome.toolError ? 'tool_error' : undefined
}

export function failed(span: Span, error: string): void {
  span.setAttribute('error.type', error)
  span.setStatus({ code: SpanStatusCode.ERROR })
}

/**
 * `value` cut to {@link MAX_ATTRIBUTE} UTF-16 units, then every lone surrogate (the half of a
 * pair the cut split, or one a client's JSON held as `"\\ud800"`) as U+FFFD: http/protobuf
 * writes a lone surrogate as invalid UTF-8, which a collector that checks refuses, and with it
 * the whole batch (other requests' spans).
 */
export function clip(value: string): string {
  const cut = value.length <= MAX_ATTRIBUTE ? value : value.slice(0, MAX_ATTRIBUTE)
  return cut.replace(LONE_SURROGATE, '\uFFFD')
}

/** In `u` mode a surrogate pair is one code point: only a lone half matches. */
const LONE_SURROGATE = /\p{Cs}/gu

/** Epoch milliseconds with sub-millisecond precision: every span's start and end. */
export function now(): number {
  return performance.timeOrigin + performance.now()
}
