import type { Hold, Scope } from './bounds.js'
import { goneOf, type Child } from './child.js'
import type { HoldCounts } from './hold-counts.js'

/**
 * Holds that ended while their process is not gone yet (`goneOf`: exited, its stdout read, the
 * stop ladder on its group over): each counts toward the bounds until then, as a pool's process
 * counts toward `pool.max` (pool.ts). The bounds cap the process groups a subject holds, and one
 * whose process crashed leaving a descendant on its stdout, or a helper that ignores SIGTERM,
 * holds its group for up to three stopGraces more: opening another on top of it would let a
 * user hold more than their bound. Sessions (registry.ts) and lanes (lane-set.ts) keep one each.
 */
export class EndingHolds<H extends Hold> {
  /** Each ending hold: resolves once its process is gone, or was given up on (`stuck`). */
  private readonly settled = new Map<H, Promise<void>>()
  /** Holds whose stop ladder is over with their process still there: counted, not waited for. */
  private readonly stuck = new Set<H>()

  constructor(
    /** The holder's counts: a hold is in them from `add` until its process is gone. */
    private readonly held: HoldCounts,
    /** Told when a hold stopped counting or is given up on (waiting requests look again). */
    private readonly changed?: () => void,
  ) {}

  /**
   * `h` ended, its process `child` ending (its owner closes it): counted until `child` is gone,
   * once however often told. Resolves then, or once the stop ladder on it is over with the
   * process still there (it survived SIGKILL, stuck in the kernel: child.ts logs it): it counts
   * on, since it still holds what it holds, but nobody waits for it any more, so an open at a
   * bound ends an idle session or is refused rather than waiting for ever.
   */
  add(h: H, child: Child): Promise<void> {
    let settled = this.settled.get(h)
    if (settled === undefined) {
      this.held.add(h)
      const done = () => {
        this.settled.delete(h)
        this.stuck.delete(h)
        this.held.remove(h)
        this.changed?.()
      }
      const gone = goneOf(child).then(done, done)
      // Its owner closes it in the same turn (close is once per process): the ladder's end is
      // read a turn after, when a process that did go has had `gone` settle first.
      const givenUp = new Promise<void>((resolve) =>
        queueMicrotask(() => {
          const later = () => setImmediate(resolve)
          child.close().then(later, later)
        }),
      ).then(() => {
        if (!this.settled.has(h)) return
        this.stuck.add(h)
        this.changed?.()
      })
      settled = Promise.race([gone, givenUp])
      this.settled.set(h, settled)
    }
    return settled
  }

  /** The ending holds `scope` selects (those given up on too: they still count). */
  count(scope: Scope): number {
    let n = 0
    for (const h of this.settled.keys()) if (scope(h)) n++
    return n
  }

  /**
   * When each ending hold `scope` selects is gone or given up on (none: nothing of theirs is
   * ending). Those given up on already are left out: waiting for them would wait for ever.
   */
  ending(scope: Scope): Promise<void>[] {
    return [...this.settled].filter(([h]) => scope(h) && !this.stuck.has(h)).map(([, p]) => p)
  }
}
