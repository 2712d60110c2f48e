import { HELD, type Lane, type LaneUser } from './lane.js'
import type { GoneSignal } from './gone.js'

/** A request waiting for a lane of `key`: woken to look again, or handed a lane. */
interface Waiter {
  key: string
  /** What it will hold a lane with: HELD alone, or a plain request's share. */
  holder: LaneUser
  wake: (lane?: Lane) => void
}

/**
 * The requests waiting for a lane, per (server, principal), oldest first: each is woken to look
 * again when something changed, or handed a lane as it is released.
 */
export class LaneWaiters {
  private readonly waiting = new Map<string, Set<Waiter>>()

  /** Requests waiting, per server. */
  perServer(): Map<string, number> {
    const n = new Map<string, number>()
    for (const [pair, set] of this.waiting) {
      const server = pair.slice(0, pair.indexOf('\n'))
      n.set(server, (n.get(server) ?? 0) + set.size)
    }
    return n
  }

  /** Requests of `owner` waiting for a lane of `server`. */
  count(server: string, owner: string): number {
    return this.waiting.get(`${server}\n${owner}`)?.size ?? 0
  }

  /**
   * Whether a request that must hold a lane alone waits for one of `server` for `owner` ahead
   * of `holder` (ahead of everyone, when `holder` is not waiting).
   */
  aloneAhead(server: string, owner: string, holder: LaneUser): boolean {
    const queue = this.waiting.get(`${server}\n${owner}`)
    if (queue === undefined) return false
    for (const w of queue) {
      if (w.holder === holder) return false
      if (w.holder === HELD) return true
    }
    return false
  }

  /**
   * Waits (queued last among `owner`'s waiters of `server`) until woken, `ms` pass or `signal`
   * aborts; resolves the lane it was handed (held for it already), else undefined.
   */
  wait(
    server: string,
    owner: string,
    key: string,
    holder: LaneUser,
    ms: number,
    signal: GoneSignal | undefined,
  ): Promise<Lane | undefined> {
    const pair = `${server}\n${owner}`
    const waiting = this.waiting
    const queue = waiting.get(pair) ?? new Set<Waiter>()
    waiting.set(pair, queue)
    return new Promise<Lane | undefined>((resolve) => {
      const waiter: Waiter = { key, holder, wake: done }
      const timer = setTimeout(done, ms).unref()
      const gone = () => done()
      signal?.addEventListener('abort', gone, { once: true })
      queue.add(waiter)
      function done(lane?: Lane) {
        clearTimeout(timer)
        signal?.removeEventListener('abort', gone)
        queue.delete(waiter)
        if (queue.size === 0 && waiting.get(pair) === queue) waiting.delete(pair)
        resolve(lane)
      }
    })
  }

  /**
   * Gives `lane` to the oldest requests waiting for a lane of its key, in order, while `fits`
   * says the next may take it (`take` holds it for that one): one request alone, or as many
   * plain ones as it has room for. True when anyone was handed the lane.
   */
  handOff(
    lane: Lane,
    fits: (lane: Lane, holder: LaneUser) => boolean,
    take: (lane: Lane, holder: LaneUser) => void,
  ): boolean {
    const queue = this.waiting.get(`${lane.server}\n${lane.owner}`)
    if (queue === undefined) return false
    let handed = false
    for (const waiter of [...queue]) {
      if (waiter.key !== lane.key) continue
      if (!fits(lane, waiter.holder)) break
      take(lane, waiter.holder)
      waiter.wake(lane)
      handed = true
      if (waiter.holder === HELD) break
    }
    return handed
  }

  /** Every waiting request looks again. */
  wakeAll(): void {
    for (const queue of [...this.waiting.values()]) for (const w of [...queue]) w.wake()
  }
}
