// Review stop 72, in headless Chromium: the broker's `__Host-` session cookie against what a page
// on a sibling subdomain (https://evil.example.test beside https://gw.example.test) can plant with
// Domain=example.test besides the plain name (test/broker/session-cookie-browser.test.ts): the
// prefix in another case (`__HOST-`, `__host-`), a nameless cookie whose value reads
// `__Host-mcp_edge_session=<id>` (sent as `__Host-mcp_edge_session=<id>` by a browser that takes
// it), a value holding `,__Host-mcp_edge_session=<id>`, and Mallory's signed session under each.
// What held: Chromium refuses every one but the comma (sent as a value), which the broker does
// not read as a cookie of its own; Alice's sign-in is her own session and Sign out ends it.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { Browser, HTTPResponse, Page } from 'puppeteer-core'
import { type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { brokerSessionCookie } from '../../gateway/broker/provider.js'
import { pageSignIn, startAccountStack } from '../helpers/account.js'
import type { BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { loopbackAgent, makeTestCa } from '../helpers/test-ca.js'

const ALICE_OID = '00000000-0000-0000-0000-00000000a11c'
const BOB_OID = '00000000-0000-0000-0000-000000000b0b'
const HOST = '__Host-mcp_edge_session'

describe("stop72: a sibling subdomain's cookies against the __Host- session, in Chromium", {
  skip: NO_BROWSER,
}, () => {
  let stack: BrokerStack
  let evil: https.Server
  let evilUrl: string
  let browser: Browser
  let closeBrowser: () => Promise<void>
  let previous: Dispatcher
  const mallory: CookieJar = new Map()

  before(async () => {
    const ca = makeTestCa(['DNS:gw.example.test', 'DNS:evil.example.test'])
    previous = getGlobalDispatcher()
    setGlobalDispatcher(loopbackAgent(ca.ca))
    stack = await startAccountStack({ tls: { ca, name: 'gw.example.test' } })
    stack.idp.nextUser('bob-pairwise-sub')
    await pageSignIn(stack.url, mallory)
    const id = mallory.get(HOST)
    const sig = mallory.get(`${HOST}.sig`)
    assert.ok(id && sig, [...mallory.keys()].join(', '))
    const domain = '; Domain=example.test; Path=/; Secure'
    evil = https.createServer({ key: ca.key, cert: ca.cert }, (_req, res) => {
      res.setHeader('set-cookie', [
        // The prefix in other cases: a browser that matched it case-sensitively would take them.
        `__HOST-mcp_edge_session=${id}${domain}`,
        `__HOST-mcp_edge_session.sig=${sig}${domain}`,
        `__host-mcp_edge_session=${id}${domain}`,
        `__host-mcp_edge_session.sig=${sig}${domain}`,
        // Nameless: sent as its value alone, `__Host-mcp_edge_session=<id>`.
        `=${HOST}=${id}${domain}`,
        `=${HOST}.sig=${sig}${domain}`,
        // A value holding a comma, then the broker's name: a parser taking commas for separators
        // (RFC 2965) would read Mallory's session there.
        `stop72=x,${HOST}=${id},${HOST}.sig=${sig}${domain}`,
      ])
      res.end('<!doctype html><title>a page on a sibling subdomain</title>')
    })
    evil.listen(0, '127.0.0.1')
    await once(evil, 'listening')
    evilUrl = `https://evil.example.test:${(evil.address() as AddressInfo).port}/`
    ;({ browser, close: closeBrowser } = await launchBrowser({
      acceptInsecureCerts: true,
      args: ['--host-resolver-rules=MAP *.example.test 127.0.0.1'],
    }))
  })
  after(async () => {
    await closeBrowser?.()
    evil?.closeAllConnections()
    evil?.close()
    await stack?.close()
    setGlobalDispatcher(previous)
  })

  async function click(page: Page, selector: string): Promise<HTTPResponse | null> {
    const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)])
    return res
  }

  async function sessionOf(id: string): Promise<string | undefined> {
    const record = await stack.store.get(`oidc:Session:${id}`)
    return record === undefined ? undefined : String(JSON.parse(record).accountId)
  }

  it("held: nothing planted reaches gw under the broker's name; Alice's sign-in is her own, Sign out ends it", async () => {
    const context = await browser.createBrowserContext()
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    // Every Cookie header Chromium sends, as sent (the network layer's, not the page's view).
    const headers: string[] = []
    const cdp = await page.createCDPSession()
    await cdp.send('Network.enable')
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      const cookie = e.headers.Cookie ?? e.headers.cookie
      if (cookie !== undefined) headers.push(cookie)
    })
    assert.equal((await page.goto(evilUrl))?.status(), 200)
    const malloryId = mallory.get(brokerSessionCookie(stack.url))!
    assert.equal(await sessionOf(malloryId), BOB_OID)
    // What Chromium keeps for gw: none under a prefix in any case (it needs no Domain), no
    // nameless one reading as a prefixed one; the comma in a value is kept and sent.
    const planted = await page.cookies(stack.url)
    assert.deepEqual(
      planted.map((c) => `${c.name}=${c.value.slice(0, 10)} ${c.domain}`),
      [`stop72=x,${HOST.slice(0, 8)} .example.test`],
    )

    stack.idp.nextUser('alice-pairwise-sub')
    assert.equal((await page.goto(`${stack.url}/account`))?.status(), 200)
    assert.equal((await click(page, 'a.button.primary'))?.status(), 200)
    assert.match(
      await page.evaluate(() => document.body.innerText),
      /Signed in as alice@contoso\.example/,
    )
    // The comma-joined value went first with every request to gw (the IdP's have no mcp_edge
    // cookie), Alice's own session after it, and the broker read hers.
    const toGw = headers.filter((h) => h.includes('mcp_edge'))
    assert.ok(toGw.length > 3, JSON.stringify(headers))
    for (const h of toGw) assert.ok(h.includes(`stop72=x,${HOST}=${malloryId},`), h)
    assert.ok(
      toGw.some((h) => h.indexOf(`stop72=x,${HOST}=`) < h.indexOf(`; ${HOST}=`)),
      'planted before her own',
    )
    const own = (await page.cookies(stack.url)).find((c) => c.name === HOST)
    assert.ok(own)
    assert.equal(await sessionOf(own.value), ALICE_OID, 'a session of her own')

    assert.equal((await click(page, 'form[action$="/account/logout"] button'))?.status(), 200)
    assert.match(page.url(), /signed_out=1/)
    assert.equal(await sessionOf(own.value), undefined, "Alice's broker session ended")
    assert.equal(await sessionOf(malloryId), BOB_OID, "Mallory's is not touched")
    await context.close()
  })
})
