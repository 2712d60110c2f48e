import type { Context } from 'hono'
import type { Principal } from '../auth/principal.js'
import type { Envelope, RequestId } from '../bridge/jsonrpc.js'
import { ruleOf, type Decided } from '../policy/decided.js'
import { GatewayError } from '../errors.js'
import type { HttpTrace, McpSpan, Outcome, Tracing } from '../observability/tracing.js'
import type { Refusal } from './decide.js'
import { alreadySent } from './reply.js'
import { RPC_INSUFFICIENT_SCOPE, refusalError } from './respond.js'

/**
 * The spans of one POST body's MCP messages (tracing on only): requests by id, so policy can
 * record its verdict on each and the bridge can end each with its reply.
 */
export interface TracedBody {
  trace: HttpTrace
  spans: Map<RequestId, McpSpan>
}

/** What the spans of a body say beside each message's own method, id and params. */
export interface BodyContext {
  /** The server, or the endpoint, the body was sent to. */
  server: string
  principal: Principal
  sessionId?: string
  protocolVersion?: string
  transport?: 'http' | 'sse'
}

/**
 * A SERVER span for every request and notification of a body; undefined when tracing is off,
 * so the off path allocates nothing. Responses (a client's answers to server requests) and
 * malformed messages have none.
 */
export function traceBody(
  tracing: Tracing,
  trace: HttpTrace,
  messages: readonly Envelope[],
  c: BodyContext,
): TracedBody | undefined {
  if (!tracing.on) return undefined
  const spans = new Map<RequestId, McpSpan>()
  for (const m of messages) {
    if (m.kind !== 'request' && m.kind !== 'notification') continue
    const span = trace.message({
      method: m.method,
      id: m.kind === 'request' ? m.id : undefined,
      params: m.params,
      server: c.server,
      sessionId: c.sessionId,
      protocolVersion: c.protocolVersion,
      transport: c.transport,
      subject: c.principal.sub,
    })
    if (m.kind === 'request') spans.set(m.id, span)
  }
  return { trace, spans }
}

/**
 * Puts policy's verdict on the spans: each allowed request's span rides on its `Decided` to
 * the bridge (which ends it with the reply); a refused one is ended here with the refusal, as
 * the client gets it.
 */
export function traceVerdict(
  t: TracedBody,
  verdict:
    | { refused: undefined; decided: Map<RequestId, Decided> }
    | { refused: { message: Envelope; decision: Refusal } },
): void {
  if (verdict.refused) {
    const { message, decision } = verdict.refused
    if (message.kind !== 'request') return
    const span = t.spans.get(message.id)
    span?.decision(decisionName(decision), ruleOf(decision))
    span?.end(refusalOutcome(decision))
    return
  }
  for (const [id, decided] of verdict.decided) {
    const span = t.spans.get(id)
    if (span === undefined) continue
    span.decision('allow', ruleOf(decided.decision))
    decided.span = span
  }
}

/** The decision as the audit log names it. */
function decisionName(d: Refusal): string {
  return d.effect === 'limited' ? 'rate_limited' : d.effect
}

/** How a refusal reaches the client: its JSON-RPC error (or a tool error for a limit so configured). */
export function refusalOutcome(d: Refusal): Outcome {
  if (d.effect === 'challenge')
    return { code: RPC_INSUFFICIENT_SCOPE, message: 'insufficient scope' }
  if (d.effect === 'limited' && d.asToolResult) return { toolError: true }
  const e = refusalError(d)
  return { code: e.code, message: e.message }
}

/** How a request that ended in a thrown error is classed: the gateway's error code. */
export function errorOutcome(err: unknown): Outcome {
  return { errorType: err instanceof GatewayError ? err.code : '_OTHER' }
}

/** How a response no span recorded otherwise ended: its HTTP status when it is an error. */
export function statusOutcome(status: number): Outcome | undefined {
  return status >= 400 ? { errorType: String(status) } : undefined
}

/** The status a handler answered with, also when it wrote its reply to the socket itself. */
export function answeredStatus(c: Context, res: Response): number {
  if (!alreadySent(res)) return res.status
  const out = (c.env as { outgoing?: { statusCode?: number } } | undefined)?.outgoing
  return out?.statusCode ?? 200
}
