// Each subject's process-start budget (bridge/process-starts.ts) on its own: a sliding window by
// an injected clock, the refusal's code, status and Retry-After, subjects kept apart (an issuer
// is part of one), 0 turning it off, and subjects whose window is over forgotten. The HTTP
// paths (every era and transport, real spawns counted) are in test/http/process-starts.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { ProcessStarts } from '../../gateway/bridge/process-starts.js'
import {
  configSchema,
  DEFAULT_PROCESS_STARTS_PER_SUBJECT,
  DEFAULT_PROCESS_STARTS_WINDOW_MS,
} from '../../gateway/config/schema.js'
import { createMetrics, zeroGauges } from '../../gateway/observability/metrics.js'
import { principal } from '../helpers/principal.js'

function budget(limits: Record<string, number> = { processStartsPerSubject: 3 }) {
  const config = configSchema.parse({ servers: { s: { command: 'x' } }, limits })
  const clock = { now: 1_000_000 }
  const metrics = createMetrics(zeroGauges())
  const starts = new ProcessStarts({
    config,
    log: pino({ level: 'silent' }),
    metrics,
    now: () => clock.now,
  })
  /** Undefined when the start is counted, else the refusal's code, status and Retry-After. */
  const take = (sub = 'alice', iss?: string) => {
    try {
      starts.take('s', principal(sub, iss === undefined ? {} : { iss }))
      return undefined
    } catch (err) {
      assert.ok(err instanceof BridgeError)
      return { code: err.code, status: err.status, retryAfter: err.retryAfter, limit: err.limit }
    }
  }
  return { starts, clock, metrics, take }
}

const refused = (retryAfter: number) => ({
  code: 'process_start_limit',
  status: 429,
  retryAfter,
  limit: 'limits.processStartsPerSubject',
})

describe('process starts: a sliding window per subject', () => {
  it('defaults: 60 per 60 s', () => {
    assert.equal(DEFAULT_PROCESS_STARTS_PER_SUBJECT, 60)
    assert.equal(DEFAULT_PROCESS_STARTS_WINDOW_MS, 60_000)
    const { take } = budget({})
    for (let i = 0; i < 60; i++) assert.equal(take(), undefined, `start ${i + 1}`)
    assert.deepEqual(take(), refused(60))
  })

  it('refuses past the budget until the oldest start leaves the window, one start per one leaving', () => {
    const { clock, take } = budget()
    const t0 = clock.now
    // Starts at 0, 10 and 20 s.
    for (const at of [0, 10_000, 20_000]) {
      clock.now = t0 + at
      assert.equal(take(), undefined)
    }
    // [when, Retry-After]: the seconds until the start at 0 s leaves, rounded up, at least 1.
    const cases: [number, number][] = [
      [20_000, 40],
      [30_000, 30],
      [30_001, 30],
      [59_000, 1],
      [59_999, 1],
    ]
    for (const [at, retryAfter] of cases) {
      clock.now = t0 + at
      assert.deepEqual(take(), refused(retryAfter), `at ${at} ms`)
    }
    // At 60 s the first start is out: one more, then the one at 10 s is the oldest.
    clock.now = t0 + 60_000
    assert.equal(take(), undefined)
    assert.deepEqual(take(), refused(10))
    // Refusals are not starts: they never push the window on.
    clock.now = t0 + 70_000
    assert.equal(take(), undefined)
    assert.deepEqual(take(), refused(10))
    clock.now = t0 + 80_000
    assert.equal(take(), undefined)
    assert.deepEqual(take(), refused(40))
  })

  it('counts each subject apart: by issuer and sub', () => {
    const { take } = budget()
    for (let i = 0; i < 3; i++) assert.equal(take('alice'), undefined)
    assert.deepEqual(take('alice'), refused(60))
    // Another user, and the same sub at another issuer, are other subjects.
    for (let i = 0; i < 3; i++) {
      assert.equal(take('bob'), undefined)
      assert.equal(take('alice', 'https://other.test'), undefined)
    }
    assert.deepEqual(take('bob'), refused(60))
    assert.deepEqual(take('alice', 'https://other.test'), refused(60))
  })

  it('a refusal is counted and names its limit (the request it refuses is audited by who answers it); a start is neither', async () => {
    const { take, metrics } = budget()
    for (let i = 0; i < 3; i++) take()
    assert.deepEqual(take(), refused(60))
    take()
    const text = await metrics.registry.metrics()
    assert.match(text, /mcp_edge_subject_process_starts_refused_total\{server="s"\} 2\b/)
    // The decision is counted with the request's audit line (bridge/refused.ts), not here.
    assert.doesNotMatch(text, /mcp_edge_policy_decisions_total\{[^}]*rate_limited/)
  })

  it('check refuses as take would, and counts nothing', () => {
    const { starts, take } = budget()
    const who = principal('alice')
    for (let i = 0; i < 10; i++) starts.check('s', who)
    for (let i = 0; i < 3; i++) assert.equal(take(), undefined)
    assert.throws(() => starts.check('s', who), { code: 'process_start_limit', retryAfter: 60 })
    assert.deepEqual(take(), refused(60))
  })

  it('0: no limit, nothing kept', () => {
    const { take, starts } = budget({ processStartsPerSubject: 0 })
    for (let i = 0; i < 1000; i++) assert.equal(take(`u${i % 3}`), undefined)
    assert.equal(starts.size, 0)
  })

  it('subjects whose window is over are forgotten', () => {
    const { clock, take, starts } = budget()
    const t0 = clock.now
    for (let i = 0; i < 100; i++) {
      clock.now = t0 + i * 1000
      take(`u${i}`)
    }
    assert.equal(starts.size, 60)
    clock.now = t0 + 200_000
    assert.equal(take('late'), undefined)
    assert.equal(starts.size, 1)
  })
})
