import type { Principal } from '../auth/principal.js'
import { BridgeError } from '../bridge/errors.js'
import { recordRefusal, type DecideDeps } from './decide.js'

/** The audit rule of a request that presented a session id another subject owns. */
export const SESSION_OWNER_RULE = 'session.owner'

/** Sessions that can tell whether an id is someone else's (registry, endpoint sessions). */
export interface OwnedSessions {
  heldByOther(id: string, principal: Principal): boolean
}

/**
 * The error for a request whose session id names no session of the caller's here. The client
 * gets the same `404` whatever the reason (nothing says the id exists), but an id that names
 * another subject's session is a possible hijack probe: it is audited once, as this request,
 * `deny` with rule {@link SESSION_OWNER_RULE}, with the requesting principal and never the id
 * nor its owner. An unknown id (expired, mistyped, another replica's) is a protocol error, not
 * an audit event (README "Audit").
 */
export function sessionNotFound(
  d: DecideDeps,
  sessions: OwnedSessions,
  id: string,
  request: { principal: Principal; server: string; method: string },
): BridgeError {
  const { principal, server, method } = request
  if (sessions.heldByOther(id, principal)) {
    recordRefusal(d, principal, server, method, undefined, {
      effect: 'deny',
      reason: SESSION_OWNER_RULE,
      source: undefined,
    })
  }
  return new BridgeError('session_not_found', 'session not found')
}
