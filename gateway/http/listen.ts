import {
  SERVER_INFO_META_KEY,
  SUBSCRIPTION_ID_META_KEY,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { Lane, LaneEvent, LanePool } from '../bridge/lanes.js'
import { BridgeError } from '../bridge/errors.js'
import { placeSubscriptions, withdrawSubscriptions } from '../bridge/lane-subscriptions.js'
import { isObject } from '../bridge/jsonrpc.js'
import type { Outbound } from '../bridge/outbound-budget.js'
import { MODERN_RPC } from '../bridge/modern-wire.js'
import { ruleOf } from '../bridge/session.js'
import type { AuditLog } from '../observability/audit.js'
import { decide, decideAccess } from '../policy/evaluate.js'
import { nonCanonicalUri } from '../policy/resource-uri.js'
import type { PolicyStore } from '../policy/store.js'
import { rpcErrorResponse } from './respond.js'
import { openEventStream, type EventStream } from './sse.js'

/** What a `subscriptions/listen` stream asked for (2026-07-28 SubscriptionFilter). */
export interface Filter {
  toolsListChanged?: true
  promptsListChanged?: true
  resourcesListChanged?: true
  resourceSubscriptions?: string[]
}

/**
 * `subscriptions/listen` (2026-07-28): an SSE stream that opens with
 * `notifications/subscriptions/acknowledged` naming what will be delivered (what was asked,
 * narrowed to what the server's capabilities offer and the caller's policy allows), then
 * carries the server's list-changed and resource-updated notifications from the caller's own
 * processes, each stamped with the subscription id (the request's id), and nothing else.
 *
 * Resource subscriptions are decided per URI like `resources/subscribe` in the session era
 * (refusals audited and left out of the acknowledgement) and placed on a process the stream
 * holds for its life; if that process ends, so does the stream. Every notification is
 * decided again by the policy in force when it arrives, and the stream ends when the
 * caller's token expires or the policy takes the server away: the client listens again,
 * with a fresh token.
 */
export async function listenStream(o: {
  lanes: LanePool
  policy: PolicyStore
  audit: AuditLog
  outbound: Outbound
  message: JSONRPCRequest
  server: string
  owner: string
  principal: Principal
  signal: AbortSignal
  log: Logger
}): Promise<Response> {
  const { message, principal, server } = o
  const requested = parseFilter(
    (message.params as Record<string, unknown> | undefined)?.notifications,
  )
  if (requested === undefined)
    return invalid(
      message.id,
      "Invalid params: 'notifications' is required and must be a valid SubscriptionFilter",
    )
  if ((requested.resourceSubscriptions?.length ?? 0) > o.lanes.limits.listenResources) {
    return invalid(
      message.id,
      `Invalid params: at most ${o.lanes.limits.listenResources} resourceSubscriptions per stream`,
    )
  }
  const uris = (requested.resourceSubscriptions ?? []).filter((uri) => allowed(o, uri, true))

  let ended = false
  let expiry: NodeJS.Timeout | undefined
  let recheck: NodeJS.Timeout | undefined
  // Opened once the stream is sure to be served: an early refusal leaves nothing running.
  let stream: EventStream | undefined
  const slot = o.lanes.listen(
    server,
    principal,
    (e) => onEvent(e),
    () => end(true),
  )
  if (slot === undefined) {
    return rpcErrorResponse(
      429,
      -32000,
      `you have ${o.lanes.limits.listensPerSubject} subscription streams open on ${server}, the most allowed; close one`,
      { id: message.id, headers: { 'retry-after': '5' } },
    )
  }

  let lane: Lane | undefined
  const subscribed: string[] = []
  const pin = () => end(false)
  let init = o.lanes.initOf(server, principal)
  try {
    if (init === undefined || uris.length > 0) {
      const held = await o.lanes.acquire(server, principal, o.log, undefined, o.signal)
      try {
        init = held.init
        subscribed.push(...(await placeSubscriptions(o.lanes, held, uris, o.signal, o.log)))
        if (!held.child.alive)
          throw new BridgeError('spawn_failed', 'the MCP server process exited')
        // The subscriptions live on this process: it stays while the stream is open, still
        // serving the principal's requests (which may be what changes the resources).
        if (subscribed.length > 0) {
          lane = held
          lane.pins.add(pin)
        }
      } finally {
        o.lanes.release(held)
      }
    }
  } catch (err) {
    slot()
    throw err
  }

  const honored = honoredSubset(
    { ...requested, resourceSubscriptions: subscribed },
    init.capabilities as Record<string, Record<string, unknown> | undefined> | undefined,
  )
  const subscriptionId = message.id
  const stamp = (params: Record<string, unknown> | undefined) => ({
    ...params,
    _meta: { ...(params?._meta as object | undefined), [SUBSCRIPTION_ID_META_KEY]: subscriptionId },
  })
  /** Ends the subscription: gracefully (its result) or because the client went away. */
  function end(graceful: boolean): void {
    if (ended) return
    ended = true
    clearTimeout(expiry)
    clearInterval(recheck)
    slot?.()
    if (lane?.pins.delete(pin)) withdrawSubscriptions(lane, subscribed)
    stream?.end(graceful ? finalResult(subscriptionId, init?.serverInfo) : undefined)
  }
  /** The policy in force now decides, not the one the stream opened under. */
  function stillAllowed(): boolean {
    if (decideAccess(o.policy.current, principal, server).effect === 'allow') return true
    end(true)
    return false
  }
  function onEvent(e: LaneEvent): void {
    if (
      ended ||
      e.server !== server ||
      e.owner !== o.owner ||
      !accepts(honored, e) ||
      !stillAllowed()
    )
      return
    if (e.method === 'notifications/resources/updated' && !allowed(o, String(e.params?.uri), false))
      return
    stream?.write({ jsonrpc: '2.0', method: e.method, params: stamp(e.params) })
  }

  stream = openEventStream({
    outbound: o.outbound,
    owner: o.owner,
    log: o.log,
    onCancel: () => end(false),
  })
  const response = stream.response
  // The acknowledgement is the stream's answer to the request: owed, never dropped.
  stream.write(
    {
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: stamp({ notifications: honored }),
    },
    'owed',
  )
  if (Object.keys(honored).length === 0 || o.signal.aborted) {
    end(!o.signal.aborted)
    return response
  }
  o.signal.addEventListener('abort', () => end(false), { once: true })
  if (principal.exp !== undefined) {
    // A stream authorizes nothing past its token: the client listens again with a new one.
    expiry = setTimeout(() => end(true), Math.max(0, principal.exp * 1000 - Date.now())).unref()
  }
  // A quiet stream notices a policy that took the server away, too.
  recheck = setInterval(stillAllowed, o.lanes.limits.listenRecheck).unref()
  return response
}

/**
 * The policy on one resource URI, which must be canonical (the form the server reads);
 * refusals are audited when `audit` is set.
 */
export function allowed(
  o: { policy: PolicyStore; audit: AuditLog; principal: Principal; server: string },
  uri: string,
  audit: boolean,
): boolean {
  const malformed = nonCanonicalUri(uri)
  const d =
    malformed === undefined
      ? decide(o.policy.current, o.principal, o.server, 'resources', uri)
      : undefined
  if (d?.effect === 'allow') return true
  if (audit) {
    const p = o.principal
    o.audit.record({
      sub: p.sub,
      iss: p.iss,
      clientId: p.clientId,
      server: o.server,
      method: 'subscriptions/listen',
      name: uri,
      decision: d?.effect ?? 'invalid',
      rule: d ? ruleOf(d) : `Invalid params: ${malformed}`,
      outcome: 'left out',
    })
  }
  return false
}

export function invalid(id: string | number, text: string): Response {
  return rpcErrorResponse(200, MODERN_RPC.invalidParams, text, { id })
}

export function finalResult(id: string | number, serverInfo: unknown) {
  return {
    jsonrpc: '2.0',
    id,
    result: {
      resultType: 'complete',
      _meta: { [SUBSCRIPTION_ID_META_KEY]: id, [SERVER_INFO_META_KEY]: serverInfo },
    },
  }
}

export function parseFilter(value: unknown): Filter | undefined {
  if (!isObject(value)) return undefined
  const v = value
  const out: Filter = {}
  for (const key of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) {
    if (v[key] === undefined) continue
    if (typeof v[key] !== 'boolean') return undefined
    if (v[key] === true) out[key] = true
  }
  if (v.resourceSubscriptions !== undefined) {
    if (
      !Array.isArray(v.resourceSubscriptions) ||
      !v.resourceSubscriptions.every((u) => typeof u === 'string')
    )
      return undefined
    out.resourceSubscriptions = [...new Set(v.resourceSubscriptions as string[])]
  }
  return out
}

/** What is asked for and offered by the server's capabilities. */
export function honoredSubset(
  f: Filter,
  caps: Record<string, Record<string, unknown> | undefined> | undefined,
): Filter {
  const out: Filter = {}
  if (f.toolsListChanged && caps?.tools?.listChanged === true) out.toolsListChanged = true
  if (f.promptsListChanged && caps?.prompts?.listChanged === true) out.promptsListChanged = true
  if (f.resourcesListChanged && caps?.resources?.listChanged === true)
    out.resourcesListChanged = true
  if (f.resourceSubscriptions?.length && caps?.resources?.subscribe === true)
    out.resourceSubscriptions = [...f.resourceSubscriptions]
  return out
}

export function accepts(f: Filter, e: LaneEvent): boolean {
  switch (e.method) {
    case 'notifications/tools/list_changed':
      return f.toolsListChanged === true
    case 'notifications/prompts/list_changed':
      return f.promptsListChanged === true
    case 'notifications/resources/list_changed':
      return f.resourcesListChanged === true
    case 'notifications/resources/updated':
      return f.resourceSubscriptions?.includes(String(e.params?.uri)) === true
  }
  return false
}
