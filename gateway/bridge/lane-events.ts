import type { LaneEvent } from './lane.js'

type Listener = (event: LaneEvent) => void

/**
 * Who hears the lanes' server events: `subscriptions/listen` streams (bounded per principal and
 * server, ended at shutdown) and the gateway's own listeners to one principal's events (an
 * endpoint session), each told only their principal's; the gateway's own listeners to every
 * event (an endpoint's list caches); and those told when a principal's last lane of a server is
 * gone. A shared process's event reaches every principal's views of it: each principal hears it
 * once, the listeners to every event once, so one event costs the gateway in proportion to the
 * principals, not to principals times listeners.
 */
export class LaneEvents {
  /** The gateway's own listeners to every principal's events. */
  private readonly everyone = new Set<Listener>()
  /** Listen streams and the gateway's own listeners to one principal's events, by owner. */
  private readonly byOwner = new Map<string, Set<Listener>>()
  private readonly lanesEnded = new Set<(server: string, owner: string) => void>()
  private readonly closers = new Set<() => void>()
  /** Shared-server events delivered this tick, per principal (each of their views repeats them). */
  private readonly recent = new Set<string>()
  /** Shared-server events the listeners to every event heard this tick (every view repeats them). */
  private readonly recentAll = new Set<string>()
  /** Open `subscriptions/listen` streams per (server, principal). */
  private readonly listening = new Map<string, number>()
  /** Open `subscriptions/listen` streams, all servers and principals. */
  private open = 0

  constructor(private readonly listensPerSubject: number) {}

  /**
   * Subscribes a listen stream of `owner` on `server` to the server events of `owner`'s lanes
   * and to shutdown (`onClose`); returns the unsubscribe, or undefined when the owner already
   * holds `listensPerSubject`.
   */
  listen(
    server: string,
    owner: string,
    fn: Listener,
    onClose: () => void,
  ): (() => void) | undefined {
    const key = `${server}\n${owner}`
    const open = this.listening.get(key) ?? 0
    if (open >= this.listensPerSubject) return undefined
    this.listening.set(key, open + 1)
    this.open++
    const off = this.onEventOf(owner, fn)
    this.closers.add(onClose)
    let live = true
    return () => {
      if (!live) return
      live = false
      off()
      this.open--
      this.closers.delete(onClose)
      const left = (this.listening.get(key) ?? 1) - 1
      if (left === 0) this.listening.delete(key)
      else this.listening.set(key, left)
    }
  }

  /** Open listen streams, all servers and principals. */
  get streams(): number {
    return this.open
  }

  /** See LanePool.onLanesEnded. */
  onLanesEnded(fn: (server: string, owner: string) => void): () => void {
    this.lanesEnded.add(fn)
    return () => void this.lanesEnded.delete(fn)
  }

  /** Whether anyone is to hear that a principal's last lane of a server is gone. */
  get watchingEnds(): boolean {
    return this.lanesEnded.size > 0
  }

  /** A principal's last lane of a server is gone. */
  lanesGone(server: string, owner: string): void {
    for (const fn of this.lanesEnded) fn(server, owner)
  }

  /** See LanePool.onEvent. */
  onEvent(fn: Listener): () => void {
    this.everyone.add(fn)
    return () => void this.everyone.delete(fn)
  }

  /** See LanePool.onEventOf. */
  onEventOf(owner: string, fn: Listener): () => void {
    let mine = this.byOwner.get(owner)
    if (mine === undefined) this.byOwner.set(owner, (mine = new Set()))
    mine.add(fn)
    return () => {
      if (!mine.delete(fn) || mine.size > 0) return
      if (this.byOwner.get(owner) === mine) this.byOwner.delete(owner)
    }
  }

  /** Delivers a lane's event; `shared`: the server's lanes are views of one process. */
  emit(event: LaneEvent, shared: boolean): void {
    if (shared) {
      // A shared process tells every view of it at once: one event per principal, not per lane,
      // and one for the listeners to every event, not one per principal.
      const what = `${event.server}\n${event.method}\n${JSON.stringify(event.params ?? null)}`
      const once = `${event.owner}\n${what}`
      if (this.recent.has(once)) return
      if (this.recent.size === 0 && this.recentAll.size === 0)
        setImmediate(() => {
          this.recent.clear()
          this.recentAll.clear()
        })
      this.recent.add(once)
      if (!this.recentAll.has(what)) {
        this.recentAll.add(what)
        for (const fn of this.everyone) fn(event)
      }
    } else for (const fn of this.everyone) fn(event)
    const mine = this.byOwner.get(event.owner)
    if (mine !== undefined) for (const fn of mine) fn(event)
  }

  /** Shutdown: every listen stream is told to end. */
  close(): void {
    for (const fn of [...this.closers]) fn()
  }
}
