import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import { BridgeError } from './errors.js'
import type { InitResult } from './handshake.js'
import type { Lane } from './lane.js'
import type { LanePool } from './lanes.js'
import { asOwn } from './replica.js'

/*
 * A resource subscription lives in one process, so whoever subscribes a lane's process holds
 * that lane (a pin in `lane.pins`) for as long as the subscription lasts. Holders on one
 * process share its subscription to a URI, counted in `lane.subscriptions`: the process is
 * subscribed by the first and unsubscribed by the last, never once per holder.
 */

/** A stream's resource subscriptions on one of its principal's processes, held until `release`. */
export interface SubscriptionHold {
  /** The initialize result of the process (what the server offers). */
  init: InitResult
  /** The URIs the process accepted, in the order asked. */
  subscribed: string[]
  /** Gives the subscriptions back (the last holder of a URI unsubscribes the process); idempotent. */
  release(): void
}

/**
 * Places `uris` on one of `principal`'s processes of `server` for a `subscriptions/listen`
 * stream: leases a lane for the placing, subscribes what the server accepts, and keeps the
 * process (a pin) while the hold lasts; the lane itself is free for requests at once. With no
 * URI it only learns the server's initialize result (a process is started when none has yet).
 * `onLost` runs if the process ends first (the stream ends with it). This module alone counts
 * who holds which subscription of a lane.
 * @throws BridgeError from leasing, or `spawn_failed` when the process exited meanwhile
 */
export async function holdSubscriptions(
  lanes: LanePool,
  o: {
    server: string
    principal: Principal
    uris: readonly string[]
    signal: AbortSignal
    log: Logger
    onLost: () => void
    /**
     * The user's credentials for a server that takes them (what is set now): subscriptions act
     * with them, on one of the user's processes started with them, as in a session.
     */
    credentials?: ResolvedCredentials
  },
): Promise<SubscriptionHold> {
  const lane = await lanes.acquire(o.server, o.principal, o.log, undefined, o.signal, o.credentials)
  let subscribed: string[] = []
  let pinned = false
  const pin = () => o.onLost()
  try {
    subscribed = await placeSubscriptions(lanes, lane, o.uris, o.signal, o.log)
    if (!lane.child.alive) throw new BridgeError('spawn_failed', 'the MCP server process exited')
    // The subscriptions live on this process: it stays while the stream is open, still serving
    // the principal's requests (which may be what changes the resources).
    if (subscribed.length > 0) {
      lane.pins.add(pin)
      pinned = true
    }
  } catch (err) {
    withdrawSubscriptions(lane, subscribed)
    throw err
  } finally {
    lanes.release(lane)
  }
  return {
    init: lane.init,
    subscribed,
    release: () => {
      if (pinned && lane.pins.delete(pin)) withdrawSubscriptions(lane, subscribed)
      pinned = false
    },
  }
}

/**
 * Subscribes the process of a held lane to `uris` (those its server offers subscriptions for
 * and accepts), counting each; resolves with the URIs subscribed. A URI the process already
 * has is only counted.
 */
async function placeSubscriptions(
  lanes: LanePool,
  held: Lane,
  uris: readonly string[],
  signal: AbortSignal,
  log: Logger,
): Promise<string[]> {
  const subscribed: string[] = []
  if (uris.length === 0 || !subscribable(held.init.capabilities)) return subscribed
  for (const uri of uris) {
    if (signal.aborted) break
    if (!held.subscriptions.has(uri)) {
      const reply = (await lanes.request(
        held,
        'resources/subscribe',
        { uri },
        lanes.limits.subscribeTimeout,
      )) as { result?: unknown } | undefined
      if (reply?.result === undefined) {
        log.info(
          { uri },
          'the server refused a resource subscription; left out of the acknowledgement',
        )
        continue
      }
    }
    countSubscription(held, uri)
    subscribed.push(uri)
  }
  return subscribed
}

/** Counts one more holder of a subscription the process already accepted (its own `resources/subscribe` answered). */
export function countSubscription(lane: Lane, uri: string): void {
  lane.subscriptions.set(uri, (lane.subscriptions.get(uri) ?? 0) + 1)
}

/**
 * A holder's share of its lane's subscriptions given back: the last holder of a URI unsubscribes
 * the process. `asked`: the user's own `resources/unsubscribe` (an endpoint session's), sent as
 * their request: on a shared process, charged to them if the process exits on it, as the same
 * request in a server session is; else (a session ending, access withdrawn) the gateway's own.
 */
export function withdrawSubscriptions(lane: Lane, uris: readonly string[], asked = false): void {
  for (const uri of uris) {
    const left = (lane.subscriptions.get(uri) ?? 1) - 1
    if (left > 0) {
      lane.subscriptions.set(uri, left)
      continue
    }
    lane.subscriptions.delete(uri)
    // Sent to the process directly, busy or not: the subscription is there, wherever the
    // lane's next request would go. Its reply goes to nobody (or to whichever request holds
    // the lane, which ignores an id not its own).
    // The gateway's own: on a shared process, nobody's request (replica.ts `asOwn`).
    const message = {
      jsonrpc: '2.0',
      id: lane.nextId(),
      method: 'resources/unsubscribe',
      params: { uri },
    } as JSONRPCMessage
    void lane.child.send(asked ? message : asOwn(message)).catch(() => {})
  }
}

function subscribable(capabilities: unknown): boolean {
  const resources = (capabilities as { resources?: { subscribe?: unknown } } | undefined)?.resources
  return resources?.subscribe === true
}
