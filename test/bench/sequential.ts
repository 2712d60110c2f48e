// One call at a time, every row of a repetition interleaved call by call. A lone call's latency
// is mostly wake-ups of processes on a shared machine: a row measured alone in its own third of
// a second took whatever the machine did then (the same build measured ×1.8 apart between
// runs). Interleaved, every row meets the same spells of the machine, call for call, so their
// ratio is measured even when the milliseconds themselves move.

/** One row's first session: one call of its echo tool. */
export interface SequentialEntry {
  call: () => Promise<void>
}

/**
 * The order in which round `round` calls `n` rows: a shuffle seeded by the round, so that over
 * the rounds every row comes first (after the client's own idle time) as often as any other,
 * and follows each other row as often as any other (a row's call may meet the tail of the
 * previous row's work on the other core). The same round always gives the same order.
 */
export function roundOrder(n: number, round: number): number[] {
  const order = Array.from({ length: n }, (_, k) => k)
  const random = mulberry32(round + 1)
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1))
    ;[order[k], order[j]] = [order[j]!, order[k]!]
  }
  return order
}

/** A small seeded generator of numbers in [0, 1) (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * `warmup` untimed rounds, then `calls` timed rounds; each round calls every row still in it
 * once, one call at a time, in `roundOrder`. A row whose call fails leaves the rounds
 * (`onFail`: its index and error) and the others go on. Returns each row's latencies in ms
 * (undefined for a row that failed).
 */
export async function interleaved(
  entries: readonly SequentialEntry[],
  warmup: number,
  calls: number,
  onFail: (index: number, err: unknown) => void,
): Promise<(number[] | undefined)[]> {
  const latencies: (number[] | undefined)[] = entries.map(() => [])
  for (let round = 0; round < warmup + calls; round++) {
    for (const i of roundOrder(entries.length, round)) {
      const samples = latencies[i]
      if (samples === undefined) continue
      const t0 = performance.now()
      try {
        await entries[i]!.call()
      } catch (err) {
        latencies[i] = undefined
        onFail(i, err)
        continue
      }
      if (round >= warmup) samples.push(performance.now() - t0)
    }
  }
  return latencies
}
