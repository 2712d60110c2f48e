import type { Principal } from '../auth/principal.js'
import { GatewayError } from '../errors.js'
import { auditAllowed, type AuditOutcome } from '../observability/allowed.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import type { Decided } from '../policy/decided.js'
import { BridgeError, exposedError } from './errors.js'

/**
 * The one audit event of a request the bridge could not run because the session, lane or
 * process it needed was refused or failed, recorded by whoever answers that request (never
 * where the refusal is made: a session bound or the process-start budget does not know which
 * request asked, nor whether someone else answers it):
 * - refused by a configured limit (a {@link BridgeError} with a `limit`: the subject's sessions
 *   or process starts, a server's or the gateway's capacity): `rate_limited`, the limit's key
 *   as the rule, `refused`, counted as that decision;
 * - else, for a request the policy allowed (`decided`): `allow` with what the client got
 *   (`error <code>`), as any allowed request ends.
 * A client that left before anything ran for it (`client_gone`) was refused nothing: no line,
 * as a sessionless request gone before its lease never had one. A failure of a request no
 * policy decision was recorded for is the log's alone.
 */
export function auditRefused(
  audit: AuditLog | undefined,
  metrics: Metrics | undefined,
  e: {
    principal: Principal
    server: string
    method: string
    /** The policy's verdict on the request, when it has one (its name is the line's). */
    decided?: Decided
    /** When the request was decided (performance.now()): its latency, with `decided`. */
    start?: number
    err: unknown
    /** A failure's outcome is its HTTP status (`server/discover`, a listen stream), not its code. */
    status?: boolean
    /** Which of the user's credentials the request was to act with (names and sources). */
    credentials?: Parameters<typeof auditAllowed>[2]['credentials']
  },
): void {
  if (audit === undefined) return
  const { err, principal, server } = e
  if (err instanceof BridgeError && err.limit !== undefined) {
    auditChecked(audit, metrics, {
      principal,
      server,
      method: e.method,
      name: e.decided?.name,
      decision: 'rate_limited',
      rule: err.limit,
    })
    return
  }
  if (e.decided === undefined || (err instanceof GatewayError && err.code === 'client_gone')) return
  auditAllowed(audit, metrics, {
    principal,
    server,
    method: e.method,
    decided: e.decided,
    start: e.start ?? performance.now(),
    outcome: failure(err, e.status === true),
    credentials: e.credentials,
  })
}

/**
 * The one audit event of a request refused after authentication by a check of the gateway's
 * own before any process saw it, `rule` naming the check (or the limit: `rate_limited`, from
 * {@link auditRefused}): `deny` for headers that disagree
 * with the body (a proxy may route by the header while the server acts on the body: an attempt
 * to get past it, as much as a client's bug), `invalid` for a malformed part of the body.
 */
export function auditChecked(
  audit: AuditLog | undefined,
  metrics: Metrics | undefined,
  e: {
    principal: Principal
    server: string
    method: string
    name?: string
    decision: 'deny' | 'invalid' | 'rate_limited'
    rule: string
  },
): void {
  metrics?.decisions.inc({ server: e.server, decision: e.decision })
  audit?.record({
    sub: e.principal.sub,
    iss: e.principal.iss,
    clientId: e.principal.clientId,
    server: e.server,
    method: e.method,
    name: e.name,
    decision: e.decision,
    rule: e.rule,
    outcome: 'refused',
  })
}

/** Replies made by the gateway for a process (channel.ts), by the limit that refused them. */
const limitReplies = new WeakMap<object, BridgeError>()

/**
 * Marks `reply`, an error answer the gateway made in a process's place because `err` (a limit)
 * refused its request, so the session or lane relaying it as the process's answer audits the
 * refusal ({@link auditRefused}: `rate_limited`, the limit's rule) instead of an allowed
 * request's error: one line, whoever relays it.
 */
export function markRefused<T extends object>(reply: T, err: BridgeError): T {
  limitReplies.set(reply, err)
  return reply
}

/** The limit that refused the request `reply` answers, when the gateway made it ({@link markRefused}). */
export function refusedBy(reply: object): BridgeError | undefined {
  return limitReplies.get(reply)
}

/** How a request the bridge could not run ended, for its audit line. */
function failure(err: unknown, status: boolean): AuditOutcome {
  const exposed = err instanceof GatewayError && err.expose ? err : undefined
  if (status) return { kind: 'status', status: exposed?.status ?? 500 }
  return { kind: 'error', code: exposed ? exposedError(exposed).code : -32603 }
}
