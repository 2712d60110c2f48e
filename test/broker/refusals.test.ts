// The broker's refusals at /authorize and /token, by raw HTTP: PKCE (S256 only, at both ends),
// authorization codes (single use, short lived, a replay revokes what the code issued). Each
// case asserts the status, the OAuth error code, and that nothing was issued.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  authorizeUrl,
  authParams,
  credentialKey,
  exchange,
  issued,
  issuedSince,
  NOTHING_ISSUED,
  login,
  newClient,
  pkce,
  refresh,
  send,
  token,
  useAt,
  type Login,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'

const REDIRECT = 'http://127.0.0.1:43110/cb'
const CODE_TTL_S = 10

let stack: BrokerStack
let clientId: string
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    broker: { codeTtl: CODE_TTL_S, registration: { perAddressPerMinute: 1000 } },
  })
  clientId = await newClient(stack, [REDIRECT])
})
after(() => stack.close())

const client = () => ({ clientId, redirectUri: REDIRECT })

/** A login that ended with a code, and that code's token response. */
async function loggedIn(): Promise<Login> {
  const l = await login(stack, client())
  assert.ok(l.callback.searchParams.get('code'), `a code: ${l.callback.href}`)
  return l
}

describe('PKCE at /authorize: S256 only, a well-formed challenge required', () => {
  const { challenge } = pkce()
  const cases: { name: string; params: Record<string, string | undefined> }[] = [
    { name: 'plain', params: { code_challenge_method: 'plain', code_challenge: 'a'.repeat(43) } },
    { name: 'plain with the S256 challenge', params: { code_challenge_method: 'plain' } },
    {
      name: 'no challenge, no method',
      params: { code_challenge: undefined, code_challenge_method: undefined },
    },
    { name: 'no challenge, method S256', params: { code_challenge: undefined } },
    {
      name: 'a challenge without a method (plain by default, RFC 7636 §4.3)',
      params: { code_challenge_method: undefined },
    },
    { name: 'method in lower case', params: { code_challenge_method: 's256' } },
    { name: 'an unknown method', params: { code_challenge_method: 'S512' } },
    { name: 'an empty challenge', params: { code_challenge: '' } },
    { name: 'a challenge of 42 characters', params: { code_challenge: challenge.slice(0, 42) } },
    { name: 'a challenge of 129 characters', params: { code_challenge: 'A'.repeat(129) } },
    {
      name: 'a challenge with base64 + and /',
      params: { code_challenge: `${challenge.slice(0, 41)}+/` },
    },
    { name: 'a challenge with = padding', params: { code_challenge: `${challenge}=` } },
    {
      name: 'a challenge with a space',
      params: { code_challenge: `${challenge.slice(0, 20)} ${challenge.slice(21)}` },
    },
    {
      name: 'a challenge with a non-ASCII letter',
      params: { code_challenge: `${challenge.slice(0, 42)}é` },
    },
  ]
  for (const c of cases) {
    it(`${c.name} → redirect with invalid_request, state and iss; no code`, async () => {
      const before = await issued(stack)
      const state = `st-${c.name.length}`
      const url = authorizeUrl(stack, {
        ...authParams(stack, { ...client(), challenge, state }),
        ...c.params,
      })
      const res = await send(url)
      assert.ok(
        res.status === 302 || res.status === 303,
        `a redirect, got ${res.status}: ${res.text.slice(0, 200)}`,
      )
      const to = new URL(res.location!)
      assert.equal(`${to.origin}${to.pathname}`, REDIRECT)
      assert.equal(to.searchParams.get('error'), 'invalid_request')
      assert.equal(to.searchParams.get('state'), state)
      assert.equal(to.searchParams.get('iss'), stack.url)
      assert.equal(to.searchParams.get('code'), null)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED)
    })
  }

  it('a repeated code_challenge → invalid_request, no code', async () => {
    const url = `${authorizeUrl(stack, authParams(stack, { ...client(), challenge, state: 'dup' }))}&code_challenge=${pkce().challenge}`
    const res = await send(url)
    const to = new URL(res.location!)
    assert.equal(to.searchParams.get('error'), 'invalid_request')
    assert.equal(to.searchParams.get('code'), null)
  })
})

