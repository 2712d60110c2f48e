// Each subject's share of a shared process's exits (bridge/shared-crashes.ts) on its own: one
// exit divided among the subjects in flight, a refusal once the shares in the window reach the
// allowance (code, status, Retry-After until enough charges leave), servers and subjects kept
// apart, 0 turning it off. The HTTP paths (every era and transport, real crashes) are in
// test/http/shared-crashes.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { BridgeError, exposedError } from '../../gateway/bridge/errors.js'
import { SharedCrashes } from '../../gateway/bridge/shared-crashes.js'
import { configSchema } from '../../gateway/config/schema.js'
import { createMetrics, zeroGauges } from '../../gateway/observability/metrics.js'
import { principal } from '../helpers/principal.js'

const WINDOW = 60_000

function budget(limits: Record<string, number> = { sharedCrashesPerSubject: 3 }) {
  const config = configSchema.parse({
    servers: { s: { command: 'x', mode: 'shared' } },
    limits: { sharedCrashesWindow: WINDOW, ...limits },
  })
  const clock = { now: 1_000_000 }
  const metrics = createMetrics(zeroGauges())
  const crashes = new SharedCrashes({
    config,
    log: pino({ level: 'silent' }),
    metrics,
    now: () => clock.now,
  })
  return { crashes, clock, metrics }
}

/** The Retry-After of `sub`'s refusal on `server`, or undefined when it is let through. */
function refusal(crashes: SharedCrashes, sub: string, server = 's'): number | undefined {
  try {
    crashes.check(server, principal(sub), 'tools/call')
    return undefined
  } catch (err) {
    assert.ok(err instanceof BridgeError)
    assert.equal(err.code, 'shared_crash_limit')
    assert.equal(err.status, 429)
    assert.equal(exposedError(err).code, -32029)
    assert.deepEqual(exposedError(err).data, { retryAfter: err.retryAfter })
    return err.retryAfter
  }
}

describe('SharedCrashes', () => {
  it('refuses a subject alone in flight at its allowance, with Retry-After until the oldest charge leaves', () => {
    const { crashes, clock } = budget()
    const t0 = clock.now
    for (let i = 0; i < 3; i++) {
      assert.equal(refusal(crashes, 'mallory'), undefined)
      clock.now = t0 + i * 10_000
      crashes.crashed('s', [principal('mallory')])
    }
    assert.equal(refusal(crashes, 'mallory'), 40)
    // Another subject, another server: untouched.
    assert.equal(refusal(crashes, 'bob'), undefined)
    assert.equal(refusal(crashes, 'mallory', 'other'), undefined)
    // The oldest charge left: in again.
    clock.now = t0 + WINDOW
    assert.equal(refusal(crashes, 'mallory'), undefined)
  })

  it('divides an exit among the subjects in flight: the attacker, always there, is refused first', () => {
    const { crashes } = budget()
    // Two exits with a bystander in flight (a half each), then the attacker alone.
    crashes.crashed('s', [principal('mallory'), principal('victim')])
    crashes.crashed('s', [principal('mallory'), principal('victim')])
    crashes.crashed('s', [principal('mallory')])
    assert.equal(refusal(crashes, 'mallory'), undefined, 'at 2 of 3')
    crashes.crashed('s', [principal('mallory')])
    assert.equal(refusal(crashes, 'mallory'), WINDOW / 1000)
    assert.equal(refusal(crashes, 'victim'), undefined, 'at 1 of 3')
  })

  it('thirds add up to a whole: three subjects in flight at three exits each reach 1', () => {
    const { crashes } = budget({ sharedCrashesPerSubject: 1 })
    const three = [principal('a'), principal('b'), principal('c')]
    crashes.crashed('s', three)
    crashes.crashed('s', three)
    assert.equal(refusal(crashes, 'a'), undefined)
    crashes.crashed('s', three)
    for (const sub of ['a', 'b', 'c']) assert.equal(refusal(crashes, sub), WINDOW / 1000)
  })

  it('Retry-After waits for as many charges to leave as bring the total below the allowance', () => {
    const { crashes, clock } = budget({ sharedCrashesPerSubject: 2 })
    const t0 = clock.now
    // Halves at t0, t0+10 s, t0+20 s, t0+30 s: 2 in all; allowed again once the first leaves.
    for (let i = 0; i < 4; i++) {
      clock.now = t0 + i * 10_000
      crashes.crashed('s', [principal('m'), principal(`other-${i}`)])
    }
    assert.equal(refusal(crashes, 'm'), 30)
    // A whole charge as well (3 in all): three halves must leave to bring it below 2.
    crashes.crashed('s', [principal('m')])
    assert.equal(refusal(crashes, 'm'), 50)
  })

  it('an exit with nothing in flight charges no one; 0 turns the limit off', () => {
    const { crashes } = budget()
    crashes.crashed('s', [])
    assert.equal(crashes.size, 0)
    const off = budget({ sharedCrashesPerSubject: 0 }).crashes
    for (let i = 0; i < 10; i++) off.crashed('s', [principal('m')])
    assert.equal(refusal(off, 'm'), undefined)
    assert.equal(off.size, 0)
  })

  it('charges that left the window are forgotten at the next exit', () => {
    const { crashes, clock } = budget()
    crashes.crashed('s', [principal('a'), principal('b')])
    assert.equal(crashes.size, 2)
    clock.now += WINDOW
    crashes.crashed('s', [principal('c')])
    assert.equal(crashes.size, 1)
  })
})

