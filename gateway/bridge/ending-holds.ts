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
  private readonly gone = new Map<H, Promise<void>>()

  constructor(
    /** The holder's counts: a hold is in them from `add` until its process is gone. */
    private readonly held: HoldCounts,
    /** Told when a hold stopped counting (waiting requests look again). */
    private readonly changed?: () => void,
  ) {}

  /**
   * `h` ended, its process `child` ending (its owner closes it): counted until `child` is gone,
   * once however often told. Resolves then, no longer counted.
   */
  add(h: H, child: Child): Promise<void> {
    let gone = this.gone.get(h)
    if (gone === undefined) {
      this.held.add(h)
      const done = () => {
        this.gone.delete(h)
        this.held.remove(h)
        this.changed?.()
      }
      gone = goneOf(child).then(done, done)
      this.gone.set(h, gone)
    }
    return gone
  }

  /** The ending holds `scope` selects. */
  count(scope: Scope): number {
    let n = 0
    for (const h of this.gone.keys()) if (scope(h)) n++
    return n
  }

  /** When each ending hold `scope` selects is gone (none: nothing of theirs is ending). */
  ending(scope: Scope): Promise<void>[] {
    return [...this.gone].filter(([h]) => scope(h)).map(([, gone]) => gone)
  }
}
