// The broker's session cookie against a sibling subdomain, in headless Chromium: the broker at
// https://gw.example.test (a TLS terminator with a test CA in front of the gateway), a page at
// https://evil.example.test that plants cookies with Domain=example.test: Mallory's own signed
// broker session under the plain name and under the `__Host-` one. Chromium refuses the `__Host-`
// one (a Domain attribute) and sends the plain one, before the broker's own (it is older), with
// every request to gw. Alice then signs in there and signs out: her sign-in is her own session,
// not Mallory's (which would then be Alice's sign-in, in Mallory's hands), and Sign out ends it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NO_BROWSER } from '../helpers/browser.js'
import { BOB_OID, type SiblingSite, startSiblingSite } from '../helpers/sibling-site.js'

const PLAIN = '_mcp_edge_session'
const HOST = '__Host-mcp_edge_session'

describe('the broker session cookie against a sibling subdomain, in Chromium', {
  skip: NO_BROWSER,
}, () => {
  let site: SiblingSite

  before(async () => {
    // Her page: her session under both names, for the whole registrable domain.
    const plant = (n: string, v: string) => `${n}=${v}; Domain=example.test; Path=/; Secure`
    site = await startSiblingSite((id, sig) => [
      plant(PLAIN, id),
      plant(`${PLAIN}.sig`, sig),
      plant(HOST, id),
      plant(`${HOST}.sig`, sig),
    ])
  })
  after(() => site?.close())

  it("the planted plain cookie is sent and ignored, the __Host- one refused; Alice's sign-in is her own and Sign out ends it", async () => {
    const { stack, browser, malloryId, sessionOf } = site
    const context = await browser.createBrowserContext()
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    assert.equal((await page.goto(site.evilUrl))?.status(), 200)
    assert.equal(await sessionOf(malloryId), BOB_OID)
    // What Chromium will send to gw: the plain one only (a `__Host-` cookie may have no Domain).
    const planted = await page.cookies(stack.url)
    assert.deepEqual(planted.map((c) => `${c.name} ${c.domain}`).sort(), [
      `${PLAIN} .example.test`,
      `${PLAIN}.sig .example.test`,
    ])

    const own = await site.aliceSignsIn(page)
    const sent = await page.cookies(stack.url)
    assert.ok(
      sent.some((c) => c.name === PLAIN && c.domain === '.example.test'),
      'still planted',
    )
    await site.aliceSignsOut(page, own)
    await context.close()
  })
})
