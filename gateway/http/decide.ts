import type { Principal } from '../auth/principal.js'
import type { Envelope, RequestId } from '../bridge/jsonrpc.js'
import { ruleOf, type Decided } from '../bridge/session.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { decide, decideAccess, type Decision } from '../policy/evaluate.js'
import { gatedTarget } from '../policy/filter.js'
import type { Policy } from '../policy/policy.js'

/** The policy's verdict on a POST body: every request allowed (by id), or the first refusal. */
export type BodyVerdict =
  | { refused: undefined; decided: Map<RequestId, Decided> }
  | { refused: { message: Envelope; decision: Refusal; name?: string }; decided: undefined }

/** A decision that refuses. */
export type Refusal = Exclude<Decision, { effect: 'allow' }>

/**
 * Decides every message of a body from one policy version. A refusal is audited and counted
 * here, and nothing of the body may then reach the session.
 */
export function decideBody(
  d: { audit: AuditLog; metrics: Metrics },
  messages: readonly Envelope[],
  principal: Principal,
  server: string,
  policy: Policy,
): BodyVerdict {
  const decided = new Map<RequestId, Decided>()
  for (const m of messages) {
    const verdict = decideMessage(m, principal, server, policy)
    const { decision } = verdict
    if (decision.effect === 'allow') {
      if (m.kind === 'request') decided.set(m.id, verdict)
      continue
    }
    d.metrics.decisions.inc({ server, decision: verdict.decision.effect })
    d.audit.record({
      sub: principal.sub, iss: principal.iss, clientId: principal.clientId, server,
      method: m.kind === 'request' || m.kind === 'notification' ? m.method : 'response',
      name: verdict.name, decision: verdict.decision.effect, rule: ruleOf(verdict.decision), outcome: 'refused',
    })
    return { refused: { message: m, decision, name: verdict.name }, decided: undefined }
  }
  return { refused: undefined, decided }
}

/** Policy for one client→server message. Responses and notifications need only server access. */
function decideMessage(m: Envelope, principal: Principal, server: string, policy: Policy): Decided {
  if (m.kind === 'invalid') return { decision: { effect: 'allow', reason: 'left to the transport to refuse', source: undefined } }
  const target = m.kind === 'request' ? gatedTarget(m.method, m.params) : undefined
  if (target === undefined) return { decision: decideAccess(policy, principal, server) }
  return { decision: decide(policy, principal, server, target.feature, target.name), name: target.name }
}
