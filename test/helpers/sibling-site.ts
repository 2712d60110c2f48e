// A broker at https://gw.example.test (the account stack behind a TLS terminator with a test CA)
// and a page on a sibling subdomain, https://evil.example.test, that plants cookies: Mallory has
// signed in at the broker herself, and the page sets what `plant` makes of her signed session.
// Headless Chromium resolves both names to 127.0.0.1 and trusts the CA.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Browser, HTTPResponse, Page } from 'puppeteer-core'
import { getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { brokerSessionCookie } from '../../gateway/broker/provider.js'
import { pageSignIn, startAccountStack } from './account.js'
import type { BrokerStack } from './broker-stack.js'
import { launchBrowser } from './browser.js'
import type { CookieJar } from './oauth-flow.js'
import { loopbackAgent, makeTestCa } from './test-ca.js'

/** The upstream account ids of the users (the sign-ins' `oid`). */
export const ALICE_OID = '00000000-0000-0000-0000-00000000a11c'
export const BOB_OID = '00000000-0000-0000-0000-000000000b0b'

export interface SiblingSite {
  stack: BrokerStack
  /** The sibling page that plants the cookies. */
  evilUrl: string
  browser: Browser
  /** Mallory's own cookies at the broker (her session under the broker's name). */
  mallory: CookieJar
  /** Her session's id. */
  malloryId: string
  /** Clicks `selector` and follows the navigation; the last response. */
  click(page: Page, selector: string): Promise<HTTPResponse | null>
  /** The account id of the broker's session `id`, if the broker holds it. */
  sessionOf(id: string): Promise<string | undefined>
  /**
   * Alice signs in on the account page in `page`: it says so, and her broker session is one of
   * her own (Mallory's is still Bob's). Resolves its id.
   */
  aliceSignsIn(page: Page): Promise<string>
  /** Alice signs out in `page`: her session `own` ends, Mallory's is not touched. */
  aliceSignsOut(page: Page, own: string): Promise<void>
  close(): Promise<void>
}

/** Starts both sites and Chromium; `plant`: the Set-Cookie lines of the sibling page. */
export async function startSiblingSite(
  plant: (id: string, sig: string) => string[],
): Promise<SiblingSite> {
  const ca = makeTestCa(['DNS:gw.example.test', 'DNS:evil.example.test'])
  const previous = getGlobalDispatcher()
  // The test's own requests (Mallory's sign-in) trust the CA and resolve the names to 127.0.0.1.
  setGlobalDispatcher(loopbackAgent(ca.ca))
  const stack = await startAccountStack({ tls: { ca, name: 'gw.example.test' } })
  const mallory: CookieJar = new Map()
  // Mallory signs in at the broker herself: a session of her own, validly signed.
  stack.idp.nextUser('bob-pairwise-sub')
  await pageSignIn(stack.url, mallory)
  const name = brokerSessionCookie(stack.url)
  const id = mallory.get(name)
  const sig = mallory.get(`${name}.sig`)
  assert.ok(id && sig, [...mallory.keys()].join(', '))
  const evil = https.createServer({ key: ca.key, cert: ca.cert }, (_req, res) => {
    res.setHeader('set-cookie', plant(id, sig))
    res.end('<!doctype html><title>a page on a sibling subdomain</title>')
  })
  evil.listen(0, '127.0.0.1')
  await once(evil, 'listening')
  const { browser, close } = await launchBrowser({
    acceptInsecureCerts: true,
    args: ['--host-resolver-rules=MAP *.example.test 127.0.0.1'],
  })
  const site: SiblingSite = {
    stack,
    evilUrl: `https://evil.example.test:${(evil.address() as AddressInfo).port}/`,
    browser,
    mallory,
    malloryId: id,
    async click(page, selector) {
      const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)])
      return res
    },
    async sessionOf(id) {
      const record = await stack.store.get(`oidc:Session:${id}`)
      return record === undefined ? undefined : String(JSON.parse(record).accountId)
    },
    async aliceSignsIn(page) {
      stack.idp.nextUser('alice-pairwise-sub')
      assert.equal((await page.goto(`${stack.url}/account`))?.status(), 200)
      assert.equal((await site.click(page, 'a.button.primary'))?.status(), 200)
      assert.match(
        await page.evaluate(() => document.body.innerText),
        /Signed in as alice@contoso\.example/,
      )
      const sent = await page.cookies(stack.url)
      const own = sent.find((c) => c.name === name && c.domain !== '.example.test')
      assert.ok(own, sent.map((c) => `${c.name} ${c.domain}`).join(', '))
      assert.equal(await site.sessionOf(own.value), ALICE_OID, 'a session of her own')
      assert.equal(await site.sessionOf(id), BOB_OID, "Mallory's session is still Bob's")
      return own.value
    },
    async aliceSignsOut(page, own) {
      const out = await site.click(page, 'form[action$="/account/logout"] button')
      assert.equal(out?.status(), 200)
      assert.match(page.url(), /signed_out=1/)
      assert.equal(await site.sessionOf(own), undefined, "Alice's broker session ended")
      assert.equal(await site.sessionOf(id), BOB_OID, "Mallory's is not touched")
    },
    async close() {
      await close()
      evil.closeAllConnections()
      evil.close()
      await stack.close()
      setGlobalDispatcher(previous)
    },
  }
  return site
}
