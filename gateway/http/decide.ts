import type { Principal } from '../auth/principal.js'
import type { Envelope, RequestId } from '../bridge/jsonrpc.js'
import { ruleOf, type Decided } from '../policy/decided.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { decide, decideAccess, type Decision } from '../policy/evaluate.js'
import type { Policy } from '../policy/policy.js'
import { GATED_METHODS, gatedTarget, taskIdProblem } from '../policy/target.js'
import { disguiseRefusal } from '../policy/method-names.js'
import type { RateLimited, RateLimits } from './rate-limit.js'
import type { Counted } from '../policy/rate-limits.js'
import type { PinGate, PinRefusal } from '../pins/pins.js'
import { traceVerdict, type TracedBody } from './traced.js'

/** The policy's verdict on a POST body: every request allowed (by id), or the first refusal. */
export type BodyVerdict =
  | { refused: undefined; decided: Map<RequestId, Decided> }
  | { refused: { message: Envelope; decision: Refusal; name?: string }; decided: undefined }

/**
 * A message the gateway will not pass on, and why: a policy refusal (deny, or a challenge the
 * caller may step up from), or a message malformed where the gateway must read it (`invalid`,
 * with its JSON-RPC code: -32600 for the envelope, -32602 for the name or URI it carries).
 */
export type Refusal = PolicyRefusal | RateLimited

/** The tool a task of the caller's session runs, when the session saw it created. */
export type TaskTool = (taskId: unknown) => string | undefined

/**
 * Task requests that hand out what a task's tool produced (its status message, its result):
 * a cancel answers with the task too, and ends it.
 */
const TASK_READS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/result', 'tasks/cancel'])

/** Whether a message names a task of its session (its session's task book decides it). */
export function readsTask(m: Envelope): m is Extract<Envelope, { kind: 'request' }> {
  return m.kind === 'request' && TASK_READS.has(m.method)
}

/** A refusal by the policy's rules, or of a message the gateway cannot read. */
export type PolicyRefusal =
  | Exclude<Decision, { effect: 'allow' }>
  | { effect: 'invalid'; code: -32600 | -32601 | -32602; reason: string; source: undefined }
  /** A tool of a pinned server whose definition no operator approved: no scope helps. */
  | { effect: 'unapproved'; pin: PinRefusal; reason: string; source: undefined }

/** What deciding a body needs: where refusals go, and the tool pins (when a server pins). */
export interface DecideDeps {
  audit: AuditLog
  metrics: Metrics
  pins?: PinGate
  /** The policy's rate limits (admitBody); none in tests that build deps by hand. */
  rates?: RateLimits
}

/**
 * Decides every message of a body from one policy version, with one classification for every
 * transport and era. A refusal is audited and counted here, and nothing of the body may then
 * reach the session.
 */
export function decideBody(
  d: DecideDeps,
  messages: readonly Envelope[],
  principal: Principal,
  server: string,
  policy: Policy,
  taskTool?: TaskTool,
): BodyVerdict {
  const decided = new Map<RequestId, Decided>()
  for (const m of messages) {
    // Replies are matched to requests by id (and list replies filtered by the request's
    // method): two requests of one body with one id would take each other's reply unfiltered.
    const verdict =
      m.kind === 'request' && decided.has(m.id)
        ? {
            decision: invalid(
              -32600,
              `Invalid Request: two requests of the body have the id ${JSON.stringify(m.id)}`,
            ),
          }
        : decideMessage(m, principal, server, policy, d.pins, taskTool)
    const decision = verdict.decision
    if (decision.effect === 'allow') {
      if (m.kind === 'request') decided.set(m.id, verdict as Decided)
      continue
    }
    const method = m.kind === 'request' || m.kind === 'notification' ? m.method : m.kind
    recordRefusal(d, principal, server, method, verdict.name, decision)
    return { refused: { message: m, decision, name: verdict.name }, decided: undefined }
  }
  return { refused: undefined, decided }
}

/**
 * {@link decideBody}, then the policy's rate limits for each request it allowed (none: no
 * waiting at all). A request a rate limit refuses is audited and counted like a policy refusal,
 * and refuses its whole body.
 */
