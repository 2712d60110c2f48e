// A subscriptions/listen stream (2026-07-28) listens for its request's abort while it is open,
// and stops listening however it ends: a request's signal can outlive its stream, and a listener
// left on it holds the stream's life (its pinned processes' cleanups) until the signal goes.
// Counted on real AbortSignals with node:events' getEventListeners.
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { setImmediate as turn } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import type { Principal } from '../../gateway/auth/principal.js'
import { Outbound } from '../../gateway/bridge/outbound-budget.js'
import { ListenLife } from '../../gateway/http/listen-life.js'

const LIMITS = {
  streamBytes: 1 << 20,
  streamEvents: 100,
  sessionBytes: 1 << 20,
  sessionEvents: 100,
}
const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length

/** A stream's life on a fresh signal; `exp`: the token's expiry (seconds since the epoch). */
function life(o: { exp?: number; recheckMs?: number; ac?: AbortController } = {}) {
  const ac = o.ac ?? new AbortController()
  const principal = {
    iss: 'https://idp.example',
    sub: 'alice',
    clientId: undefined,
    scopes: new Set<string>(),
    hasScopeClaim: false,
    roles: new Set<string>(),
    exp: o.exp,
    claims: {},
  } satisfies Principal
  const l = new ListenLife({
    id: 7,
    outbound: new Outbound(LIMITS),
    owner: 'alice',
    principal,
    signal: ac.signal,
    log: pino({ level: 'silent' }),
    recheckMs: o.recheckMs ?? 60_000,
  })
  let cleaned = 0
  l.onEnd(() => cleaned++)
  return { l, ac, cleaned: () => cleaned }
}

/** Until the stream's life ended: a state, never a duration. */
async function ended(l: ListenLife): Promise<void> {
  while (!l.done) await turn()
}

describe('ListenLife: the abort listener on the request signal (http/listen-life.ts)', () => {
  const honored = { toolsListChanged: true } as const

  it('ended by the gateway (a final result): no listener is left', async () => {
    const { l, ac, cleaned } = life()
    const res = l.open(honored, {}, () => true)
    assert.equal(listeners(ac.signal), 1, 'an open stream listens for its client going')
    l.end(true)
    assert.equal(listeners(ac.signal), 0)
    assert.equal(cleaned(), 1)
    assert.match(await res.text(), /"resultType":"complete"/)
  })

  it('ended by its token expiring: no listener is left', async () => {
    const { l, ac } = life({ exp: Math.floor(Date.now() / 1000) - 1 })
    const res = l.open(honored, {}, () => true)
    await ended(l)
    assert.equal(listeners(ac.signal), 0)
    await res.body?.cancel()
  })

  it('ended by the policy taking the server away (recheck): no listener is left', async () => {
    const { l, ac } = life({ recheckMs: 1 })
    const res = l.open(honored, {}, () => false)
    await ended(l)
    assert.equal(listeners(ac.signal), 0)
    await res.body?.cancel()
  })

  it('ended by the client cancelling the body: no listener is left', async () => {
    const { l, ac, cleaned } = life()
    const res = l.open(honored, {}, () => true)
    await res.body!.cancel()
    await ended(l)
    assert.equal(listeners(ac.signal), 0)
    assert.equal(cleaned(), 1)
  })

  it('ended by the abort: ended once, no listener left', async () => {
    const { l, ac, cleaned } = life()
    const res = l.open(honored, {}, () => true)
    ac.abort()
    assert.equal(l.done, true)
    assert.equal(listeners(ac.signal), 0)
    assert.equal(cleaned(), 1)
    await res.body?.cancel().catch(() => {})
  })

  it('many streams ended on one signal (a kept-alive connection): none accumulate', () => {
    const ac = new AbortController()
    for (let i = 0; i < 20; i++) {
      const { l } = life({ ac })
      l.open(honored, {}, () => true)
      l.end(true)
    }
    assert.equal(listeners(ac.signal), 0)
  })
})
