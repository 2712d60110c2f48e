// A refresh of an old grant that waited for the re-check lock while the user was signed out
// everywhere and logged in again must not mint a token: the sign-out is looked at again once
// the lock is held (by then the account alone is fresh again).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import pino from 'pino'
import { Accounts } from '../../gateway/broker/accounts.js'
import type { UpstreamIdentity } from '../../gateway/broker/upstream.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { createSealer } from '../../gateway/store/sealed.js'

const identity = (sub: string): UpstreamIdentity =>
  ({
    subject: sub,
    roles: ['mcp-user'],
    claims: {},
    tokens: { accessToken: 'upstream-at', refreshToken: 'upstream-rt' },
  }) as unknown as UpstreamIdentity

describe('accounts: a refresh waiting on the re-check lock', () => {
  for (const [name, signOut, outcome] of [
    ['signed out and logged in again meanwhile: the old grant is refused', true, 'revoked'],
    ['only logged in again meanwhile: the account is fresh and used', false, 'fresh'],
  ] as const)
    it(name, async () => {
      let seconds = 1000
      const store = createMemoryStore({ now: () => seconds * 1000 })
      let meanwhile: (() => Promise<void>) | undefined
      const accounts: Accounts = new Accounts({
        store,
        sealer: createSealer({ k1: randomBytes(32) }, 'k1'),
        // Never reached: the account is fresh once the lock is held, or the grant refused.
        upstream: { refresh: () => Promise.reject(new Error('no re-check expected')) },
        recheckInterval: 60,
        ttl: 3600,
        log: pino({ level: 'silent' }),
        now: () => seconds * 1000,
        // Another replica's work while this refresh waits for the lock (once).
        withLock: async (_key, fn) => {
          const work = meanwhile
          meanwhile = undefined
          await work?.()
          return fn()
        },
      })
      const grantIssuedAt = seconds
      await accounts.login(identity('alice'))
      seconds += 120 // due for a re-check: the refresh takes the lock
      meanwhile = async () => {
        seconds += 1
        if (signOut) await accounts.signOut('alice')
        seconds += 1
        await accounts.login(identity('alice'))
      }
      const out = await accounts.forRefresh('alice', grantIssuedAt)
      assert.equal(out.outcome, outcome)
      assert.equal(out.account === undefined, outcome === 'revoked')
      // A grant issued after the sign-out (the new login's) is served either way.
      const later = await accounts.forRefresh('alice', seconds)
      assert.equal(later.outcome, 'fresh')
      assert.equal(later.account?.sub, 'alice')
    })
})
