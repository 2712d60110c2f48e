import type { Principal } from '../auth/principal.js'
import type { Decided } from '../policy/decided.js'
import { ruleOf } from '../policy/decided.js'
import type { AuditEvent, AuditLog } from './audit.js'
import type { Metrics } from './metrics.js'

/**
 * How a request the policy allowed ended, as a value: the audit line's `outcome` text is made
 * from it in one place (`outcomeText`), and whether the policy filtered the answer is its
 * `kind`, never read back from the text.
 */
export type AuditOutcome =
  /** The server answered with a result. */
  | { kind: 'ok' }
  /** A JSON-RPC error: the server's, or the gateway's when the process failed or timed out. */
  | { kind: 'error'; code: unknown }
  /** A list result the policy narrowed: `kept` of `of` entries are shown. */
  | { kind: 'filtered'; kept: number; of: number }
  /** The client went away (or the gateway gave up on it) before the answer. */
  | { kind: 'cancelled' }
  /** A sessionless round ended waiting for the client's answers to these keys. */
  | { kind: 'input_required'; keys: readonly string[] }
  /** A sessionless retry whose `requestState` continues nothing. */
  | { kind: 'request_state'; refusal: 'invalid' | 'gone' }
  /** The user's credentials stood in the way (`detail`: the credential error or what is missing). */
  | { kind: 'credential'; detail: string }
  /** A stream that opened (200) or did not, by its HTTP status. */
  | { kind: 'status'; status: number }
  /** An endpoint's merged list without these backends (unavailable to the caller just now). */
  | { kind: 'left_out'; servers: readonly string[] }
  /** A result over its output cap, cut to `bytes` of `of` (servers.<name>.output). */
  | { kind: 'truncated'; bytes: number; of: number }
  /** A result over its output cap, refused (`overflow: refuse`). */
  | { kind: 'too_large'; of: number }

/** The audit line's `outcome` field for an outcome (the text operators and tests read). */
export function outcomeText(o: AuditOutcome): string {
  switch (o.kind) {
    case 'ok':
      return 'ok'
    case 'error':
      return `error ${codeText(o.code)}`
    case 'filtered':
      return `kept ${o.kept} of ${o.of}`
    case 'cancelled':
      return 'cancelled'
    case 'input_required':
      return `input_required ${o.keys.join(',')}`
    case 'request_state':
      return `refused requestState (${o.refusal})`
    case 'credential':
      return `credential ${o.detail}`
    case 'status':
      return o.status === 200 ? 'ok' : `status ${o.status}`
    case 'left_out':
      return o.servers.length > 0 ? `left out ${o.servers.join(',')}` : 'ok'
    case 'truncated':
      return `truncated ${o.bytes} of ${o.of} bytes`
    case 'too_large':
      return `refused ${o.of} bytes over the output cap`
  }
}

/**
 * A JSON-RPC error's code as the line writes it: as a template writes it (a number, and anything
 * else a process wrote there), or as JSON when it has no string form (`{"toString":0}`, valid
 * JSON, made the template throw in the child's stdout callback and ended the gateway), or its
 * type when it cannot be written as JSON either.
 */
function codeText(code: unknown): string {
  try {
    return `${code}`
  } catch {
    // Nested deeper than the stack lets JSON.stringify go (a process's line past ~3000 levels,
    // should servers.<name>.childMaxJsonDepth ever let one through): its type, never a throw.
    try {
      return JSON.stringify(code) ?? typeof code
    } catch {
      return typeof code
    }
  }
}

/**
 * The audit event (and decision count) of a request policy allowed, once its outcome is known;
 * a `filtered` outcome is counted and recorded as the decision `filter`. Both eras and every
 * transport record allowed requests this way.
 */
export function auditAllowed(
  audit: AuditLog,
  metrics: Metrics | undefined,
  e: {
    principal: Principal
    server: string
    method: string
    decided: Decided
    start: number
    /** When the reply came (performance.now()), if it is not now. */
    end?: number
    outcome: AuditOutcome
    /** Which credentials the process acted with: names and sources, never a value. */
    credentials?: readonly { variable: string; source: 'secret' | 'exchange' | 'upstreamToken' }[]
  },
): void {
  const decision = e.outcome.kind === 'filtered' ? 'filter' : 'allow'
  metrics?.decisions.inc({ server: e.server, decision })
  const event: AuditEvent = {
    sub: e.principal.sub,
    iss: e.principal.iss,
    clientId: e.principal.clientId,
    server: e.server,
    method: e.method,
    name: e.decided.name,
    decision,
    rule: ruleOf(e.decided.decision),
    durationMs: +((e.end ?? performance.now()) - e.start).toFixed(2),
    outcome: outcomeText(e.outcome),
  }
  // "credential X supplied from source Y": names and sources, never a value.
  if (e.credentials && e.credentials.length > 0)
    event.credentials = e.credentials.map((c) => ({ name: c.variable, source: c.source }))
  audit.record(event)
}

/**
 * The audit event of a request to an aggregating endpoint that no single policy decided (a
 * merged list, a listen stream): each backend's own policy filtered what it contributed.
 */
export function auditEndpoint(
  audit: AuditLog,
  e: {
    principal: Principal
    endpoint: string
    method: string
    start: number
    outcome: AuditOutcome
  },
): void {
  audit.record({
    sub: e.principal.sub,
    iss: e.principal.iss,
    clientId: e.principal.clientId,
    server: e.endpoint,
    method: e.method,
    decision: 'filter',
    rule: "endpoint: each backend's policy",
    durationMs: +(performance.now() - e.start).toFixed(2),
    outcome: outcomeText(e.outcome),
  })
}

/** The outcome of a list result the policy filtered: how many entries of how many are kept. */
export function listOutcome(before: unknown, after: unknown): AuditOutcome {
  const count = (r: unknown) => {
    const arr = Object.values(r as Record<string, unknown>).find(Array.isArray)
    return arr ? arr.length : 0
  }
  return { kind: 'filtered', kept: count(after), of: count(before) }
}
