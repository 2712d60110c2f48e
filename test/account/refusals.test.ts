// The account page's refusals, over raw HTTP against a gateway whose broker signs users in at
// the Entra-like fixture: forms without this session's CSRF token (missing, wrong, another
// session's), without a session, after it expired (the page's clock moved, no waiting) or was
// signed out, from another site; names no server of the user takes (or a server they may not
// use), hostile names, values the secret store refuses, bodies too large or of the wrong kind;
// methods; the sign-in's own refusals (no sign-in in progress, another browser's callback,
// an error, too late); and the headers and cookie flags of every answer. Each refusal stores
// nothing.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { accountCookies } from '../../gateway/account/session.js'
import {
  ACCOUNT_EXCHANGE,
  ACCOUNT_POLICY,
  accountServers,
  formFor,
  pageForms,
  pageSignIn,
  SEALING,
  secretsIn,
  submit,
  type PageForm,
} from '../helpers/account.js'
import { send, type Answer } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import type { CookieJar } from '../helpers/oauth-flow.js'

/** The fixture's users as the broker names them (Entra `oid`). */
const ALICE = '00000000-0000-0000-0000-00000000a11c'
const SESSION_TTL_S = 600
const MAX_BODY = 16_384

let stack: BrokerStack
let skew = 0
const alice = () => ({ iss: stack.url, sub: ALICE })

before(async () => {
  stack = await startBrokerStack({
    policy: ACCOUNT_POLICY,
    auth: ACCOUNT_EXCHANGE,
    config: {
      servers: accountServers(),
      secrets: SEALING,
      account: { sessionTtl: SESSION_TTL_S, maxBodyBytes: MAX_BODY },
    },
    start: { accountClock: () => Date.now() + skew },
  })
})
after(async () => {
  await stack?.close()
})

/** A browser signed in to the page as `user` (the fixture's account id): its jar and page. */
async function browser(user = 'alice-pairwise-sub'): Promise<{ jar: CookieJar; page: Answer }> {
  stack.idp.nextUser(user)
  const jar: CookieJar = new Map()
  const { page } = await pageSignIn(stack.url, jar)
  assert.equal(page.status, 200, page.text)
  assert.match(page.text, /Signed in as/)
  return { jar, page }
}

/** Every store key holding a user's secret (`secrets:<user>:<name>`). */
async function secretKeys(): Promise<string[]> {
  return (await stack.store.keys('secrets:')).filter((k) => k.split(':').length > 2)
}

