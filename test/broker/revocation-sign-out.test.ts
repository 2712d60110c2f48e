// Gaps the stop-19 review left in broker revocation, on one real broker (its memory store) in
// front of the Entra-like upstream (a real oidc-provider), each token used in a real MCP
// request: a user the upstream refuses at one grant's re-check loses every grant at once;
// revoking grants (refresh tokens) counts against the user's share like access tokens; and
// /revoke tells a client nothing about another client's token, confidential or not.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import {
  type ClientSecret,
  newClient,
  newConfidentialClient,
  nextSecond,
  refresh,
  send,
  useAt,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { BOB, basicAuth, loginTokens, revokeAs, type TokenPair } from '../helpers/broker-tokens.js'

const REDIRECT = 'http://127.0.0.1:43124/cb'
const ALICE = 'alice-pairwise-sub'
const ALICE_OID = '00000000-0000-0000-0000-00000000a11c'
const PER_USER = 5

let stack: BrokerStack
let one: string
let two: string
let confidential: ClientSecret
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    upstream: { recheckInterval: 0 },
    broker: { revocationsPerUser: PER_USER, registration: { perAddressPerMinute: 1000 } },
  })
  one = await newClient(stack, [REDIRECT])
  two = await newClient(stack, [REDIRECT])
  confidential = await newConfidentialClient(stack, [REDIRECT])
})
afterEach(() => stack.idp.reset())
after(() => stack.close())

/** A fresh login (its own browser: its own grant) of `user` for `client`. */
const tokens = (client: string, user = ALICE): Promise<TokenPair> =>
  loginTokens(stack, { client, redirectUri: REDIRECT, user })

/** The status and WWW-Authenticate of an MCP initialize with the token. */
async function use(token: string): Promise<{ status: number; challenge: string }> {
  const status = await useAt(stack, 'notes', token)
  if (status !== 401) return { status, challenge: '' }
  const res = await send(stack.endpoint('notes'), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}',
  })
  return { status, challenge: String(res.headers['www-authenticate'] ?? '') }
}

const revoke = (token: string, client: string, headers: Record<string, string> = {}) =>
  revokeAs(stack, token, client, headers)

describe('the upstream refusing a user at one re-check signs them out everywhere', () => {
  it("every other grant's access token is refused at once, its refresh token too, even after a new login; other users are untouched", async () => {
    const first = await tokens(one)
    const other = await tokens(two)
    const bob = await tokens(one, BOB)
    for (const t of [first, other, bob]) assert.equal((await use(t.access)).status, 200)
    stack.idp.disable(ALICE)
    assert.equal((await refresh(stack, first.refresh, one)).json.error, 'invalid_grant')
    // Another client's grant, never refreshed: refused now (it was cached as verified).
    const r = await use(other.access)
    assert.equal(r.status, 401, 'the other grant’s access token')
    assert.match(
      r.challenge,
      /error_description="the user was signed out everywhere; sign in again"/,
    )
    assert.equal((await use(bob.access)).status, 200, 'another user')
    const line = stack
      .audit()
      .find((a) => a.sub === ALICE_OID && /signed out everywhere/.test(String(a.outcome)))
    assert.ok(line, 'audited')
    // The upstream vouches again and Alice logs in anew (a later second): the old grant stays
    // refused at its refresh, the new one works.
    stack.idp.reset()
    await nextSecond()
    const again = await tokens(one)
    assert.equal((await use(again.access)).status, 200, 'a login after the sign-out')
    const old = await refresh(stack, other.refresh, two)
    assert.equal(old.status, 400, old.text)
    assert.equal(old.json.error, 'invalid_grant')
    assert.equal((await refresh(stack, again.refresh, one)).status, 200, 'the new grant refreshes')
    assert.equal((await use(other.access)).status, 401, 'the old access token stays refused')
  })

  it('an upstream that cannot be reached signs no one out', async () => {
    const first = await tokens(one)
    const other = await tokens(two)
    stack.idp.knobs.down = true
    const res = await refresh(stack, first.refresh, one)
    assert.equal(res.json.error, 'temporarily_unavailable', res.text)
    assert.equal((await use(other.access)).status, 200)
    assert.equal((await use(first.access)).status, 200)
  })
})

