import { LRUCache } from 'lru-cache'

/**
 * The name and URI tables of one endpoint, kept between requests. A table is a pure function of
 * the backends' lists it maps, and building one is a pass over every name or URI (about 12 ms
 * for 10,000 URIs): built per request, every call or read would cost that much of the event
 * loop, and a batch of them seconds. A table is found again by the lists it was built from,
 * each the very array the endpoint's list cache holds: a list read again (its server said it
 * changed) is a new array, so the table is built again, never served stale. Refuses nothing.
 *
 * Callers the policy gives different backends, or whose processes' lists are their own, see
 * different tables: at most `max` are kept, the least recently used giving way (one pushed out
 * is built again when next needed, as every table was before).
 */
export class EndpointTables {
  /** A number per list array: a key names the arrays, and never outlives them (weak). */
  private readonly ids = new WeakMap<object, number>()
  private next = 0
  private readonly kept: LRUCache<string, object>

  constructor(
    max: number,
    /** Told each time a table is built (a metric). */
    private readonly onBuilt?: () => void,
  ) {
    this.kept = new LRUCache({ max })
  }

  /**
   * The table of `kind` for `lists` (each a name and the cached array it stands for, in the
   * order the table reads them), built by `build` unless kept.
   */
  get<T extends object>(
    kind: string,
    lists: readonly (readonly [string, object])[],
    build: () => T,
  ): T {
    let key = kind
    for (const [name, items] of lists) key += `\n${name} ${this.idOf(items)}`
    const kept = this.kept.get(key)
    if (kept !== undefined) return kept as T
    const table = build()
    this.onBuilt?.()
    this.kept.set(key, table)
    return table
  }

  private idOf(items: object): number {
    let id = this.ids.get(items)
    if (id === undefined) this.ids.set(items, (id = this.next++))
    return id
  }
}
