// Tokens bound to one resource and refresh tokens bound to one client, by raw HTTP: the
// access token's aud is exactly the server asked for and no other server takes it; a
// resource the gateway does not serve is invalid_target at /authorize, /token and refresh;
// another client (public or confidential, with or without credentials) cannot use a code or
// a refresh token that is not its own.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import {
  authorizeUrl,
  authParams,
  type ClientSecret,
  exchange,
  issued,
  issuedSince,
  NOTHING_ISSUED,
  login,
  newClient,
  newConfidentialClient,
  pkce,
  refresh,
  send,
  token,
  useAt,
} from '../helpers/broker-raw.js'
import { brokerLogin } from '../helpers/broker-browser.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { basicAuth } from '../helpers/broker-tokens.js'

const REDIRECT = 'http://127.0.0.1:43130/cb'

let stack: BrokerStack
let clientId: string
let otherId: string
let secretClient: ClientSecret
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    broker: { registration: { perAddressPerMinute: 1000 } },
  })
  clientId = await newClient(stack, [REDIRECT])
  otherId = await newClient(stack, [REDIRECT])
  secretClient = await newConfidentialClient(stack, [REDIRECT])
})
after(() => stack.close())

const client = () => ({ clientId, redirectUri: REDIRECT })
const basic = (id: string, secret: string) => basicAuth({ id, secret })

/** Tokens for `server` through a whole login. */
async function tokensFor(server: string): Promise<Record<string, string>> {
  const l = await login(stack, { ...client(), server })
  const res = await exchange(stack, l, { ...client(), server })
  assert.equal(res.status, 200, res.text)
  return res.json as Record<string, string>
}

describe('access tokens: one audience, the server asked for', () => {
  it("aud is exactly the requested server's URL (a string, not a list); only that server takes it", async () => {
    const t = await tokensFor('notes')
    const claims = decodeJwt(t.access_token!)
    assert.equal(claims.aud, stack.endpoint('notes'))
    assert.equal(await useAt(stack, 'notes', t.access_token!), 200)
    assert.equal(await useAt(stack, 'echo', t.access_token!), 401, 'refused at another server')
  })

  it('the same grant refreshed for another server → 400 invalid_target, no token; the refresh token is not spent', async () => {
    const t = await tokensFor('notes')
    const before = await issued(stack)
    const res = await refresh(stack, t.refresh_token!, clientId, {
      resource: stack.endpoint('echo'),
    })
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json.error, 'invalid_target')
    assert.equal(res.json.access_token, undefined)
    assert.deepEqual(
      await issuedSince(stack, before),
      NOTHING_ISSUED,
      'no refresh token minted behind the refusal',
    )
    const mine = await refresh(stack, t.refresh_token!, clientId)
    assert.equal(mine.status, 200, `the client's retry is not a replay: ${mine.text}`)
  })
})

