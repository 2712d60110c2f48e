// BENCH_PROFILE: which rows' gateways run with --cpu-prof (rows.ts), as a table of cases.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { benchRows, profiledRows } from './rows.js'

/** The keys of the rows benchRows marks profiled for a BENCH_PROFILE value. */
const profiled = (value: string | undefined) =>
  benchRows({ root: '/r', echoJs: '/r/echo.js', concurrency: 16, profile: profiledRows(value) })
    .filter((r) => r.profiled)
    .map((r) => r.key)

describe('BENCH_PROFILE', () => {
  const cases: [string | undefined, string[]][] = [
    [undefined, []],
    ['', []],
    ['0', []],
    // The historical value: the session-mode row, 16 in flight on one session.
    ['1', ['edge-1s']],
    ['edge-2026-1s', ['edge-2026-1s']],
    ['edge-2026, edge-2026-1s', ['edge-2026', 'edge-2026-1s']],
    ['edge-2026-traced-1s', ['edge-2026-traced-1s']],
    // Not one gateway process: the peers, the SDK floor, an endpoint, stdio; never profiled.
    ['supergateway-1s,sdk,aggregate-1s,stdio', []],
  ]
  for (const [value, keys] of cases) {
    it(`${JSON.stringify(value)} → ${keys.join(', ') || 'none'}`, () => {
      assert.deepEqual(profiled(value).sort(), [...keys].sort())
    })
  }
})
