// A process flooding the log: what it writes costs a bounded number of log lines. Its stderr
// past `stderr.linesPerWindow` and the warnings about its stdout past `warnings.linesPerWindow`
// (disguised notifications, lines past maxMessageBytes, lines that are not JSON-RPC) are counted,
// told in one line when the window ends (or the stream does), and counted for the metric
// (`onsuppressed`); the last `stderr.keepLast` stderr lines are logged then, so a crash's last
// words are there. The user's secret is blotted from every line written, late ones included.
// Real processes (node -e) through spawnChild; windows of an hour, so a window ends only when
// the stream does (or, in the timer case, the test waits for the line that says so).
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { spawnChild, type SuppressedSource } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'
import { waitFor } from '../helpers/wait-for.js'

const SECRET = 'ghp_R8xk2Lq9Vb7Tz0Wm4Yc1Nd6Pf3Hs5Ja8Ue2GiQw7Er'
const HOUR = 3_600_000

interface Entry {
  level: number
  msg: string
  stderr?: string
  late?: boolean
  suppressed?: number
  method?: string
}

interface Run {
  entries: Entry[]
  suppressed: Record<SuppressedSource, number>
  close(): Promise<void>
  exited: Promise<void>
}

async function run(script: string, server: Record<string, unknown>): Promise<Run> {
  const config = configSchema.parse({
    servers: { f: { command: process.execPath, args: ['-e', script], ...server } },
  }).servers.f!
  const entries: Entry[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') entries.push(JSON.parse(l))
      done()
    },
  })
  const child = await spawnChild(config, pino({ level: 'debug' }, sink), {}, [SECRET])
  const suppressed = { stderr: 0, warnings: 0 }
  child.onsuppressed = (source, n) => {
    suppressed[source] += n
  }
  return { entries, suppressed, close: () => child.close(), exited: child.exited }
}

function noSecret(entries: Entry[]): void {
  for (const e of entries) {
    const text = JSON.stringify(e)
    for (let i = 0; i + 8 <= SECRET.length; i++)
      assert.ok(!text.includes(SECRET.slice(i, i + 8)), `the secret shows in ${text}`)
  }
}

const stderrLines = (entries: Entry[]) => entries.filter((e) => e.msg === 'server stderr')
const summaries = (entries: Entry[], what: string) =>
  entries.filter((e) => e.msg.includes(`more ${what}`) && e.msg.includes('suppressed'))

