// The account page in a real headless Chromium with scripts off: a user follows the link a
// server's elicitation gives them, signs in through the broker (the Entra-like upstream signs
// them in without a page; the gateway shows no consent page for its own client), sees the
// needed secret highlighted, sets it, sees "Set on", replaces it, deletes it; a phone's width
// without sideways scrolling; signing out; pages of other origins can neither post the forms
// nor frame the page. The store is read as a process would get the values. With
// `secretUnusedTtl: 0` a secret "never expires", and an expiry set in the store by hand shows.
// MCP_EDGE_SCREENSHOTS=<dir> keeps a screenshot of each page there.
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser, BrowserContext, HTTPResponse, Page } from 'puppeteer-core'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  SEALING,
  secretsIn,
} from '../helpers/account.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'

const SHOTS = process.env.MCP_EDGE_SCREENSHOTS
const ALICE = '00000000-0000-0000-0000-00000000a11c'

describe('the account page in headless Chromium', { skip: NO_BROWSER }, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  // Other origins' pages: the same server as 127.0.0.1:P (same site) and localhost:P (another site).
  let site: http.Server
  let port: number
  let evilPage = ''
  const contexts: BrowserContext[] = []

  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      policy: ACCOUNT_POLICY,
      auth: ACCOUNT_EXCHANGE,
      config: { servers: accountServers(), secrets: SEALING },
    })
    site = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8')
      res.end(evilPage)
    })
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    port = (site.address() as AddressInfo).port
    ;({ browser, close: closeBrowser } = await launchBrowser())
    if (SHOTS) mkdirSync(SHOTS, { recursive: true })
  })
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {})
    await closeBrowser?.()
    site?.closeAllConnections()
    await new Promise<void>((resolve) => (site ? site.close(() => resolve()) : resolve()))
    await stack?.close()
  })

  const alice = () => ({ iss: stack.url, sub: ALICE })
  const text = (page: Page) => page.evaluate(() => document.body.innerText)

  async function shot(page: Page, name: string): Promise<void> {
    if (SHOTS) await page.screenshot({ path: join(SHOTS, `account-${name}.png`), fullPage: true })
  }

  /** A page in a browser profile of its own (its own cookies), scripts off, optionally a phone's width. */
  async function newPage(o: { width?: number } = {}): Promise<Page> {
    const context = await browser.createBrowserContext()
    contexts.push(context)
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    await page.setViewport(
      o.width ? { width: o.width, height: 740, isMobile: true } : { width: 1000, height: 800 },
    )
    return page
  }

  /** Clicks `selector` and follows the navigation (every redirect of it); returns the last response. */
  async function click(page: Page, selector: string): Promise<HTTPResponse | null> {
    await page.bringToFront()
    const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)])
    return res
  }

  /** Opens the link an elicitation gives and signs in; resolves on the account page. */
  async function signIn(
    page: Page,
    query = 'server=github&secret=github-token',
    at: BrokerStack = stack,
  ): Promise<void> {
    const res = await page.goto(`${at.url}/account?${query}`)
    assert.equal(res?.status(), 200)
    assert.equal(await page.$eval('a.button.primary', (a) => a.textContent), 'Sign in')
    const landed = await click(page, 'a.button.primary')
    assert.equal(landed?.status(), 200)
    assert.equal(new URL(page.url()).pathname, '/account')
    assert.match(await text(page), /Signed in as alice@contoso\.example/)
  }

  const item = (server: string, secret: string) => `li#secret-${server}-${secret}`

  it('sign in from the link, set the highlighted secret, see "Set on", replace it, delete it', async () => {
    const page = await newPage()
    await page.goto(`${stack.url}/account?server=github&secret=github-token`)
    await shot(page, '1-sign-in')
    await signIn(page)
    // The page the link asked for: the needed secret highlighted, with the sentence saying why.
    assert.equal(
      await page.$eval('.warn', (w) => w.textContent),
      'github needs a GitHub personal access token; set it, then return to your application.',
    )
    assert.deepEqual(await page.$$eval('li.cred.needed', (l) => l.map((x) => x.id)), [
      'secret-github-github-token',
    ])
    assert.match(
      await page.$eval(item('github', 'github-token'), (l) => l.textContent ?? ''),
      /Not set/,
    )
    // The stylesheet applies (its CSP hash matches): the highlight is coloured.
    assert.equal(
      await page.$eval('li.cred.needed', (l) => getComputedStyle(l).backgroundColor),
      'rgb(255, 244, 229)',
    )
    const input = `${item('github', 'github-token')} input[name=value]`
    assert.deepEqual(
      await page.$eval(input, (i) => [i.getAttribute('type'), i.getAttribute('autocomplete')]),
      ['password', 'off'],
    )
    // What else the user's servers need: supplied, not set by them.
    const body = await text(page)
    assert.match(body, /Exchanged at your identity provider for https:\/\/confluence\.example/)
    assert.match(
      body,
      new RegExp(
        `From your sign-in at ${new URL(stack.idp.issuer).host.replace(/\./g, '\\.')}\\. The gateway holds one for you\\.`,
      ),
    )
    assert.doesNotMatch(body, /vault/, 'a server the user may not use is not shown')
    assert.equal(await page.$('script'), null)
    await shot(page, '2-needed')

    // Set.
    await page.type(input, 'ghp_first-value')
    const before = Date.now()
    await click(page, `${item('github', 'github-token')} button.primary`)
    assert.equal(new URL(page.url()).pathname, '/account/saved')
    assert.match(
      await text(page),
      /github-token is set \(on .+ UTC; expires on .+ UTC unless used\)\.\s+You can go back to your application now/,
    )
    assert.equal(await secretsIn(stack.store).value(alice(), 'github-token'), 'ghp_first-value')
    await shot(page, '3-saved')

    // Back: "Set on", when it expires unused, and held for the user (names and dates, never
    // the value).
    await click(page, 'a.button')
    const listedAt = Date.now()
    assert.match(
      await page.$eval(item('github', 'github-token'), (l) => l.textContent ?? ''),
      /Set on \d{4}-\d\d-\d\d \d\d:\d\d UTC; expires on \d{4}-\d\d-\d\d \d\d:\d\d UTC unless used/,
    )
    // The instant is the store's time to live of the value (secretUnusedTtl, 90 days), read
    // back: within the set's round trip.
    const [setAt, expiresAt] = await page.$$eval(`${item('github', 'github-token')} time`, (t) =>
      t.map((x) => Date.parse(x.getAttribute('datetime') ?? '')),
    )
    const ttl = 90 * 24 * 3600 * 1000
    assert.ok(setAt! >= before && setAt! <= listedAt, String(setAt))
    assert.ok(expiresAt! >= before + ttl - 1 && expiresAt! <= listedAt + ttl, String(expiresAt))
    assert.match(
      await text(page),
      /What the gateway holds for you\s+github-token set on .+ UTC; expires on .+ UTC unless used/,
    )
    assert.equal(
      await page.$eval(`${item('github', 'github-token')} button.primary`, (b) => b.textContent),
      'Replace',
    )
    assert.doesNotMatch(await page.content(), /ghp_first-value/)
    assert.match(await text(page), /What the gateway holds for you\s+github-token set on/)
    const firstSet = await page.$eval(`${item('github', 'github-token')} time`, (t) =>
      t.getAttribute('datetime'),
    )

    // Replace.
    await page.type(input, 'ghp_second-value')
    await click(page, `${item('github', 'github-token')} button.primary`)
    assert.equal(await secretsIn(stack.store).value(alice(), 'github-token'), 'ghp_second-value')
    assert.deepEqual(
      stack
        .audit()
        .filter((a) => a.method === 'account/secret.set')
        .map((a) => a.outcome),
      ['set', 'replaced'],
    )
    await click(page, 'a.button')
    const secondSet = await page.$eval(`${item('github', 'github-token')} time`, (t) =>
      t.getAttribute('datetime'),
    )
    assert.ok(Date.parse(secondSet!) >= Date.parse(firstSet!))

    // Delete.
    await click(
      page,
      `${item('github', 'github-token')} form[action$="/account/secrets/delete"] button`,
    )
    assert.equal(new URL(page.url()).searchParams.get('deleted'), 'github-token')
    assert.equal(await page.$eval('.note', (n) => n.textContent), 'github-token is deleted.')
    assert.match(
      await page.$eval(item('github', 'github-token'), (l) => l.textContent ?? ''),
      /Not set/,
    )
    assert.match(await text(page), /What the gateway holds for you\s+No secrets\./)
    assert.equal(await secretsIn(stack.store).value(alice(), 'github-token'), undefined)
    await shot(page, '4-deleted')
    await page.close()
  })

  it('at 360 px wide, scripts off: no sideways scrolling, every field and button on screen, and it works', async () => {
    const page = await newPage({ width: 360 })
    await signIn(page, 'server=jira&secret=jira-token')
    const size = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }))
    assert.equal(size.inner, 360)
    assert.ok(size.scroll <= size.inner, `scrollWidth ${size.scroll} > ${size.inner}`)
    const boxes = await page.$$eval('input[type=password], button, .warn, li.cred', (els) =>
      els.map((e) => {
        const r = e.getBoundingClientRect()
        return { what: `${e.tagName}.${e.className}`, left: r.left, right: r.right }
      }),
    )
    for (const b of boxes) assert.ok(b.left >= 0 && b.right <= 360, JSON.stringify(b))
    await shot(page, '5-360px')
    await page.type(`${item('jira', 'jira-token')} input[name=value]`, 'jira-from-a-phone')
    await click(page, `${item('jira', 'jira-token')} button.primary`)
    assert.equal(new URL(page.url()).pathname, '/account/saved')
    const saved = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }))
    assert.ok(saved.scroll <= saved.inner)
    assert.equal(await secretsIn(stack.store).value(alice(), 'jira-token'), 'jira-from-a-phone')
    await secretsIn(stack.store).remove(alice(), 'jira-token')
    await page.close()
  })

  it('sign out: the page asks to sign in again, and its forms are refused', async () => {
    const page = await newPage()
    await signIn(page)
    await click(page, 'form[action$="/account/logout"] button')
    assert.match(await text(page), /You are signed out of this page/)
    assert.equal(await page.$('input[type=password]'), null)
    await page.close()
  })

  // A page of another origin posts the set form (it knows the form's fields, not the session's
  // token). Same site: the cookie goes along and, on a loopback gateway, any loopback Origin
  // passes (as for the MCP endpoints): the CSRF token stops it. Another site: SameSite=Lax keeps
  // the cookie home, so there is no session at all.
  const forgeries = [
    { name: 'another origin of the same site', host: '127.0.0.1', says: /Code csrf_mismatch/ },
    { name: 'another site', host: 'localhost', says: /Code not_signed_in/ },
  ]
  for (const f of forgeries) {
    it(`a form posted from ${f.name} is refused (403) and nothing is stored`, async () => {
      const page = await newPage()
      await signIn(page)
      evilPage = `<!doctype html><title>Prize</title><form method="post" action="${stack.url}/account/secrets"><input type="hidden" name="name" value="github-token"><input type="hidden" name="value" value="attacker-value"><input type="hidden" name="csrf" value="guess"><button>Claim your prize</button></form>`
      const evil = await page.browserContext().newPage()
      await evil.setJavaScriptEnabled(false)
      await evil.goto(`http://${f.host}:${port}/evil-form`)
      const res = await click(evil, 'button')
      assert.equal(res?.status(), 403)
      assert.match(await text(evil), f.says)
      assert.equal(await secretsIn(stack.store).value(alice(), 'github-token'), undefined)
      await evil.close()
      await page.close()
    })
  }

  it("a page of another site cannot frame the account page (frame-ancestors 'none', X-Frame-Options DENY)", async () => {
    const page = await newPage()
    await signIn(page)
    const target = `${stack.url}/account`
    evilPage = `<!doctype html><title>Framer</title><h1>Framing page</h1><iframe src="${target}" width="600" height="500"></iframe>`
    const evil = await page.browserContext().newPage()
    const framed: HTTPResponse[] = []
    evil.on('response', (r) => void (r.url() === target && framed.push(r)))
    await evil.goto(`http://localhost:${port}/evil-frame`, { waitUntil: 'load' })
    assert.equal(framed.length, 1)
    assert.match(framed[0]!.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/)
    assert.equal(framed[0]!.headers()['x-frame-options'], 'DENY')
    const child = evil.frames().find((fr) => fr !== evil.mainFrame())!
    const inside = await child.evaluate(() => document.body?.innerText ?? '').catch(() => '')
    assert.doesNotMatch(inside, /Your credentials/)
    await evil.close()
    await page.close()
  })

  // A gateway that keeps secrets for ever: "never expires"; and an expiry set by hand in the
  // store shows as that instant: the page reads the store's own time to live.
  describe('with credentials.secretUnusedTtl 0', () => {
    let forever: BrokerStack
    before(async () => {
      forever = await startBrokerStack({
        kind: 'entra',
        policy: ACCOUNT_POLICY,
        auth: ACCOUNT_EXCHANGE,
        config: {
          servers: accountServers(),
          secrets: SEALING,
          credentials: { secretUnusedTtl: 0 },
        },
      })
    })
    after(() => forever?.close())

    it('"never expires" once set; an instant in UTC once the store gives the value a time to live', async () => {
      const value = 'ghp_never-expiring-value'
      const entry = item('github', 'github-token')
      const page = await newPage()
      await signIn(page, undefined, forever)
      await page.type(`${entry} input[name=value]`, value)
      await click(page, `${entry} button.primary`)
      assert.match(await text(page), /github-token is set \(on .+ UTC; never expires\)\./)
      await click(page, 'a.button')
      assert.match(
        await page.$eval(entry, (l) => l.textContent ?? ''),
        /Set on \d{4}-\d\d-\d\d \d\d:\d\d UTC; never expires/,
      )
      assert.match(
        await text(page),
        /What the gateway holds for you\s+github-token set on .+ UTC; never expires/,
      )

      // An operator gives the value a time to live in the store: the page shows the store's.
      const secrets = secretsIn(forever.store)
      const key = `secrets:${secrets.userKey({ iss: forever.url, sub: ALICE })}:github-token`
      const at = Date.parse('2031-02-03T04:05:00.000Z')
      const from = Date.now()
      assert.equal(await forever.store.expire(key, at - from), true)
      await page.reload()
      const to = Date.now()
      assert.match(
        await page.$eval(entry, (l) => l.textContent ?? ''),
        /; expires on 2031-02-03 04:0[45] UTC unless used/,
      )
      const shown = await page.$$eval(`${entry} time`, (t) =>
        t.map((x) => x.getAttribute('datetime')),
      )
      const expiresAt = Date.parse(shown[1]!)
      assert.ok(expiresAt >= at - 1 && expiresAt <= at + (to - from), shown[1]!)
      assert.doesNotMatch(await page.content(), new RegExp(value))
      await page.close()
    })
  })
})
