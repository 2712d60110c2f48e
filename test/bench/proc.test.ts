import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { readFileSync } from 'node:fs'
import { arenaKb, childWakeups, wakeupsBetween } from './proc.js'

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

describe("glibc's per-thread malloc arenas in smaps", () => {
  // One smaps(5) entry: the header line and the Rss line (the fields arenaKb reads).
  const entry = (range: string, perms: string, rssKb: number, rest = '00000000 00:00 0') =>
    `${range} ${perms} ${rest}\nSize: 4 kB\nRss: ${rssKb} kB\nAnonymous: ${rssKb} kB\n`
  const cases = [
    {
      name: 'a heap still growing: its rw-p part on a 64 MB boundary, the rest ---p to 64 MB',
      maps: [
        entry('7f1234000000-7f1234a00000', 'rw-p', 3000),
        entry('7f1234a00000-7f1238000000', '---p', 0),
      ],
      kb: 3000,
    },
    {
      name: 'a heap fully grown: 64 MB rw-p, nothing reserved after it',
      maps: [entry('7f1240000000-7f1244000000', 'rw-p', 500)],
      kb: 500,
    },
    {
      name: 'two arenas summed, with the main arena ([heap]) and the stack left out',
      maps: [
        entry('55d0c0000000-55d0c0500000', 'rw-p', 4800, '00000000 00:00 0 [heap]'),
        entry('7f1234000000-7f1234a00000', 'rw-p', 3000),
        entry('7f1234a00000-7f1238000000', '---p', 0),
        entry('7f1240000000-7f1244000000', 'rw-p', 500),
        entry('7ffc00000000-7ffc00021000', 'rw-p', 100, '00000000 00:00 0 [stack]'),
      ],
      kb: 3500,
    },
    {
      name: 'a boundary-aligned mapping whose reservation runs past 64 MB (V8 reserves so): not one',
      maps: [
        entry('7f1234000000-7f1234040000', 'rw-p', 256),
        entry('7f1234040000-7f123c000000', '---p', 0),
      ],
      kb: 0,
    },
    {
      name: 'not on a 64 MB boundary: not one',
      maps: [
        entry('7f1234040000-7f1234a00000', 'rw-p', 3000),
        entry('7f1234a00000-7f1238000000', '---p', 0),
      ],
      kb: 0,
    },
    {
      name: 'a file mapping on a boundary: not one',
      maps: [
        entry('7f1240000000-7f1244000000', 'rw-p', 500, '00000000 08:01 1234 /usr/lib/libx.so'),
      ],
      kb: 0,
    },
    {
      name: 'read-only or executable on a boundary: not one',
      maps: [
        entry('7f1240000000-7f1244000000', 'r--p', 500),
        entry('7f1248000000-7f124c000000', 'r-xp', 500),
      ],
      kb: 0,
    },
    {
      name: 'the reserved part not adjacent: not one',
      maps: [
        entry('7f1234000000-7f1234a00000', 'rw-p', 3000),
        entry('7f1234b00000-7f1238000000', '---p', 0),
      ],
      kb: 0,
    },
    { name: 'empty', maps: [], kb: 0 },
  ]
  for (const c of cases) test(c.name, () => assert.equal(arenaKb(c.maps.join('')), c.kb))

  // glibc gives a thread that mallocs an arena of its own; node's platform threads do at start.
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
    ?.glibcVersionRuntime
  test('a node process on glibc has some', { skip: glibc === undefined && 'not glibc' }, () => {
    assert.ok(arenaKb(readFileSync('/proc/self/smaps', 'utf8')) > 0)
  })
})
