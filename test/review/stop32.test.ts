// Stop 32: an outsider's attack on the broker (the gateway as authorization server), as a
// malicious MCP client and as a low-privilege user, with real brokers, real upstream fixtures,
// real tokens and real MCP requests. Findings (each a failing test first, then the fix):
// - a native client's remembered consent skipped the consent page whenever the login was due
//   again (recheckInterval passed): the gateway's own "remembered consent covers it" shortcut went
//   straight to the upstream, whose single sign-on answers without a page, so a code reached any
//   loopback port with no person asked (RFC 8252 §8.6; README promised the page every time;
//   oidc-provider's native_client_prompt was satisfied by the consent the shortcut gave).
// - the same for a client of https and loopback redirect URIs (VS Code registers both): not
//   native, so its consent was remembered, and any program on the device that held its loopback
//   port got a code with no page, the login fresh or due; a redirect to this device (anything
//   but https) now asks every time (provider.ts askedEveryTime, as an interaction policy check).
// - a consent approved on the browser's session (a step-up, or any native client's page, now
//   shown every time) handed oidc-provider a fresh login: the session's login time moved to now
//   with no upstream trip, so a user approving a page within each recheckInterval was never
//   sent to the upstream again at /authorize, and one the company disabled kept getting codes
//   (mcp_edge_stale_login never due). The session now keeps its upstream login's time.
// - another user signing in upstream over the browser's broker session (a shared browser, the
//   login due again) got oidc-provider's auto-submitted logout form to /session/end/confirm,
//   which the broker does not serve: nobody else could sign in in that browser until the session
//   expired (refreshTokenTtl, 14 days). The old session now ends and the new user is asked.
// What held is pinned as "held: …": a hosted client's consent is remembered; a token is good at
// its server only (a real MCP initialize); a code is its client's, redirect URI's and verifier's;
// no PKCE or `plain` is refused at /authorize; a refresh cannot widen its scope, and a reused
// refresh token ends the grant's access tokens at the MCP endpoint; the consent form refuses
// a missing, forged or other sign-in's token, and another browser, with an unframable page.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { forms, type Visit } from '../helpers/broker-browser.js'
import {
  assertGatewayPage,
  authorizeUrl,
  authParams,
  exchange,
  login,
  newClient,
  nextSecond,
  pkce,
  refresh,
  send,
  useAt,
} from '../helpers/broker-raw.js'
import { BROKER_POLICY, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { ENTRA_GROUPS } from '../helpers/upstream-idp.js'

const WEB = 'https://claude.ai/api/mcp/auth_callback'

/** The broker's pages a login showed (consent, missing role): 200s on the gateway. */
function pagesShown(stack: BrokerStack, visits: Visit[]): Visit[] {
  return visits.filter((v) => v.status === 200 && v.url.startsWith(stack.url))
}

for (const [when, upstream] of [
  ['the login still fresh', {}],
  ['the login due again (recheckInterval 0)', { recheckInterval: 0 }],
] as const)
  describe(`stop 32: a native client is asked every time (${when})`, () => {
    let stack: BrokerStack
    before(async () => {
      stack = await startBrokerStack({ upstream })
    })
    after(() => stack?.close())

    for (const [name, registered, again] of [
      ['loopback, another port', 'http://127.0.0.1/callback', 'http://127.0.0.1:45123/callback'],
      [
        'loopback, the same URI',
        'http://127.0.0.1:45124/callback',
        'http://127.0.0.1:45124/callback',
      ],
      [
        'an app scheme',
        'cursor://anysphere.cursor-mcp/oauth/callback',
        'cursor://anysphere.cursor-mcp/oauth/callback',
      ],
    ] as const)
      it(`${name}: the consent page again, then a code that works`, async () => {
        const clientId = await newClient(stack, [registered])
        const jar = new Map<string, string>()
        const first = await login(stack, { clientId, redirectUri: registered, jar })
        assert.equal(pagesShown(stack, first.visits).length, 1, 'the consent page, first')
        const t1 = await exchange(stack, first, { clientId, redirectUri: registered })
        assert.equal(t1.status, 200, t1.text)
        // Someone else starts an authorization of the same client in the user's browser.
        const second = await login(stack, { clientId, redirectUri: again, jar })
        assert.equal(
          pagesShown(stack, second.visits).length,
          1,
          'the consent page is shown again for a native client',
        )
        const t2 = await exchange(stack, second, { clientId, redirectUri: again })
        assert.equal(t2.status, 200, t2.text)
        assert.equal(decodeJwt(String(t2.json.access_token)).aud, stack.endpoint('notes'))
        assert.equal(await useAt(stack, 'notes', String(t2.json.access_token)), 200)
      })

    it('a client of https and loopback redirect URIs, asked back to its loopback one: the consent page again', async () => {
      const loopback = 'http://127.0.0.1:45125/callback'
      const clientId = await newClient(stack, [WEB, loopback])
      const jar = new Map<string, string>()
      const first = await login(stack, { clientId, redirectUri: WEB, jar })
      assert.equal(pagesShown(stack, first.visits).length, 1, 'the consent page, first')
      const second = await login(stack, { clientId, redirectUri: loopback, jar })
      assert.equal(pagesShown(stack, second.visits).length, 1, 'the consent page again')
      const t = await exchange(stack, second, { clientId, redirectUri: loopback })
      assert.equal(t.status, 200, t.text)
    })

    it('held: a hosted (https) client is remembered: no page the second time', async () => {
      const clientId = await newClient(stack, [WEB])
      const jar = new Map<string, string>()
      const first = await login(stack, { clientId, redirectUri: WEB, jar })
      assert.equal(pagesShown(stack, first.visits).length, 1)
      const second = await login(stack, { clientId, redirectUri: WEB, jar })
      assert.equal(pagesShown(stack, second.visits).length, 0)
      const t = await exchange(stack, second, { clientId, redirectUri: WEB })
      assert.equal(t.status, 200, t.text)
    })
  })

describe('stop 32: a consent given in a signed-in browser is no login', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack()
  })
  after(() => stack?.close())

  /** The login time (epoch s) of every browser session the broker holds, sorted. */
  async function loginTimes(): Promise<number[]> {
    const all = await stack.store.dump()
    return [...all]
      .filter(([k]) => /^oidc:Session:[^:]+$/.test(k))
      .map(([, v]) => (JSON.parse(v) as { loginTs?: number }).loginTs ?? 0)
      .sort()
  }

  for (const [name, scope, choices] of [
    ['approved on the consent page', 'mcp:read', { consent: 'allow' }],
    [
      'continued past the missing-role page',
      'mcp:read mcp:admin',
      { consent: 'allow', missingRole: 'continue' },
    ],
  ] as const)
    it(`a step-up ${name} keeps the upstream login's time (the re-check stays due)`, async () => {
      // A loopback client: the consent page every time, on the browser's session.
      const redirectUri = 'http://127.0.0.1:45126/callback'
      const clientId = await newClient(stack, [redirectUri])
      const jar = new Map<string, string>()
      const first = await login(stack, { clientId, redirectUri, jar })
      assert.equal((await exchange(stack, first, { clientId, redirectUri })).status, 200)
      const before = await loginTimes()
      const upstreamLogins = stack.idp.counts.token
      await nextSecond()
      const again = await login(stack, { clientId, redirectUri, jar, scope, choices })
      assert.ok(pagesShown(stack, again.visits).length >= 1, 'the consent page')
      assert.equal(stack.idp.counts.token, upstreamLogins, 'no upstream login')
      const t = await exchange(stack, again, { clientId, redirectUri })
      assert.equal(t.status, 200, t.text)
      assert.equal(decodeJwt(String(t.json.access_token)).scope, 'mcp:read')
      assert.deepEqual(await loginTimes(), before, 'each session is as old as its upstream login')
    })
})