/** A budget whose log lines are kept (parsed) for the test to read. */
function logged(limits: Record<string, number>) {
  const lines: Record<string, unknown>[] = []
  const config = configSchema.parse({
    servers: { s: { command: 'x', mode: 'shared' } },
    limits: { sharedCrashesWindow: WINDOW, ...limits },
  })
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) })
  const clock = { now: 1_000_000 }
  return { crashes: new SharedCrashes({ config, log, now: () => clock.now }), lines, clock }
}

const many = (n: number, prefix = 'u') =>
  Array.from({ length: n }, (_, i) => principal(`${prefix}${i}`))

describe('SharedCrashes: bounded for any number of subjects in flight', () => {
  it('an exit line names the first 10 subjects and counts them all', () => {
    const { crashes, lines } = logged({ sharedCrashesSubjects: 1000 })
    crashes.crashed('s', many(500))
    assert.equal(lines.length, 1)
    assert.deepEqual(
      lines[0]!.blamed,
      Array.from({ length: 10 }, (_, i) => `u${i}`),
    )
    assert.equal(lines[0]!.blamedCount, 500)
    assert.equal(lines[0]!.share, 1 / 500)
    assert.equal(crashes.size, 500)
    // A few: all named.
    crashes.crashed('s', many(3, 'v'))
    assert.deepEqual(lines[1]!.blamed, ['v0', 'v1', 'v2'])
    assert.equal(lines[1]!.blamedCount, 3)
  })

  it('more subjects in flight than limits.sharedCrashesSubjects: no one charged, one bounded line', () => {
    const { crashes, lines } = logged({ sharedCrashesSubjects: 100, sharedCrashesPerSubject: 1 })
    const crowd = many(101)
    for (let i = 0; i < 5; i++) crashes.crashed('s', crowd)
    assert.equal(crashes.size, 0)
    for (const p of crowd) assert.equal(refusal(crashes, p.sub), undefined)
    assert.equal(lines.length, 5)
    for (const line of lines) {
      assert.equal((line.blamed as string[]).length, 10)
      assert.equal(line.blamedCount, 101)
      assert.equal(line.limit, 100)
      assert.match(String(line.msg), /charged to no one/)
    }
    // At the cap: charged as ever.
    crashes.crashed('s', crowd.slice(0, 100))
    assert.equal(crashes.size, 100)
  })

  it('a server keeps the charges of sharedCrashesSubjects subjects at most: bystanders forgotten first, the culprit kept', () => {
    const { crashes } = logged({ sharedCrashesSubjects: 10, sharedCrashesPerSubject: 3 })
    // The culprit in flight at every exit, with nine new bystanders each time (a tenth each).
    for (let i = 0; i < 29; i++) {
      crashes.crashed('s', [principal('mallory'), ...many(9, `b${i}-`)])
      assert.ok(crashes.size <= 10, `size ${crashes.size} at exit ${i}`)
    }
    assert.equal(refusal(crashes, 'mallory'), undefined, 'at 2.9 of 3')
    crashes.crashed('s', [principal('mallory'), ...many(9, 'last-')])
    assert.equal(refusal(crashes, 'mallory'), WINDOW / 1000)
    // Other servers keep their own: one server's crowd forgets nothing of another's.
    crashes.crashed('t', [principal('eve')])
    for (let i = 0; i < 5; i++) crashes.crashed('s', many(10, `c${i}-`))
    assert.equal(crashes.size, 11)
    for (let i = 0; i < 2; i++) crashes.crashed('t', [principal('eve')])
    assert.equal(refusal(crashes, 'eve', 't'), WINDOW / 1000)
  })
})
