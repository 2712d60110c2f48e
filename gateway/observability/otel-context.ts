// W3C trace context in and out of the gateway: from HTTP headers and from `params._meta`
// (SEP-414), bounded and validated, with the official propagator.

import {
  ROOT_CONTEXT,
  isSpanContextValid,
  trace,
  type Context,
  type TextMapGetter,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { MAX_CARRIER_VALUE } from './otel-attributes.js'

export const propagator = new W3CTraceContextPropagator()

/** HTTP headers as a carrier; a duplicated header arrives joined by `, ` and fails to parse. */
export const headerGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => bounded(h.get(key)),
}

/** `params._meta` as a carrier (SEP-414: the W3C keys unprefixed); only strings count. */
export const metaGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (m) => Object.keys(m),
  get: (m, key) => (Object.hasOwn(m, key) ? bounded(m[key]) : undefined),
}

function bounded(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= MAX_CARRIER_VALUE ? value : undefined
}

/** A valid remote parent from a carrier, or undefined (malformed, all-zero ids, absent). */
export function remoteParent<C>(carrier: C, getter: TextMapGetter<C>): Context | undefined {
  const ctx = propagator.extract(ROOT_CONTEXT, carrier, getter)
  const parent = trace.getSpanContext(ctx)
  return parent && isSpanContextValid(parent) ? ctx : undefined
}
