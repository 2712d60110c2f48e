// Review stop 62 (an outsider's attack on the pages people see), over raw HTTP. What held:
// - hostile Hosts (foreign, uppercase foreign, trailing dot, another IPv6 literal, user-info,
//   duplicates, an absolute-form target naming another host) at the broker's and the account
//   page's routes, GET and POST: 403 `host not allowed`, nothing registered or stored;
// - every page of the broker and of the account page carries the page headers (no script, no
//   framing, no caching, no referrer beyond the origin, nosniff);
// - an IPv6 public URL (`http://[::1]:PORT`) end to end: both metadata documents, a broker
//   login through the consent page, the account page's sign-in and a form, and an MCP call
//   with the SDK's client carrying the broker's token.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import {
  formFor,
  nextSignIn,
  pageSignIn,
  secretsIn,
  startAccountStack,
  submit,
} from '../helpers/account.js'
import {
  clientMetadata,
  exchange,
  login,
  newClient,
  register,
  send,
  type Answer,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { form, steps } from '../helpers/broker-steps.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { freePort } from '../helpers/ports.js'
import { rawHttp } from '../helpers/raw-http.js'

const ALICE = '00000000-0000-0000-0000-00000000a11c'

/** The answer is one of the gateway's pages, with every header a page must carry. */
function assertPageHeaders(res: Answer, where: string): void {
  assert.match(String(res.headers['content-type']), /^text\/html/, where)
  const csp = String(res.headers['content-security-policy'])
  for (const d of [/default-src 'none'/, /frame-ancestors 'none'/, /base-uri 'none'/])
    assert.match(csp, d, `${where}: ${csp}`)
  assert.doesNotMatch(csp, /script-src|unsafe-inline/, where)
  assert.equal(res.headers['x-frame-options'], 'DENY', where)
  assert.equal(res.headers['cache-control'], 'no-store', where)
  assert.match(String(res.headers['referrer-policy']), /^(no-referrer|same-origin)$/, where)
  assert.equal(res.headers['x-content-type-options'], 'nosniff', where)
  assert.doesNotMatch(res.text, /<script/i, where)
}

describe('stop62: hostile Hosts at the broker and account routes', () => {
  let stack: BrokerStack
  let port: number
  before(async () => {
    stack = await startAccountStack()
    port = Number(new URL(stack.url).port)
  })
  after(() => stack?.close())

  const me = () => `127.0.0.1:${port}`
  /** Host header lines (and a request target) a browser never sends for this gateway. */
  const hostile = (): { name: string; target?: (path: string) => string; hosts: string[] }[] => [
    { name: 'a foreign name', hosts: ['Host: evil.example'] },
    { name: 'a foreign name in capitals', hosts: [`Host: EVIL.EXAMPLE:${port}`] },
    { name: 'a trailing dot', hosts: [`Host: localhost.:${port}`] },
    { name: 'an IPv4 loopback with a trailing dot', hosts: [`Host: 127.0.0.1.:${port}`] },
    { name: 'another IPv6 literal', hosts: [`Host: [::2]:${port}`] },
    { name: 'an IPv4-mapped IPv6 literal', hosts: [`Host: [::ffff:7f00:1]:${port}`] },
    { name: 'user-info', hosts: [`Host: ${me()}@evil.example`] },
    { name: 'two ports', hosts: [`Host: ${me()}:80`] },
    { name: 'duplicates, ours first', hosts: [`Host: ${me()}`, 'Host: evil.example'] },
    { name: 'duplicates, ours last', hosts: ['Host: evil.example', `Host: ${me()}`] },
    {
      name: 'an absolute-form target naming another host',
      target: (path) => `http://evil.example${path}`,
      hosts: [`Host: ${me()}`],
    },
    {
      name: 'an absolute-form target naming another IPv6 host',
      target: (path) => `http://[::2]:${port}${path}`,
      hosts: [`Host: ${me()}`],
    },
  ]
  const routes: { method: 'GET' | 'POST'; path: string; body?: string; type?: string }[] = [
    { method: 'GET', path: '/.well-known/oauth-authorization-server' },
    { method: 'GET', path: '/authorize?response_type=code&client_id=x' },
    { method: 'GET', path: '/interaction/abc' },
    { method: 'POST', path: '/interaction/abc/approve', body: 'csrf=x', type: 'form' },
    { method: 'GET', path: '/oauth/callback?state=x&code=y' },
    {
      method: 'POST',
      path: '/register',
      type: 'json',
      body: JSON.stringify({
        client_name: 'host test',
        redirect_uris: ['http://127.0.0.1:9/cb'],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
      }),
    },
    { method: 'POST', path: '/token', body: 'grant_type=authorization_code', type: 'form' },
    { method: 'GET', path: '/jwks' },
    { method: 'GET', path: '/account' },
    { method: 'GET', path: '/account/login' },
    { method: 'GET', path: '/account/callback?state=x&code=y' },
    { method: 'POST', path: '/account/secrets', body: 'name=github-token&value=v', type: 'form' },
    { method: 'POST', path: '/account/logout', body: 'csrf=x', type: 'form' },
  ]

  it('every hostile Host, every route, GET and POST: 403 host not allowed, nothing kept', async () => {
    const before = (await stack.store.keys('')).sort()
    for (const r of routes) {
      for (const h of hostile()) {
        const type = r.type === 'json' ? 'application/json' : 'application/x-www-form-urlencoded'
        const body = r.body ?? ''
        const head = [
          `${r.method} ${h.target ? h.target(r.path) : r.path} HTTP/1.1`,
          ...h.hosts,
          ...(r.method === 'POST'
            ? [`Content-Type: ${type}`, `Content-Length: ${Buffer.byteLength(body)}`]
            : []),
          'Connection: close',
        ]
        const res = await rawHttp(port, `${head.join('\r\n')}\r\n\r\n${body}`)
        const where = `${r.method} ${r.path} with ${h.name}`
        // Node's parser refuses some outright (400); the guard refuses the rest (403).
        assert.ok([400, 403].includes(res.status), `${where}: ${res.status} ${res.body}`)
        if (res.status === 403) assert.match(res.body, /host not allowed/, where)
      }
    }
    assert.deepEqual((await stack.store.keys('')).sort(), before, 'nothing registered or stored')
  })

  it('a loopback name in any case and each loopback literal is ours (the same routes answer)', async () => {
    for (const host of [`LOCALHOST:${port}`, `LocalHost:${port}`, `[::1]:${port}`, me()]) {
      const res = await rawHttp(
        port,
        `GET /account HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      )
      assert.equal(res.status, 200, `${host}: ${res.body.slice(0, 200)}`)
    }
  })

  it('an error page reflects nothing of the request (HTML, bidi, zero-width in client_id, redirect_uri)', async () => {
    const redirectUri = 'http://127.0.0.1:9/cb'
    const clientId = await newClient(stack, [redirectUri])
    const evil = '<b>x</b>"\u202eevil\u200b'
    const base = {
      response_type: 'code',
      client_id: clientId,
      scope: 'mcp:read',
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
      state: 's',
      resource: `${stack.url}/mcp/github`,
    }
    for (const p of [
      { ...base, client_id: evil, redirect_uri: redirectUri },
      { ...base, redirect_uri: `https://evil.example/${evil}` },
      { ...base, redirect_uri: 'javascript:alert(1)' },
    ]) {
      const res = await send(`${stack.url}/authorize?${new URLSearchParams(p)}`)
      assert.equal(res.status, 400, res.text)
      assertPageHeaders(res, 'authorize error page')
      assert.doesNotMatch(res.text, /evil|<b>|\u202e|\u200b|javascript/)
    }
    // A request the client could have sent: the error goes to its registered URI, nowhere else.
    for (const p of [
      { ...base, response_type: evil },
      { ...base, resource: evil },
      { ...base, response_mode: evil },
    ]) {
      const res = await send(`${stack.url}/authorize?${new URLSearchParams(p)}`)
      assert.equal(res.status, 303)
      assert.ok(res.location?.startsWith(`${redirectUri}?error=`), res.location)
      assert.doesNotMatch(decodeURIComponent(res.location ?? ''), /evil/)
    }
  })

  it('no parameter of the account page sends the browser anywhere but here or the broker', async () => {
    const hostile = [
      'https://evil.example',
      '//evil.example',
      '/\\evil.example',
      'javascript:alert(1)',
    ]
    for (const v of hostile) {
      const q = new URLSearchParams({ server: v, secret: v, next: v, return_to: v, redirect: v })
      const login = await send(`${stack.url}/account/login?${q}`)
      assert.equal(login.status, 303)
      assert.ok(login.location?.startsWith(`${stack.url}/authorize?`), login.location)
      assert.doesNotMatch(decodeURIComponent(login.location ?? ''), /evil|javascript/)
      const saved = await send(`${stack.url}/account/saved?${q}`)
      assert.equal(saved.status, 303)
      assert.equal(saved.location, '/account')
      const page = await send(`${stack.url}/account?${q}&deleted=${encodeURIComponent(v)}`)
      assert.equal(page.status, 200)
      assert.doesNotMatch(page.text, /evil|javascript/)
    }
  })

  it("the account forms: Origin null, another origin, another user's token: refused, nothing stored", async () => {
    stack.idp.nextUser('alice-pairwise-sub')
    const alice: CookieJar = new Map()
    const a = await pageSignIn(stack.url, alice)
    stack.idp.nextUser('bob-pairwise-sub')
    const bob: CookieJar = new Map()
    const b = await pageSignIn(stack.url, bob)
    const set = formFor(a.page.text, { set: 'github-token' })
    const bobCsrf = /name="csrf" value="([^"]+)"/.exec(b.page.text)![1]!
    const cases: [string, Record<string, string | undefined>, Record<string, string>, string][] = [
      ['Origin: null', {}, { origin: 'null' }, 'origin_not_allowed'],
      ['another site', {}, { origin: 'https://evil.example' }, 'origin_not_allowed'],
      [
        'a foreign Referer, no token',
        { csrf: undefined },
        { referer: 'https://evil.example/' },
        'csrf_mismatch',
      ],
      ["another user's token", { csrf: bobCsrf }, {}, 'csrf_mismatch'],
    ]
    for (const [what, over, headers, code] of cases) {
      const res = await submit(stack.url, alice, set, { value: 'forged', ...over }, headers)
      assert.equal(res.status, 403, `${what}: ${res.text.slice(0, 200)}`)
      assert.match(res.text, new RegExp(`<code>${code}</code>`), what)
    }
    const held = await secretsIn(stack.store).value({ iss: stack.url, sub: ALICE }, 'github-token')
    assert.equal(held, undefined)
  })

  it('after Sign out, the next Sign in in that browser asks the upstream: the next person is not the last', async () => {
    stack.idp.nextUser('alice-pairwise-sub')
    const jar: CookieJar = new Map()
    const first = await pageSignIn(stack.url, jar)
    assert.match(first.page.text, /Signed in as <strong>alice@contoso\.example/)
    const out = await submit(stack.url, jar, formFor(first.page.text, 'logout'))
    assert.equal(out.status, 303, out.text)
    // Alice signed out at the upstream too (or it never knew this browser). Bob sits down.
    const next = await nextSignIn(stack.url, stack.idp, jar)
    assert.ok(next.upstream, `the sign-in went to the upstream: ${next.visited.join(' → ')}`)
    assert.doesNotMatch(next.page.text, /alice@contoso/, 'signed in as the previous user')
  })

  it('the broker and account pages carry the page headers, refusals included', async () => {
    const pages: [string, Answer][] = [
      ['/account', await send(`${stack.url}/account`)],
      ['/account/callback', await send(`${stack.url}/account/callback?state=x&code=y`)],
      ['/interaction/nope', await send(`${stack.url}/interaction/nope`)],
      ['/oauth/callback', await send(`${stack.url}/oauth/callback?state=x&code=y`)],
      [
        '/account/secrets (no session)',
        await send(`${stack.url}/account/secrets`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'csrf=x&name=github-token&value=v',
        }),
      ],
    ]
    for (const [where, res] of pages) assertPageHeaders(res, where)
  })
})

