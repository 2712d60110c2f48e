// The "Sign in as" page in a real headless Chromium, scripts off: what a person on a phone
// or desktop sees and clicks decides which user, and so which scopes, a client gets.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { pino } from 'pino'
import type { Browser, Page } from 'puppeteer-core'
import { startDevIdp, type DevIdp } from '../../gateway/devidp/provider.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import { DEMO_ROLES, scopesForRoles } from '../helpers/dev-roles.js'
import {
  discover,
  registerPublicClient,
  tokenRequest,
  type Discovery,
  SETUP,
} from '../helpers/oauth-flow.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'
const USERS = [
  { sub: 'dev-user', roles: ['mcp-user', 'mcp-developer'] },
  { sub: 'ada', roles: ['mcp-admin'] },
]

describe('the sign-in page in headless Chromium', { skip: NO_BROWSER }, () => {
  let idp: DevIdp
  let meta: Discovery
  let browser: Browser
  let closeBrowser: () => Promise<void>
  // The client's redirect_uri, and a page of another origin on the same host (same site).
  let site: http.Server
  let siteUrl: string
  let evilPage = ''

  before(async () => {
    idp = await startDevIdp({
      resources: [ECHO],
      users: USERS,
      scopesFor: scopesForRoles(DEMO_ROLES),
      stateFile: false,
      logger: pino({ level: 'silent' }),
    })
    meta = await discover(idp.issuer)
    site = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/html')
      res.end(req.url?.startsWith('/evil') ? evilPage : '<title>callback</title>done')
    })
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`
    ;({ browser, close: closeBrowser } = await launchBrowser())
  }, SETUP)
  after(async () => {
    await closeBrowser?.()
    await new Promise<void>((resolve) => (site ? site.close(() => resolve()) : resolve()))
    await idp?.close()
  })

  /** Opens an authorization request in `page`; resolves once the sign-in page is shown. */
  async function authorize(page: Page) {
    const redirectUri = `${siteUrl}/callback`
    const clientId = await registerPublicClient(idp.issuer, redirectUri, {
      client_name: 'Browser test',
    })
    const verifier = randomBytes(32).toString('base64url')
    const url = `${meta.authorization_endpoint}?${new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: 'mcp:read mcp:admin',
      resource: ECHO,
      state: 'st',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    })}`
    await page.goto(url)
    return { clientId, redirectUri, verifier }
  }

  /** Clicks the button of `sub`, follows to the redirect_uri and redeems the code. */
  async function signInAs(page: Page, sub: string, flow: Awaited<ReturnType<typeof authorize>>) {
    const [landed] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }).then(async () => {
        while (!page.url().startsWith(flow.redirectUri)) await page.waitForNavigation()
        return new URL(page.url())
      }),
      page.click(`button[value="${sub}"]`),
    ])
    assert.equal(landed.searchParams.get('state'), 'st')
    return tokenRequest(meta.token_endpoint, {
      grant_type: 'authorization_code',
      code: landed.searchParams.get('code')!,
      redirect_uri: flow.redirectUri,
      client_id: flow.clientId,
      code_verifier: flow.verifier,
      resource: ECHO,
    })
  }

  it('shows each user with its roles, fits a phone screen, and works with scripts off', async () => {
    const page = await browser.newPage()
    await page.setJavaScriptEnabled(false)
    await page.setViewport({ width: 360, height: 640, isMobile: true })
    await authorize(page)
    const shown = await page.$$eval('button', (buttons) =>
      buttons.map((b) => ({
        text: b.textContent,
        width: b.getBoundingClientRect().width,
      })),
    )
    assert.equal(await page.$eval('h1', (h) => h.textContent), 'Sign in as')
    assert.deepEqual(
      shown.map((b) => b.text),
      ['dev-usermcp-user, mcp-developer', 'adamcp-admin'],
    )
    for (const b of shown) assert.ok(b.width > 250 && b.width <= 360, `button width ${b.width}`)
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(scrollWidth <= 360, `no sideways scrolling (${scrollWidth})`)
    await page.close()
  })

  it('choosing the non-admin user gives no mcp:admin, the admin user gives it (one browser)', async () => {
    const page = await browser.newPage()
    await page.setJavaScriptEnabled(false)
    const cases = [
      { sub: 'dev-user', scope: 'mcp:read' },
      { sub: 'ada', scope: 'mcp:read mcp:admin' },
      { sub: 'dev-user', scope: 'mcp:read' },
    ]
    for (const c of cases) {
      const tokens = await signInAs(page, c.sub, await authorize(page))
      const claims = decodeJwt(tokens.access_token)
      assert.equal(claims.sub, c.sub)
      assert.equal(claims.scope, c.scope, c.sub)
    }
    await page.close()
  })

  it('another origin on the same host can neither frame the page nor post its form', async () => {
    const page = await browser.newPage()
    await authorize(page)
    const interaction = page.url()
    assert.match(interaction, /\/interaction\//)

    // Framed: Chromium refuses to render it (frame-ancestors 'none').
    evilPage = `<iframe src="${interaction}"></iframe>`
    const evil = await browser.newPage()
    await evil.goto(`${siteUrl}/evil-frame`)
    const framed = evil.frames().find((f) => f !== evil.mainFrame())
    const text = await framed?.evaluate(() => document.body?.textContent ?? '').catch(() => '')
    assert.doesNotMatch(text ?? '', /Sign in as/)

    // Posted from there (cookies go along: same site): the form token is missing.
    evilPage =
      `<form method="post" action="${interaction}"><input name="csrf" value="guess">` +
      '<button name="sub" value="ada">go</button></form>'
    await evil.goto(`${siteUrl}/evil-form`)
    const [res] = await Promise.all([evil.waitForNavigation(), evil.click('button')])
    assert.equal(res?.status(), 400)
    assert.match(
      await evil.evaluate(() => document.body.textContent ?? ''),
      /does not belong to this sign-in/,
    )
    await evil.close()
    await page.close()
  })
})
