// `npm start` shows per-user credentials: the embedded default config's `tickets` demo server
// acts with each user's own API key. Real components only: a gateway on the embedded default
// (its ports from the environment, a second dev IdP user added), the SDK v2 client logging in
// through the broker and the dev IdP in headless Chromium (scripts off), the account page.
// /readyz is ready with no tickets process warm. A call before the key is set is refused with
// the page's link and starts no process; the user sets the key on the page; the call then runs
// with their key, at /mcp/tickets and at /mcp; a second user sees nothing of the first's key and
// gets their own. No log line or audit event holds a key; each call's audit line names it.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from '@modelcontextprotocol/client'
import { pino } from 'pino'
import { request } from 'undici'
import type { Browser, BrowserContext, HTTPRequest, Page } from 'puppeteer-core'
import { DEMO_TICKETS_SECRET, defaultConfig } from '../../gateway/config/defaults.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { launchBrowser, NO_BROWSER } from '../helpers/browser.js'
import { memoryProvider, REDIRECT } from '../helpers/oauth-provider.js'
import { freePort } from '../helpers/ports.js'

const V = '2026-07-28'
const ROLES = ['mcp-user', 'mcp-developer']
/** The dev IdP's default user, and one more so that two users can be told apart. */
const USERS = ['dev-user', 'sam'] as const
const KEYS: Record<string, string> = {
  'dev-user': 'tk_live_dev-user-0123456789-abcd',
  sam: 'tk_live_sam-9876543210-wxyz',
}
const ITEM = `li#secret-tickets-${DEMO_TICKETS_SECRET}`
const APPROVE = 'form[action$="/approve"] button'

/** How servers/tickets.ts names a key in its answers: never the key itself. */
const named = (key: string) =>
  `API key …${key.slice(-4)}, sha256 ${createHash('sha256').update(key).digest('hex').slice(0, 8)}`

