import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { readFileSync } from 'node:fs'
import { childWakeups, wakeupsBetween } from './proc.js'

/** proc(5) field 3 of a process: R running, S sleeping, … */
const state = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
}

describe('children wake-ups between two readings', () => {
  const cases = [
    {
      name: 'the same children: their wake-ups summed',
      before: [
        [10, 5],
        [11, 7],
      ],
      after: [
        [10, 9],
        [11, 8],
      ],
      expect: { wakeups: 5, started: 0, ended: 0 },
    },
    {
      name: 'one started: counted as started, its wake-ups not (it had none before)',
      before: [[10, 5]],
      after: [
        [10, 6],
        [12, 40],
      ],
      expect: { wakeups: 1, started: 1, ended: 0 },
    },
    {
      name: 'one ended: counted as ended, its last count lost',
      before: [
        [10, 5],
        [11, 7],
      ],
      after: [[11, 9]],
      expect: { wakeups: 2, started: 0, ended: 1 },
    },
    { name: 'none', before: [], after: [], expect: { wakeups: 0, started: 0, ended: 0 } },
  ] as const
  for (const c of cases)
    test(c.name, () =>
      assert.deepEqual(
        wakeupsBetween(
          new Map(c.before.map(([p, n]) => [p, n])),
          new Map(c.after.map(([p, n]) => [p, n])),
        ),
        c.expect,
      ),
    )

  test('a real child fed one line at a time wakes at least once per line; the root is left out', async () => {
    const script = "process.stdin.on('data', (c) => process.stdout.write(c))"
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
    // The reading process is the root: only its child is read.
    try {
      await once(child, 'spawn')
      const first = childWakeups(process.pid)
      assert.equal(first.has(process.pid), false)
      assert.ok(first.has(child.pid!))
      const lines = 20
      for (let i = 0; i < lines; i++) {
        // Asleep before each line (its main thread in S state), so each line wakes it.
        while (state(child.pid!) !== 'S') await new Promise((r) => setImmediate(r))
        const echoed = once(child.stdout!, 'data')
        child.stdin!.write(`${i}\n`)
        await echoed
      }
      const { wakeups, started, ended } = wakeupsBetween(first, childWakeups(process.pid))
      assert.equal(started, 0)
      assert.equal(ended, 0)
      assert.ok(wakeups >= lines, `${wakeups} wake-ups for ${lines} lines`)
    } finally {
      child.kill()
    }
  })
})
