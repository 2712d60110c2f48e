import type { Logger } from 'pino'
import { countSubscription, withdrawSubscriptions } from './lane-subscriptions.js'
import type { Lane } from './lane.js'

/** One subscription: the backend, its own URI, and the lane whose process holds it. */
interface Held {
  server: string
  uri: string
  lane: Lane
  /** In `lane.pins` while held; called by the pool if the process ends first. */
  pin: () => void
}

/**
 * The resource subscriptions of one session-era endpoint session, by public URI. A
 * subscription lives in the process that accepted `resources/subscribe`, so that lane is
 * pinned (never reaped or reclaimed) until the client unsubscribes or the session ends, and
 * `resources/unsubscribe` goes to that same process, even while a request of the user is
 * running on it. If the process ends first, the subscription is forgotten. Refuses nothing:
 * policy decided the subscribe before the process saw it.
 */
export class SessionSubscriptions {
  private readonly held = new Map<string, Held>()
  /** Subscribes on their way to a process: counted against the bound until held or failed. */
  private taking = 0
  private closed = false

  /** `max`: subscriptions held or being taken at most (`endpoints.<name>.maxSubscriptions`). */
  constructor(
    private readonly log: Logger,
    readonly max: number,
  ) {}

  has(publicUri: string): boolean {
    return this.held.has(publicUri)
  }

  /** The backend and its own URI a public URI is held under, if it is. */
  heldAt(publicUri: string): { server: string; uri: string } | undefined {
    const h = this.held.get(publicUri)
    return h === undefined ? undefined : { server: h.server, uri: h.uri }
  }

  /**
   * Room for one more subscribe, taken until `settled` is called (after `hold`, or on failure);
   * false when the session holds (or is taking) as many as it may.
   */
  reserve(): boolean {
    if (this.held.size + this.taking >= this.max) return false
    this.taking++
    return true
  }

  settled(): void {
    this.taking = Math.max(0, this.taking - 1)
  }

  /**
   * Keeps a subscription `lane`'s process has just accepted. One already held under the same
   * public URI (two subscribes at once), or a session already closed, gives it back at once.
   */
  hold(publicUri: string, server: string, uri: string, lane: Lane): void {
    countSubscription(lane, uri)
    if (this.closed || this.held.has(publicUri) || !lane.child.alive)
      return withdrawSubscriptions(lane, [uri])
    const pin = () => {
      if (this.held.get(publicUri)?.pin !== pin) return
      this.held.delete(publicUri)
      this.log.info(
        { server, uri },
        'the process holding a resource subscription ended; the subscription is gone',
      )
    }
    lane.pins.add(pin)
    this.held.set(publicUri, { server, uri, lane, pin })
  }

  /**
   * Gives one back; its process is unsubscribed unless another holder shares it. False when none
   * was held. `asked`: the client's own unsubscribe (its request, charged as the user's).
   */
  release(publicUri: string, asked = false): boolean {
    const h = this.held.get(publicUri)
    if (h === undefined) return false
    this.held.delete(publicUri)
    if (h.lane.pins.delete(h.pin)) withdrawSubscriptions(h.lane, [h.uri], asked)
    return true
  }

  /** The public URI a backend's own URI was subscribed under, if it was. */
  publicUri(server: string, uri: string): string | undefined {
    for (const [publicUri, h] of this.held)
      if (h.server === server && h.uri === uri) return publicUri
    return undefined
  }

  /** Gives back those held on the backends `gone` says yes to. */
  releaseOn(gone: (server: string) => boolean): void {
    for (const [publicUri, h] of [...this.held]) if (gone(h.server)) this.release(publicUri)
  }

  /** The session ended: everything given back, and nothing held from now on. */
  releaseAll(): void {
    this.closed = true
    for (const publicUri of [...this.held.keys()]) this.release(publicUri)
  }
}