/** Live processes of servers/tickets.js the gateway (in this process) has started. */
function ticketProcesses(): number {
  const out = execFileSync('ps', ['-o', 'args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
  return out.split('\n').filter((l) => l.trim().endsWith('/servers/tickets.js')).length
}

function textOf(result: unknown): string {
  return ((result as { content: { text: string }[] }).content ?? []).map((c) => c.text).join('')
}

describe('npm start: the tickets demo acts with each user’s own API key', {
  skip: NO_BROWSER,
}, () => {
  let gateway: Gateway
  let base: string
  let browser: Browser
  let closeBrowser: () => Promise<void>
  /** Each user's browser profile (their own cookies: broker session, account page). */
  const contexts = new Map<string, BrowserContext>()
  const clients: Client[] = []
  const logLines: string[] = []
  const auditLines: string[] = []

  before(async () => {
    const [port, idpPort] = [await freePort(), await freePort()]
    const state = join(mkdtempSync(join(tmpdir(), 'mcp-edge-default-tickets-')), 'dev-idp.json')
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      MCP_EDGE_PORT: String(port),
      MCP_EDGE_DEV_IDP_PORT: String(idpPort),
      MCP_EDGE_DEV_IDP_STATE: state,
    }
    delete env.MCP_EDGE_ISSUER
    const config = defaultConfig(env)
    // The one change to the embedded default: a second user, so a login shows "Sign in as".
    config.devIdp.users = USERS.map((sub) => ({ sub, roles: [...ROLES] }))
    process.env.MCP_EDGE_DEV_BROKER_SECRET = env.MCP_EDGE_DEV_BROKER_SECRET
    gateway = await startGateway(config, {
      log: pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) }),
      auditDestination: { write: (line: string) => void auditLines.push(line) },
      allowDevIdp: true,
      devIdp: { stateFile: state },
    })
    base = gateway.url
    ;({ browser, close: closeBrowser } = await launchBrowser())
    for (const u of USERS) contexts.set(u, await browser.createBrowserContext())
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    for (const c of contexts.values()) await c.close().catch(() => {})
    await closeBrowser?.()
    await gateway?.close()
    delete process.env.MCP_EDGE_DEV_BROKER_SECRET
  })

  async function page(user: string): Promise<Page> {
    const p = await contexts.get(user)!.newPage()
    await p.setJavaScriptEnabled(false)
    return p
  }

  async function click(p: Page, selector: string): Promise<void> {
    await Promise.all([p.waitForNavigation(), p.click(selector)])
  }

  /**
   * The OAuth flow an MCP client such as Inspector runs, in `user`'s browser: registration with
   * the gateway, "Sign in as" at the dev IdP, the gateway's consent page, back at the client's
   * redirect URI (answered here). Resolves a client connected to `path` with the token it got.
   */
  async function logIn(
    user: string,
    path: string,
    o: { era?: typeof V; elicitation?: (url: string) => Promise<'accept' | 'decline'> } = {},
  ): Promise<Client> {
    const url = new URL(path, base)
    const { provider } = memoryProvider(`tickets demo (${user})`)
    await assert.rejects(
      new Client({ name: 'd', version: '0' }).connect(
        new StreamableHTTPClientTransport(url, { authProvider: provider }),
      ),
      UnauthorizedError,
    )
    const p = await page(user)
    let callback: URL | undefined
    await p.setRequestInterception(true)
    p.on('request', (r: HTTPRequest) => {
      if (!r.url().startsWith(REDIRECT)) return void r.continue()
      callback = new URL(r.url())
      void r.respond({ status: 200, contentType: 'text/plain', body: 'back in the client' })
    })
    await p.goto(provider.authorizationUrl!.href)
    for (let step = 0; callback === undefined; step++) {
      assert.ok(step < 4, `the login stopped at ${p.url()}`)
      if (await p.$(`button[value="${user}"]`)) await click(p, `button[value="${user}"]`)
      else if (await p.$(APPROVE)) await click(p, APPROVE)
      else assert.fail(`the login stopped at ${p.url()}: ${await p.content()}`)
    }
    await p.close()
    assert.equal(callback.searchParams.get('error'), null, callback.href)
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider })
    await transport.finishAuth(callback.searchParams)
    const client = new Client(
      { name: `tickets demo (${user})`, version: '0' },
      {
        capabilities: o.elicitation ? { elicitation: { url: {} } } : {},
        ...(o.era ? { versionNegotiation: { mode: { pin: o.era } } } : {}),
      },
    )
    if (o.elicitation) {
      const answer = o.elicitation
      client.setRequestHandler('elicitation/create', async (req) => {
        const params = req.params as { mode?: string; url: string }
        assert.equal(params.mode, 'url')
        return { action: await answer(params.url) }
      })
    }
    await client.connect(transport)
    clients.push(client)
    return client
  }

  /**
   * In `user`'s browser: opens `link`, signs in to the account page (their broker session is
   * fresh: no page on the way), and sets the tickets key. Resolves the page's text before setting.
   */
  async function setOnPage(user: string, link: string, value: string): Promise<string> {
    const p = await page(user)
    await p.goto(link)
    if (await p.$('a.button.primary[href*="/account/login"]')) {
      await click(p, 'a.button.primary')
      if (await p.$(`button[value="${user}"]`)) await click(p, `button[value="${user}"]`)
    }
    assert.equal(new URL(p.url()).pathname, '/account', await p.content())
    const seen = await p.evaluate(() => document.body.innerText)
    assert.match(seen, new RegExp(`Signed in as ${user}\\b`))
    await p.type(`${ITEM} input[name=value]`, value)
    await click(p, `${ITEM} button.primary`)
    assert.match(
      await p.evaluate(() => document.body.innerText),
      new RegExp(`${DEMO_TICKETS_SECRET} is set`),
    )
    assert.doesNotMatch(await p.content(), new RegExp(value), 'the value never comes back')
    await p.close()
    return seen
  }

  /** A tools/call that must fail with URLElicitationRequiredError; resolves the link it names. */
  async function linkOfRefusal(client: Client, name: string): Promise<string> {
    let link = ''
    await assert.rejects(
      client.callTool({ name, arguments: {} }),
      (err: { code?: number; data?: { elicitations?: { mode: string; url: string }[] } }) => {
        assert.equal(err.code, -32042, String(err))
        const [e] = err.data?.elicitations ?? []
        assert.equal(e?.mode, 'url')
        link = e!.url
        return true
      },
    )
    return link
  }

  let devUser: Client

  it('/readyz: ready with tickets, which keeps no warm process (each starts with its user’s key)', async () => {
    const res = await request(`${base}/readyz`)
    assert.equal(res.statusCode, 200)
    assert.deepEqual(await res.body.json(), { status: 'ready', problems: [], warnings: [] })
    assert.equal(ticketProcesses(), 0)
  })

  it('before the key: a 2026-07-28 call is refused with -32042 naming the account page, and no process starts', async () => {
    devUser = await logIn('dev-user', '/mcp/tickets', {
      era: V,
      elicitation: async () => 'decline',
    })
    assert.deepEqual((await devUser.listTools()).tools.map((t) => t.name).sort(), [
      'create_ticket',
      'list_tickets',
    ])
    const started = ticketProcesses()
    const link = await linkOfRefusal(devUser, 'list_tickets')
    assert.equal(link, `${base}/account?server=tickets&secret=${DEMO_TICKETS_SECRET}`)
    assert.equal(ticketProcesses(), started, 'the refused call started no tickets process')
  })

  it('a client that cannot be sent to a page gets a tool error naming it (the gateway answers, not the process)', async () => {
    const plain = await logIn('dev-user', '/mcp/tickets')
    const r = await plain.callTool({ name: 'list_tickets', arguments: {} })
    assert.equal(r.isError, true)
    assert.equal(
      textOf(r),
      `tickets needs your API key for the tickets demo (${DEMO_TICKETS_SECRET}), which you have not set. Set it at ${base}/account?server=tickets&secret=${DEMO_TICKETS_SECRET} and try again.`,
    )
  })

  it('the user sets the key on the account page from the link; the call then runs with their key', async () => {
    const link = `${base}/account?server=tickets&secret=${DEMO_TICKETS_SECRET}`
    const seen = await setOnPage('dev-user', link, KEYS['dev-user']!)
    assert.match(seen, /tickets needs your API key for the tickets demo; set it, then return/)
    // list_tickets: the broker's token holds mcp:read (what the server's metadata advertises);
    // create_ticket would be a step-up to mcp:write first, as write_note is (README step 3).
    const r = await devUser.callTool({ name: 'list_tickets', arguments: {} })
    assert.equal(r.isError, undefined, textOf(r))
    assert.equal(textOf(r), `[]\n[${named(KEYS['dev-user']!)}]`)
    assert.ok(!textOf(r).includes(KEYS['dev-user']!), 'the key itself is never shown')
    assert.ok(ticketProcesses() > 0, 'the call ran on a tickets process (which ps counts)')
  })

  it('at /mcp, every demo server at one URL, the same user’s tickets calls run with their key', async () => {
    const all = await logIn('dev-user', '/mcp')
    const names = (await all.listTools()).tools.map((t) => t.name)
    assert.ok(names.includes('tickets_create_ticket') && names.includes('tickets_list_tickets'))
    const r = await all.callTool({ name: 'tickets_list_tickets', arguments: {} })
    assert.equal(r.isError, undefined, textOf(r))
    assert.match(
      textOf(r),
      new RegExp(`\\[${named(KEYS['dev-user']!).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\]$`),
    )
  })

  it('a second user sees nothing of the first’s key: refused, "Not set" on their page, then their own key', async () => {
    const sessionless = await logIn('sam', '/mcp/tickets', {
      era: V,
      elicitation: async () => 'decline',
    })
    const started = ticketProcesses()
    const link = await linkOfRefusal(sessionless, 'list_tickets')
    assert.equal(ticketProcesses(), started, 'no process for sam with anyone’s key')
    // At /mcp a session-era client that declared URL elicitation gets -32042 too (README step 6).
    const everything = await logIn('sam', '/mcp', { elicitation: async () => 'decline' })
    assert.equal(await linkOfRefusal(everything, 'tickets_list_tickets'), link)
    // Sam's session (2025-11-25, URL elicitation): the call waits while sam sets their own key.
    let asked = ''
    let page = ''
    const sam = await logIn('sam', '/mcp/tickets', {
      elicitation: async (url) => {
        asked = url
        page = await setOnPage('sam', url, KEYS.sam!)
        return 'accept'
      },
    })
    const r = await sam.callTool({ name: 'list_tickets', arguments: {} })
    assert.equal(asked, link)
    assert.match(page, new RegExp(`${DEMO_TICKETS_SECRET}[^\\n]*\\n+Not set`), page)
    assert.match(page, /What the gateway holds for you\s+No secrets\./, page)
    assert.equal(textOf(r), `[]\n[${named(KEYS.sam!)}]`, 'sam’s key; none of dev-user’s tickets')
    // And dev-user still acts with their own.
    const mine = await devUser.callTool({ name: 'list_tickets', arguments: {} })
    assert.ok(textOf(mine).endsWith(`[${named(KEYS['dev-user']!)}]`), textOf(mine))
  })

  it('the keys appear in no log line or audit event; each call that ran with one names it', () => {
    for (const key of Object.values(KEYS)) {
      assert.ok(!logLines.some((l) => l.includes(key)), 'no log line holds a key')
      assert.ok(!auditLines.some((l) => l.includes(key)), 'no audit event holds a key')
    }
    const ran = auditLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.server === 'tickets' && e.method === 'tools/call' && e.outcome === 'ok')
    assert.deepEqual(
      ran.map((e) => [e.sub, e.credentials]),
      [
        ['dev-user', [{ name: 'TICKETS_API_KEY', source: 'secret' }]],
        ['dev-user', [{ name: 'TICKETS_API_KEY', source: 'secret' }]],
        ['sam', [{ name: 'TICKETS_API_KEY', source: 'secret' }]],
        ['dev-user', [{ name: 'TICKETS_API_KEY', source: 'secret' }]],
      ],
    )
  })
})
