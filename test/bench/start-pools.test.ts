// BENCH_START_POOLS: the extra session-start rows, each the default config with some pool
// settings; a setting that is not `key=integer` stops the bench before any gateway starts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { startPools } from './session-start.js'

describe('BENCH_START_POOLS', () => {
  it('is no extra row when unset or blank', () => {
    assert.deepEqual(startPools(undefined), [])
    assert.deepEqual(startPools('  '), [])
  })

  it('reads rows split by ; and settings by ,', () => {
    assert.deepEqual(startPools('burst=8; burst=16, min=2'), [{ burst: 8 }, { burst: 16, min: 2 }])
  })

  for (const bad of ['burst', 'burst=', 'burst=-1', 'burst=1.5', '=4', 'burst=8;', 'burst=x'])
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => startPools(bad), /BENCH_START_POOLS: bad setting/)
    })
})
