// With several dev users, logins go through a "Sign in as" page: a plain POST form, bound to
// its interaction, that decides whose roles (and so which scopes) the token carries.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import { pino } from 'pino'
import { startDevIdp, type DevIdp } from '../../gateway/devidp/provider.js'
import { DEMO_ROLES, scopesForRoles } from '../helpers/dev-roles.js'
import {
  authorizationCodeFlow,
  discover,
  registerPublicClient,
  signInForm,
  storeCookies,
  type CookieJar,
  SETUP,
  request,
} from '../helpers/oauth-flow.js'

const ECHO = 'http://127.0.0.1:8080/mcp/echo'
const REDIRECT = 'http://127.0.0.1:33418/callback'
const USERS = [
  { sub: 'dev-user', roles: ['mcp-user', 'mcp-developer'] },
  { sub: 'ada@admin', roles: ['mcp-admin'] },
]
const scopesFor = scopesForRoles(DEMO_ROLES)
const logger = pino({ level: 'silent' })
const scopeOf = (token: string) => decodeJwt(token).scope as string | undefined

/** One browser's GET with its cookies. */
async function get(url: string, jar: CookieJar) {
  const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
  const res = await request(url, { headers: cookie ? { cookie } : {} })
  storeCookies(jar, res.headers['set-cookie'])
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

/** Starts an authorization request and follows it to the sign-in page. */
async function toSignInPage(idp: DevIdp, jar: CookieJar, scope = 'mcp:read mcp:admin') {
  const clientId = await registerPublicClient(idp.issuer, REDIRECT, { client_name: 'Test <App>' })
  const { authorization_endpoint: endpoint } = await discover(idp.issuer)
  const verifier = randomBytes(32).toString('base64url')
  let url = `${endpoint}?${new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope,
    resource: ECHO,
    state: 's',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  })}`
  for (let hop = 0; hop < 5; hop++) {
    const res = await get(url, jar)
    if (res.status === 200) return { url, ...res }
    url = new URL(String(res.headers.location), url).href
  }
  throw new Error('no sign-in page')
}

describe('dev IdP with several users: the "Sign in as" page over plain HTTP', () => {
  let idp: DevIdp
  before(async () => {
    idp = await startDevIdp({
      resources: [ECHO],
      users: USERS,
      scopesFor,
      stateFile: false,
      logger,
    })
  }, SETUP)
  after(() => idp.close())

  it('lists every user with its roles, in a page that cannot be framed or run scripts', async () => {
    const page = await toSignInPage(idp, new Map())
    assert.match(page.url, /\/interaction\/[\w-]+$/)
    const cases: [string, unknown, unknown][] = [
      ['content-type', page.headers['content-type'], 'text/html; charset=utf-8'],
      [
        'frame-ancestors',
        /frame-ancestors 'none'/.test(String(page.headers['content-security-policy'])),
        true,
      ],
      [
        'no scripts',
        /default-src 'none'/.test(String(page.headers['content-security-policy'])),
        true,
      ],
      ['x-frame-options', page.headers['x-frame-options'], 'DENY'],
      ['cache-control', page.headers['cache-control'], 'no-store'],
      ['users', signInForm(page.text)?.users, ['dev-user', 'ada@admin']],
      [
        'roles shown',
        page.text.includes('mcp-user, mcp-developer') && page.text.includes('mcp-admin'),
        true,
      ],
      ['client name escaped', page.text.includes('Test &#60;App&#62;'), true],
      ['asked scopes shown', page.text.includes('mcp:read mcp:admin'), true],
      ['viewport for phones', page.text.includes('name="viewport"'), true],
      ['no script tag', /<script/i.test(page.text), false],
    ]
    for (const [name, actual, expected] of cases) assert.deepEqual(actual, expected, name)
  })

  it('the non-admin user gets no mcp:admin even when asked; the admin does; one browser', async () => {
    const jar: CookieJar = new Map()
    const cases = [
      { user: 'dev-user', granted: 'mcp:read', roles: ['mcp-user', 'mcp-developer'] },
      { user: 'ada@admin', granted: 'mcp:read mcp:admin', roles: ['mcp-admin'] },
      { user: 'dev-user', granted: 'mcp:read', roles: ['mcp-user', 'mcp-developer'] },
    ]
    for (const c of cases) {
      const clientId = await registerPublicClient(idp.issuer, REDIRECT)
      const tokens = await authorizationCodeFlow({
        issuer: idp.issuer,
        clientId,
        redirectUri: REDIRECT,
        resource: ECHO,
        scope: 'mcp:read mcp:admin',
        user: c.user,
        jar,
      })
      const claims = decodeJwt(tokens.access_token)
      assert.equal(claims.sub, c.user)
      assert.equal(scopeOf(tokens.access_token), c.granted, c.user)
      assert.deepEqual(claims.realm_access, { roles: c.roles }, c.user)
    }
  })

  it('refuses a submission that is not from this sign-in page', async () => {
    const jar: CookieJar = new Map()
    const page = await toSignInPage(idp, jar)
    const form = signInForm(page.text)!
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const post = (body: string, o: { cookie?: string; type?: string; path?: string } = {}) =>
      request(new URL(o.path ?? form.action, idp.issuer), {
        method: 'POST',
        headers: {
          'content-type': o.type ?? 'application/x-www-form-urlencoded',
          ...(o.cookie === '' ? {} : { cookie: o.cookie ?? cookie }),
        },
        body,
      })
    const valid = (sub: string) => new URLSearchParams({ csrf: form.csrf, sub }).toString()
    const cases = [
      { name: 'no token', body: 'sub=ada%40admin', error: /not belong to this sign-in/ },
      {
        name: 'another token',
        body: `csrf=${'A'.repeat(43)}&sub=ada%40admin`,
        error: /not belong to this sign-in/,
      },
      {
        name: 'no interaction cookie (another site posting)',
        body: valid('ada@admin'),
        cookie: '',
        error: /interaction session|interaction cookie|not found/i,
      },
      { name: 'unknown user', body: valid('root'), error: /no such dev user/ },
      {
        name: 'not a form',
        body: JSON.stringify({ sub: 'ada@admin' }),
        type: 'application/json',
        error: /expected a form post/,
      },
      {
        name: 'oversized form',
        body: `${valid('ada@admin')}&pad=${'x'.repeat(5000)}`,
        error: /form too large/,
      },
    ]
    for (const c of cases) {
      const res = await post(c.body, c)
      const text = await res.body.text()
      assert.equal(res.statusCode, 400, c.name)
      assert.equal(res.headers.location, undefined, `${c.name}: not sent on`)
      assert.match(text, c.error, c.name)
    }
    // Control: the genuine submission still works after all that.
    const res = await post(valid('ada@admin'))
    await res.body.dump()
    assert.equal(res.statusCode, 303)
    assert.match(String(res.headers.location), /\/auth\//)
  })
})

describe('dev IdP with one user', () => {
  it('logs in at once (no page, no click) and refuses a posted sign-in', async () => {
    const idp = await startDevIdp({ resources: [ECHO], scopesFor, stateFile: false, logger })
    try {
      const clientId = await registerPublicClient(idp.issuer, REDIRECT)
      const tokens = await authorizationCodeFlow({
        issuer: idp.issuer,
        clientId,
        redirectUri: REDIRECT,
        resource: ECHO,
        scope: 'mcp:read',
      })
      assert.equal(decodeJwt(tokens.access_token).sub, 'dev-user')

      const jar: CookieJar = new Map()
      const { authorization_endpoint: endpoint } = await discover(idp.issuer)
      const auth = await get(
        `${endpoint}?${new URLSearchParams({
          response_type: 'code',
          client_id: clientId,
          redirect_uri: REDIRECT,
          scope: 'mcp:read',
          resource: ECHO,
          code_challenge: 'x'.repeat(43),
          code_challenge_method: 'S256',
        })}`,
        jar,
      )
      const interaction = new URL(String(auth.headers.location), endpoint)
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
      const res = await request(interaction, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'sub=dev-user',
      })
      assert.equal(res.statusCode, 400)
      assert.match(await res.body.text(), /nothing to submit here/)
    } finally {
      await idp.close()
    }
  })
})