describe('a process flooding its stderr', () => {
  it('5001 lines: 5 logged, one line counting 4993 more, then the last 3 (its last words)', async () => {
    const script = `
      let text = ''
      for (let i = 0; i < 5000; i++) text += 'line ' + i + ' ${SECRET}\\n'
      process.stderr.write(text + 'fatal: ${SECRET} boom\\n', () => process.exit(3))`
    const r = await run(script, { stderr: { linesPerWindow: 5, window: HOUR, keepLast: 3 } })
    await r.exited
    // The stream's end ends the window (stderr is not waited for with the process's exit).
    await waitFor(() => summaries(r.entries, 'server stderr lines').length > 0, 'the count')
    const lines = stderrLines(r.entries)
    assert.deepEqual(
      lines.map((e) => [e.stderr, e.late]),
      [
        ...[0, 1, 2, 3, 4].map((i) => [`line ${i} [redacted]`, undefined]),
        ['line 4998 [redacted]', true],
        ['line 4999 [redacted]', true],
        ['fatal: [redacted] boom', true],
      ],
    )
    const [summary, ...more] = summaries(r.entries, 'server stderr lines')
    assert.equal(more.length, 0)
    assert.equal(summary!.suppressed, 4993)
    assert.match(summary!.msg, /^4993 more server stderr lines suppressed/)
    // The count comes before the late lines it stands between.
    assert.ok(r.entries.indexOf(summary!) < r.entries.indexOf(lines[5]!))
    assert.equal(r.suppressed.stderr, 4993)
    assert.equal(r.entries.length, 9)
    noSecret(r.entries)
  })

  it('a secret split over a line pushed out of the kept ones and a kept one, or over two kept ones, is blotted', async () => {
    const half = SECRET.length / 2
    const [a, b] = [SECRET.slice(0, half), SECRET.slice(half)]
    const text = ['first', 'x', 'y', `out ${a}`, `${b} kept`, `kept ${a}`, `${b} last`, ''].join(
      '\n',
    )
    const script = `process.stderr.write(${JSON.stringify(text)}, () => process.exit(0))`
    const r = await run(script, { stderr: { linesPerWindow: 1, window: HOUR, keepLast: 3 } })
    await r.exited
    await waitFor(() => summaries(r.entries, 'server stderr lines').length > 0, 'the count')
    assert.deepEqual(
      stderrLines(r.entries).map((e) => e.late ?? false),
      [false, true, true, true],
    )
    assert.equal(summaries(r.entries, 'server stderr lines')[0]!.suppressed, 3)
    noSecret(r.entries)
  })

  it('keepLast 0: only the count', async () => {
    const script = `process.stderr.write('a\\nb\\nc\\nd\\n', () => process.exit(0))`
    const r = await run(script, { stderr: { linesPerWindow: 1, window: HOUR, keepLast: 0 } })
    await r.exited
    await waitFor(() => summaries(r.entries, 'server stderr lines').length > 0, 'the count')
    assert.deepEqual(
      stderrLines(r.entries).map((e) => e.stderr),
      ['a'],
    )
    assert.equal(summaries(r.entries, 'server stderr lines')[0]!.suppressed, 3)
    assert.equal(r.suppressed.stderr, 3)
  })

  it('a process that goes quiet (and lives on): the count when its window ends, no line needed', async () => {
    const script = `
      let text = ''
      for (let i = 0; i < 20; i++) text += 'quiet ' + i + ' ${SECRET}\\n'
      process.stderr.write(text)
      process.stdin.resume()`
    const r = await run(script, { stderr: { linesPerWindow: 5, window: 100, keepLast: 2 } })
    try {
      await waitFor(() => summaries(r.entries, 'server stderr lines').length > 0, 'the count')
      assert.equal(summaries(r.entries, 'server stderr lines')[0]!.suppressed, 13)
      assert.deepEqual(
        stderrLines(r.entries)
          .slice(5)
          .map((e) => [e.stderr, e.late]),
        [
          ['quiet 18 [redacted]', true],
          ['quiet 19 [redacted]', true],
        ],
      )
      assert.equal(r.suppressed.stderr, 13)
      noSecret(r.entries)
    } finally {
      await r.close()
    }
  })
})

describe('a process flooding its stdout with what the gateway drops', () => {
  it('2003 bad lines: 10 warnings, one line counting 1993 more at its exit', async () => {
    // Lines past maxMessageBytes (64 KiB here; the first a reply whose id is the secret),
    // disguised notifications, lines that are not JSON-RPC: each a warning (debug for the last).
    const script = `
      const fs = require('node:fs')
      const out = []
      out.push(JSON.stringify({ jsonrpc: '2.0', id: '${SECRET}', result: 'x'.repeat(70000) }))
      for (let i = 0; i < 999; i++) out.push(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/Tools/list_changed' }))
      for (let i = 0; i < 1000; i++) out.push('not json ' + i)
      for (let i = 0; i < 3; i++) out.push('x'.repeat(70000))
      fs.writeSync(1, out.join('\\n') + '\\n')`
    const r = await run(script, {
      maxMessageBytes: 65_536,
      warnings: { linesPerWindow: 10, window: HOUR },
    })
    await r.exited
    const told = summaries(r.entries, 'warnings about what the server process wrote')
    assert.equal(told.length, 1)
    assert.equal(told[0]!.suppressed, 1993)
    assert.equal(r.suppressed.warnings, 1993)
    // Warnings (40) and debug lines (20) within the window's 10, plus the count.
    const written = r.entries.filter((e) => e.level >= 20 && e.level <= 40)
    assert.equal(written.length, 11)
    assert.equal((r.entries[0] as { reply?: unknown }).reply, '[redacted]')
    assert.equal(r.entries.filter((e) => e.msg.includes('disguise')).length, 9)
    noSecret(r.entries)
  })

  it('within the budget every warning is written and nothing is counted', async () => {
    const script = `
      const fs = require('node:fs')
      fs.writeSync(1, 'not json\\n' + 'x'.repeat(70000) + '\\n')`
    const r = await run(script, { maxMessageBytes: 65_536 })
    await r.exited
    assert.deepEqual(
      r.entries.map((e) => e.msg),
      [
        'server process wrote a line that is not a JSON-RPC message',
        'server process wrote a message larger than maxMessageBytes; dropped',
      ],
    )
    assert.equal(r.suppressed.warnings, 0)
  })
})
