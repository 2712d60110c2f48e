// The budget of log lines a process's output may cause per window (log-window.ts): the first
// `linesPerWindow` are admitted, the rest counted and told once, when the window ends by its
// timer (no further line needed) or by `end()`. Mocked timers and an injected clock: nothing
// waits on the wall clock.
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { LogWindow } from '../../gateway/bridge/log-window.js'

let now = 0
let told: number[] = []

function window(linesPerWindow: number, ms = 1000): LogWindow {
  return new LogWindow({ linesPerWindow, window: ms, ended: (n) => told.push(n), now: () => now })
}

function admitted(w: LogWindow, lines: number): number {
  let n = 0
  for (let i = 0; i < lines; i++) if (w.admit()) n++
  return n
}

beforeEach(() => {
  now = 0
  told = []
  mock.timers.enable({ apis: ['setTimeout'] })
})

afterEach(() => mock.timers.reset())

describe('log window', () => {
  const CASES: { limit: number; lines: number; admitted: number; suppressed: number[] }[] = [
    { limit: 5, lines: 0, admitted: 0, suppressed: [] },
    { limit: 5, lines: 5, admitted: 5, suppressed: [] },
    { limit: 5, lines: 6, admitted: 5, suppressed: [1] },
    { limit: 5, lines: 1_000_000, admitted: 5, suppressed: [999_995] },
    { limit: 0, lines: 3, admitted: 0, suppressed: [3] },
  ]
  for (const c of CASES)
    it(`${c.lines} lines at ${c.limit} a window: ${c.admitted} written, ${c.suppressed} told when it ends`, () => {
      const w = window(c.limit)
      assert.equal(admitted(w, c.lines), c.admitted)
      assert.deepEqual(told, [], 'nothing told before the window ends')
      now = 1000
      mock.timers.tick(1000)
      assert.deepEqual(told, c.suppressed)
    })

  it('the count is told by the timer, with no further line', () => {
    const w = window(2)
    admitted(w, 10)
    mock.timers.tick(999)
    assert.deepEqual(told, [])
    mock.timers.tick(1)
    assert.deepEqual(told, [8])
    // Told once: the window is over, the next line starts a new one.
    mock.timers.tick(10_000)
    assert.deepEqual(told, [8])
    now = 5000
    assert.equal(admitted(w, 3), 2)
    w.end()
    assert.deepEqual(told, [8, 1])
  })

  it('a line after the window ended starts a new one even before the timer ran', () => {
    const w = window(2)
    admitted(w, 4)
    now = 1000
    assert.equal(admitted(w, 2), 2, 'a new window: its own budget')
    assert.deepEqual(told, [2], 'the old window told as it ended')
    mock.timers.tick(5000)
    assert.deepEqual(told, [2], 'its timer told nothing twice')
  })

  it('end() tells the count at once (the stream ended), and nothing when none was suppressed', () => {
    const w = window(3)
    admitted(w, 3)
    w.end()
    assert.deepEqual(told, [])
    admitted(w, 7)
    w.end()
    assert.deepEqual(told, [4])
    mock.timers.tick(5000)
    assert.deepEqual(told, [4])
  })
})