describe('stop 32: another user signs in upstream over the browser’s session (a shared browser)', () => {
  const BOB = '00000000-0000-0000-0000-000000000b0b'
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({
      // Both users may read notes (Bob by a group every user is in); the login is due each time.
      upstream: { recheckInterval: 0, roleClaims: ['roles', 'groups'] },
      policy: BROKER_POLICY.replace(
        'roles:\n',
        `roles:\n  "${ENTRA_GROUPS.everyone}": ["mcp:read"]\n`,
      ),
    })
  })
  after(() => stack?.close())

  for (const [name, redirectUri] of [
    ['a remembered (hosted) client', WEB],
    ['a loopback client', 'http://127.0.0.1:45127/callback'],
  ] as const)
    it(`${name}: Bob is asked himself, and signed in as himself`, async () => {
      const clientId = await newClient(stack, [redirectUri])
      const jar = new Map<string, string>()
      stack.idp.nextUser('alice-pairwise-sub')
      const alice = await login(stack, { clientId, redirectUri, jar })
      assert.equal(pagesShown(stack, alice.visits).length, 1, 'Alice saw the consent page')
      // Alice signs out at the company IdP (its cookies gone); the broker's session stays.
      for (const cookie of jar.keys()) if (!/^_?mcp_edge/.test(cookie)) jar.delete(cookie)
      stack.idp.nextUser('bob-pairwise-sub')
      const bob = await login(stack, { clientId, redirectUri, jar })
      const pages = pagesShown(stack, bob.visits)
      assert.ok(
        pages.some((p) => /Signed in as <strong>bob@contoso\.example<\/strong>/.test(p.html)),
        'Bob saw the consent page, as himself',
      )
      assert.ok(!pages.some((p) => /alice/i.test(p.html)), 'no page names Alice')
      const t = await exchange(stack, bob, { clientId, redirectUri })
      assert.equal(t.status, 200, t.text)
      assert.equal(decodeJwt(String(t.json.access_token)).sub, BOB)
      assert.equal(await useAt(stack, 'notes', String(t.json.access_token)), 200)
    })
})