export async function admitBody(
  d: DecideDeps,
  messages: readonly Envelope[],
  principal: Principal,
  server: string,
  policy: Policy,
  traced?: TracedBody,
  taskTool?: TaskTool,
): Promise<BodyVerdict> {
  if (traced === undefined) return admit(d, messages, principal, server, policy, taskTool)
  // Traced: the decision (rate limits included) is the `policy` step, and its verdict goes on
  // the spans.
  const step = traced.trace.step('policy')
  const verdict = await admit(d, messages, principal, server, policy, taskTool)
  step.end()
  traceVerdict(traced, verdict)
  return verdict
}

async function admit(
  d: DecideDeps,
  messages: readonly Envelope[],
  principal: Principal,
  server: string,
  policy: Policy,
  taskTool?: TaskTool,
): Promise<BodyVerdict> {
  const verdict = decideBody(d, messages, principal, server, policy, taskTool)
  if (verdict.refused || policy.rateLimits.length === 0 || d.rates === undefined) return verdict
  for (const m of messages) {
    if (m.kind !== 'request') continue
    const name = verdict.decided.get(m.id)?.name
    const limited = await limit(d.rates, d, policy, principal, { server, method: m.method, name })
    if (limited === undefined) continue
    return { refused: { message: m, decision: limited, name }, decided: undefined }
  }
  return verdict
}

/**
 * A caller the policy denies every backend of an endpoint is refused there as a server refuses
 * a caller it denies (-32010, audited and counted), before a session opens or a request is
 * served: the endpoint has nothing for them. A backend they only lack a scope for is not
 * denied (they may step up on the same session), and then neither is the endpoint.
 */
export function refuseEndpointAccess(
  d: DecideDeps,
  endpoint: { name: string; servers: readonly string[] },
  principal: Principal,
  method: string,
  policy: Policy,
): Exclude<Decision, { effect: 'allow' }> | undefined {
  let refusal: Exclude<Decision, { effect: 'allow' }> | undefined
  for (const server of endpoint.servers) {
    const access = decideAccess(policy, principal, server)
    if (access.effect !== 'deny') return undefined
    refusal ??= access
  }
  if (refusal !== undefined) recordRefusal(d, principal, endpoint.name, method, undefined, refusal)
  return refusal
}

/**
 * An endpoint's own request (`initialize`, a merged list, `server/discover`, a listen stream,
 * `ping`): no backend decides it, but rate limits count it, with the endpoint's name as the
 * server. Resolves the refusal (audited and counted like any), or undefined.
 */
export async function limitEndpointRequest(
  d: DecideDeps,
  method: string,
  principal: Principal,
  endpoint: string,
  policy: Policy,
): Promise<RateLimited | undefined> {
  if (policy.rateLimits.length === 0 || d.rates === undefined) return undefined
  return limit(d.rates, d, policy, principal, { server: endpoint, method, name: undefined })
}

/** Counts one request against the rate limits; a refusal is audited and counted here. */
async function limit(
  rates: RateLimits,
  d: DecideDeps,
  policy: Policy,
  principal: Principal,
  request: Counted,
): Promise<RateLimited | undefined> {
  const limited = await rates.check(policy, principal, request)
  if (limited !== undefined)
    recordRefusal(d, principal, request.server, request.method, request.name, limited)
  return limited
}

/**
 * The audit event and decision count of a refused message (or of a stream or session end
 * refused access: `method` names the HTTP request, `GET /sse`): the one place both are made.
 */
export function recordRefusal(
  d: DecideDeps,
  principal: Principal,
  server: string,
  method: string,
  name: string | undefined,
  refusal: Refusal,
): void {
  const decision = refusal.effect === 'limited' ? 'rate_limited' : refusal.effect
  d.metrics.decisions.inc({ server, decision })
  d.audit.record({
    sub: principal.sub,
    iss: principal.iss,
    clientId: principal.clientId,
    server,
    method,
    name,
    decision,
    rule: ruleOf(refusal),
    outcome: 'refused',
  })
}

/**
 * The refusal of the first message of `messages` whose method is MCP's in disguise (see
 * policy/method-names.ts), audited and counted, or undefined. For the requests an endpoint
 * answers itself or routes, which no {@link decideBody} sees before they are handled.
 */
