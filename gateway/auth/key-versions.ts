/**
 * Which key material each `kid` of an issuer's JWKS names now, as an identity that changes
 * when it does: a cached verified token remembers the identity it was verified under and is
 * verified afresh once that differs (its key removed, or other material under its `kid`).
 */
export interface KeyVersions {
  /** A fetch of the key set begins: its number, in the order fetches begin. */
  started(): number
  /** Fetch `n`'s key set arrived; it counts once the resolver holds it ({@link settle}). */
  fetched(n: number, keys: readonly unknown[]): void
  /**
   * Applies every arrived set in the order their fetches began, each once: all of them when
   * `resolving` is false, else those of fetches before the last begun (jose swaps in a fetched
   * set before it stops reloading, and begins a fetch only once the last is swapped in, so a
   * version read meanwhile names the old set: a later mismatch and one more verification, never
   * a token kept past its key). A set whose fetch began before one already applied is dropped,
   * as jose drops it.
   */
  settle(resolving: boolean): void
  /**
   * The identity of what a token naming `kid` is verified with: its group of keys; every key
   * for a token without a `kid` (jose then tries them all); undefined for a `kid` the set lacks.
   */
  version(kid: unknown): object | undefined
  /** How many sets were applied so far. */
  readonly generation: number
}

/** Creates the tracker, empty until a first set is fetched and settled. */
export function createKeyVersions(): KeyVersions {
  let byKid = new Map<string, { print: string; version: object }>()
  let all: { print: string; version: object } = { print: '\0', version: {} }
  // Each set is applied, in order: with one slot, a set arriving before the last was applied
  // replaced it, so a token verified under the skipped set could be cached under the next.
  const arrived = new Map<number, readonly unknown[]>()
  let begun = 0
  let applied = 0
  let generation = 0
  const apply = (keys: readonly unknown[]) => {
    const groups = new Map<string, string[]>()
    for (const k of keys) {
      const kid = (k as { kid?: unknown }).kid
      // RFC 7517 §4.5: a kid is a string; a key without one (or another type) is found by
      // no kid, only by tokens that name none, so it counts in `all` alone.
      if (typeof kid !== 'string') continue
      const group = groups.get(kid) ?? groups.set(kid, []).get(kid)!
      group.push(JSON.stringify(k))
    }
    const next = new Map<string, { print: string; version: object }>()
    for (const [kid, prints] of groups) {
      // Duplicates, reordered or not, are one group: any change to it is a change of the kid.
      const print = prints.sort().join('\n')
      const was = byKid.get(kid)
      next.set(kid, was?.print === print ? was : { print, version: {} })
    }
    const allPrint = keys
      .map((k) => JSON.stringify(k))
      .sort()
      .join('\n')
    if (allPrint !== all.print) all = { print: allPrint, version: {} }
    byKid = next
    generation++
  }
  return {
    get generation() {
      return generation
    },
    started: () => ++begun,
    fetched(n, keys) {
      arrived.set(n, keys)
    },
    settle(resolving) {
      // Asked at every cache hit (`version`): with no set arrived, no work and no allocation.
      if (arrived.size === 0) return
      for (const n of [...arrived.keys()].sort((x, y) => x - y)) {
        if (resolving && n === begun) break
        const keys = arrived.get(n)!
        arrived.delete(n)
        if (n < applied) continue
        applied = n
        apply(keys)
      }
    },
    version(kid) {
      if (kid === undefined) return generation === 0 ? undefined : all.version
      return typeof kid === 'string' ? byKid.get(kid)?.version : undefined
    },
  }
}
