import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Lane, LanePool } from './lanes.js'

/*
 * A resource subscription lives in one process, so whoever subscribes a lane's process holds
 * that lane (a pin in `lane.pins`) for as long as the subscription lasts. Holders on one
 * process share its subscription to a URI, counted in `lane.subscriptions`: the process is
 * subscribed by the first and unsubscribed by the last, never once per holder.
 */

/**
 * Subscribes the process of a held lane to `uris` (those its server offers subscriptions for
 * and accepts), counting each; resolves with the URIs subscribed. A URI the process already
 * has is only counted.
 */
export async function placeSubscriptions(
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

/** A holder's share of its lane's subscriptions given back: the last holder of a URI unsubscribes the process. */
export function withdrawSubscriptions(lane: Lane, uris: readonly string[]): void {
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
    void lane.child
      .send({
        jsonrpc: '2.0',
        id: lane.nextId(),
        method: 'resources/unsubscribe',
        params: { uri },
      } as JSONRPCMessage)
      .catch(() => {})
  }
}

function subscribable(capabilities: unknown): boolean {
  const resources = (capabilities as { resources?: { subscribe?: unknown } } | undefined)?.resources
  return resources?.subscribe === true
}
