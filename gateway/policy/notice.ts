import type { Principal } from '../auth/principal.js'
import { decide, decideAccess, type Decision } from './evaluate.js'
import type { Policy } from './policy.js'
import { nonCanonicalUri } from './resource-uri.js'

/**
 * What becomes of a message a server process sends on its own (a notification, or a request to
 * the client), decided by the policy in force when it arrives, not the one its session or
 * stream opened under:
 * - `withdrawn`: the policy denies the principal the server (its next request would be refused
 *   outright): whatever carries the message ends;
 * - `challenged`: the principal lacks a scope the server's access now needs (its next request
 *   would get a step-up challenge): a session, whose client may step up and go on with a new
 *   token, keeps its streams but is sent no notification meanwhile; a stream opened with this
 *   token, which can never step up, ends;
 * - `drop`: a `notifications/resources/updated` for a URI the principal may no longer read;
 * - `relay`: anything else (progress, logs, list changes, updates of readable URIs).
 * Every path that relays server notifications asks this one function: sessionless listen
 * streams, session-era sessions of a server, and endpoint sessions.
 */
export type Notice = 'relay' | 'drop' | 'challenged' | 'withdrawn'

export function noticeOf(
  policy: Policy,
  principal: Principal,
  server: string,
  method: string,
  params: Record<string, unknown> | undefined,
): Notice {
  const access = decideAccess(policy, principal, server).effect
  if (access === 'deny') return 'withdrawn'
  if (access === 'challenge') return 'challenged'
  if (
    method === 'notifications/resources/updated' &&
    resourceDecision(policy, principal, server, String(params?.uri))?.effect !== 'allow'
  )
    return 'drop'
  return 'relay'
}

/**
 * The policy on reading one resource URI, or undefined when the URI is not canonical (the form
 * the server reads): such a URI is decided by no rule, and refused.
 */
export function resourceDecision(
  policy: Policy,
  principal: Principal,
  server: string,
  uri: string,
): Decision | undefined {
  if (nonCanonicalUri(uri) !== undefined) return undefined
  return decide(policy, principal, server, 'resources', uri)
}
