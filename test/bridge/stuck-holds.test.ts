// A process that survives SIGKILL (uninterruptible sleep on a hung mount) counts toward the
// bounds until it exits, however long: it still holds what it holds. But nothing may wait for
// it: once the stop ladder on it is over, an open at a bound in its scope ends an idle session
// or is refused, rather than hanging for ever (review42 found makeRoom and reclaimIdle waiting
// on its `gone`). No process here can be made to survive SIGKILL, so these children are
// stand-ins with the `Child` surface EndingHolds reads: `exited` and `close()`.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { scopeOf, SubjectBounds, type Hold, type Holders } from '../../gateway/bridge/bounds.js'
import type { Child } from '../../gateway/bridge/child.js'
import { EndingHolds } from '../../gateway/bridge/ending-holds.js'
import { HoldCounts } from '../../gateway/bridge/hold-counts.js'
import { validateConfig } from '../../gateway/config/load.js'

/** A child whose stop ladder ends when `ladderOver` is called, and which exits on `exit` (or never). */
function child() {
  let exit!: () => void
  let ladderOver!: () => void
  const exited = new Promise<void>((r) => {
    exit = r
  })
  const ladder = new Promise<void>((r) => {
    ladderOver = r
  })
  let closes = 0
  const c = {
    exited,
    close: () => {
      closes++
      return ladder
    },
  } as unknown as Child
  return { c, exit, ladderOver, closes: () => closes }
}

/** Resolves once every immediate queued now has run (the stuck check runs an immediate later). */
const turn = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)))

const hold = (owner: string): Hold => ({ server: 's', owner })

describe('a hold whose process survives SIGKILL', () => {
  it('counts on after its stop ladder is over, but is no longer waited for; its exit, however late, ends it', async () => {
    const counts = new HoldCounts()
    let changed = 0
    const holds = new EndingHolds<Hold>(counts, () => changed++)
    const h = hold('alice')
    const k = child()
    let settled = false
    void holds.add(h, k.c).then(() => {
      settled = true
    })
    await turn()
    assert.equal(counts.of({ owner: 'alice' }), 1)
    assert.equal(holds.ending(scopeOf({})).length, 1, 'waited for while its ladder runs')
    assert.equal(settled, false)
    k.ladderOver()
    await turn()
    assert.equal(settled, true, 'add resolves once the ladder is over')
    assert.equal(counts.of({ owner: 'alice' }), 1, 'still counted: it holds what it holds')
    assert.equal(holds.count(scopeOf({ owner: 'alice' })), 1)
    assert.deepEqual(holds.ending(scopeOf({})), [], 'no longer waited for')
    assert.equal(changed, 1, 'waiting opens are told to look again')
    // Told again (a second owner path): the same hold, nothing counted twice.
    await holds.add(h, k.c)
    assert.equal(counts.of({}), 1)
    k.exit()
    await turn()
    assert.equal(counts.of({}), 0, 'gone at last: no longer counted')
    assert.equal(holds.count(scopeOf({})), 0)
    assert.equal(changed, 2)
  })

  it('a process that does go is never taken for a stuck one, whichever settles first', async () => {
    for (const order of ['exit first', 'ladder first'] as const) {
      const counts = new HoldCounts()
      let changed = 0
      const holds = new EndingHolds<Hold>(counts, () => changed++)
      const k = child()
      const added = holds.add(hold('bob'), k.c)
      if (order === 'exit first') {
        k.exit()
        await turn()
        assert.equal(counts.of({}), 1, `${order}: counted until the ladder on its group is over`)
        k.ladderOver()
      } else {
        // The ladder resolves once the process is gone: the exit is seen in the same turn.
        k.ladderOver()
        k.exit()
      }
      await added
      await turn()
      assert.equal(counts.of({}), 0, order)
      assert.equal(changed, 1, `${order}: one change, its going`)
      assert.deepEqual(holds.ending(scopeOf({})), [], order)
    }
  })

  it('an open at a bound whose only ending hold is stuck ends an idle session instead, or is refused: it never hangs', async () => {
    const config = validateConfig(
      { servers: { s: { command: 'true' } }, limits: { maxSessionsPerSubject: 1 } },
      { file: 'test', baseDir: '.' },
    )
    const bounds = new SubjectBounds({ config, log: pino({ level: 'silent' }) })
    const counts = new HoldCounts()
    const holds = new EndingHolds<Hold>(counts)
    const idle: Hold[] = []
    const sessions: Holders = {
      count: (scope) => holds.count(scope) + idle.filter(scope).length,
      ending: (scope) => holds.ending(scope),
      reclaimIdle: async (scope) => {
        const i = idle.findIndex(scope)
        if (i < 0) return false
        idle.splice(i, 1)
        return true
      },
    }
    bounds.join({ sessions })
    const k = child()
    void holds.add(hold('carol'), k.c)
    // Carol's stuck process fills her bound of 1 once its ladder is over: refused, not held.
    k.ladderOver()
    await turn()
    await assert.rejects(bounds.room('s', 'carol'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'subject_session_limit')
      return true
    })
    // While its ladder still runs an open waits for it, then looks again and is refused.
    const k2 = child()
    void holds.add(hold('dave'), k2.c)
    let answered: string | undefined
    const open = bounds.room('s', 'dave').then(
      () => (answered = 'opened'),
      (err: Error & { code?: string }) => (answered = err.code),
    )
    await turn()
    assert.equal(answered, undefined, 'waits while the ladder runs')
    k2.ladderOver()
    await open
    assert.equal(answered, 'subject_session_limit')
    // Another user is not held back by either.
    await bounds.room('s', 'erin')
  })
})
