// One call at a time with the rows interleaved (sequential.ts): the order of the calls, the
// warm-up left untimed, a failing row dropped while the others go on.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { interleaved, roundOrder } from './sequential.js'

describe('roundOrder', () => {
  for (const n of [1, 2, 3, 5, 20])
    it(`${n} rows: every row once a round, the same order for the same round`, () => {
      for (let round = 0; round < 200; round++) {
        const order = roundOrder(n, round)
        assert.deepEqual(
          [...order].sort((a, b) => a - b),
          Array.from({ length: n }, (_, k) => k),
        )
        assert.deepEqual(roundOrder(n, round), order)
      }
    })

  it('over many rounds each row comes first, and follows each other row, about equally often', () => {
    const [n, rounds] = [4, 1200]
    const first = Array<number>(n).fill(0)
    const pairs = new Map<string, number>()
    for (let round = 0; round < rounds; round++) {
      const order = roundOrder(n, round)
      first[order[0]!]!++
      for (let k = 1; k < n; k++) {
        const pair = `${order[k - 1]}>${order[k]}`
        pairs.set(pair, (pairs.get(pair) ?? 0) + 1)
      }
    }
    // Expected 300 each: first place 1200 / 4; each of the 12 ordered pairs 1200 × 3 / 12.
    for (const c of first) assert.ok(c > 240 && c < 360, `first ${first.join(' ')}`)
    assert.equal(pairs.size, n * (n - 1), 'every ordered pair occurs')
    for (const [pair, c] of pairs) assert.ok(c > 240 && c < 360, `${pair}: ${c}`)
  })

  it('control: a rotation would always put the same row before another', () => {
    // What the shuffle is for: with order (round + k) % n, row 2 follows row 1 in every round
    // where row 2 is not first.
    const rotation = (n: number, round: number) =>
      Array.from({ length: n }, (_, k) => (round + k) % n)
    const before2 = new Set<number>()
    const seen = new Set<number>()
    for (let round = 0; round < 30; round++) {
      for (const [order, into] of [
        [rotation(4, round), before2],
        [roundOrder(4, round), seen],
      ] as const) {
        const at = order.indexOf(2)
        if (at > 0) into.add(order[at - 1]!)
      }
    }
    assert.deepEqual([...before2], [1])
    assert.deepEqual([...seen].sort(), [0, 1, 3])
  })
})

describe('interleaved', () => {
  /** Rows that log their calls; row `failAt[i]` throws on its failAt-th call (1-based). */
  const rows = (n: number, failAt: Record<number, number> = {}) => {
    const log: number[] = []
    const counts = Array<number>(n).fill(0)
    const entries = Array.from({ length: n }, (_, i) => ({
      call: async () => {
        log.push(i)
        counts[i]!++
        if (counts[i] === failAt[i]) throw new Error(`row ${i} failed`)
      },
    }))
    return { log, entries }
  }

  it('calls one at a time, round by round in roundOrder; the warm-up rounds are not timed', async () => {
    const { log, entries } = rows(3)
    const out = await interleaved(entries, 1, 2, () => assert.fail('no row fails'))
    assert.deepEqual(
      log,
      [0, 1, 2].flatMap((round) => roundOrder(3, round)),
    )
    assert.deepEqual(
      out.map((l) => l?.length),
      [2, 2, 2],
    )
    for (const l of out) for (const ms of l!) assert.ok(ms >= 0 && Number.isFinite(ms))
  })

  it('no call starts before the previous one ended', async () => {
    let inFlight = 0
    let most = 0
    const entries = Array.from({ length: 3 }, () => ({
      call: async () => {
        most = Math.max(most, ++inFlight)
        await new Promise((r) => setImmediate(r))
        inFlight--
      },
    }))
    await interleaved(entries, 2, 3, () => {})
    assert.equal(most, 1)
  })

  it('a failing row leaves the rounds, the others go on to the end', async () => {
    const { log, entries } = rows(3, { 1: 2 })
    const failed: [number, string][] = []
    const out = await interleaved(entries, 1, 2, (i, err) =>
      failed.push([i, (err as Error).message]),
    )
    assert.deepEqual(failed, [[1, 'row 1 failed']])
    assert.equal(out[1], undefined)
    assert.deepEqual(
      out.map((l) => l?.length),
      [2, undefined, 2],
    )
    // Row 1 fails in round 1 (its second call): round 2 goes on without it.
    const expected = [
      ...roundOrder(3, 0),
      ...roundOrder(3, 1),
      ...roundOrder(3, 2).filter((i) => i !== 1),
    ]
    assert.deepEqual(log, expected)
  })

  it('a row failing in the warm-up is dropped before any timed call', async () => {
    const { entries } = rows(2, { 0: 1 })
    const out = await interleaved(entries, 3, 4, () => {})
    assert.deepEqual(
      out.map((l) => l?.length),
      [undefined, 4],
    )
  })
})
