// The one sweep of the per-subject budgets' sliding windows (process starts, shared crashes):
// oldest first, an event exactly a window old has left it, the list is cut in place.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { leaveWindow } from '../../gateway/bridge/sliding-window.js'

describe('leaveWindow', () => {
  const cases: { name: string; list: number[]; now: number; left: number[] }[] = [
    { name: 'empty', list: [], now: 100, left: [] },
    { name: 'all inside', list: [95, 99, 100], now: 100, left: [95, 99, 100] },
    { name: 'exactly a window old: gone', list: [90, 91], now: 100, left: [91] },
    { name: 'all gone', list: [1, 2, 3], now: 100, left: [] },
    { name: 'several gone from the front', list: [80, 85, 90, 95], now: 100, left: [95] },
  ]
  for (const c of cases)
    it(c.name, () => {
      const list = [...c.list]
      leaveWindow(list, c.now, 10, (t) => t)
      assert.deepEqual(list, c.left)
    })

  it('reads the time of each event through `at`, keeping the events themselves', () => {
    const a = { at: 1, share: 0.5 }
    const b = { at: 50, share: 1 }
    const list = [a, b]
    leaveWindow(list, 59, 10, (e) => e.at)
    assert.deepEqual(list, [b])
    assert.equal(list[0], b)
  })
})
