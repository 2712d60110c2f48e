// A remembered consent for a server whose policy needs no scope (`access: []`, or a request of
// `scope=openid`): oidc-provider's Grant keeps no resource of an empty scope, so since stop 24
// (a resource the grant holds nothing for is asked again) such a server showed the consent page
// at every authorization. The grant now records the approval itself (approval.ts). What must
// still hold, each a case here: an app approved for one server sees the page for another
// (scoped or not); a revoked grant forgets; another client, another user inherit nothing; more
// scopes asked show the page; with consent.remember off the page shows every time. Both ways a
// remembered consent is decided: a fresh login (oidc-provider's consent checks) and a login due
// again (recheckInterval 0: the broker's own "the grant covers it" shortcut). Real broker stack,
// the scripted browser of the refusal tests, and one run in a real headless Chromium.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import type { Browser, Page } from 'puppeteer-core'
import { exchange, login, newClient, send, type Login } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import { tokenRequest } from '../helpers/oauth-flow.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const POLICY = `
roles:
  MCP.Developer: ["mcp:read", "mcp:write"]
servers:
  notes:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  open:
    tools: { "*": allow }
  open2:
    tools: { "*": allow }
  gated:
    tools: { "*": ["mcp:read"] }
`
const echo = { command: process.execPath, args: [join(SERVERS_DIR, 'echo.js')] }
const SERVERS = { notes: echo, open: echo, open2: echo, gated: echo }
const WEB = 'https://claude.ai/api/mcp/auth_callback'
const BOB = 'bob-pairwise-sub'
const ALICE = '00000000-0000-0000-0000-00000000a11c'

/** The pages (200) a login showed: the consent page, if any. */
const pagesOf = (l: Login) => l.visits.filter((v) => v.status === 200)

for (const [when, upstream] of [
  ['a fresh login', {}],
  ['a login due again (recheckInterval 0)', { recheckInterval: 0 }],
] as const)
  describe(`a remembered consent for a server of no scope (${when})`, () => {
    let stack: BrokerStack
    before(async () => {
      stack = await startBrokerStack({ policy: POLICY, upstream, config: { servers: SERVERS } })
    })
    after(() => stack?.close())

    /** A login of `server` for `clientId` in `jar`; consent allowed if the page shows. */
    const authorize = (
      clientId: string,
      jar: Map<string, string>,
      server: string,
      scope = 'openid',
      consent: 'allow' | 'deny' = 'allow',
    ) =>
      login(stack, {
        clientId,
        redirectUri: WEB,
        server,
        jar,
        params: { scope },
        choices: { consent, missingRole: 'cancel' },
      })

    /** A client approved once for `server` (the page shown, allowed), its browser's jar. */
    async function approved(server = 'open', scope = 'openid') {
      const clientId = await newClient(stack, [WEB])
      const jar = new Map<string, string>()
      const first = await authorize(clientId, jar, server, scope)
      assert.equal(pagesOf(first).length, 1, 'the first authorization shows the page')
      assert.ok(first.callback.searchParams.get('code'), first.callback.href)
      return { clientId, jar, first }
    }

    it('approved for open: the second authorization has no page, a code, a token for open of no scope', async () => {
      const { clientId, jar, first } = await approved()
      const firstToken = await exchange(stack, first, {
        clientId,
        redirectUri: WEB,
        server: 'open',
      })
      assert.equal(firstToken.status, 200, firstToken.text)
      const again = await authorize(clientId, jar, 'open', 'openid', 'deny')
      assert.deepEqual(
        pagesOf(again).map((v) => v.url),
        [],
        'no consent page the second time',
      )
      assert.ok(again.callback.searchParams.get('code'), again.callback.href)
      const tok = await exchange(stack, again, { clientId, redirectUri: WEB, server: 'open' })
      assert.equal(tok.status, 200, tok.text)
      const claims = decodeJwt(String(tok.json.access_token))
      assert.equal(claims.aud, stack.endpoint('open'))
      // The approval's marker is the grant's, never a token's.
      assert.equal(claims.scope, undefined)
      assert.equal(tok.json.scope ?? '', '')
      // The client asking for the marker itself: not a scope a request may carry (a quote).
      const marker = await authorize(clientId, jar, 'open', 'openid "mcp-edge:approved"', 'deny')
      assert.equal(marker.callback.searchParams.get('code'), null)
      assert.equal(marker.callback.searchParams.get('error'), 'invalid_scope')
      // And a refresh carries none either.
      const refreshed = await send(`${stack.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: String(tok.json.refresh_token),
          client_id: clientId,
          resource: stack.endpoint('open'),
        }).toString(),
      })
      assert.equal(refreshed.status, 200, refreshed.text)
      assert.equal(decodeJwt(String(refreshed.json.access_token)).scope, undefined)
    })

    for (const [server, scope] of [
      ['open2', 'openid'],
      ['open2', 'openid mcp:read'],
      ['gated', 'openid'],
      ['notes', 'openid'],
      ['notes', 'openid mcp:read'],
    ] as const)
      it(`approved for open only: ${server} with scope=${scope} shows the page (denied: no code)`, async () => {
        const { clientId, jar } = await approved()
        const other = await authorize(clientId, jar, server, scope, 'deny')
        const pages = pagesOf(other)
        assert.equal(pages.length, 1, 'the consent page was shown')
        assert.match(pages[0]!.html, new RegExp(server))
        assert.equal(other.callback.searchParams.get('code'), null, other.callback.href)
        assert.equal(other.callback.searchParams.get('error'), 'access_denied')
      })

    it('approved for gated with no scope: asking its mcp:read shows the page; approved, no page again', async () => {
      const { clientId, jar } = await approved('gated', 'openid')
      const same = await authorize(clientId, jar, 'gated', 'openid', 'deny')
      assert.equal(pagesOf(same).length, 0, 'the same request: no page')
      assert.ok(same.callback.searchParams.get('code'))
      const more = await authorize(clientId, jar, 'gated', 'openid mcp:read', 'deny')
      assert.equal(pagesOf(more).length, 1, 'more scopes asked: the page')
      assert.equal(more.callback.searchParams.get('error'), 'access_denied')
      const allowed = await authorize(clientId, jar, 'gated', 'openid mcp:read', 'allow')
      assert.equal(pagesOf(allowed).length, 1)
      const tok = await exchange(stack, allowed, { clientId, redirectUri: WEB, server: 'gated' })
      assert.equal(decodeJwt(String(tok.json.access_token)).scope, 'mcp:read')
      const after = await authorize(clientId, jar, 'gated', 'openid mcp:read', 'deny')
      assert.equal(pagesOf(after).length, 0, 'now held: no page')
    })

    it('a revoked grant forgets the approval: the page again', async () => {
      const { clientId, jar, first } = await approved()
      const tok = await exchange(stack, first, { clientId, redirectUri: WEB, server: 'open' })
      assert.equal(tok.status, 200, tok.text)
      const revoked = await send(`${stack.url}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          token: String(tok.json.refresh_token),
          token_type_hint: 'refresh_token',
          client_id: clientId,
        }).toString(),
      })
      assert.equal(revoked.status, 200, revoked.text)
      const again = await authorize(clientId, jar, 'open', 'openid', 'deny')
      assert.equal(pagesOf(again).length, 1, 'the consent page was shown')
      assert.equal(again.callback.searchParams.get('error'), 'access_denied')
    })

    it('another client of the same user (same browser) does not inherit it', async () => {
      const { jar } = await approved()
      const other = await newClient(stack, [WEB])
      const l = await authorize(other, jar, 'open', 'openid', 'deny')
      assert.equal(pagesOf(l).length, 1, 'the consent page was shown')
      assert.equal(l.callback.searchParams.get('error'), 'access_denied')
    })

    // The upstream's own session forgotten, Bob signs in there on Alice's browser. With the
    // login fresh no upstream trip happens: the code is Alice's. With it due again, the
    // remembered shortcut sends the browser upstream with no page; Bob's sign-in then ends
    // Alice's broker session and Bob is asked himself (review33): he denies, and nobody gets a
    // code on Alice's consent.
    it("another person signing in upstream on the same browser gets no code on the first one's consent", async () => {
      const { clientId, jar } = await approved()
      for (const k of [...jar.keys()]) if (!/mcp_edge/.test(k)) jar.delete(k)
      stack.idp.nextUser(BOB)
      try {
        const l = await authorize(clientId, jar, 'open', 'openid', 'deny')
        if ('recheckInterval' in upstream) {
          assert.equal(pagesOf(l).length, 1, 'Bob was asked')
          assert.equal(l.callback.searchParams.get('error'), 'access_denied', l.callback.href)
          assert.equal(l.callback.searchParams.get('code'), null)
          return
        }
        assert.equal(pagesOf(l).length, 0, l.callback.href)
        const t = await exchange(stack, l, { clientId, redirectUri: WEB, server: 'open' })
        assert.equal(decodeJwt(String(t.json.access_token)).sub, ALICE)
      } finally {
        stack.idp.nextUser('alice-pairwise-sub')
      }
    })

    it('another user of the same client (their own browser) does not inherit it', async () => {
      const { clientId } = await approved()
      stack.idp.nextUser(BOB)
      try {
        const l = await authorize(clientId, new Map(), 'open', 'openid', 'deny')
        assert.equal(pagesOf(l).length, 1, 'the consent page was shown')
        assert.equal(l.callback.searchParams.get('error'), 'access_denied')
      } finally {
        stack.idp.nextUser('alice-pairwise-sub')
      }
    })
  })

describe('consent.remember off: a server of no scope shows the page every time', () => {
  let stack: BrokerStack
  before(async () => {
    stack = await startBrokerStack({
      policy: POLICY,
      broker: { consent: { remember: false } },
      config: { servers: SERVERS },
    })
  })
  after(() => stack?.close())

  it('approved, then asked again: the page', async () => {
    const clientId = await newClient(stack, [WEB])
    const jar = new Map<string, string>()
    const o = { clientId, redirectUri: WEB, server: 'open', jar, params: { scope: 'openid' } }
    const first = await login(stack, { ...o, choices: { consent: 'allow' } })
    assert.equal(pagesOf(first).length, 1)
    const again = await login(stack, { ...o, choices: { consent: 'deny' } })
    assert.equal(pagesOf(again).length, 1, 'the consent page was shown')
    assert.equal(again.callback.searchParams.get('error'), 'access_denied')
  })
})

// A hosted client (a loopback one is native: oidc-provider asks its consent every time); its
// redirect URI is answered in the browser (request interception), the closed network has no
// claude.ai.
describe('a remembered consent for a server of no scope, in headless Chromium', {
  skip: NO_BROWSER,
}, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  before(async () => {
    stack = await startBrokerStack({ policy: POLICY, config: { servers: SERVERS } })
    ;({ browser, close: closeBrowser } = await launchBrowser())
  })
  after(async () => {
    await closeBrowser?.()
    await stack?.close()
  })

  /** Opens an authorization request of `clientId` for `server`; returns where it landed. */
  async function open(page: Page, clientId: string, server: string) {
    const verifier = randomBytes(32).toString('base64url')
    const res = await page.goto(
      `${stack.url}/authorize?${new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: WEB,
        scope: 'openid',
        resource: stack.endpoint(server),
        state: randomBytes(8).toString('base64url'),
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      })}`,
    )
    return { status: res?.status(), url: new URL(page.url()), verifier }
  }

  it('Allow once for open: the next authorization lands on the client with a code; open2 shows the page', async () => {
    const page = await browser.newPage()
    await page.setJavaScriptEnabled(false)
    await page.setRequestInterception(true)
    page.on('request', (req) => {
      if (req.url().startsWith(WEB))
        void req.respond({
          status: 200,
          contentType: 'text/html',
          body: '<h1>Back at the client</h1>',
        })
      else void req.continue()
    })
    const clientId = await newClient(stack, [WEB])
    const first = await open(page, clientId, 'open')
    assert.match(first.url.pathname, /^\/interaction\//, 'the consent page the first time')
    assert.match(await page.evaluate(() => document.body.innerText), /open/)
    await page.bringToFront()
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/approve"] button')])
    assert.ok(new URL(page.url()).searchParams.get('code'), page.url())
    const again = await open(page, clientId, 'open')
    assert.equal(`${again.url.origin}${again.url.pathname}`, WEB, 'no page: back at the client')
    const code = again.url.searchParams.get('code')
    assert.ok(code, again.url.href)
    const tokens = await tokenRequest(`${stack.url}/token`, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: WEB,
      client_id: clientId,
      code_verifier: again.verifier,
      resource: stack.endpoint('open'),
    })
    assert.equal(decodeJwt(tokens.access_token).aud, stack.endpoint('open'))
    const other = await open(page, clientId, 'open2')
    assert.equal(other.status, 200)
    assert.match(other.url.pathname, /^\/interaction\//, 'another server: the page')
    await page.close()
  })
})
