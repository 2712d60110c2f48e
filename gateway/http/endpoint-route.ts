import type { Aggregate, AggregateCaller } from '../bridge/aggregate.js'
import type { RoutedRequest } from '../bridge/aggregate-session.js'
import {
  envelope,
  rpcError,
  type Envelope,
  type RequestId,
  type RpcErrorObject,
} from '../bridge/jsonrpc.js'
import type { Principal } from '../auth/principal.js'
import type { Policy } from '../policy/policy.js'
import type { RateLimits } from './rate-limit.js'
import {
  admitBody,
  type DecideDeps,
  invalid,
  limitEndpointRequest,
  recordRefusal,
  refuseDisguised,
} from './decide.js'
import type { TracedBody } from './traced.js'
import {
  decisionResponse,
  refusalReply,
  rpcErrorObjectResponse,
  rpcErrorResponse,
} from './respond.js'

/** The methods of an endpoint that name a tool, prompt or resource of one of its backends. */
export const ROUTED = new Set([
  'tools/call',
  'prompts/get',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
])

/**
 * Routes each request of a session-era body sent to an endpoint that names a tool, prompt or
 * resource to its backend, and decides it there by policy on the backend's own names, before
 * anything runs. Resolves the routed requests by id, or the response that refuses the body:
 * a malformed message or a reused id (400), a name no backend of the caller has (a JSON-RPC
 * error), a policy refusal (its deny, or the 403 step-up naming the endpoint's metadata).
 * `tell`: where a refusal with an id goes instead when replies travel on a stream (the legacy
 * transport); then only a challenge or a malformed body is the POST's own answer.
 * `held`: the session's subscriptions (AggregateSession.subscribedAt): an unsubscribe of a URI
 * it holds goes to the backend holding it, whatever the backends' lists say now (a URI they
 * no longer list would leave it held, and its process pinned, until the session ends).
 */
export async function routeBody(
  d: DecideDeps & { rates: RateLimits },
  agg: Aggregate,
  body: unknown,
  messages: readonly Envelope[],
  caller: AggregateCaller,
  policy: Policy,
  resourceMetadata: string,
  tell?: (message: ReturnType<typeof rpcError>) => void,
  traced?: TracedBody,
  held?: (publicUri: string) => { server: string; uri: string } | undefined,
): Promise<{ routed: Map<RequestId, RoutedRequest> } | { refused: Response }> {
  const routed = new Map<RequestId, RoutedRequest>()
  const ids = new Set<RequestId>()
  const refuseWith = (id: RequestId, error: RpcErrorObject) => {
    if (!tell) return rpcErrorObjectResponse(200, id, error)
    tell(rpcError(id, error.code, error.message, error.data))
    return new Response(null, { status: 202 })
  }
  // Refused here, before any backend decides: audited as decideBody audits its own.
  const audited = (method: string, name: string | undefined, code: -32600 | -32602, why: string) =>
    recordRefusal(d, caller.principal, agg.name, method, name, invalid(code, why))
  for (const m of messages) {
    if (m.kind === 'invalid') {
      const why = 'Invalid Request: not a JSON-RPC 2.0 request, notification or response'
      audited(m.kind, undefined, -32600, why)
      return { refused: rpcErrorResponse(400, -32600, why) }
    }
    // MCP's method in disguise (`TOOLS/LIST`, `tools/call `): refused before the endpoint
    // answers or routes it, as decideBody refuses it for one server.
    const disguised = refuseDisguised(d, [m], caller.principal, agg.name)
    if (disguised !== undefined) {
      const id = m.kind === 'request' && !Array.isArray(body) ? m.id : null
      if (tell && id !== null) {
        tell(refusalReply(disguised.decision, id))
        return { refused: new Response(null, { status: 202 }) }
      }
      return { refused: decisionResponse(disguised.decision, { resourceMetadata, id }) }
    }
    if (m.kind !== 'request') continue
    if (ids.has(m.id)) {
      const why = `Invalid Request: two requests of the body have the id ${JSON.stringify(m.id)}`
      audited(m.method, undefined, -32600, why)
      return { refused: rpcErrorResponse(400, -32600, why) }
    }
    ids.add(m.id)
    if (!ROUTED.has(m.method)) {
      const limited = await limitEndpointRequest(d, m.method, caller.principal, agg.name, policy)
      if (limited === undefined) continue
      if (tell && !limited.opensSession) {
        tell(refusalReply(limited, m.id))
        return { refused: new Response(null, { status: 202 }) }
      }
      return {
        refused: decisionResponse(limited, {
          resourceMetadata,
          id: Array.isArray(body) ? null : m.id,
        }),
      }
    }
    const params = m.params ?? {}
    const r = heldRoute(m.method, params, held) ?? (await agg.route(m.method, params, caller))
    if ('error' in r) {
      recordUnrouted(d, caller.principal, agg.name, m.method, params, r.error)
      traced?.spans.get(m.id)?.end({ code: r.error.code, message: r.error.message })
      return { refused: refuseWith(m.id, r.error) }
    }
    const backend = envelope({ jsonrpc: '2.0', id: m.id, method: m.method, params: r.params })
    const { refused, decided } = await admitBody(
      d,
      [backend],
      caller.principal,
      r.server,
      policy,
      traced,
    )
    if (refused) {
      const { decision } = refused
      if (
        tell &&
        decision.effect !== 'challenge' &&
        !(decision.effect === 'invalid' && decision.code === -32600)
      ) {
        tell(refusalReply(decision, m.id))
        return { refused: new Response(null, { status: 202 }) }
      }
      return {
        refused: decisionResponse(decision, {
          resourceMetadata,
          id: Array.isArray(body) ? null : m.id,
        }),
      }
    }
    routed.set(m.id, {
      server: r.server,
      params: r.params,
      decided: decided.get(m.id)!,
      original: params,
    })
  }
  return { routed }
}

/** Where an unsubscribe of a URI the session holds goes: its backend, under the backend's own URI. */
function heldRoute(
  method: string,
  params: Record<string, unknown>,
  held: ((publicUri: string) => { server: string; uri: string } | undefined) | undefined,
): { server: string; params: Record<string, unknown> } | undefined {
  if (method !== 'resources/unsubscribe' || typeof params.uri !== 'string') return undefined
  const at = held?.(params.uri)
  return at === undefined ? undefined : { server: at.server, params: { ...params, uri: at.uri } }
}

/**
 * Audits a request no backend of the caller's has the name (or URI) of, one the policy hides
 * from them included: `invalid`, its answer's text as the rule, the name it asked for.
 */
export function recordUnrouted(
  d: DecideDeps,
  principal: Principal,
  endpoint: string,
  method: string,
  params: Record<string, unknown>,
  error: RpcErrorObject,
): void {
  const code = error.code === -32601 ? -32601 : -32602
  recordRefusal(d, principal, endpoint, method, namedIn(params), invalid(code, error.message))
}

/** The tool or prompt name, or resource URI, a routed request names (for its audit line). */
function namedIn(params: Record<string, unknown>): string | undefined {
  const ref = params.ref as Record<string, unknown> | undefined
  const named = params.name ?? params.uri ?? ref?.name ?? ref?.uri
  return typeof named === 'string' ? named : undefined
}
