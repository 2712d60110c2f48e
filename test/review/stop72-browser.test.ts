// Review stop 72, in headless Chromium: the broker's `__Host-` session cookie against what a page
// on a sibling subdomain (https://evil.example.test beside https://gw.example.test) can plant with
// Domain=example.test besides the plain name (test/broker/session-cookie-browser.test.ts): the
// prefix in another case (`__HOST-`, `__host-`), a nameless cookie whose value reads
// `__Host-mcp_edge_session=<id>` (sent as `__Host-mcp_edge_session=<id>` by a browser that takes
// it), a value holding `,__Host-mcp_edge_session=<id>`, and Mallory's signed session under each.
// What held: Chromium refuses every one but the comma (sent as a value), which the broker does
// not read as a cookie of its own; Alice's sign-in is her own session and Sign out ends it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { NO_BROWSER } from '../helpers/browser.js'
import { BOB_OID, type SiblingSite, startSiblingSite } from '../helpers/sibling-site.js'

const HOST = '__Host-mcp_edge_session'

describe("stop72: a sibling subdomain's cookies against the __Host- session, in Chromium", {
  skip: NO_BROWSER,
}, () => {
  let site: SiblingSite
  const domain = '; Domain=example.test; Path=/; Secure'
  before(async () => {
    site = await startSiblingSite((id, sig) => [
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
  })
  after(() => site?.close())

  it("held: nothing planted reaches gw under the broker's name; Alice's sign-in is her own, Sign out ends it", async () => {
    const { stack, browser, malloryId, sessionOf } = site
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
    assert.equal((await page.goto(site.evilUrl))?.status(), 200)
    assert.equal(await sessionOf(malloryId), BOB_OID)
    // What Chromium keeps for gw: none under a prefix in any case (it needs no Domain), no
    // nameless one reading as a prefixed one; the comma in a value is kept and sent.
    const planted = await page.cookies(stack.url)
    assert.deepEqual(
      planted.map((c) => `${c.name}=${c.value.slice(0, 10)} ${c.domain}`),
      [`stop72=x,${HOST.slice(0, 8)} .example.test`],
    )

    const own = await site.aliceSignsIn(page)
    // The comma-joined value went first with every request to gw (the IdP's have no mcp_edge
    // cookie), Alice's own session after it, and the broker read hers.
    const toGw = headers.filter((h) => h.includes('mcp_edge'))
    assert.ok(toGw.length > 3, JSON.stringify(headers))
    for (const h of toGw) assert.ok(h.includes(`stop72=x,${HOST}=${malloryId},`), h)
    assert.ok(
      toGw.some((h) => h.indexOf(`stop72=x,${HOST}=`) < h.indexOf(`; ${HOST}=`)),
      'planted before her own',
    )
    await site.aliceSignsOut(page, own)
    await context.close()
  })
})