/** POSTs `body` as it is (bytes too) as a form, as `jar`'s browser. */
async function postRaw(jar: CookieJar, action: string, body: string | Buffer): Promise<Answer> {
  const res = await request(new URL(action, stack.url).href, {
    method: 'POST',
    headers: {
      cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
      'content-type': 'application/x-www-form-urlencoded',
      origin: stack.url,
    },
    body,
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: {}, location: undefined }
}

/** The answer is a page of the gateway: HTML, not framable, not cached, no script, its code named. */
function assertPage(res: Answer, status: number, code?: string): void {
  assert.equal(res.status, status, res.text.slice(0, 400))
  assert.match(String(res.headers['content-type']), /^text\/html/)
  const csp = String(res.headers['content-security-policy'])
  assert.match(csp, /default-src 'none'/)
  assert.match(csp, /frame-ancestors 'none'/)
  assert.match(csp, /form-action 'self'/)
  assert.doesNotMatch(csp, /unsafe-inline|script-src/)
  assert.equal(res.headers['x-frame-options'], 'DENY')
  assert.equal(res.headers['cache-control'], 'no-store')
  assert.equal(res.headers['referrer-policy'], 'same-origin')
  assert.equal(res.headers['x-content-type-options'], 'nosniff')
  assert.doesNotMatch(res.text, /<script/i)
  if (code) assert.match(res.text, new RegExp(`<code>${code}</code>`))
}

describe('forms the page refuses, storing nothing', () => {
  let a: { jar: CookieJar; page: Answer }
  let a2: { jar: CookieJar; page: Answer }
  let b: { jar: CookieJar; page: Answer }
  let set: PageForm

  before(async () => {
    a = await browser()
    a2 = await browser()
    b = await browser('bob-pairwise-sub')
    set = formFor(a.page.text, { set: 'github-token' })
  })

  const csrfOf = (page: Answer) => pageForms(page.text)[0]!.fields.csrf!
  const cases: {
    name: string
    jar?: () => CookieJar
    over: () => Record<string, string | undefined>
    headers?: Record<string, string>
    body?: () => string | Buffer
    status: number
    code: string
    /** The refusal's audit line (deny) for the user's request: the name and why. */
    audited?: [name: string | undefined, outcome: string]
  }[] = [
    {
      name: 'no session (a browser never signed in)',
      jar: () => new Map(),
      over: () => ({ value: 'v' }),
      status: 403,
      code: 'not_signed_in',
    },
    {
      name: 'no CSRF token',
      over: () => ({ csrf: undefined, value: 'v' }),
      status: 403,
      code: 'csrf_mismatch',
      // A form not the page's own, riding on alice's cookie: audited as hers (no name read).
      audited: [undefined, 'refused: csrf_mismatch'],
    },
    {
      name: 'a wrong CSRF token',
      over: () => ({ csrf: 'A'.repeat(43), value: 'v' }),
      status: 403,
      code: 'csrf_mismatch',
      // A form not the page's own, riding on alice's cookie: audited as hers (no name read).
      audited: [undefined, 'refused: csrf_mismatch'],
    },
    {
      name: "the CSRF token of the same user's other session",
      over: () => ({ csrf: csrfOf(a2.page), value: 'v' }),
      status: 403,
      code: 'csrf_mismatch',
      // A form not the page's own, riding on alice's cookie: audited as hers (no name read).
      audited: [undefined, 'refused: csrf_mismatch'],
    },
    {
      name: "the CSRF token of another user's session",
      over: () => ({ csrf: csrfOf(b.page), value: 'v' }),
      status: 403,
      code: 'csrf_mismatch',
      // A form not the page's own, riding on alice's cookie: audited as hers (no name read).
      audited: [undefined, 'refused: csrf_mismatch'],
    },
    {
      name: 'a form from another site (Origin)',
      over: () => ({ value: 'v' }),
      headers: { origin: 'http://evil.example' },
      status: 403,
      code: 'origin_not_allowed',
      audited: [undefined, 'refused: origin_not_allowed'],
    },
    {
      name: 'a form from another site, no session: no user to audit',
      jar: () => new Map(),
      over: () => ({ value: 'v' }),
      headers: { origin: 'http://evil.example' },
      status: 403,
      code: 'origin_not_allowed',
    },
    {
      name: 'a name no server takes',
      over: () => ({ name: 'aws-key', value: 'v' }),
      status: 403,
      code: 'secret_not_allowed',
      audited: ['aws-key', 'refused: no server of the caller takes it'],
    },
    {
      name: 'the name of a server the user may not use (vault: admin only)',
      over: () => ({ name: 'vault-token', value: 'v' }),
      status: 403,
      code: 'secret_not_allowed',
      audited: ['vault-token', 'refused: no server of the caller takes it'],
    },
    {
      name: 'an empty value',
      over: () => ({ value: '' }),
      status: 400,
      code: 'secret_refused',
      audited: ['github-token', 'refused: a secret value is 1 to 8192 characters'],
    },
    {
      name: 'a value over 8192 characters',
      over: () => ({ value: 'x'.repeat(8193) }),
      status: 400,
      code: 'secret_refused',
      audited: ['github-token', 'refused: a secret value is 1 to 8192 characters'],
    },
    {
      name: 'a value holding NUL',
      over: () => ({ value: 'ab\u0000cd' }),
      status: 400,
      code: 'secret_refused',
      audited: ['github-token', 'refused: a secret value cannot hold a NUL character'],
    },
    {
      name: 'a body over account.maxBodyBytes',
      over: () => ({ value: 'x'.repeat(MAX_BODY) }),
      status: 413,
      code: 'body_too_large',
    },
    {
      name: 'JSON instead of a form',
      over: () => ({}),
      headers: { 'content-type': 'application/json' },
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'a field twice',
      over: () => ({}),
      body: () => `${new URLSearchParams({ ...set.fields, value: 'v' })}&name=vault-token`,
      status: 400,
      code: 'invalid_body',
    },
    {
      name: 'a value whose percent-encoding is not UTF-8',
      over: () => ({}),
      body: () => `${new URLSearchParams(set.fields)}&value=%FF%FE`,
      status: 400,
      code: 'invalid_body',
    },
    {
      name: 'a body that is not UTF-8',
      over: () => ({}),
      body: () =>
        Buffer.concat([
          Buffer.from(`${new URLSearchParams(set.fields)}&value=`),
          Buffer.from([0xff, 0xfe]),
        ]),
      status: 400,
      code: 'invalid_body',
    },
  ]
  for (const c of cases) {
    it(`${c.name}: ${c.status} ${c.code}`, async () => {
      const before = await secretKeys()
      const audits = stack.audit().length
      const jar = c.jar?.() ?? a.jar
      const res = c.body
        ? await postRaw(jar, set.action, c.body())
        : await submit(stack.url, jar, set, c.over(), c.headers)
      assertPage(res, c.status, c.code)
      assert.deepEqual(await secretKeys(), before, 'nothing stored')
      // Nothing set; a refusal of the user's own request is its one line (deny), no value in it.
      assert.deepEqual(
        stack
          .audit()
          .slice(audits)
          .filter((e) => e.method === 'account/secret.set')
          .map((e) => [e.sub, e.decision, e.name, e.outcome]),
        c.audited ? [[ALICE, 'deny', ...c.audited]] : [],
      )
    })
  }

  // Names as a form can carry them: percent-encodings (decoded once, never twice), paths, dots,
  // control and format characters, look-alikes, case. None is a name a server takes.
  const hostile = [
    'github-token/../vault-token',
    '../github-token',
    'github-token/',
    '..',
    '.',
    'github%2Dtoken',
    '%67ithub-token',
    'github-token\u0000',
    'github-token\n',
    'github-token\r\nX-Injected: 1',
    ' github-token',
    'github-token ',
    'GITHUB-TOKEN',
    'g\u0456thub-token',
    'github-token\u202e',
    'github\u200b-token',
    'github.token',
    '',
    'a'.repeat(65),
  ]
  for (const name of hostile) {
    it(`the name ${JSON.stringify(name)}: 403 secret_not_allowed, nothing stored`, async () => {
      const before = await secretKeys()
      const res = await submit(stack.url, a.jar, set, { name, value: 'hostile' })
      assertPage(res, 403, 'secret_not_allowed')
      assert.deepEqual(await secretKeys(), before)
    })
  }

  it("the same form with this session's token works (the refusals above were not the form's fault)", async () => {
    const res = await submit(stack.url, a.jar, set, { value: 'ghp_right' })
    assert.equal(res.status, 303, res.text)
    assert.equal(res.location, '/account/saved?secret=github-token')
    assert.equal(await secretsIn(stack.store).value(alice(), 'github-token'), 'ghp_right')
    await secretsIn(stack.store).remove(alice(), 'github-token')
  })

  it('deleting a secret no server of the user takes, and not held: 403 secret_not_allowed', async () => {
    const del = {
      action: '/account/secrets/delete',
      fields: { csrf: csrfOf(a.page), name: 'vault-token' },
      takesValue: false,
      button: '',
    }
    const audits = stack.audit().length
    assertPage(await submit(stack.url, a.jar, del), 403, 'secret_not_allowed')
    assert.deepEqual(
      stack
        .audit()
        .slice(audits)
        .map((e) => [e.method, e.decision, e.name, e.outcome]),
      [
        [
          'account/secret.delete',
          'deny',
          'vault-token',
          'refused: no server of the caller takes it',
        ],
      ],
    )
  })
})

describe('sessions that ended', () => {
  it("a session past account.sessionTtl (the page's clock moved): forms refused, the page asks to sign in again", async () => {
    const a = await browser()
    const set = formFor(a.page.text, { set: 'github-token' })
    skew += (SESSION_TTL_S + 1) * 1000
    try {
      assertPage(await submit(stack.url, a.jar, set, { value: 'late' }), 403, 'not_signed_in')
      const page = await send(`${stack.url}/account`, { jar: a.jar })
      assertPage(page, 200)
      assert.match(page.text, /Your session on this page has ended; sign in again/)
      assert.match(String(page.headers['set-cookie']), /mcp_edge_account=; Max-Age=0/)
      assert.equal(await secretsIn(stack.store).value(alice(), 'github-token'), undefined)
    } finally {
      skew = 0
    }
  })

  it('signing out ends the session, even for a copy of its cookie', async () => {
    const a = await browser()
    const copy = new Map(a.jar)
    const res = await submit(stack.url, a.jar, formFor(a.page.text, 'logout'))
    assert.equal(res.status, 303)
    assert.equal(res.location, '/account?signed_out=1')
    const after = await send(new URL(res.location!, stack.url).href, { jar: a.jar })
    assertPage(after, 200)
    assert.match(after.text, /You are signed out of this page/)
    // The copied cookie opens, but its session is over.
    assertPage(
      await submit(stack.url, copy, formFor(a.page.text, { set: 'github-token' }), { value: 'v' }),
      403,
      'not_signed_in',
    )
    assert.doesNotMatch((await send(`${stack.url}/account`, { jar: copy })).text, /Signed in as/)
  })

  it('a forged or tampered session cookie is no session', async () => {
    const a = await browser()
    const [name, value] = [...a.jar].find(([k]) => k === 'mcp_edge_account')!
    const forged = new Map(a.jar).set(name, `${value.slice(0, -4)}AAAA`)
    assertPage(
      await submit(stack.url, forged, formFor(a.page.text, { set: 'github-token' }), {
        value: 'v',
      }),
      403,
      'not_signed_in',
    )
  })
})

describe('the sign-in refuses', () => {
  /** Starts a sign-in in `jar` and follows it to the gateway's callback URL, without opening it. */
  async function toCallback(jar: CookieJar): Promise<URL> {
    let next = `${stack.url}/account/login`
    for (let hop = 0; hop < 20; hop++) {
      const res = await send(next, { jar })
      assert.ok(
        res.status === 302 || res.status === 303,
        `${next}: ${res.status} ${res.text.slice(0, 200)}`,
      )
      const to = new URL(res.location!, next)
      if (to.pathname === '/account/callback') return to
      next = to.href
    }
    throw new Error('no callback')
  }

  it('a callback in a browser that started no sign-in: 400 sign_in_expired, no session', async () => {
    const url = await toCallback(new Map())
    const res = await send(url.href, { jar: new Map() })
    assertPage(res, 400, 'sign_in_expired')
    assert.equal(res.headers['set-cookie'], undefined)
  })

  it("another browser's callback (login CSRF): 403 sign_in_mismatch, not signed in as its user", async () => {
    stack.idp.nextUser('bob-pairwise-sub')
    const attacker = await toCallback(new Map())
    stack.idp.nextUser('alice-pairwise-sub')
    const victim: CookieJar = new Map()
    await send(`${stack.url}/account/login`, { jar: victim })
    const res = await send(attacker.href, { jar: victim })
    assertPage(res, 403, 'sign_in_mismatch')
    assert.doesNotMatch((await send(`${stack.url}/account`, { jar: victim })).text, /Signed in as/)
  })

  it('a callback carrying an error: 403 sign_in_refused', async () => {
    const jar: CookieJar = new Map()
    const url = await toCallback(jar)
    const error = new URL(url)
    error.search = new URLSearchParams({
      error: 'access_denied',
      state: url.searchParams.get('state')!,
      iss: stack.url,
    }).toString()
    assertPage(await send(error.href, { jar }), 403, 'sign_in_refused')
  })

  it('a callback naming another issuer (RFC 9207 mix-up): 502 sign_in_failed', async () => {
    const jar: CookieJar = new Map()
    const url = await toCallback(jar)
    url.searchParams.set('iss', 'http://127.0.0.1:1')
    assertPage(await send(url.href, { jar }), 502, 'sign_in_failed')
  })

  it('a callback after account.loginTtl: 400 sign_in_expired', async () => {
    const jar: CookieJar = new Map()
    const url = await toCallback(jar)
    skew += 601_000
    try {
      assertPage(await send(url.href, { jar }), 400, 'sign_in_expired')
    } finally {
      skew = 0
    }
  })

  it('a callback used twice: the second finds no sign-in in progress', async () => {
    const jar: CookieJar = new Map()
    const url = await toCallback(jar)
    const first = await send(url.href, { jar })
    assert.equal(first.status, 303, first.text)
    const again = await send(url.href, {
      jar: new Map([...jar].filter(([k]) => k !== 'mcp_edge_account')),
    })
    assertPage(again, 400, 'sign_in_expired')
  })
})

describe('links', () => {
  const cases = [
    {
      query: 'server=github&secret=github-token',
      needed: ['secret-github-github-token'],
      banner:
        /<strong>github<\/strong> needs a GitHub personal access token; set it, then return to your application\./,
    },
    {
      query: 'server=vault&secret=vault-token',
      needed: [],
      banner: /The link you followed asks for a credential that no server you may use takes\./,
    },
    {
      query: 'server=github&secret=jira-token',
      needed: [],
      banner: /The link you followed asks for a credential/,
    },
    {
      query: 'server=github&secret=%3Cscript%3E',
      needed: [],
      banner: /The link you followed asks for a credential/,
    },
    { query: 'server=github', needed: [], banner: undefined },
  ]
  for (const c of cases) {
    it(`?${c.query}: ${c.needed.length > 0 ? 'highlights it' : c.banner ? 'says no server of the user takes it' : 'points at nothing'}`, async () => {
      const { jar } = await browser()
      const res = await send(`${stack.url}/account?${c.query}`, { jar })
      assertPage(res, 200)
      assert.match(res.text, /Signed in as/)
      assert.deepEqual(
        [...res.text.matchAll(/<li class="cred needed" id="([^"]+)"/g)].map((m) => m[1]),
        c.needed,
      )
      if (c.banner) assert.match(res.text, c.banner)
      else assert.doesNotMatch(res.text, /class="warn"/)
      assert.doesNotMatch(res.text, /<script>/)
    })
  }
})

describe('methods', () => {
  const cases = [
    { method: 'POST', path: '/account', allow: 'GET' },
    { method: 'PUT', path: '/account', allow: 'GET' },
    { method: 'DELETE', path: '/account', allow: 'GET' },
    { method: 'GET', path: '/account/secrets', allow: 'POST' },
    { method: 'PUT', path: '/account/secrets', allow: 'POST' },
    { method: 'GET', path: '/account/secrets/delete', allow: 'POST' },
    { method: 'GET', path: '/account/logout', allow: 'POST' },
    { method: 'POST', path: '/account/callback', allow: 'GET' },
    { method: 'POST', path: '/account/login', allow: 'GET' },
  ]
  for (const c of cases) {
    it(`${c.method} ${c.path}: 405, Allow ${c.allow}`, async () => {
      const res = await send(`${stack.url}${c.path}`, { method: c.method })
      assertPage(res, 405, 'method_not_allowed')
      assert.equal(res.headers.allow, c.allow)
    })
  }
  it('HEAD /account: 405 (the gateway answers HEAD only where GET changes nothing it names)', async () => {
    const res = await send(`${stack.url}/account`, { method: 'HEAD' })
    assert.equal(res.status, 405)
  })
})

describe('headers and cookies', () => {
  it('every page: not framable, not cached, no script (sign-in, account, saved, refusals)', async () => {
    assertPage(await send(`${stack.url}/account`), 200)
    const a = await browser()
    assertPage(a.page, 200)
    const set = await submit(stack.url, a.jar, formFor(a.page.text, { set: 'jira-token' }), {
      value: 'jira',
    })
    assertPage(await send(new URL(set.location!, stack.url).href, { jar: a.jar }), 200)
    assertPage(
      await submit(stack.url, a.jar, formFor(a.page.text, { set: 'jira-token' }), { csrf: 'x' }),
      403,
      'csrf_mismatch',
    )
    await secretsIn(stack.store).remove(alice(), 'jira-token')
  })

  it("the session cookie: HttpOnly, SameSite=Lax, the page's path, account.sessionTtl, no Secure on http", async () => {
    const jar: CookieJar = new Map()
    const login = await send(`${stack.url}/account/login`, { jar })
    assert.match(
      String(login.headers['set-cookie']),
      /^mcp_edge_account_login=[^;]+; Max-Age=600; Path=\/account\/callback; HttpOnly; SameSite=Lax$/,
    )
    let next = new URL(login.location!, stack.url).href
    let session: string | undefined
    for (let hop = 0; hop < 20 && session === undefined; hop++) {
      const res = await send(next, { jar })
      session = [res.headers['set-cookie'] ?? []]
        .flat()
        .find((l) => l.startsWith('mcp_edge_account='))
      next = new URL(res.location ?? '/', next).href
    }
    assert.match(
      session!,
      new RegExp(
        `^mcp_edge_account=[A-Za-z0-9._-]+; Max-Age=${SESSION_TTL_S}; Path=/account; HttpOnly; SameSite=Lax$`,
      ),
    )
  })

  it('on https: __Host- cookies (Secure, Path=/, no Domain)', () => {
    assert.deepEqual(accountCookies('https://mcp.example.com/base'), {
      session: { name: '__Host-mcp_edge_account', path: '/', secure: true },
      login: { name: '__Host-mcp_edge_account_login', path: '/', secure: true },
    })
    assert.deepEqual(accountCookies('http://127.0.0.1:8080/base'), {
      session: { name: 'mcp_edge_account', path: '/base/account', secure: false },
      login: { name: 'mcp_edge_account_login', path: '/base/account/callback', secure: false },
    })
  })
})