export function refuseDisguised(
  d: DecideDeps,
  messages: readonly Envelope[],
  principal: Principal,
  server: string,
): { message: Envelope; decision: Invalid } | undefined {
  for (const m of messages) {
    if (m.kind !== 'request' && m.kind !== 'notification') continue
    const decision = disguise(m)
    if (decision === undefined) continue
    recordRefusal(d, principal, server, m.method, undefined, decision)
    return { message: m, decision }
  }
  return undefined
}

/**
 * A request or notification whose method is not MCP's but folds to one of MCP's (`TOOLS/CALL`,
 * `tools/call\u200b`, fullwidth `ｔools/call`): -32601, whatever the caller may use. Policy and
 * list filtering read exact names; a server that normalises names would run it undecided.
 */
function disguise(m: Envelope): Invalid | undefined {
  if (m.kind !== 'request' && m.kind !== 'notification') return undefined
  const disguised = disguiseRefusal(m.method)
  return disguised === undefined ? undefined : invalid(-32601, disguised)
}

/** Policy for one client→server message. Responses and ungated messages need only server access. */
function decideMessage(
  m: Envelope,
  principal: Principal,
  server: string,
  policy: Policy,
  pins: PinGate | undefined,
  taskTool: TaskTool | undefined,
): Decided | { decision: PolicyRefusal; name?: string } {
  // JSON-RPC 2.0 §4: a malformed envelope (an id that is null, an object, a boolean…) is no
  // notification; it goes nowhere.
  if (m.kind === 'invalid')
    return {
      decision: invalid(
        -32600,
        'Invalid Request: not a JSON-RPC 2.0 request, notification or response (an id must be a string or a number)',
      ),
    }
  // Before access: the name is refused whoever sends it, and reaches no process.
  const disguised = disguise(m)
  if (disguised !== undefined) return { decision: disguised }
  if (m.kind === 'notification' && GATED_METHODS.has(m.method)) {
    return {
      decision: invalid(-32600, `Invalid Request: ${m.method} is a request and needs an id`),
    }
  }
  const target = m.kind === 'request' ? gatedTarget(m.method, m.params) : undefined
  if (target === undefined) {
    const decision = decideAccess(policy, principal, server)
    // Access first, as for a name: a caller without it learns nothing of what it sent.
    if (decision.effect !== 'allow') return { decision }
    const problem = m.kind === 'request' ? taskIdProblem(m.method, m.params) : undefined
    if (problem !== undefined) return { decision: invalid(-32602, problem) }
    // A task's status and result are its tool's: decided by the policy in force now, so a tool
    // denied (or a scope withdrawn) after the task began withholds what it produced.
    if (!readsTask(m) || taskTool === undefined) return { decision }
    const tool = taskTool(m.params?.taskId)
    // A cancel of a task the session does not know reaches only the session's own process.
    if (tool === undefined && m.method === 'tasks/cancel') return { decision }
    // A task the session forgot (past its cap) or never saw created: which tool it runs is not
    // known, so no rule can allow it. Closed: refused, whatever tools the caller may use.
    if (tool === undefined)
      return {
        decision: {
          effect: 'deny',
          reason:
            'the gateway does not know which tool this task runs (forgotten or never created here)',
          source: undefined,
        },
      }
    return { decision: decide(policy, principal, server, 'tools', tool), name: tool }
  }
  if (target.kind === 'invalid') return { decision: invalid(-32602, target.reason) }
  const decision = decide(policy, principal, server, target.feature, target.name)
  // Policy first: a caller the policy refuses learns nothing of the pins.
  if (decision.effect === 'allow' && m.kind === 'request' && m.method === 'tools/call') {
    const pin = pins?.refusal(server, target.name)
    if (pin !== undefined) return { decision: unapproved(pin), name: target.name }
  }
  return { decision, name: target.name }
}

function unapproved(pin: PinRefusal): PolicyRefusal {
  const reason =
    pin.kind === 'changed'
      ? 'tool pins: definition changed since it was approved'
      : 'tool pins: definition never approved'
  return { effect: 'unapproved', pin, reason, source: undefined }
}

type Invalid = Extract<PolicyRefusal, { effect: 'invalid' }>

/** The refusal of a message malformed where the gateway reads it (`reason`: the client's text). */
export function invalid(code: Invalid['code'], reason: string): Invalid {
  return { effect: 'invalid', code, reason, source: undefined }
}
