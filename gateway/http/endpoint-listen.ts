import type { JSONRPCRequest } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { Aggregate } from '../bridge/aggregate.js'
import type { CredentialGate } from '../bridge/credential-gate.js'
import { initialCredentials } from '../bridge/initial-credentials.js'
import { holdSubscriptions } from '../bridge/lane-subscriptions.js'
import type { LaneEvent } from '../bridge/lane.js'
import type { LanePool } from '../bridge/lanes.js'
import type { Outbound } from '../bridge/outbound-budget.js'
import { MODERN_PROTOCOL_VERSION } from '../bridge/modern-wire.js'
import type { AuditLog } from '../observability/audit.js'
import { noticeOf } from '../policy/notice.js'
import type { PolicyStore } from '../policy/store.js'
import {
  accepts,
  allowed,
  honoredSubset,
  ListenLife,
  requestedFilter,
  tooManyStreams,
} from './listen-life.js'

/**
 * `subscriptions/listen` (2026-07-28) on an aggregating endpoint: one stream for every backend
 * the caller may use. It opens with `notifications/subscriptions/acknowledged` naming what will
 * be delivered (what was asked, narrowed to what the endpoint offers), then carries list
 * changes from the caller's processes of any backend, several backends' changes at once as one
 * notification, and updates of the resources subscribed to, by their public URIs. Each public
 * URI is routed to its backend and decided by that backend's policy on its own URI, then
 * placed on a process of the backend held for the stream's life, as at a server's own
 * stream. Every notification is decided again by the policy in force when it arrives; the
 * stream ends when the token expires or the policy leaves the caller no backend.
 */
export async function listenEndpoint(o: {
  lanes: LanePool
  policy: PolicyStore
  audit: AuditLog
  outbound: Outbound
  message: JSONRPCRequest
  agg: Aggregate
  owner: string
  principal: Principal
  bearer: string | undefined
  signal: AbortSignal
  log: Logger
  /** Per-user credentials: each backend's subscriptions run on a process started with the caller's. */
  gate?: CredentialGate
}): Promise<Response> {
  const { message, principal, agg } = o
  const requested = requestedFilter(message, o.lanes)
  if (requested instanceof Response) return requested

  const life = new ListenLife({ ...o, id: message.id, recheckMs: o.lanes.limits.listenRecheck })
  // Counted per endpoint and subject, beside (not among) the streams at each server.
  const slot = o.lanes.listen(
    `endpoint ${agg.name}`,
    principal,
    (e) => onEvent(e),
    () => life.end(true),
  )
  if (slot === undefined) throw tooManyStreams(o.lanes, agg.name)
  life.onEnd(slot)

  /** `server \n own URI` → the public URI the client subscribed to. */
  const shown = new Map<string, string>()
  try {
    // Each public URI to its backend's own, allowed there, grouped by backend.
    const byServer = new Map<string, Map<string, string>>()
    const caller = {
      principal,
      bearer: o.bearer,
      log: o.log,
      accepted: Date.now(),
      signal: o.signal,
    }
    for (const uri of requested.resourceSubscriptions ?? []) {
      const routed = await agg.route('resources/subscribe', { uri }, caller)
      if ('error' in routed) {
        o.log.info(
          { uri },
          'no backend of the endpoint serves this resource; left out of the acknowledgement',
        )
        continue
      }
      const own = String(routed.params.uri)
      if (
        !allowed({ policy: o.policy, audit: o.audit, principal, server: routed.server }, own, true)
      )
        continue
      const uris = byServer.get(routed.server) ?? new Map<string, string>()
      byServer.set(routed.server, uris.set(own, uri))
    }
    for (const [server, uris] of byServer) {
      if (o.signal.aborted) break
      const hold = await holdSubscriptions(o.lanes, {
        server,
        principal,
        uris: [...uris.keys()],
        signal: o.signal,
        log: o.log,
        onLost: () => life.end(false),
        // resources/subscribe acts with the user's credentials (credential-gate.ts): what is set now.
        credentials: await initialCredentials(o.gate, server, principal, o.bearer),
      })
      life.onEnd(hold.release)
      for (const own of hold.subscribed) shown.set(`${server}\n${own}`, uris.get(own)!)
    }
  } catch (err) {
    life.end(false)
    throw err
  }

  const offered = agg.initResult(principal, MODERN_PROTOCOL_VERSION)
  const honored =
    agg.accessible(principal).length === 0
      ? {}
      : honoredSubset(
          { ...requested, resourceSubscriptions: [...shown.values()] },
          offered.capabilities as Record<string, Record<string, unknown> | undefined>,
        )
  /** List changes already sent this tick (several backends, one notification). */
  const sentThisTick = new Set<string>()
  /** The policy in force now decides: a caller left with no backend is done listening. */
  const stillAllowed = () => agg.accessible(principal).length > 0
  function onEvent(e: LaneEvent): void {
    if (life.done || e.owner !== o.owner || !agg.servers.includes(e.server)) return
    if (!stillAllowed()) return life.end(true)
    // A backend the caller lost, or a URI it may no longer read: its notifications are not theirs.
    if (noticeOf(o.policy.current, principal, e.server, e.method, e.params) !== 'relay') return
    if (e.method === 'notifications/resources/updated') {
      const uri = shown.get(`${e.server}\n${String(e.params?.uri)}`)
      if (uri === undefined) return
      return life.write({
        jsonrpc: '2.0',
        method: e.method,
        params: life.stamp({ ...e.params, uri }),
      })
    }
    if (!accepts(honored, e) || sentThisTick.has(e.method)) return
    sentThisTick.add(e.method)
    if (sentThisTick.size === 1) setImmediate(() => sentThisTick.clear())
    life.write({ jsonrpc: '2.0', method: e.method, params: life.stamp(e.params) })
  }
  return life.open(honored, offered.serverInfo, stillAllowed)
}