describe('stop62: what a client registers for the consent page to show', () => {
  let stack: BrokerStack
  before(async () => {
    // Every case registers a client: the per-address limit is not what is tested here.
    stack = await startBrokerStack({ broker: { registration: { perAddressPerMinute: 1000 } } })
  })
  after(() => stack?.close())
  const redirect = ['http://127.0.0.1:9/callback']

  // A name that reads as another's: invisible characters between its letters, or a name that
  // shows nothing at all ("Allow  to use these tools"). Bidi overrides and C0/C1 were refused.
  const invisible: [string, string][] = [
    ['a zero-width space', 'Cla\u200bude'],
    ['a zero-width non-joiner', 'Cla\u200cude'],
    ['a zero-width joiner', 'Cla\u200dude'],
    ['a word joiner', 'Cla\u2060ude'],
    ['a byte order mark', '\ufeffClaude'],
    ['a soft hyphen', 'Cl\u00adaude'],
    ['a Mongolian vowel separator', 'Claude\u180e'],
    ['an invisible times', 'Claude\u2062'],
    ['a deprecated format character', 'Claude\u206a'],
    ['an interlinear annotation', 'Claude\ufff9hidden\ufffb'],
    ['a tag character', 'Claude\u{e0041}'],
    ['a line separator', 'Claude\u2028Code'],
    ['a paragraph separator', 'Claude\u2029Code'],
    ['only spaces', '   '],
    ['only zero-width spaces', '\u200b\u200b'],
  ]
  for (const [what, name] of invisible) {
    it(`a client_name with ${what}: 400 invalid_client_metadata, nothing registered`, async () => {
      const before = await stack.store.keys('oidc:Client:')
      const res = await register(stack, clientMetadata(redirect, { client_name: name }))
      assert.equal(res.status, 400, res.text)
      assert.equal(res.json.error, 'invalid_client_metadata')
      assert.match(String(res.json.error_description), /^client_name must/)
      assert.deepEqual(await stack.store.keys('oidc:Client:'), before)
    })
  }

  it("another site's form (text/plain, urlencoded, multipart) registers no client: 400, no CORS", async () => {
    const before = await stack.store.keys('oidc:Client:')
    const body = JSON.stringify(clientMetadata(redirect, {}))
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const res = await send(`${stack.url}/register`, {
        method: 'POST',
        headers: { 'content-type': type, origin: 'https://evil.example' },
        body,
      })
      assert.equal(res.status, 400, `${type}: ${res.text}`)
      assert.equal(res.headers['access-control-allow-origin'], undefined, type)
    }
    assert.deepEqual(await stack.store.keys('oidc:Client:'), before)
  })

  it("the upstream's error and its description reach the page as a fixed text and a safe code only", async () => {
    const walk = steps(stack, await newClient(stack, redirect), redirect[0]!)
    /** A login approved on the consent page, sent to the upstream: its state and the browser. */
    const toUpstream = async () => {
      const t = await walk.toConsent()
      const approve = form(t.consent, 'approve')
      const to = new URL((await walk.post(t.jar, approve.action, approve.fields)).location!)
      assert.equal(to.origin, new URL(stack.idp.issuer).origin)
      return { jar: t.jar, state: to.searchParams.get('state')! }
    }
    const hostile = '<script>alert(1)</script>\u202eevil "quoted" \u200bhidden'
    const cases: [string, RegExp][] = [
      ['access_denied', /the user did not sign in at the upstream \(access_denied\)/],
      ['invalid_request', /the upstream refused the sign-in request \(invalid_request\)/],
      [`x<b>${hostile}`, /the upstream refused the sign-in request \(unreadable error\)/],
    ]
    for (const [error, says] of cases) {
      const { jar, state } = await toUpstream()
      const back = new URLSearchParams({
        state,
        iss: stack.idp.issuer,
        error,
        error_description: hostile,
        error_uri: 'javascript:alert(1)',
      })
      const page = await send(`${stack.url}/oauth/callback?${back}`, { jar })
      assertPageHeaders(page, `upstream error ${error}`)
      assert.equal(page.status, 403, page.text.slice(0, 300))
      assert.match(page.text, says)
      assert.doesNotMatch(page.text, /<b>|alert|evil|quoted|hidden|\u202e|\u200b|javascript/)
    }
  })

  it('names people write are still taken (accents, scripts, an emoji, inner spaces)', async () => {
    for (const name of ['Café Client', 'Клиент', 'クライアント', 'عميل', 'Notes 📝', 'A  B'])
      assert.equal(
        (await register(stack, clientMetadata(redirect, { client_name: name }))).status,
        201,
        name,
      )
  })

  it('javascript:, data: and other non-web URLs in client_uri, logo_uri, policy_uri, tos_uri: 400', async () => {
    for (const field of ['client_uri', 'logo_uri', 'policy_uri', 'tos_uri']) {
      for (const url of [
        'javascript:alert(1)',
        'JaVaScRiPt:alert(1)',
        ' javascript:alert(1)',
        'data:text/html,<script>alert(1)</script>',
        'vbscript:msgbox(1)',
        'file:///etc/passwd',
      ]) {
        const res = await register(stack, clientMetadata(redirect, { [field]: url }))
        assert.equal(res.status, 400, `${field} ${url}: ${res.text}`)
        assert.equal(res.json.error, 'invalid_client_metadata', `${field} ${url}`)
      }
    }
  })
})

