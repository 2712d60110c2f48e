import type { Principal } from '../auth/principal.js'
import { BridgeError } from '../bridge/errors.js'
import { LogWindow } from '../bridge/log-window.js'
import type { GatewayConfig } from '../config/schema.js'
import { recordRefusal, type DecideDeps } from './decide.js'

/** The audit rule of a request that presented a session id another subject owns. */
export const SESSION_OWNER_RULE = 'session.owner'
/** The audit rule of a request that presented a session id no session here has. */
export const SESSION_UNKNOWN_RULE = 'session.unknown'

/**
 * The gateway's budget of `session.unknown` lines (`log.unknownSessionAudit`), one for every
 * transport: those past it are counted as each is refused, so the window's own count is unused.
 */
export function unknownSessionBudget(config: GatewayConfig): LogWindow {
  const { linesPerWindow, window } = config.log.unknownSessionAudit
  return new LogWindow({ linesPerWindow, window, ended: () => {} })
}

/** Sessions that can tell whether an id is someone else's (registry, endpoint sessions). */
export interface OwnedSessions {
  heldByOther(id: string, principal: Principal): boolean
}

/**
 * The error for a request whose session id names no session of the caller's here. The client
 * gets the same `404` whatever the reason (nothing says the id exists). The request is audited
 * as the requester's `deny`, never with the id (a session's id is its handle: whoever reads the
 * log must not get one of another replica's live sessions) nor its owner:
 * - an id that names another subject's session, a possible hijack probe: always, with rule
 *   {@link SESSION_OWNER_RULE};
 * - an unknown id (ended, mistyped, another replica's, made up): rule {@link SESSION_UNKNOWN_RULE},
 *   within `log.unknownSessionAudit` (a spray of random ids writes no more lines than that per
 *   window; the rest are counted in `mcp_edge_log_lines_suppressed_total`).
 */
export function sessionNotFound(
  d: DecideDeps & { unknownSessions: LogWindow },
  sessions: OwnedSessions,
  id: string,
  request: { principal: Principal; server: string; method: string },
): BridgeError {
  const { principal, server, method } = request
  const owned = sessions.heldByOther(id, principal)
  if (owned || d.unknownSessions.admit()) {
    recordRefusal(d, principal, server, method, undefined, {
      effect: 'deny',
      reason: owned ? SESSION_OWNER_RULE : SESSION_UNKNOWN_RULE,
      source: undefined,
    })
  } else d.metrics.logLinesSuppressed.inc({ server, source: 'unknown_session_audit' })
  return new BridgeError('session_not_found', 'session not found')
}