describe('stop 32, held: codes, PKCE, audiences, refresh and the consent form', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack()
  })
  after(() => stack?.close())

  it('held: a token for notes is refused at echo (401), good at notes', async () => {
    const clientId = await newClient(stack, [WEB])
    const l = await login(stack, { clientId, redirectUri: WEB })
    const t = await exchange(stack, l, { clientId, redirectUri: WEB })
    assert.equal(t.status, 200, t.text)
    const access = String(t.json.access_token)
    assert.equal(await useAt(stack, 'echo', access), 401)
    assert.equal(await useAt(stack, 'notes', access), 200)
  })

  it('held: a code is its client’s, its redirect URI’s and its verifier’s', async () => {
    const clientId = await newClient(stack, [WEB, 'https://claude.com/api/mcp/auth_callback'])
    const other = await newClient(stack, [WEB])
    const l = await login(stack, { clientId, redirectUri: WEB })
    const o = { clientId, redirectUri: WEB }
    for (const [what, over] of [
      ['another client', { client_id: other }],
      [
        'another registered redirect URI',
        { redirect_uri: 'https://claude.com/api/mcp/auth_callback' },
      ],
      ['another verifier', { code_verifier: pkce().verifier }],
      ['no verifier', { code_verifier: undefined }],
    ] as const) {
      const res = await exchange(stack, l, o, over)
      assert.equal(res.status, 400, `${what}: ${res.text}`)
      assert.equal(res.json.access_token, undefined, what)
    }
  })

  for (const [what, over] of [
    ['no PKCE', { code_challenge: undefined, code_challenge_method: undefined }],
    ['PKCE plain', { code_challenge_method: 'plain' }],
  ] as const)
    it(`held: ${what} is refused at /authorize, before any page`, async () => {
      const clientId = await newClient(stack, [WEB])
      const { challenge } = pkce()
      const params = { ...authParams(stack, { clientId, redirectUri: WEB, challenge }), ...over }
      const res = await send(authorizeUrl(stack, params))
      assert.equal(res.status, 303, res.text)
      const to = new URL(String(res.location))
      assert.ok(to.href.startsWith(WEB), to.href)
      assert.equal(to.searchParams.get('error'), 'invalid_request')
      assert.equal(to.searchParams.get('code'), null)
    })

  it('held: a refresh asking more scope is refused; a reused refresh token ends the grant’s access tokens', async () => {
    const clientId = await newClient(stack, [WEB])
    const l = await login(stack, { clientId, redirectUri: WEB, scope: 'mcp:read' })
    const t = await exchange(stack, l, { clientId, redirectUri: WEB })
    assert.equal(t.status, 200, t.text)
    const more = await refresh(stack, String(t.json.refresh_token), clientId, {
      scope: 'mcp:read mcp:write',
    })
    assert.equal(more.status, 400, more.text)
    assert.equal(more.json.error, 'invalid_scope')
    const next = await refresh(stack, String(t.json.refresh_token), clientId)
    assert.equal(next.status, 200, next.text)
    assert.equal(decodeJwt(String(next.json.access_token)).scope, 'mcp:read')
    assert.equal(await useAt(stack, 'notes', String(next.json.access_token)), 200)
    // The first refresh token again (a thief's copy): the grant ends, its tokens with it.
    const replay = await refresh(stack, String(t.json.refresh_token), clientId)
    assert.equal(replay.json.error, 'invalid_grant', replay.text)
    assert.equal(await useAt(stack, 'notes', String(next.json.access_token)), 401)
    assert.equal(await useAt(stack, 'notes', String(t.json.access_token)), 401)
  })

  it('held: the consent form needs its own page’s token; the page cannot be framed', async () => {
    const clientId = await newClient(stack, [WEB])
    const { challenge } = pkce()
    const jar = new Map<string, string>()
    const start = await send(
      authorizeUrl(stack, authParams(stack, { clientId, redirectUri: WEB, challenge })),
      { jar },
    )
    const page = await send(new URL(String(start.location), stack.url).href, { jar })
    assertGatewayPage(assert, page, 200, 'the consent page')
    const approve = forms(page.text).find((f) => f.action.endsWith('/approve'))!
    // Another sign-in's page, in another browser: its token is not this one's.
    const otherJar = new Map<string, string>()
    const other = await send(
      authorizeUrl(stack, authParams(stack, { clientId, redirectUri: WEB, challenge })),
      { jar: otherJar },
    )
    const otherPage = await send(new URL(String(other.location), stack.url).href, {
      jar: otherJar,
    })
    const otherCsrf = forms(otherPage.text)[0]?.fields.csrf
    assert.ok(otherCsrf && otherCsrf !== approve.fields.csrf)
    for (const [what, body] of [
      ['no token', ''],
      ['an empty token', 'csrf='],
      ['a forged token', `csrf=${'A'.repeat(43)}`],
      ['a token of another sign-in', `csrf=${otherCsrf}`],
    ] as const) {
      const res = await send(new URL(approve.action, stack.url).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        jar,
      })
      assertGatewayPage(assert, res, 403, what)
    }
    // The right token from another browser (no interaction cookie): the sign-in is not found.
    const stranger = await send(new URL(approve.action, stack.url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrf=${approve.fields.csrf}`,
    })
    assertGatewayPage(assert, stranger, 400, 'another browser')
    assert.deepEqual(await stack.store.keys('broker:tx:'), [], 'no upstream login was started')
  })
})