describe('stop62: an IPv6 public URL (http://[::1]:PORT) end to end', () => {
  let stack: BrokerStack
  let port: number
  before(async () => {
    port = await freePort()
    stack = await startAccountStack({
      host: '::1',
      port,
      config: { publicUrl: `http://[::1]:${port}` },
    })
  })
  after(() => stack?.close())

  it('both metadata documents name the bracketed address', async () => {
    const prm = await send(`${stack.url}/.well-known/oauth-protected-resource/mcp/echo`)
    assert.equal(prm.status, 200, prm.text)
    assert.equal(prm.json.resource, `http://[::1]:${port}/mcp/echo`)
    assert.deepEqual(prm.json.authorization_servers, [`http://[::1]:${port}`])
    const as = await send(`${stack.url}/.well-known/oauth-authorization-server`)
    assert.equal(as.status, 200, as.text)
    assert.equal(as.json.issuer, `http://[::1]:${port}`)
    assert.equal(as.json.authorization_endpoint, `http://[::1]:${port}/authorize`)
  })

  it('a broker login through the consent page, then an MCP call with the SDK client', async () => {
    const redirectUri = 'http://127.0.0.1:9/callback'
    const clientId = await newClient(stack, [redirectUri])
    stack.idp.nextUser('alice-pairwise-sub')
    const l = await login(stack, { clientId, redirectUri, server: 'echo' })
    assert.ok(
      l.visits.some((v) => /Allow .* to use these tools/.test(v.html)),
      'the consent page was shown',
    )
    assert.equal(l.callback.searchParams.get('iss'), `http://[::1]:${port}`)
    const tokens = await exchange(stack, l, { clientId, redirectUri, server: 'echo' })
    assert.equal(tokens.status, 200, tokens.text)
    const client = new Client({ name: 'stop62', version: '1' })
    const transport = new StreamableHTTPClientTransport(new URL(stack.endpoint('echo')), {
      requestInit: { headers: { authorization: `Bearer ${tokens.json.access_token}` } },
    })
    await client.connect(transport)
    try {
      const res = await client.callTool({ name: 'echo', arguments: { text: 'over [::1]' } })
      assert.match(JSON.stringify(res.content), /over \[::1\]/)
    } finally {
      await client.close()
    }
  })

  it('the account page: sign-in, its forms post to the bracketed origin, a secret is set', async () => {
    stack.idp.nextUser('alice-pairwise-sub')
    const jar: CookieJar = new Map()
    const { page } = await pageSignIn(stack.url, jar)
    assert.equal(page.status, 200, page.text)
    assert.match(page.text, /Signed in as/)
    assertPageHeaders(page, '/account over [::1]')
    const set = formFor(page.text, { set: 'github-token' })
    const res = await submit(stack.url, jar, set, { value: 'ghp_ipv6' })
    assert.equal(res.status, 303, res.text)
    const held = await secretsIn(stack.store).value({ iss: stack.url, sub: ALICE }, 'github-token')
    assert.equal(held, 'ghp_ipv6')
  })
})
