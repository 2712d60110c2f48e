// Timeouts of one duration on one timer (bridge/timeouts.ts): each fires once, in order, never
// after its cancel; one timer serves many; the timer holds the process only while one waits.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RequestTimeouts, Timeouts } from '../../gateway/bridge/timeouts.js'
import { destroyed, timersMade } from '../helpers/timers-made.js'

/** A clock the test moves; Node's timer only says when to look at it. */
function clock() {
  let t = 1_000
  return { now: () => t, set: (v: number) => void (t = v) }
}

/** Resolves once `fired` holds `n` names (the real timer runs the due check). */
async function until(fired: string[], n: number): Promise<void> {
  while (fired.length < n) await new Promise((resolve) => setTimeout(resolve, 5))
}

describe('Timeouts', () => {
  it('fires what is due, in order of adding, and nothing cancelled', async () => {
    const c = clock()
    const q = new Timeouts(10, c.now)
    const fired: string[] = []
    const a = q.add(() => fired.push('a'))
    c.set(1_003)
    const b = q.add(() => fired.push('b'))
    const x = q.add(() => fired.push('x'))
    c.set(1_004)
    q.add(() => fired.push('c'))
    x.cancel()
    // Due by the clock: a (1010), b (1013), c (1014); x was cancelled.
    c.set(1_020)
    await until(fired, 3)
    assert.deepEqual(fired, ['a', 'b', 'c'])
    // A cancel after it fired, and a second one, change nothing.
    a.cancel()
    b.cancel()
    b.cancel()
    x.cancel()
    assert.deepEqual(fired, ['a', 'b', 'c'])
  })

  it('waits for entries not yet due when the timer fires (armed again for the oldest)', async () => {
    const c = clock()
    const q = new Timeouts(50, c.now)
    const fired: string[] = []
    q.add(() => fired.push('early'))
    c.set(1_040)
    q.add(() => fired.push('late'))
    // The timer fires (50 ms of real time): `early` is due, `late` (1090) is not, by the clock
    // or by the timer; it is armed again for the 40 ms `late` still has.
    c.set(1_051)
    await until(fired, 1)
    assert.deepEqual(fired, ['early'])
    await until(fired, 2)
    assert.deepEqual(fired, ['early', 'late'])
  })

  it('a timeout added or cancelled by one that fires is honoured', async () => {
    const c = clock()
    const q = new Timeouts(10, c.now)
    const fired: string[] = []
    let second: { cancel(): void } | undefined
    q.add(() => {
      fired.push('first')
      second?.cancel()
      q.add(() => fired.push('added'))
    })
    second = q.add(() => fired.push('second'))
    c.set(1_010)
    await until(fired, 1)
    c.set(1_020)
    await until(fired, 2)
    assert.deepEqual(fired, ['first', 'added'])
  })

  it('many timeouts share one timer; none is kept once all are cancelled', async () => {
    const c = clock()
    const q = new Timeouts(60_000, c.now)
    await timersMade((made) => {
      for (let i = 0; i < 1_000; i++) q.add(() => assert.fail('cancelled')).cancel()
      assert.equal(made.length, 1, 'one timer for every timeout')
      // Nothing waits: it does not hold the process open.
      assert.equal(made[0]!.hasRef(), false)
      const t = q.add(() => {})
      assert.equal(made[0]!.hasRef(), true, 'held while a timeout waits')
      t.cancel()
      assert.equal(made[0]!.hasRef(), false)
    })
  })

  it('released by its owner: the timer goes at once, unless a timeout still waits', async () => {
    const q = new Timeouts(60_000)
    await timersMade((made) => {
      const waiting = q.add(() => assert.fail('cancelled'))
      q.release()
      // One still waits: kept.
      assert.equal(made[0]!.hasRef(), true)
      waiting.cancel()
      q.release()
      // Cleared: a cleared timer is neither ref'd nor due.
      assert.equal(made[0]!.hasRef(), false)
      assert.equal(destroyed(made[0]!), true)
      // Used again after a release: a new timer.
      q.add(() => {}).cancel()
      assert.equal(made.length, 2)
    })
  })

  it('a timer that never fired (a mocked clock, reset) is replaced a period later', async () => {
    const c = clock()
    const q = new Timeouts(10, c.now)
    const fired: string[] = []
    const real = globalThis.setTimeout
    // The first timer is swallowed: it never fires.
    globalThis.setTimeout = (() => ({ ref() {}, unref() {} })) as unknown as typeof setTimeout
    try {
      q.add(() => fired.push('lost'))
    } finally {
      globalThis.setTimeout = real
    }
    c.set(1_021)
    q.add(() => fired.push('next'))
    c.set(1_040)
    await until(fired, 2)
    assert.deepEqual(fired, ['lost', 'next'])
  })
})

describe('Timeouts on a mocked clock', () => {
  it('a timer moved by the test fires what was due by it, whatever the wall clock says', (t) => {
    const q = new Timeouts(300)
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const fired: string[] = []
    try {
      q.add(() => fired.push('slow'))
      const quick = q.add(() => fired.push('quick'))
      quick.cancel()
      t.mock.timers.tick(299)
      assert.deepEqual(fired, [])
      t.mock.timers.tick(1)
      assert.deepEqual(fired, ['slow'])
    } finally {
      t.mock.timers.reset()
    }
  })
})

describe('RequestTimeouts', () => {
  it('one timer per duration: a new duration releases the old one', async () => {
    await timersMade((made) => {
      const r = new RequestTimeouts()
      r.add(60_000, () => assert.fail('cancelled')).cancel()
      r.add(60_000, () => assert.fail('cancelled')).cancel()
      assert.equal(made.length, 1)
      // The setting changed: a timer of the new duration, the old one gone at once.
      const t = r.add(30_000, () => assert.fail('cancelled'))
      assert.equal(made.length, 2)
      assert.equal(destroyed(made[0]!), true)
      assert.equal(made[1]!.hasRef(), true)
      t.cancel()
    })
  })

  it('released by its owner: the timer goes once no timeout waits', async () => {
    await timersMade((made) => {
      const r = new RequestTimeouts()
      // Nothing added: nothing to release.
      r.release()
      const waiting = r.add(60_000, () => assert.fail('cancelled'))
      r.release()
      assert.equal(destroyed(made[0]!), false)
      waiting.cancel()
      r.release()
      assert.equal(destroyed(made[0]!), true)
    })
  })

  it('the timeout of a duration changed while it waits still fires', async () => {
    const fired: string[] = []
    const r = new RequestTimeouts()
    r.add(5, () => fired.push('old'))
    r.add(60_000, () => fired.push('new')).cancel()
    await until(fired, 1)
    assert.deepEqual(fired, ['old'])
  })
})
