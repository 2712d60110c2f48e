// The broker's session cookie against a sibling subdomain, in headless Chromium: the broker at
// https://gw.example.test (a TLS terminator with a test CA in front of the gateway), a page at
// https://evil.example.test that plants cookies with Domain=example.test: Mallory's own signed
// broker session under the plain name and under the `__Host-` one. Chromium refuses the `__Host-`
// one (a Domain attribute) and sends the plain one, before the broker's own (it is older), with
// every request to gw. Alice then signs in there and signs out: her sign-in is her own session,
// not Mallory's (which would then be Alice's sign-in, in Mallory's hands), and Sign out ends it.
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
const PLAIN = '_mcp_edge_session'
const HOST = '__Host-mcp_edge_session'

describe('the broker session cookie against a sibling subdomain, in Chromium', {
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
    // The test's own requests (Mallory's sign-in) trust the CA and resolve the names to 127.0.0.1.
    setGlobalDispatcher(loopbackAgent(ca.ca))
    stack = await startAccountStack({ tls: { ca, name: 'gw.example.test' } })
    // Mallory signs in at the broker herself: a session of her own, validly signed.
    stack.idp.nextUser('bob-pairwise-sub')
    await pageSignIn(stack.url, mallory)
    const name = brokerSessionCookie(stack.url)
    const id = mallory.get(name)
    const sig = mallory.get(`${name}.sig`)
    assert.ok(id && sig, [...mallory.keys()].join(', '))
    // Her page: her session under both names, for the whole registrable domain.
    const plant = (n: string, v: string) => `${n}=${v}; Domain=example.test; Path=/; Secure`
    evil = https.createServer({ key: ca.key, cert: ca.cert }, (_req, res) => {
      res.setHeader('set-cookie', [
        plant(PLAIN, id),
        plant(`${PLAIN}.sig`, sig),
        plant(HOST, id),
        plant(`${HOST}.sig`, sig),
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

  /** Clicks `selector` and follows the navigation; returns the last response. */
  async function click(page: Page, selector: string): Promise<HTTPResponse | null> {
    const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)])
    return res
  }

  /** The account id of the broker's session `id`, if the broker holds it. */
  async function sessionOf(id: string): Promise<string | undefined> {
    const record = await stack.store.get(`oidc:Session:${id}`)
    return record === undefined ? undefined : String(JSON.parse(record).accountId)
  }

  it("the planted plain cookie is sent and ignored, the __Host- one refused; Alice's sign-in is her own and Sign out ends it", async () => {
    const context = await browser.createBrowserContext()
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    assert.equal((await page.goto(evilUrl))?.status(), 200)
    const malloryId = mallory.get(brokerSessionCookie(stack.url))!
    assert.equal(await sessionOf(malloryId), BOB_OID)
    // What Chromium will send to gw: the plain one only (a `__Host-` cookie may have no Domain).
    const planted = await page.cookies(stack.url)
    assert.deepEqual(planted.map((c) => `${c.name} ${c.domain}`).sort(), [
      `${PLAIN} .example.test`,
      `${PLAIN}.sig .example.test`,
    ])

    stack.idp.nextUser('alice-pairwise-sub')
    assert.equal((await page.goto(`${stack.url}/account`))?.status(), 200)
    assert.equal((await click(page, 'a.button.primary'))?.status(), 200)
    assert.match(
      await page.evaluate(() => document.body.innerText),
      /Signed in as alice@contoso\.example/,
    )
    const sent = await page.cookies(stack.url)
    const own = sent.find(
      (c) => c.name === brokerSessionCookie(stack.url) && c.domain !== '.example.test',
    )
    assert.ok(own, sent.map((c) => `${c.name} ${c.domain}`).join(', '))
    assert.ok(
      sent.some((c) => c.name === PLAIN && c.domain === '.example.test'),
      'still planted',
    )
    assert.equal(await sessionOf(own.value), ALICE_OID, 'a session of her own')
    assert.equal(await sessionOf(malloryId), BOB_OID, "Mallory's session is still Bob's")

    assert.equal((await click(page, 'form[action$="/account/logout"] button'))?.status(), 200)
    assert.match(page.url(), /signed_out=1/)
    assert.equal(await sessionOf(own.value), undefined, "Alice's broker session ended")
    assert.equal(await sessionOf(malloryId), BOB_OID, "Mallory's is not touched")
    await context.close()
  })
})
