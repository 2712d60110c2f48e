// A start-up step that a stop abandons (gateway/timeout.ts `unlessAborted`): its outcome by
// when the signal fires relative to the step, and what becomes of a result that came too late.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { unlessAborted } from '../../gateway/timeout.js'

type Outcome = { value: string } | { error: string }

/**
 * Runs a step that settles as `step` says, the signal aborted `abort` (before the call, before
 * the step settles, after it, or never); returns the outcome and what was abandoned.
 */
async function run(
  step: 'resolves' | 'rejects',
  abort: 'before' | 'during' | 'after' | 'never',
): Promise<{ outcome: Outcome; abandoned: string[] }> {
  const controller = new AbortController()
  const reason = new Error('SIGTERM during start-up')
  const abandoned: string[] = []
  let settle!: () => void
  const p = new Promise<string>((resolve, reject) => {
    settle = () => (step === 'resolves' ? resolve('store') : reject(new Error('refused')))
  })
  if (abort === 'before') controller.abort(reason)
  const result = unlessAborted(p, controller.signal, (v) => abandoned.push(v))
  const outcome = result.then(
    (value): Outcome => ({ value }),
    (err: Error): Outcome => ({ error: err.message }),
  )
  if (abort === 'during') controller.abort(reason)
  settle()
  await p.catch(() => {})
  if (abort === 'after') controller.abort(reason)
  return { outcome: await outcome, abandoned }
}

describe('unlessAborted', () => {
  const stopped = { error: 'SIGTERM during start-up' }
  const cases = [
    { step: 'resolves', abort: 'never', outcome: { value: 'store' }, abandoned: [] },
    { step: 'resolves', abort: 'after', outcome: { value: 'store' }, abandoned: [] },
    { step: 'resolves', abort: 'during', outcome: stopped, abandoned: ['store'] },
    { step: 'resolves', abort: 'before', outcome: stopped, abandoned: ['store'] },
    { step: 'rejects', abort: 'never', outcome: { error: 'refused' }, abandoned: [] },
    { step: 'rejects', abort: 'during', outcome: stopped, abandoned: [] },
    { step: 'rejects', abort: 'before', outcome: stopped, abandoned: [] },
  ] as const
  for (const c of cases)
    it(`a step that ${c.step}, aborted ${c.abort}: ${JSON.stringify(c.outcome)}`, async () => {
      const r = await run(c.step, c.abort)
      assert.deepEqual(r, { outcome: c.outcome, abandoned: c.abandoned })
    })

  it('without a signal: the step itself', async () => {
    assert.equal(await unlessAborted(Promise.resolve('store'), undefined), 'store')
  })
})
