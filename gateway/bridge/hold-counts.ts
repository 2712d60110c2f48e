import type { Hold, Where } from './bounds.js'

/**
 * How many holds each scope a bound names holds (`scopeOf`: every hold, a server's, an owner's,
 * an owner's on a server), kept as each hold enters or leaves what its holder counts, so
 * checking the bounds before a new session or lane reads four numbers instead of testing every
 * hold four times. The holder calls `add` and `remove` on every path, one for one.
 */
export class HoldCounts {
  private readonly n = new Map<string, number>()

  /** `h` entered what the holder counts. */
  add(h: Hold): void {
    this.tally(h, 1)
  }

  /** `h` left what the holder counts. */
  remove(h: Hold): void {
    this.tally(h, -1)
  }

  /** Holds on `where.server` of `where.owner` (either left out: any). */
  of(where: Where): number {
    return this.n.get(keyOf(where)) ?? 0
  }

  private tally(h: Hold, by: 1 | -1): void {
    for (const where of [{}, { server: h.server }, { owner: h.owner }, h]) {
      const key = keyOf(where)
      const n = (this.n.get(key) ?? 0) + by
      if (n === 0) this.n.delete(key)
      else this.n.set(key, n)
    }
  }
}

/** The key of a scope limited to `where`: `*` stands for any server or owner. */
function keyOf(where: Where): string {
  const { server, owner } = where
  return `${server === undefined ? '*' : `=${server}`}\n${owner === undefined ? '*' : `=${owner}`}`
}