describe('PKCE at /token: the verifier of this flow, and only it', () => {
  const cases: {
    name: string
    verifier: (l: Login, other: Login) => string | undefined
    error: string
  }[] = [
    { name: 'no verifier', verifier: () => undefined, error: 'invalid_grant' },
    { name: 'an empty verifier', verifier: () => '', error: 'invalid_grant' },
    { name: 'a wrong verifier', verifier: () => pkce().verifier, error: 'invalid_grant' },
    {
      name: 'the verifier of another flow',
      verifier: (_l, other) => other.verifier,
      error: 'invalid_grant',
    },
    {
      name: 'the challenge as verifier (a plain downgrade)',
      verifier: (l) => new URL(l.visits[0]!.url).searchParams.get('code_challenge')!,
      error: 'invalid_grant',
    },
    {
      name: 'the verifier with one character changed',
      verifier: (l) => `${l.verifier.slice(0, -1)}${l.verifier.endsWith('A') ? 'B' : 'A'}`,
      error: 'invalid_grant',
    },
    {
      name: 'a verifier of 42 characters',
      verifier: (l) => l.verifier.slice(0, 42),
      error: 'invalid_request',
    },
    {
      name: 'a verifier of 129 characters',
      verifier: () => 'a'.repeat(129),
      error: 'invalid_request',
    },
    {
      name: 'a verifier with a forbidden character',
      verifier: (l) => `${l.verifier.slice(0, 42)}+`,
      error: 'invalid_request',
    },
  ]
  let other: Login
  before(async () => {
    other = await loggedIn()
  })
  for (const c of cases) {
    it(`${c.name} → 400 ${c.error}, no token; the rightful holder still redeems the code once`, async () => {
      const l = await loggedIn()
      const before = await issued(stack)
      const res = await exchange(stack, l, client(), { code_verifier: c.verifier(l, other) })
      assert.equal(res.status, 400, res.text)
      assert.equal(res.json.error, c.error)
      assert.equal(res.json.access_token, undefined)
      assert.equal(res.json.refresh_token, undefined)
      assert.deepEqual(
        await issuedSince(stack, before),
        NOTHING_ISSUED,
        'no refresh token, no grant',
      )
      // A failed verifier burns nothing the attacker could use, and the client is not locked out.
      const ok = await exchange(stack, l, client())
      assert.equal(ok.status, 200, ok.text)
    })
  }
})