describe('resource indicators that are refused (RFC 8707)', () => {
  const bad = (s: BrokerStack): { name: string; resource: string | string[] }[] => [
    { name: 'a server that does not exist', resource: `${s.url}/mcp/nope` },
    { name: "a server's URL on another origin", resource: 'https://evil.example/mcp/notes' },
    { name: "a server's URL with a fragment", resource: `${s.endpoint('notes')}#x` },
    { name: "a server's URL with a query", resource: `${s.endpoint('notes')}?x=1` },
    { name: "a server's URL with a trailing slash", resource: `${s.endpoint('notes')}/` },
    { name: "the gateway's origin", resource: s.url },
    { name: "the issuer's token endpoint", resource: `${s.url}/token` },
    { name: 'a relative URL', resource: '/mcp/notes' },
    { name: 'not a URL', resource: 'notes' },
  ]

  it('at /authorize: redirect with invalid_target (state, iss), no code', async () => {
    for (const b of bad(stack)) {
      const before = await issued(stack)
      const params = authParams(stack, { ...client(), challenge: pkce().challenge, state: 'st' })
      const res = await send(authorizeUrl(stack, { ...params, resource: String(b.resource) }))
      assert.ok(
        res.status === 303 || res.status === 302,
        `${b.name}: ${res.status} ${res.text.slice(0, 200)}`,
      )
      const to = new URL(res.location!)
      assert.equal(`${to.origin}${to.pathname}`, REDIRECT, b.name)
      assert.equal(to.searchParams.get('error'), 'invalid_target', b.name)
      assert.equal(to.searchParams.get('state'), 'st', b.name)
      assert.equal(to.searchParams.get('iss'), stack.url, b.name)
      assert.equal(to.searchParams.get('code'), null, b.name)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED, b.name)
    }
  })

  // oidc-provider consumes a code before resolving its resource; a resource the code was not
  // granted is refused before (token-resource.ts), so the retry is not a replay (stop 25b).
  it('at /token: 400 invalid_target, no token; the code intact, a retry for its own resource works', async () => {
    for (const b of bad(stack)) {
      const l = await login(stack, client())
      const before = await issued(stack)
      const res = await exchange(stack, l, client(), { resource: String(b.resource) })
      assert.equal(res.status, 400, `${b.name}: ${res.text}`)
      assert.equal(res.json.error, 'invalid_target', b.name)
      assert.equal(res.json.access_token, undefined, b.name)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED, b.name)
      const again = await exchange(stack, l, client())
      assert.equal(again.status, 200, `${b.name}: ${again.text}`)
    }
  })

  it('at refresh: 400 invalid_target, no token, nothing minted; the refresh token still works for its own resource', async () => {
    const t = await tokensFor('notes')
    const before = await issued(stack)
    for (const b of [
      ...bad(stack),
      { name: 'two resources', resource: [stack.endpoint('notes'), stack.endpoint('echo')] },
    ]) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: t.refresh_token!,
        client_id: clientId,
      })
      for (const r of [b.resource].flat()) form.append('resource', r)
      const res = await send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      })
      assert.equal(res.status, 400, `${b.name}: ${res.text}`)
      assert.equal(res.json.error, 'invalid_target', b.name)
      assert.equal(res.json.access_token, undefined, b.name)
    }
    assert.deepEqual(
      await issuedSince(stack, before),
      NOTHING_ISSUED,
      'no refresh token minted behind the refusals',
    )
    const mine = await refresh(stack, t.refresh_token!, clientId)
    assert.equal(mine.status, 200, mine.text)
  })

  it('a code authorized for notes exchanged for echo → 400 invalid_target', async () => {
    const l = await login(stack, client())
    const res = await exchange(stack, l, client(), { resource: stack.endpoint('echo') })
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json.error, 'invalid_target')
    assert.equal(res.json.access_token, undefined)
  })
})

