// Review stop 62, in a real headless Chromium: an outsider's pages against the broker's consent
// page and the account page of a gateway on loopback.
// - Held: a client_name or scope carrying HTML, attribute breaks, script or `javascript:` URLs
//   shows as text on the consent page (scripts on: nothing runs, no element is added); a long
//   unbroken name keeps the page within a phone's width; an IPv6 public URL (http://[::1]:PORT)
//   works in the browser: consent, the account page's sign-in and a form (its Origin accepted).
// - Open (todo, a design choice for the lead): cookies are not bound to a port (RFC 6265 §8.5),
//   so another web server on the same loopback host (another local app, another port) receives
//   the account page's session cookie (any of its pages under /account) and the broker's (any
//   page at all). Replayed from that server, the first opens the page, reads its CSRF token and
//   replaces the user's secret; the second gets a client of its own a token as the user.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import type { Browser, BrowserContext, Page } from 'puppeteer-core'
import { formFor, secretsIn, startAccountStack } from '../helpers/account.js'
import { exchange, login, newClient, send } from '../helpers/broker-raw.js'
import type { BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER, startSite } from '../helpers/browser.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { freePort } from '../helpers/ports.js'

const ALICE = '00000000-0000-0000-0000-00000000a11c'

describe('stop62: pages against an outsider, in headless Chromium', { skip: NO_BROWSER }, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  // Another web server on the same loopback host: it records every Cookie header it is sent.
  let site: Awaited<ReturnType<typeof startSite>> | undefined
  let sitePort: number
  const cookiesSeen: string[] = []
  const contexts: BrowserContext[] = []

  before(async () => {
    stack = await startAccountStack()
    site = await startSite((req, res) => {
      if (req.headers.cookie) cookiesSeen.push(req.headers.cookie)
      res.setHeader('content-type', 'text/html; charset=utf-8')
      res.end('<!doctype html><title>Local app</title>')
    })
    sitePort = site.port
    ;({ browser, close: closeBrowser } = await launchBrowser())
  })
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {})
    await closeBrowser?.()
    await site?.close()
    await stack?.close()
  })

  /** A page in a browser profile of its own; scripts on unless told (to see that none runs). */
  async function newPage(o: { scripts?: boolean } = {}): Promise<Page> {
    const context = await browser.createBrowserContext()
    contexts.push(context)
    const page = await context.newPage()
    await page.setJavaScriptEnabled(o.scripts ?? true)
    return page
  }

  const hostile = [
    '<script>window.__pwned=1</script>',
    '"><img src=x onerror="window.__pwned=1">',
    "'><svg onload=window.__pwned=1>",
    '`${window.__pwned=1}`',
    'javascript:window.__pwned=1',
    'data:text/html,<script>window.__pwned=1</script>',
    '</title><script>window.__pwned=1</script>',
    '<a href="javascript:window.__pwned=1">Claude</a>',
  ]

  for (const name of hostile) {
    it(`client_name ${JSON.stringify(name)} is text on the consent page; nothing runs`, async () => {
      const redirect = `http://127.0.0.1:${sitePort}/callback`
      const clientId = await newClient(stack, [redirect], { client_name: name })
      const page = await newPage()
      const dialogs: string[] = []
      page.on('dialog', (d) => {
        dialogs.push(d.message())
        void d.dismiss()
      })
      // RFC 6749 §3.3: a scope token holds no quote, backslash or space.
      const scope = name.replace(/[\s"\\]/g, '')
      const url = `${stack.url}/authorize?${new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirect,
        scope: `mcp:read ${scope}`,
        resource: stack.endpoint('github'),
        state: 's',
        code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
        code_challenge_method: 'S256',
      })}`
      const res = await page.goto(url)
      assert.equal(res?.status(), 200)
      assert.match(page.url(), /\/interaction\//)
      assert.equal(
        await page.$eval('h1', (h) => h.textContent),
        `Allow ${name} to use these tools for you?`,
      )
      assert.equal(await page.title(), `Allow ${name}?`)
      assert.equal(await page.$('h1 *:not(span)'), null, 'no element made of the name')
      const scopes = await page.$$eval('li code', (c) => c.map((x) => x.textContent))
      assert.ok(scopes.includes(scope), `the scope shows as text: ${JSON.stringify(scopes)}`)
      assert.equal(
        await page.$$eval('script, img, svg, iframe, a[href^="javascript"]', (e) => e.length),
        0,
      )
      assert.equal(await page.evaluate(() => (window as { __pwned?: number }).__pwned), undefined)
      assert.deepEqual(dialogs, [])
      await page.close()
    })
  }

  it('a 256-character name without a space, at 360 px: no sideways scrolling, the host and both buttons on screen', async () => {
    const redirect = `http://127.0.0.1:${sitePort}/callback`
    const clientId = await newClient(stack, [redirect], { client_name: 'W'.repeat(256) })
    const context = await browser.createBrowserContext()
    contexts.push(context)
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    await page.setViewport({ width: 360, height: 740, isMobile: true })
    const res = await page.goto(
      `${stack.url}/authorize?${new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirect,
        scope: `mcp:read ${'s'.repeat(200)}`,
        resource: stack.endpoint('github'),
        state: 's',
        code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
        code_challenge_method: 'S256',
      })}`,
    )
    assert.equal(res?.status(), 200)
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(scroll <= 360, `scrollWidth ${scroll} > 360`)
    for (const selector of [
      '.host',
      'form[action$="/approve"] button',
      'form[action$="/deny"] button',
    ]) {
      const box = await page.$eval(selector, (b) => {
        const r = b.getBoundingClientRect()
        return { left: r.left, right: r.right }
      })
      assert.ok(box.left >= 0 && box.right <= 360, `${selector} ${JSON.stringify(box)}`)
    }
    await page.close()
  })

  it("another web server on the same loopback host gets neither the account page's nor the broker's session", {
    todo: 'cookies are not bound to a port (RFC 6265 §8.5): a design choice for the lead',
  }, async () => {
    const page = await newPage({ scripts: false })
    const res = await page.goto(`${stack.url}/account`)
    assert.equal(res?.status(), 200)
    await Promise.all([page.waitForNavigation(), page.click('a.button.primary')])
    assert.match(await page.evaluate(() => document.body.innerText), /Signed in as/)
    // The user then opens a page of another local app (another port of the same host) whose
    // path starts /account (any page of it can make the browser fetch one).
    cookiesSeen.length = 0
    await page.goto(`http://127.0.0.1:${sitePort}/account/welcome`)
    const leaked = cookiesSeen.join('; ')
    // What that server can do with them, from its own process: open the account page, read
    // its CSRF token, replace the user's secret...
    if (leaked.includes('mcp_edge_account=')) {
      const accountPage = await send(`${stack.url}/account`, { headers: { cookie: leaked } })
      const set = formFor(accountPage.text, { set: 'github-token' })
      const body = new URLSearchParams({ ...set.fields, value: 'attacker-value' }).toString()
      await send(`${stack.url}/account/secrets`, {
        method: 'POST',
        headers: { cookie: leaked, 'content-type': 'application/x-www-form-urlencoded' },
        body,
      })
    }
    // ...and, with the broker's session cookie alone, register a client of its own, approve
    // the consent page itself and take a token as the user (no upstream login is asked).
    const jar: CookieJar = new Map(
      leaked
        .split('; ')
        .map((c) => [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)] as [string, string])
        .filter(([k]) => k.startsWith('_mcp_edge_session')),
    )
    let stolen: unknown
    try {
      const redirectUri = `http://127.0.0.1:${sitePort}/callback`
      const clientId = await newClient(stack, [redirectUri], { client_name: 'Local app' })
      stack.idp.nextUser('bob-pairwise-sub')
      const l = await login(stack, { clientId, redirectUri, server: 'github', jar })
      const t = await exchange(stack, l, { clientId, redirectUri, server: 'github' })
      stolen = decodeJwt(String(t.json.access_token)).sub
    } catch {
      // refused somewhere: nothing stolen
    }
    const held = await secretsIn(stack.store).value({ iss: stack.url, sub: ALICE }, 'github-token')
    assert.notEqual(held, 'attacker-value', "the other server replaced the user's secret")
    assert.notEqual(stolen, ALICE, 'the other server got a broker token as the user')
    assert.doesNotMatch(leaked, /mcp_edge_(account|session)=/, `it was sent: ${leaked}`)
  })
})