describe('authorization codes: single use, short lived, bound to their client and redirect URI', () => {
  it('a second exchange → 400 invalid_grant, and the grant the first issued is revoked', async () => {
    const l = await loggedIn()
    const first = await exchange(stack, l, client())
    assert.equal(first.status, 200, first.text)
    const replay = await exchange(stack, l, client())
    assert.equal(replay.status, 400)
    assert.equal(replay.json.error, 'invalid_grant')
    assert.equal(replay.json.access_token, undefined)
    const after = await refresh(stack, String(first.json.refresh_token), clientId)
    assert.equal(after.status, 400, 'the refresh token of the first exchange no longer works')
    assert.equal(after.json.error, 'invalid_grant')
    assert.ok(
      stack
        .audit()
        .some((a) => a.method === 'oauth/revoke' && String(a.outcome).includes('revoked')),
      'an audit line says the grant was revoked',
    )
  })

  it('concurrent exchanges of one code: exactly one gets tokens, and its grant is revoked', async () => {
    // Two at once, several times: some rounds both pass the "consumed?" check before either
    // consumes (the store's set-if-absent decides), others see the first's mark; both must revoke.
    for (let round = 0; round < 3; round++) {
      const l = await loggedIn()
      const answers = await Promise.all([
        exchange(stack, l, client()),
        exchange(stack, l, client()),
      ])
      const won = answers.filter((a) => a.status === 200)
      assert.equal(
        won.length,
        1,
        answers.map((a) => `${a.status} ${a.json.error ?? ''}`).join(', '),
      )
      const lost = answers.find((a) => a.status !== 200)!
      assert.equal(lost.status, 400)
      assert.equal(lost.json.error, 'invalid_grant')
      assert.equal(lost.json.access_token, undefined)
      const after = await refresh(stack, String(won[0]!.json.refresh_token), clientId)
      assert.equal(
        after.status,
        400,
        `round ${round}: a replay, however it interleaves, revokes the grant`,
      )
      assert.equal(after.json.error, 'invalid_grant')
    }
  })

  const misuse: {
    name: string
    over: (other: { clientId: string }) => Record<string, string | undefined>
    error: string
    status?: number
  }[] = [
    {
      name: 'another client’s id',
      over: (o) => ({ client_id: o.clientId }),
      error: 'invalid_grant',
    },
    {
      name: 'an unknown client id',
      over: () => ({ client_id: 'no-such-client' }),
      error: 'invalid_client',
      status: 401,
    },
    {
      name: 'another redirect_uri',
      over: () => ({ redirect_uri: 'http://127.0.0.1:43110/other' }),
      error: 'invalid_grant',
    },
    {
      name: 'the redirect_uri on another port',
      over: () => ({ redirect_uri: 'http://127.0.0.1:43111/cb' }),
      error: 'invalid_grant',
    },
    { name: 'a made-up code', over: () => ({ code: 'x'.repeat(43) }), error: 'invalid_grant' },
    { name: 'no code', over: () => ({ code: undefined }), error: 'invalid_request' },
    {
      name: 'a refresh token as the code',
      over: () => ({ code: 'REFRESH' }),
      error: 'invalid_grant',
    },
  ]
  for (const m of misuse) {
    it(`${m.name} → ${m.status ?? 400} ${m.error}; the code is not spent for its client`, async () => {
      const otherId = await newClient(stack, [REDIRECT])
      const l = await loggedIn()
      let over = m.over({ clientId: otherId })
      if (over.code === 'REFRESH') {
        const mine = await loggedIn()
        over = { code: String((await exchange(stack, mine, client())).json.refresh_token) }
      }
      // Taken once everything the case sets up is issued, for every case: the refresh token's
      // login and exchange issue a code, a grant and the token itself.
      const before = await issued(stack)
      const res = await exchange(stack, l, client(), over)
      assert.equal(res.status, m.status ?? 400, res.text)
      assert.equal(res.json.error, m.error)
      assert.equal(res.json.access_token, undefined)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED)
      assert.equal((await exchange(stack, l, client())).status, 200)
    })
  }

  it(`a code older than codeTtl (${CODE_TTL_S} s) → 400 invalid_grant, no token`, async () => {
    const l = await loggedIn()
    const code = l.callback.searchParams.get('code')!
    // The store's clock, not a sleep: the code's record expires in the store.
    assert.notEqual((await stack.store.keys(credentialKey('AuthorizationCode', code))).length, 0)
    stack.store.advance((CODE_TTL_S + 1) * 1000)
    assert.equal((await stack.store.keys(credentialKey('AuthorizationCode', code))).length, 0)
    const res = await exchange(stack, l, client())
    assert.equal(res.status, 400)
    assert.equal(res.json.error, 'invalid_grant')
    assert.equal(res.json.access_token, undefined)
  })
})

describe('tokens issued here work, so the refusals above are refusals', () => {
  it('a code exchanged at once → an access token good at notes', async () => {
    const l = await loggedIn()
    const res = await exchange(stack, l, client())
    assert.equal(res.status, 200, res.text)
    assert.equal(await useAt(stack, 'notes', String(res.json.access_token)), 200)
    const t = await token(stack, {
      grant_type: 'refresh_token',
      refresh_token: String(res.json.refresh_token),
      client_id: clientId,
    })
    assert.equal(t.status, 200, t.text)
  })
})
