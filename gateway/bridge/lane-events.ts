import type { LaneEvent } from './lane.js'

/**
 * Who hears the lanes' server events: `subscriptions/listen` streams (bounded per principal and
 * server, ended at shutdown), the gateway's own listeners, and those told when a principal's
 * last lane of a server is gone.
 */
export class LaneEvents {
  private readonly listeners = new Set<(event: LaneEvent) => void>()
  private readonly lanesEnded = new Set<(server: string, owner: string) => void>()
  private readonly closers = new Set<() => void>()
  /** Shared-server events delivered this tick (each of a principal's views repeats them). */
  private readonly recent = new Set<string>()
  /** Open `subscriptions/listen` streams per (server, principal). */
  private readonly listening = new Map<string, number>()
  /** The gateway's own listeners among `listeners`. */
  private internal = 0

  constructor(private readonly listensPerSubject: number) {}

  /**
   * Subscribes a listen stream of `owner` on `server` to every lane's server events and to
   * shutdown (`onClose`); returns the unsubscribe, or undefined when the owner already holds
   * `listensPerSubject`.
   */
  listen(
    server: string,
    owner: string,
    fn: (event: LaneEvent) => void,
    onClose: () => void,
  ): (() => void) | undefined {
    const key = `${server}\n${owner}`
    const open = this.listening.get(key) ?? 0
    if (open >= this.listensPerSubject) return undefined
    this.listening.set(key, open + 1)
    this.listeners.add(fn)
    this.closers.add(onClose)
    let live = true
    return () => {
      if (!live) return
      live = false
      this.listeners.delete(fn)
      this.closers.delete(onClose)
      const left = (this.listening.get(key) ?? 1) - 1
      if (left === 0) this.listening.delete(key)
      else this.listening.set(key, left)
    }
  }

  /** Open listen streams, all servers and principals. */
  get streams(): number {
    return this.listeners.size - this.internal
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
  onEvent(fn: (event: LaneEvent) => void): () => void {
    this.listeners.add(fn)
    this.internal++
    return () => {
      if (this.listeners.delete(fn)) this.internal--
    }
  }

  /** Delivers a lane's event; `shared`: the server's lanes are views of one process. */
  emit(event: LaneEvent, shared: boolean): void {
    if (shared) {
      // A shared process tells every view of it at once: one event per principal, not per lane.
      const once = `${event.owner}\n${event.method}\n${JSON.stringify(event.params ?? null)}`
      if (this.recent.has(once)) return
      this.recent.add(once)
      if (this.recent.size === 1) setImmediate(() => this.recent.clear())
    }
    for (const fn of this.listeners) fn(event)
  }

  /** Shutdown: every listen stream is told to end. */
  close(): void {
    for (const fn of [...this.closers]) fn()
  }
}
