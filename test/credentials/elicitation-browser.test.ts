// The whole loop a user goes through, with real components only: the SDK v2 client (with a
// broker token) calls a tool of a server that needs the user's secret; the gateway sends a URL
// elicitation; a real headless Chromium (scripts off) opens the link, signs in through the
// broker at the Entra-like upstream, sets the secret on the account page; the waiting call then
// runs on a process started with that value. Replacing the secret on the page replaces the
// process; deleting it makes the next call ask again.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import type { Browser, BrowserContext, Page } from 'puppeteer-core'
import { exchange, login, newClient } from '../helpers/broker-raw.js'
import { BROKER_POLICY, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const REDIRECT = 'http://127.0.0.1:43122/cb'
const POLICY = `${BROKER_POLICY}  gh:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const ITEM = 'li#secret-gh-gh-token'

describe('a missing secret, end to end: elicitation → browser → account page → the call runs', {
  skip: NO_BROWSER,
}, () => {
  let stack: BrokerStack
  let browser: Browser
  let closeBrowser: () => Promise<void>
  let context: BrowserContext
  let client: Client
  /** What the user does when the client shows them the link; set per step. */
  let onLink: (url: string) => Promise<'accept' | 'decline'>
  const links: string[] = []
  let firstPid = 0

  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      policy: POLICY,
      broker: { registration: { perAddressPerMinute: 1000 } },
      config: {
        servers: {
          gh: {
            command: process.execPath,
            args: [join(SERVERS_DIR, 'fixture.js')],
            credentials: { GH_TOKEN: { secret: 'gh-token', describe: 'a GitHub token' } },
          },
        },
        credentials: { pollInterval: 20 },
      },
    })
    ;({ browser, close: closeBrowser } = await launchBrowser())
    context = await browser.createBrowserContext()
    // The MCP client's own login (raw HTTP through the broker; the upstream signs Alice in).
    const clientId = await newClient(stack, [REDIRECT])
    const l = await login(stack, { clientId, redirectUri: REDIRECT, server: 'gh' })
    const token = String(
      (await exchange(stack, l, { clientId, redirectUri: REDIRECT, server: 'gh' })).json
        .access_token,
    )
    client = new Client(
      { name: 'elicitation-e2e', version: '0' },
      { capabilities: { elicitation: { url: {} } } },
    )
    client.setRequestHandler('elicitation/create', async (req) => {
      const p = req.params as { mode?: string; url: string }
      assert.equal(p.mode, 'url')
      links.push(p.url)
      return { action: await onLink(p.url) }
    })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.endpoint('gh')), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
  })
  after(async () => {
    await client?.close()
    await context?.close().catch(() => {})
    await closeBrowser?.()
    await stack?.close()
  })

  async function page(): Promise<Page> {
    const p = await context.newPage()
    await p.setJavaScriptEnabled(false)
    return p
  }

  async function click(p: Page, selector: string): Promise<void> {
    await Promise.all([p.waitForNavigation(), p.click(selector)])
  }

  /** On the account page (signing in first if needed), sets or replaces the gh token. */
  async function setOnPage(url: string, value: string): Promise<void> {
    const p = await page()
    await p.goto(url)
    if (await p.$('a.button.primary')) await click(p, 'a.button.primary')
    assert.equal(new URL(p.url()).pathname, '/account', await p.content())
    await p.type(`${ITEM} input[name=value]`, value)
    await click(p, `${ITEM} button.primary`)
    assert.match(await p.evaluate(() => document.body.innerText), /gh-token is set/)
    await p.close()
  }

  async function credential(): Promise<{
    pid: number
    sha256: string | null
    isError?: boolean
    text: string
  }> {
    const r = (await client.callTool({ name: 'credential', arguments: { name: 'GH_TOKEN' } })) as {
      content: { text: string }[]
      isError?: boolean
    }
    const text = r.content.map((c) => c.text).join('')
    return r.isError
      ? { pid: 0, sha256: null, isError: true, text }
      : { ...(JSON.parse(text) as { pid: number; sha256: string }), text }
  }

  it('the link opens the account page, the user signs in and sets it, and the waiting call runs with it', async () => {
    onLink = async (url) => {
      await setOnPage(url, 'ghp_from-the-browser')
      return 'accept'
    }
    const r = await credential()
    assert.equal(r.sha256, sha('ghp_from-the-browser'), r.text)
    assert.equal(links.length, 1)
    assert.equal(links[0], `${stack.url}/account?server=gh&secret=gh-token`)
    firstPid = r.pid
  })

  it('replacing it on the page replaces the process at the next call', async () => {
    await setOnPage(`${stack.url}/account`, 'ghp_rotated')
    const r = await credential()
    assert.equal(r.sha256, sha('ghp_rotated'))
    assert.notEqual(r.pid, firstPid)
    assert.equal(links.length, 1, 'nothing asked: the secret is set')
  })

  it('deleting it on the page makes the next call ask again; declining ends in a tool error naming the page', async () => {
    const p = await page()
    await p.goto(`${stack.url}/account`)
    await click(p, `${ITEM} form[action$="/account/secrets/delete"] button`)
    assert.match(await p.evaluate(() => document.body.innerText), /gh-token is deleted/)
    await p.close()
    onLink = async () => 'decline'
    const r = await credential()
    assert.equal(r.isError, true)
    assert.match(r.text, /Set it at http:\/\/127\.0\.0\.1:\d+\/account\?server=gh&secret=gh-token/)
    assert.equal(links.length, 2)
  })
})
