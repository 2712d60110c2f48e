import type { JSONRPCRequest } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { CredentialGate } from '../bridge/credential-gate.js'
import { initialCredentials } from '../bridge/initial-credentials.js'
import { holdSubscriptions } from '../bridge/lane-subscriptions.js'
import type { LaneEvent } from '../bridge/lane.js'
import type { LanePool } from '../bridge/lanes.js'
import type { Outbound } from '../bridge/outbound-budget.js'
import type { AuditLog } from '../observability/audit.js'
import { decideAccess } from '../policy/evaluate.js'
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
 * with a fresh token (listen-life.ts).
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
  /** Per-user credentials: the subscriptions' process is started with the caller's. */
  gate?: CredentialGate
  bearer?: string
}): Promise<Response> {
  const { message, principal, server } = o
  const requested = requestedFilter(message, o.lanes)
  if (requested instanceof Response) return requested
  const uris = (requested.resourceSubscriptions ?? []).filter((uri) => allowed(o, uri, true))

  const life = new ListenLife({ ...o, id: message.id, recheckMs: o.lanes.limits.listenRecheck })
  const slot = o.lanes.listen(
    server,
    principal,
    (e) => onEvent(e),
    () => life.end(true),
  )
  if (slot === undefined) throw tooManyStreams(o.lanes, server)
  life.onEnd(slot)

  let init = o.lanes.initOf(server, principal)
  let subscribed: string[] = []
  try {
    if (init === undefined || uris.length > 0) {
      // resources/subscribe acts with the user's credentials (credential-gate.ts): what is set now.
      const credentials = await initialCredentials(o.gate, server, principal, o.bearer)
      const hold = await holdSubscriptions(o.lanes, {
        ...o,
        uris,
        credentials,
        onLost: () => life.end(false),
      })
      life.onEnd(hold.release)
      init = hold.init
      subscribed = hold.subscribed
    }
  } catch (err) {
    life.end(false)
    throw err
  }

  const honored = honoredSubset(
    { ...requested, resourceSubscriptions: subscribed },
    init.capabilities as Record<string, Record<string, unknown> | undefined> | undefined,
  )
  /** The policy in force now decides, not the one the stream opened under. */
  const stillAllowed = () => decideAccess(o.policy.current, principal, server).effect === 'allow'
  function onEvent(e: LaneEvent): void {
    if (life.done || e.server !== server || e.owner !== o.owner || !accepts(honored, e)) return
    const notice = noticeOf(o.policy.current, principal, server, e.method, e.params)
    // This stream's token can never step up: a challenge ends it as a denial does.
    if (notice === 'withdrawn' || notice === 'challenged') return life.end(true)
    if (notice === 'drop') return
    life.write({ jsonrpc: '2.0', method: e.method, params: life.stamp(e.params) })
  }
  return life.open(honored, init.serverInfo, stillAllowed)
}
