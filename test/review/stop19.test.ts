// What the outside review of stop 19 found in broker revocation, on one real broker (its memory
// store) in front of the Entra-like upstream fixture, each fixed.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { newClient, refresh } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { loginTokens, pingWith, revokeAs, type TokenPair } from '../helpers/broker-tokens.js'

const REDIRECT = 'http://127.0.0.1:43122/cb'
/** The smallest list the schema allows: what an attacker must fill is this, or the default 100,000. */
const LIST_MAX = 100
/** Access tokens one user may revoke per token lifetime: the fix bounds each user's share. */
const PER_USER = 10

let stack: BrokerStack
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    broker: {
      revocationListMax: LIST_MAX,
      revocationsPerUser: PER_USER,
      registration: { perAddressPerMinute: 1000 },
    },
  })
})
after(() => stack.close())

const tokens = (client: string): Promise<TokenPair> =>
  loginTokens(stack, { client, redirectUri: REDIRECT })

/** The status and challenge an MCP request with this bearer gets (anything but 401: accepted). */
const use = (token: string) => pingWith(stack, token)

const revoke = (token: string, client: string) => revokeAs(stack, token, client)

describe('the memory store keeps an expiring set of any size', () => {
  // Finding: addExpiring set the key's end with Math.max(...every member's end), which throws
  // RangeError past ~125,000 arguments, and swept every member on every add (O(n) each: 2.7 ms
  // per add at 40,000 on this machine, the list's writes blocking the event loop). A flooded
  // list (the finding below) grows past that: every revocation then failed, and a reused
  // refresh token's grant revoked in adapter.ts consume() kept its records (listed first).
  it('130,000 live members: every add succeeds and each is listed', {
    timeout: 60_000,
  }, async (t) => {
    const store = createMemoryStore()
    const n = 130_000
    for (let i = 0; i < n && !t.signal.aborted; i++) {
      await store.addExpiring('set', `t.${i}`, 600_000)
      // The memory store answers at once: let the test's timeout in (an O(n) add never ends).
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r))
    }
    assert.equal((await store.liveMembers('set')).length, n)
    await store.close()
  })
})

describe('revocation list flooding', () => {
  // Finding: any user who can log in once mints access tokens by refreshing (no rate limit on
  // /token or /revoke) and revokes each at /revoke: every one is a list entry, so past
  // revocationListMax the list overflows and refuses every broker token issued until then,
  // every other user's included, on every replica (each receives every entry), for
  // accessTokenTtl; repeated, the broker refuses everyone for as long as the attacker goes on.
  it("one user revoking their own access tokens does not get every other user's token refused", async () => {
    const victim = await tokens(await newClient(stack, [REDIRECT]))
    assert.notEqual((await use(victim.access)).status, 401, 'the victim, before')
    const attacker = await newClient(stack, [REDIRECT])
    let t = await tokens(attacker)
    for (let i = 0; i <= LIST_MAX; i++) {
      const next = await refresh(stack, t.refresh, attacker)
      assert.equal(next.status, 200, next.text)
      const res = await revoke(t.access, attacker)
      if (i < PER_USER) {
        assert.equal(res.status, 200, `revocation ${i + 1}: ${res.text}`)
        assert.equal((await use(t.access)).status, 401, `revoked token ${i + 1}`)
      } else {
        // Past the user's share: RFC 7009 §2.2.1 503, the token not revoked and still valid.
        assert.equal(res.status, 503, `revocation ${i + 1}: ${res.text}`)
        assert.equal(res.headers['retry-after'], '300')
        assert.match(res.text, /temporarily_unavailable/)
        assert.notEqual((await use(t.access)).status, 401, `unrevoked token ${i + 1}`)
      }
      t = { access: String(next.json.access_token), refresh: String(next.json.refresh_token) }
    }
    const r = await use(victim.access)
    assert.notEqual(r.status, 401, `the victim, after: ${r.challenge}`)
    const audited = stack.audit().filter((e) => e.method === 'oauth/revoke')
    assert.ok(audited.some((e) => e.outcome === 'access token not revoked: too many for this user'))
  })
})