describe('two resources at once', () => {
  /** A login authorized for notes and echo together (RFC 8707 allows several at /authorize). */
  async function both(): Promise<{ code: string; verifier: string; callback: URL }> {
    const { verifier, challenge } = pkce()
    const url = `${authorizeUrl(stack, authParams(stack, { ...client(), challenge, state: 'two' }))}&resource=${encodeURIComponent(stack.endpoint('echo'))}`
    const { callback, visits } = await brokerLogin(url, { redirectUri: REDIRECT })
    assert.match(
      visits.find((v) => v.html.includes('Allow'))!.html,
      /echo[\s\S]*notes|notes[\s\S]*echo/,
      'the consent page names both',
    )
    const code = callback.searchParams.get('code')
    assert.ok(code, callback.href)
    return { code, verifier, callback }
  }
  const exchangeFor = (g: { code: string; verifier: string }, resources: string[]) => {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code: g.code,
      redirect_uri: REDIRECT,
      client_id: clientId,
      code_verifier: g.verifier,
    })
    for (const r of resources) form.append('resource', r)
    return send(`${stack.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    })
  }

  const refusals: { name: string; resources: () => string[] }[] = [
    { name: 'both at /token', resources: () => [stack.endpoint('notes'), stack.endpoint('echo')] },
    { name: 'none at /token (ambiguous)', resources: () => [] },
  ]
  for (const r of refusals) {
    // Refused before oidc-provider spends the code (token-resource.ts): a retry with one works.
    it(`${r.name} → 400 invalid_target, no token, the code intact`, async () => {
      const g = await both()
      const before = await issued(stack)
      const res = await exchangeFor(g, r.resources())
      assert.equal(res.status, 400, res.text)
      assert.equal(res.json.error, 'invalid_target')
      assert.equal(res.json.access_token, undefined)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED)
      const retry = await exchangeFor(g, [stack.endpoint('echo')])
      assert.equal(retry.status, 200, retry.text)
      assert.equal(decodeJwt(String(retry.json.access_token)).aud, stack.endpoint('echo'))
    })
  }

  it('one at a time: each token names exactly one server; a refresh without resource is ambiguous → invalid_target, not spent', async () => {
    const g = await both()
    const one = await exchangeFor(g, [stack.endpoint('echo')])
    assert.equal(one.status, 200, one.text)
    assert.equal(decodeJwt(String(one.json.access_token)).aud, stack.endpoint('echo'))
    const rt = String(one.json.refresh_token)
    const ambiguous = await refresh(stack, rt, clientId)
    assert.equal(ambiguous.status, 400, ambiguous.text)
    assert.equal(ambiguous.json.error, 'invalid_target')
    const other = await refresh(stack, rt, clientId, { resource: stack.endpoint('notes') })
    assert.equal(other.status, 200, other.text)
    assert.equal(decodeJwt(String(other.json.access_token)).aud, stack.endpoint('notes'))
    assert.equal(await useAt(stack, 'echo', String(other.json.access_token)), 401)
  })
})

describe('refresh tokens and codes: bound to their client', () => {
  const cases: {
    name: string
    send: (rt: string) => ReturnType<typeof refresh>
    status: number
    error: string
  }[] = [
    {
      name: "another public client's id",
      send: (rt) => refresh(stack, rt, otherId),
      status: 400,
      error: 'invalid_grant',
    },
    {
      name: "a confidential client's valid credentials",
      send: (rt) =>
        token(
          stack,
          { grant_type: 'refresh_token', refresh_token: rt },
          basic(secretClient.id, secretClient.secret),
        ),
      status: 400,
      error: 'invalid_grant',
    },
    {
      name: "a confidential client's id, wrong secret",
      send: (rt) =>
        token(
          stack,
          { grant_type: 'refresh_token', refresh_token: rt },
          basic(secretClient.id, 'wrong'),
        ),
      status: 401,
      error: 'invalid_client',
    },
    {
      name: "a confidential client's id, no secret",
      send: (rt) => refresh(stack, rt, secretClient.id),
      status: 401,
      error: 'invalid_client',
    },
    {
      name: 'an unknown client id',
      send: (rt) => refresh(stack, rt, 'no-such-client'),
      status: 401,
      error: 'invalid_client',
    },
    {
      name: 'no client id at all',
      send: (rt) => token(stack, { grant_type: 'refresh_token', refresh_token: rt }),
      status: 400,
      error: 'invalid_request',
    },
    {
      name: "the owner's id with a made-up secret (public clients have none)",
      send: (rt) =>
        token(stack, { grant_type: 'refresh_token', refresh_token: rt }, basic(clientId, 'x')),
      status: 401,
      error: 'invalid_client',
    },
  ]
  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.error}, no token; the owner still refreshes`, async () => {
      const t = await tokensFor('notes')
      const before = await issued(stack)
      const res = await c.send(t.refresh_token!)
      assert.equal(res.status, c.status, res.text)
      assert.equal(res.json.error, c.error)
      assert.equal(res.json.access_token, undefined)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED)
      const mine = await refresh(stack, t.refresh_token!, clientId)
      assert.equal(mine.status, 200, `the owner's refresh: ${mine.text}`)
    })
  }

  it("a confidential client's own refresh token without its secret → 401 invalid_client", async () => {
    const l = await login(stack, { clientId: secretClient.id, redirectUri: REDIRECT })
    const got = await exchange(
      stack,
      l,
      { clientId: secretClient.id, redirectUri: REDIRECT },
      { client_id: undefined },
    )
    assert.equal(got.status, 400, `no secret at the code exchange either: ${got.text}`)
    assert.equal(got.json.error, 'invalid_request')
    const ok = await token(
      stack,
      {
        grant_type: 'authorization_code',
        code: l.callback.searchParams.get('code')!,
        redirect_uri: REDIRECT,
        code_verifier: l.verifier,
        resource: stack.endpoint('notes'),
      },
      basic(secretClient.id, secretClient.secret),
    )
    assert.equal(ok.status, 200, ok.text)
    const res = await refresh(stack, String(ok.json.refresh_token), secretClient.id)
    assert.equal(res.status, 401)
    assert.equal(res.json.error, 'invalid_client')
    assert.equal(res.json.access_token, undefined)
  })
})
