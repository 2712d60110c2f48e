// The audit line is built by hand (audit.ts), not by a pino call: it must stay the line pino
// writes for `info(event, 'audit')`, byte for byte, through the main logger's stream (stdout)
// and through a destination of its own (stderr, a file), whatever the main log level.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { type AuditEvent, createAuditLog } from '../../gateway/observability/audit.js'
import { createLogger } from '../../gateway/observability/logger.js'

const base: AuditEvent = {
  sub: 'alice',
  iss: 'https://idp.example',
  clientId: undefined,
  server: 'echo',
  method: 'tools/call',
  name: 'echo',
  decision: 'allow',
  rule: 'policies/team.yaml:3 tools/call echo',
  durationMs: 1.25,
  outcome: 'ok',
}

const cases: { name: string; event: AuditEvent }[] = [
  { name: 'an allowed call, no client id', event: base },
  { name: 'no name, a client id', event: { ...base, name: undefined, clientId: 'cli' } },
  {
    name: 'quotes, backslashes, control characters',
    event: { ...base, sub: 'a"b\\c', rule: 'x\ny\tz\u0001', outcome: 'error -32603' },
  },
  {
    name: 'non-ASCII, U+2028, an emoji',
    event: { ...base, sub: 'zoë\u2028😀', name: 'ツール' },
  },
  { name: 'a field over 100 characters', event: { ...base, name: `${'n'.repeat(150)}"` } },
  { name: 'a non-finite duration', event: { ...base, durationMs: Number.NaN } },
  { name: 'no duration (refused)', event: { ...base, decision: 'deny', durationMs: undefined } },
  {
    name: 'credentials',
    event: {
      ...base,
      credentials: [
        { name: 'GITHUB_TOKEN', source: 'exchange' },
        { name: 'API_KEY', source: 'secret' },
      ],
    },
  },
]

/** A line's time, which differs between two lines written a moment apart. */
const untimed = (line: string) => line.replace(/"time":"[^"]*"/, '"time":"T"')

function capture(): { lines: string[]; write(line: string): void } {
  const lines: string[] = []
  return { lines, write: (line: string) => void lines.push(line) }
}

describe('audit line to stdout (the main logger stream)', () => {
  for (const c of cases) {
    it(`${c.name}: as pino's audit child logger writes it`, () => {
      const out = capture()
      // Main log level error: audit lines are written whatever it is.
      const main = createLogger({ level: 'error', bufferBytes: 0, flushInterval: 1000 }, out)
      createAuditLog('stdout', main).record(c.event)
      main.child({ log: 'audit' }, { level: 'info' }).info(c.event, 'audit')
      assert.equal(out.lines.length, 2)
      assert.equal(untimed(out.lines[0]!), untimed(out.lines[1]!))
      assert.deepEqual(JSON.parse(out.lines[0]!).sub, c.event.sub)
    })
  }

  it('a lone surrogate is escaped, as the main logger escaped it', () => {
    const out = capture()
    const main = createLogger({ level: 'info', bufferBytes: 0, flushInterval: 1000 }, out)
    const event = { ...base, sub: 'a\ud800b' }
    createAuditLog('stdout', main).record(event)
    main.child({ log: 'audit' }, { level: 'info' }).info(event, 'audit')
    assert.equal(untimed(out.lines[0]!), untimed(out.lines[1]!))
    assert.ok(out.lines[0]!.includes('"sub":"a\\ud800b"'))
  })

  it('pretty format: the readable line is the one pino makes', () => {
    const out = capture()
    const o = { level: 'info', bufferBytes: 0, flushInterval: 1000, format: 'pretty' as const }
    const main = createLogger(o, out)
    createAuditLog('stdout', main).record(cases[7]!.event)
    main.child({ log: 'audit' }, { level: 'info' }).info(cases[7]!.event, 'audit')
    const clock = /\d\d:\d\d:\d\d\.\d+/
    assert.equal(out.lines[0]!.replace(clock, 'T'), out.lines[1]!.replace(clock, 'T'))
    assert.match(out.lines[0]!, /GITHUB_TOKEN/)
  })

  it('shares the main stream: lines keep the order they were written in', () => {
    const out = capture()
    const main = createLogger({ level: 'info', bufferBytes: 0, flushInterval: 1000 }, out)
    const audit = createAuditLog('stdout', main)
    main.info('one')
    audit.record(base)
    main.info('two')
    assert.deepEqual(
      out.lines.map((l) => JSON.parse(l).msg),
      ['one', 'audit', 'two'],
    )
    assert.equal(JSON.parse(out.lines[1]!).log, 'audit')
  })
})

describe('audit line to a destination of its own (stderr, a file)', () => {
  const reference = (dest: { write(line: string): void }) =>
    pino(
      {
        level: 'info',
        base: { service: 'mcp-edge', log: 'audit' },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      dest,
    )
  for (const c of cases) {
    it(`${c.name}: as pino writes it`, () => {
      const ours = capture()
      const theirs = capture()
      const main = createLogger({ level: 'info', bufferBytes: 0, flushInterval: 1000 }, capture())
      createAuditLog('/unused', main, ours).record(c.event)
      reference(theirs).info(c.event, 'audit')
      assert.equal(untimed(ours.lines[0]!), untimed(theirs.lines[0]!))
    })
  }

  it('off: nothing is written', () => {
    const out = capture()
    const main = createLogger({ level: 'info', bufferBytes: 0, flushInterval: 1000 }, out)
    const audit = createAuditLog('off', main)
    audit.record(base)
    audit.flush()
    assert.deepEqual(out.lines, [])
  })
})

describe('audit line time', () => {
  it("is the clock's, to the millisecond, in every line (mocked clock)", (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.parse('2026-01-02T03:04:05.006Z') })
    const out = capture()
    const main = createLogger({ level: 'info', bufferBytes: 0, flushInterval: 1000 }, out)
    const own = capture()
    const audits = [createAuditLog('stdout', main), createAuditLog('/unused', main, own)]
    const times: string[] = []
    for (const step of [0, 0, 1, 999, 0, 86_400_000]) {
      t.mock.timers.tick(step)
      for (const a of audits) a.record(base)
      times.push(new Date(Date.now()).toISOString())
    }
    for (const lines of [out.lines, own.lines])
      assert.deepEqual(
        lines.map((l) => JSON.parse(l).time),
        times,
      )
  })
})
