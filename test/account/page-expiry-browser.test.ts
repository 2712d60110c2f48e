// The account page in a real headless Chromium, scripts off, at a gateway that keeps secrets
// for ever (`credentials.secretUnusedTtl: 0`): a secret set there "never expires" on the
// confirmation, on its server's entry and in what the gateway holds; a value the store holds
// with a time to live after all (set so by hand) shows that instant instead, as UTC: the page
// reads the store's own time to live. Never a value. (Expiry with the default: page-browser.)
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'puppeteer-core'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  SEALING,
  secretsIn,
} from '../helpers/account.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'

const ALICE = '00000000-0000-0000-0000-00000000a11c'
const VALUE = 'ghp_never-expiring-value'

describe('the account page with secretUnusedTtl 0, in headless Chromium', {
  skip: NO_BROWSER,
}, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      policy: ACCOUNT_POLICY,
      auth: ACCOUNT_EXCHANGE,
      config: {
        servers: accountServers(),
        secrets: SEALING,
        credentials: { secretUnusedTtl: 0 },
      },
    })
    ;({ browser, close: closeBrowser } = await launchBrowser())
  })
  after(async () => {
    await closeBrowser?.()
    await stack?.close()
  })

  const entry = 'li#secret-github-github-token'
  const text = (page: Page) => page.evaluate(() => document.body.innerText)
  const follow = async (page: Page, selector: string) => {
    const [res] = await Promise.all([page.waitForNavigation(), page.click(selector)])
    assert.equal(res?.status(), 200)
  }

  it('"never expires" once set; an instant in UTC when the store gives the value a time to live', async () => {
    const context = await browser.createBrowserContext()
    const page = await context.newPage()
    await page.setJavaScriptEnabled(false)
    await page.goto(`${stack.url}/account?server=github&secret=github-token`)
    await follow(page, 'a.button.primary')
    assert.match(await text(page), /Signed in as alice@contoso\.example/)
    await page.type(`${entry} input[name=value]`, VALUE)
    await follow(page, `${entry} button.primary`)
    assert.match(await text(page), /github-token is set \(on .+ UTC; never expires\)\./)
    await follow(page, 'a.button')
    assert.match(
      await page.$eval(entry, (l) => l.textContent ?? ''),
      /Set on \d{4}-\d\d-\d\d \d\d:\d\d UTC; never expires/,
    )
    assert.match(
      await text(page),
      /What the gateway holds for you\s+github-token set on .+ UTC; never expires/,
    )

    // An operator gives the value a time to live in the store: the page shows the store's.
    const secrets = secretsIn(stack.store)
    const key = `secrets:${secrets.userKey({ iss: stack.url, sub: ALICE })}:github-token`
    const at = Date.parse('2031-02-03T04:05:00.000Z')
    const from = Date.now()
    assert.equal(await stack.store.expire(key, at - from), true)
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
    assert.doesNotMatch(await page.content(), new RegExp(VALUE))
    await context.close()
  })
})
