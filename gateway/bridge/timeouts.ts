/**
 * Timeouts of one duration on one Node timer: a request's timeout is an entry in a list, not a
 * timer of its own. Node keeps a list per duration too, but drops it when its last timer is
 * cleared, so a lone request (the usual case) paid a new list, a priority-queue insert and
 * removal and two calls into libuv for a timeout that almost never fires. Here the timer stays
 * armed while requests come and go: an entry is appended (deadlines of one duration come in
 * order) and unlinked when its request ends, and the timer, when it fires, runs what is due and
 * is armed again for the oldest entry left. It holds the process open only while an entry waits.
 */
export class Timeouts {
  private head: Entry | undefined
  private tail: Entry | undefined
  private timer: NodeJS.Timeout | undefined
  /** When the armed timer is due (the `now` clock). */
  private firesAt = 0

  constructor(
    readonly ms: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Runs `fire` once `ms` have passed, unless the returned timeout is cancelled first. */
  add(fire: () => void): Timeout {
    const now = this.now()
    const entry = new Entry(this, now + this.ms, fire)
    if (this.tail === undefined) {
      this.head = entry
      this.timer?.ref()
    } else {
      this.tail.next = entry
      entry.prev = this.tail
    }
    this.tail = entry
    // A timer a whole period past due never fired (one a test's mocked clock made, since
    // reset): it is replaced.
    if (this.timer === undefined || now > this.firesAt + this.ms) this.arm(this.ms, now)
    return entry
  }

  /**
   * Its owner has ended: with no timeout waiting, the timer goes now rather than when due (a
   * closed session's timer would otherwise live up to `ms` longer).
   */
  release(): void {
    if (this.head !== undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** @internal */
  remove(entry: Entry): void {
    if (entry.prev === undefined) this.head = entry.next
    else entry.prev.next = entry.next
    if (entry.next === undefined) this.tail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = entry.next = undefined
    if (this.head === undefined) this.timer?.unref()
  }

  private arm(delay: number, now: number): void {
    clearTimeout(this.timer)
    this.firesAt = now + delay
    const timer = setTimeout(() => this.due(timer), delay)
    this.timer = timer
  }

  private due(timer: NodeJS.Timeout): void {
    if (timer !== this.timer) return
    this.timer = undefined
    // The timer's own word that its time has come counts as much as the clock (Node's timers
    // fire up to a millisecond early, libuv's clock being whole cached ms; a test's mocked
    // timers move without it): what was due by then runs.
    const now = Math.max(this.now(), this.firesAt)
    for (let e = this.head; e !== undefined && e.due <= now + 1; e = this.head) e.run()
    if (this.head !== undefined && this.timer === undefined)
      this.arm(Math.max(1, Math.ceil(this.head.due - now)), now)
  }
}

/**
 * The request timeouts of one owner (a session, a lane), whose duration is a setting read
 * when each request starts: one {@link Timeouts} for the duration now, the one before
 * released when it changes, and the last when the owner ends.
 */
export class RequestTimeouts {
  private queue: Timeouts | undefined

  /** Runs `fire` once `ms` have passed, unless the returned timeout is cancelled first. */
  add(ms: number, fire: () => void): Timeout {
    if (this.queue?.ms !== ms) {
      this.queue?.release()
      this.queue = new Timeouts(ms)
    }
    return this.queue.add(fire)
  }

  /** Its owner has ended: the timer goes once no timeout waits (see {@link Timeouts.release}). */
  release(): void {
    this.queue?.release()
  }
}

/** A pending timeout: cancelling it (or a second cancel, or one after it fired) is harmless. */
export interface Timeout {
  cancel(): void
}

class Entry implements Timeout {
  prev: Entry | undefined
  next: Entry | undefined

  constructor(
    private readonly queue: Timeouts,
    readonly due: number,
    private fire: (() => void) | undefined,
  ) {}

  cancel(): void {
    if (this.fire === undefined) return
    this.fire = undefined
    this.queue.remove(this)
  }

  /** @internal Unlinks the entry, then runs it. */
  run(): void {
    const fire = this.fire
    this.cancel()
    fire?.()
  }
}
