import type { McpSpan } from '../observability/tracing.js'
import type { Decision } from './evaluate.js'

/** A policy verdict on one request, and the name (tool, prompt, URI) it was about. */
export interface Decided {
  decision: Decision
  name?: string
  /** The request's span, when tracing is on: it rides with the verdict to the bridge, which ends it. */
  span?: McpSpan
}

/** How an audit line names the rule behind a decision (or a refusal's reason): `file:line reason`. */
export function ruleOf(d: Pick<Decision, 'reason' | 'source'>): string {
  return d.source ? `${d.source.file}:${d.source.line ?? '?'} ${d.reason}` : d.reason
}
