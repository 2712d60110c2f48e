// ClientGone stands in for an AbortSignal on the sessionless path: it must behave as one does
// for the engine's uses (aborted, once-listeners, removal, nothing after the abort).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClientGone, type GoneSignal } from '../../gateway/bridge/gone.js'

/** Both kinds, driven the same way: each case must read the same from either. */
function both(): [string, GoneSignal, () => void][] {
  const gone = new ClientGone()
  const ac = new AbortController()
  return [
    ['ClientGone', gone, () => gone.abort()],
    ['AbortSignal', ac.signal, () => ac.abort()],
  ]
}

describe('ClientGone: as an AbortSignal is, for the engine', () => {
  for (const [kind] of both()) {
    const pick = () => both().find(([k]) => k === kind)!
    test(`${kind}: listeners are called once, in order, and aborted says so`, () => {
      const [, s, abort] = pick()
      const calls: string[] = []
      s.addEventListener('abort', () => calls.push('a'), { once: true })
      s.addEventListener('abort', () => calls.push('b'), { once: true })
      assert.equal(s.aborted, false)
      abort()
      abort()
      assert.equal(s.aborted, true)
      assert.deepEqual(calls, ['a', 'b'])
    })
    test(`${kind}: a removed listener is not called; the others are`, () => {
      const [, s, abort] = pick()
      const calls: string[] = []
      const a = () => calls.push('a')
      s.addEventListener('abort', a, { once: true })
      s.addEventListener('abort', () => calls.push('b'), { once: true })
      s.removeEventListener('abort', a)
      s.removeEventListener('abort', () => {})
      abort()
      assert.deepEqual(calls, ['b'])
    })
    test(`${kind}: a listener added after the abort is never called`, () => {
      const [, s, abort] = pick()
      abort()
      let called = false
      s.addEventListener('abort', () => (called = true), { once: true })
      abort()
      assert.equal(called, false)
    })
  }
})
