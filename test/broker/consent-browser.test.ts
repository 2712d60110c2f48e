// The broker's consent, missing-role and error pages in a real headless Chromium, scripts off,
// in a real login (a registered client's authorization URL; the Entra-like upstream signs the
// user in without a page): approve lands on the client with a code, deny with access_denied;
// pages of other origins can neither post the forms nor frame them; the loopback warning; a
// phone's width. MCP_EDGE_SCREENSHOTS=<dir> keeps a screenshot of each page there.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import type { Browser, HTTPResponse, Page } from 'puppeteer-core'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import { registerPublicClient, tokenRequest } from '../helpers/oauth-flow.js'

const SHOTS = process.env.MCP_EDGE_SCREENSHOTS

describe('the broker consent pages in headless Chromium', { skip: NO_BROWSER }, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  // The client's redirect URI (records every arrival) and other origins' pages: the same
  // server as 127.0.0.1:P (another origin, same site) and as localhost:P (another site).
  let site: http.Server
  let port: number
  let redirectUri: string
  const arrivals: string[] = []
  let evilPage = ''

  before(async () => {
    stack = await startBrokerStack({ kind: 'entra' })
    site = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8')
      if (req.url?.startsWith('/callback')) arrivals.push(req.url)
      res.end(
        req.url?.startsWith('/evil')
          ? evilPage
          : '<!doctype html><title>client</title><h1>Back at the client</h1>',
      )
    })
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    port = (site.address() as AddressInfo).port
    redirectUri = `http://127.0.0.1:${port}/callback`
    ;({ browser, close: closeBrowser } = await launchBrowser())
    if (SHOTS) mkdirSync(SHOTS, { recursive: true })
  })
  after(async () => {
    await closeBrowser?.()
    site?.closeAllConnections()
    await new Promise<void>((resolve) => (site ? site.close(() => resolve()) : resolve()))
    await stack?.close()
  })

  async function shot(page: Page, name: string): Promise<void> {
    if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
  }

  /** A page with scripts off (the broker's pages need none), optionally a phone's width. */
  async function newPage(o: { width?: number } = {}): Promise<Page> {
    const page = await browser.newPage()
    await page.setJavaScriptEnabled(false)
    await page.setViewport(
      o.width ? { width: o.width, height: 740, isMobile: true } : { width: 1000, height: 800 },
    )
    return page
  }

  /**
   * Registers a client (DCR) for `redirect`, opens its authorization request (PKCE S256) in
   * `page` and resolves on the consent page.
   */
  async function authorize(page: Page, o: { scope: string; redirect?: string; name?: string }) {
    const redirect = o.redirect ?? redirectUri
    const clientId = await registerPublicClient(stack.url, redirect, {
      client_name: o.name ?? 'Browser test',
    })
    const verifier = randomBytes(32).toString('base64url')
    const state = randomBytes(8).toString('base64url')
    const url = `${stack.url}/authorize?${new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirect,
      scope: o.scope,
      resource: stack.endpoint('notes'),
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    })}`
    const res = await page.goto(url)
    assert.equal(res?.status(), 200)
    assert.match(page.url(), /\/interaction\/[^/]+$/)
    return { clientId, verifier, state, interaction: page.url(), redirect }
  }

  /** Clicks `selector` and follows the navigation (every redirect of it); returns the last response. */
  async function click(page: Page, selector: string): Promise<HTTPResponse | null> {
    // A click reaches only the tab in front.
    await page.bringToFront()
    const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)])
    return res
  }

  const text = (page: Page) => page.evaluate(() => document.body.innerText)
  const approve = 'form[action$="/approve"] button'
  const deny = 'form[action$="/deny"] button'

  it('Allow: the upstream login, then the client gets a code (with iss) for what was asked', async () => {
    const page = await newPage()
    const flow = await authorize(page, { scope: 'mcp:read' })
    assert.equal(
      await page.$eval('h1', (h) => h.textContent),
      'Allow Browser test to use these tools for you?',
    )
    assert.match(await text(page), /notes/)
    await shot(page, '1-consent')
    await click(page, approve)
    const landed = new URL(page.url())
    assert.equal(`${landed.origin}${landed.pathname}`, redirectUri)
    assert.equal(landed.searchParams.get('iss'), stack.url, 'RFC 9207')
    assert.equal(landed.searchParams.get('state'), flow.state)
    const tokens = await tokenRequest(`${stack.url}/token`, {
      grant_type: 'authorization_code',
      code: landed.searchParams.get('code')!,
      redirect_uri: redirectUri,
      client_id: flow.clientId,
      code_verifier: flow.verifier,
      resource: stack.endpoint('notes'),
    })
    const claims = decodeJwt(tokens.access_token)
    assert.equal(claims.scope, 'mcp:read')
    assert.equal(claims.aud, stack.endpoint('notes'))
    await page.close()
  })

  it('Deny: the client gets error=access_denied with iss, and no code', async () => {
    const page = await newPage()
    const flow = await authorize(page, { scope: 'mcp:read' })
    await click(page, deny)
    const landed = new URL(page.url())
    assert.equal(`${landed.origin}${landed.pathname}`, redirectUri)
    assert.equal(landed.searchParams.get('error'), 'access_denied')
    assert.equal(landed.searchParams.get('iss'), stack.url)
    assert.equal(landed.searchParams.get('state'), flow.state)
    assert.equal(landed.searchParams.get('code'), null)
    await page.close()
  })

  // A page of another origin posts the approve form of the user's open sign-in (it even knows
  // the interaction URL). Same site: the cookies go along, the CSRF token is what stops it.
  // Another site: SameSite=Lax keeps the cookies home, so the sign-in is not even found.
  const forgeries = [
    {
      name: 'another origin, same site, a guessed token',
      origin: () => `http://127.0.0.1:${port}`,
      csrf: 'guess',
      status: 403,
      says: /did not come from this sign-in page/,
    },
    {
      name: 'another origin, same site, no token',
      origin: () => `http://127.0.0.1:${port}`,
      csrf: undefined,
      status: 403,
      says: /did not come from this sign-in page/,
    },
    {
      name: 'another site',
      origin: () => `http://localhost:${port}`,
      csrf: 'guess',
      status: 400,
      says: /This sign-in has expired/,
    },
  ]
  for (const f of forgeries) {
    it(`a form posted from ${f.name} is refused and nothing is issued`, async () => {
      const page = await newPage()
      const flow = await authorize(page, { scope: 'mcp:read mcp:write' })
      const before = {
        arrivals: arrivals.length,
        upstream: stack.idp.counts.token,
        audit: stack.audit().length,
      }
      const field =
        f.csrf === undefined ? '' : `<input type="hidden" name="csrf" value="${f.csrf}">`
      evilPage = `<!doctype html><title>Win a prize</title><form method="post" action="${flow.interaction}/approve">${field}<button>Claim your prize</button></form>`
      const evil = await newPage()
      await evil.goto(`${f.origin()}/evil-form`)
      const res = await click(evil, 'button')
      assert.equal(res?.status(), f.status)
      assert.match(await text(evil), f.says)
      if (f.name === 'another origin, same site, a guessed token')
        await shot(evil, '5-csrf-refused')
      assert.equal(arrivals.length, before.arrivals, 'the client got nothing')
      assert.equal(stack.idp.counts.token, before.upstream, 'no upstream login happened')
      assert.equal(
        stack
          .audit()
          .slice(before.audit)
          .filter((a) => a.decision === 'allow').length,
        0,
        'no grant',
      )
      // The user's own page still works: the forgery consumed nothing.
      await click(page, deny)
      assert.equal(new URL(page.url()).searchParams.get('error'), 'access_denied')
      await evil.close()
      await page.close()
    })
  }

  for (const framer of [
    { name: 'another site', host: 'localhost' },
    { name: 'another origin of the same site', host: '127.0.0.1' },
  ]) {
    it(`a page of ${framer.name} cannot frame the consent page (frame-ancestors 'none', X-Frame-Options DENY)`, async () => {
      const page = await newPage()
      const flow = await authorize(page, { scope: 'mcp:read' })
      evilPage = `<!doctype html><title>Framer</title><h1>Framing page</h1><iframe src="${flow.interaction}" width="600" height="500"></iframe>`
      const evil = await newPage()
      const framed: HTTPResponse[] = []
      evil.on('response', (r) => void (r.url() === flow.interaction && framed.push(r)))
      await evil.goto(`http://${framer.host}:${port}/evil-frame`, { waitUntil: 'load' })
      // The broker answered the frame's request, and said no framing; the browser obeyed.
      assert.equal(framed.length, 1)
      assert.match(framed[0]!.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/)
      assert.equal(framed[0]!.headers()['x-frame-options'], 'DENY')
      const child = evil.frames().find((fr) => fr !== evil.mainFrame())!
      assert.notEqual(
        child.url(),
        flow.interaction,
        `the frame shows no consent page (${child.url()})`,
      )
      const inside = await child.evaluate(() => document.body?.innerText ?? '').catch(() => '')
      assert.doesNotMatch(inside, /Allow/)
      if (framer.host === 'localhost') await shot(evil, '6-framed')
      await evil.close()
      await page.close()
    })
  }

  it('the loopback warning is shown for a redirect URI on this device, not for a web client', async () => {
    const page = await newPage()
    await authorize(page, { scope: 'mcp:read' })
    assert.match(
      await page.$eval('.warn', (w) => w.textContent ?? ''),
      /An application on this device.*any program on this device can claim this name/s,
    )
    assert.equal(await page.$eval('.host', (h) => h.textContent), `127.0.0.1:${port}`)
    await authorize(page, {
      scope: 'mcp:read',
      redirect: 'https://claude.ai/api/mcp/auth_callback',
      name: 'Claude',
    })
    assert.equal(await page.$('.warn'), null)
    assert.equal(await page.$eval('.host', (h) => h.textContent), 'claude.ai')
    await shot(page, '2-consent-web-client')
    await page.close()
  })

  it('at 360 px wide, scripts off: no sideways scrolling, both buttons on screen, and it still works', async () => {
    const page = await newPage({ width: 360 })
    await authorize(page, {
      scope: 'mcp:read mcp:write',
      name: 'A client with a rather long name that has to wrap on a phone',
    })
    const size = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }))
    assert.equal(size.inner, 360)
    assert.ok(size.scroll <= size.inner, `scrollWidth ${size.scroll} > ${size.inner}`)
    for (const selector of [approve, deny]) {
      const box = await page.$eval(selector, (b) => {
        const r = b.getBoundingClientRect()
        return { left: r.left, right: r.right }
      })
      assert.ok(box.left >= 0 && box.right <= 360, `${selector} ${JSON.stringify(box)}`)
    }
    assert.equal(await page.$('script'), null, 'the page has no script')
    await shot(page, '3-consent-360px')
    await click(page, approve)
    assert.ok(new URL(page.url()).searchParams.get('code'), page.url())
    await page.close()
  })

  // oidc-provider's own error page, for what cannot go back to the client (RFC 6749 §4.1.2.1).
  const unroutable = [
    {
      name: 'an unknown client',
      params: (id: string) => ({ client_id: `${id}-unknown`, redirect_uri: redirectUri }),
      says: /invalid_client/,
    },
    {
      name: 'a redirect URI the client did not register',
      params: (id: string) => ({ client_id: id, redirect_uri: 'http://127.0.0.1:1/elsewhere' }),
      says: /redirect_uri/,
    },
  ]
  for (const u of unroutable) {
    it(`${u.name}: the broker's own page, with the headers of every page it shows a person`, async () => {
      const page = await newPage({ width: 360 })
      const clientId = await registerPublicClient(stack.url, redirectUri, {
        client_name: 'Browser test',
      })
      const res = await page.goto(
        `${stack.url}/authorize?${new URLSearchParams({
          response_type: 'code',
          scope: 'mcp:read',
          resource: stack.endpoint('notes'),
          state: 'st',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          ...u.params(clientId),
        })}`,
      )
      assert.equal(res?.status(), 400)
      assert.equal(
        arrivals.filter((a) => a.includes('state=st')).length,
        0,
        'nothing went to the client',
      )
      assert.equal(await page.$eval('h1', (h) => h.textContent), 'This sign-in cannot continue')
      assert.match(await text(page), u.says)
      const headers = res!.headers()
      assert.equal(headers['x-frame-options'], 'DENY')
      assert.equal(headers['referrer-policy'], 'no-referrer')
      assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/)
      // The stylesheet applies (its CSP hash matches): the same card as the other pages.
      assert.equal(await page.$eval('.card', (c) => getComputedStyle(c).borderRadius), '10px')
      if (u.name === 'an unknown client') await shot(page, '7-error-page')
      await page.close()
    })
  }

  it('a step-up the roles do not allow: the missing-role page names the role; continuing grants the rest', async () => {
    const page = await newPage({ width: 360 })
    // Signed in first; then the client asks for more (a step-up) in the same browser.
    await authorize(page, { scope: 'mcp:read' })
    await click(page, approve)
    assert.ok(new URL(page.url()).searchParams.get('code'))
    const flow = await authorize(page, { scope: 'mcp:read mcp:admin' })
    // The person checks who they are signed in as: their email, not the upstream's object id.
    assert.match(await text(page), /Signed in as alice@contoso\.example\./)
    const res = await click(page, approve)
    assert.equal(res?.status(), 403)
    assert.equal(await page.$eval('h1', (h) => h.textContent), 'Your account lacks a role for this')
    const body = await text(page)
    assert.match(body, /mcp:admin: needs the role MCP\.Admin/)
    assert.match(body, /alice@contoso\.example/)
    const size = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }))
    assert.ok(size.scroll <= size.inner, `scrollWidth ${size.scroll} > ${size.inner}`)
    // The role is what the person asks an administrator for: never split across lines.
    const lines = await page.$$eval('li code', (codes) =>
      codes.map((c) => [c.textContent, c.getClientRects().length]),
    )
    assert.deepEqual(lines, [
      ['mcp:admin', 1],
      ['MCP.Admin', 1],
    ])
    await shot(page, '4-missing-role')
    await click(page, 'form button.primary')
    const landed = new URL(page.url())
    const tokens = await tokenRequest(`${stack.url}/token`, {
      grant_type: 'authorization_code',
      code: landed.searchParams.get('code')!,
      redirect_uri: redirectUri,
      client_id: flow.clientId,
      code_verifier: flow.verifier,
      resource: stack.endpoint('notes'),
    })
    assert.equal(decodeJwt(tokens.access_token).scope, 'mcp:read', 'the rest, not mcp:admin')
    await page.close()
  })
})