describe('stop62: an IPv6 public URL in headless Chromium', { skip: NO_BROWSER }, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  let site: Awaited<ReturnType<typeof startSite>> | undefined

  before(async () => {
    const port = await freePort()
    stack = await startAccountStack({
      host: '::1',
      port,
      config: { publicUrl: `http://[::1]:${port}` },
    })
    site = await startSite((_req, res) => res.end('back at the client'))
    ;({ browser, close: closeBrowser } = await launchBrowser())
  })
  after(async () => {
    await closeBrowser?.()
    await site?.close()
    await stack?.close()
  })

  it('consent at http://[::1]:PORT, then the account page: sign in, set a secret (its Origin accepted)', async () => {
    const context = await browser.createBrowserContext()
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    try {
      const redirect = `http://127.0.0.1:${site!.port}/callback`
      const clientId = await newClient(stack, [redirect], { client_name: 'IPv6 client' })
      await page.goto(
        `${stack.url}/authorize?${new URLSearchParams({
          response_type: 'code',
          client_id: clientId,
          redirect_uri: redirect,
          scope: 'mcp:read',
          resource: stack.endpoint('github'),
          state: 's',
          code_challenge: createHash('sha256').update(randomBytes(32)).digest('base64url'),
          code_challenge_method: 'S256',
        })}`,
      )
      assert.equal(
        await page.$eval('h1', (h) => h.textContent),
        'Allow IPv6 client to use these tools for you?',
      )
      await Promise.all([page.waitForNavigation(), page.click('form[action$="/approve"] button')])
      const landed = new URL(page.url())
      assert.equal(`${landed.origin}${landed.pathname}`, redirect)
      assert.equal(landed.searchParams.get('iss'), stack.url)
      assert.ok(landed.searchParams.get('code'))

      await page.goto(`${stack.url}/account?server=github&secret=github-token`)
      await Promise.all([page.waitForNavigation(), page.click('a.button.primary')])
      assert.equal(new URL(page.url()).host, new URL(stack.url).host)
      assert.match(await page.evaluate(() => document.body.innerText), /Signed in as/)
      const item = 'li#secret-github-github-token'
      await page.type(`${item} input[name=value]`, 'ghp_from_ipv6')
      await Promise.all([page.waitForNavigation(), page.click(`${item} button.primary`)])
      assert.equal(new URL(page.url()).pathname, '/account/saved')
      const held = await secretsIn(stack.store).value(
        { iss: stack.url, sub: ALICE },
        'github-token',
      )
      assert.equal(held, 'ghp_from_ipv6')
    } finally {
      await context.close()
    }
  })
})