describe("a user's share of revocations counts grants (refresh tokens) too", () => {
  // Finding: /revoke of a refresh token revokes its grant (a list entry per cookie key) and was
  // never counted: a user with many grants (one per client registered, or per new browser)
  // could fill the list past revocationListMax, refusing everyone's tokens (stop 19's flood).
  it(`past ${PER_USER} revocations: 503 with Retry-After, the grant not revoked; another user is untouched`, async () => {
    const victim = await tokens(one, BOB)
    const grants: TokenPair[] = []
    for (let i = 0; i <= PER_USER + 1; i++) grants.push(await tokens(i % 2 ? one : two))
    // One access token revoked first: both kinds share one budget.
    assert.equal((await revoke(grants[0]!.access, two)).status, 200)
    for (const [i, g] of grants.slice(1).entries()) {
      const client = (i + 1) % 2 ? one : two
      const res = await revoke(g.refresh, client)
      if (i + 1 < PER_USER) {
        assert.equal(res.status, 200, `revocation ${i + 2}: ${res.text}`)
        assert.equal((await use(g.access)).status, 401, `grant ${i + 2} revoked`)
        assert.equal((await refresh(stack, g.refresh, client)).json.error, 'invalid_grant')
      } else {
        assert.equal(res.status, 503, `revocation ${i + 2}: ${res.text}`)
        assert.equal(res.headers['retry-after'], '300')
        assert.equal(res.json.error, 'temporarily_unavailable')
        assert.equal((await use(g.access)).status, 200, `grant ${i + 2} still valid`)
        const next = await refresh(stack, g.refresh, client)
        assert.equal(next.status, 200, `grant ${i + 2} still refreshes: ${next.text}`)
      }
    }
    assert.equal((await use(victim.access)).status, 200, 'another user')
    assert.equal((await revoke(victim.refresh, one)).status, 200, "another user's own share")
    assert.equal((await use(victim.access)).status, 401)
    const audited = stack.audit().filter((e) => e.method === 'oauth/revoke')
    assert.ok(audited.some((e) => /grant not revoked: too many/.test(String(e.outcome))))
  })
})

describe('/revoke of another client’s token says nothing about it and revokes nothing', () => {
  // RFC 7009 §2.1 has the request refused; an error for a valid foreign token and 200 for an
  // invalid one would tell a confidential client which tokens are valid. Both are answered as
  // an unknown token is: 200, empty (as §2.2 answers invalid tokens).
  it('a confidential client: access and refresh tokens of a public client → 200 empty, as for garbage', async () => {
    const t = await tokens(one, BOB)
    const garbage = await revoke('not-a-token-at-all', confidential.id, basicAuth(confidential))
    assert.equal(garbage.status, 200, garbage.text)
    for (const token of [t.access, t.refresh]) {
      const res = await revoke(token, confidential.id, basicAuth(confidential))
      assert.equal(res.status, garbage.status, res.text)
      assert.equal(res.text, garbage.text)
      assert.equal(res.headers['content-type'], garbage.headers['content-type'])
    }
    assert.equal((await use(t.access)).status, 200, 'the access token lives on')
    assert.equal((await refresh(stack, t.refresh, one)).status, 200, 'the grant lives on')
  })

  it('a public client: the same', async () => {
    const t = await tokens(one, BOB)
    for (const token of [t.access, t.refresh]) {
      const res = await revoke(token, two)
      assert.equal(res.status, 200, res.text)
      assert.equal(res.text, '')
    }
    assert.equal((await use(t.access)).status, 200)
    assert.equal((await refresh(stack, t.refresh, one)).status, 200)
  })

  it('a confidential client with a wrong secret: 401 invalid_client, before any token is looked at', async () => {
    const t = await tokens(one, BOB)
    const res = await revoke(t.access, confidential.id, basicAuth({ ...confidential, secret: 'x' }))
    assert.equal(res.status, 401, res.text)
    assert.equal(res.json.error, 'invalid_client')
  })
})
