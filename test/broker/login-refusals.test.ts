// The person-facing half of the broker, driven step by step by raw HTTP: the upstream trip is
// bound to the browser that approved (another browser's callback is refused), the consent
// and missing-role forms need their CSRF token, interaction, finish and callback tokens are
// single use and expire, and an upstream that denies, mixes up issuers, is down, or signs in
// someone outside allowedDomains ends on the gateway's page. Nothing is issued on any of them.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { forms } from '../helpers/broker-browser.js'
import { assertGatewayPage, authorizeUrl, authParams, exchange, issued, login, newClient, pkce, send, type Answer } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import type { CookieJar } from '../helpers/oauth-flow.js'

const REDIRECT = 'http://127.0.0.1:43160/cb'
const BOB = 'bob-pairwise-sub'

let stack: BrokerStack
let clientId: string
before(async () => {
  stack = await startBrokerStack({ kind: 'entra', broker: { registration: { perAddressPerMinute: 1000 } } })
  clientId = await newClient(stack, [REDIRECT])
})
afterEach(() => stack.idp.reset())
after(() => stack.close())

/** One browser's trip, step by step. */
interface Trip {
  jar: CookieJar
  uid: string
  consent: Answer
  verifier: string
}

/** GET /authorize and follow to the consent page, in a new browser. */
async function toConsent(o: { scope?: string; state?: string } = {}): Promise<Trip> {
  const jar: CookieJar = new Map()
  const { verifier, challenge } = pkce()
  const first = await send(authorizeUrl(stack, authParams(stack, { clientId, redirectUri: REDIRECT, challenge, scope: o.scope, state: o.state })), { jar })
  assert.equal(first.status, 303, first.text)
  const consent = await send(new URL(first.location!, stack.url).href, { jar })
  assert.equal(consent.status, 200, consent.text)
  const uid = /\/interaction\/([^/]+)\/approve/.exec(consent.text)![1]!
  return { jar, uid, consent, verifier }
}

/** POSTs a form of a page as `jar`'s browser, with `fields` changed (undefined: left out). */
async function post(jar: CookieJar, action: string, fields: Record<string, string | undefined>, o: { contentType?: string; body?: string } = {}): Promise<Answer> {
  const body = new URLSearchParams()
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) body.append(k, v)
  return send(new URL(action, stack.url).href, { method: 'POST', jar, headers: { 'content-type': o.contentType ?? 'application/x-www-form-urlencoded' }, body: o.body ?? body.toString() })
}

/** The consent page's form for `which`. */
function form(page: Answer, which: 'approve' | 'deny' | 'continue' | 'cancel') {
  const all = forms(page.text)
  const f = which === 'approve' || which === 'deny' ? all.find((x) => x.action.endsWith(`/${which}`)) : all.find((x) => x.fields.choice === which)
  assert.ok(f, `a ${which} form on the page`)
  return f
}

/** Approves and goes through the upstream sign-in; returns the gateway callback URL the IdP sent the browser to. */
async function throughUpstream(t: Trip): Promise<string> {
  const approve = form(t.consent, 'approve')
  const res = await post(t.jar, approve.action, approve.fields)
  assert.equal(res.status, 303, res.text)
  return (await stack.idp.browse(res.location!, t.jar)).href
}

/** Follows the gateway's redirects from `url` in `jar`'s browser until the client's redirect URI or a page. */
async function follow(url: string, jar: CookieJar): Promise<{ end: Answer; callback?: URL }> {
  let next = url
  for (let hop = 0; hop < 10; hop++) {
    const res = await send(next, { jar })
    if (res.status !== 303 && res.status !== 302) return { end: res }
    const to = new URL(res.location!, next)
    if (to.href.startsWith(REDIRECT)) return { end: res, callback: to }
    next = to.href
  }
  throw new Error('too many redirects')
}

/** A page that ends the sign-in: its status, no redirect, not framable, nothing issued since `before`. */
async function assertEnded(res: Answer, status: number, what: string, before: Awaited<ReturnType<typeof issued>>): Promise<void> {
  assertGatewayPage(assert, res, status, what)
  assert.deepEqual(await issued(stack), before, `${what}: nothing issued`)
}

describe('browser binding of the upstream trip', () => {
  const browsers: { name: string; cookie: (jar: CookieJar) => CookieJar }[] = [
    { name: 'another browser (no cookies at all)', cookie: () => new Map() },
    { name: 'the same cookies without the binding cookie', cookie: (jar) => new Map([...jar].filter(([k]) => k !== 'mcp_edge_login')) },
    { name: 'a binding cookie of another sign-in', cookie: (jar) => new Map([...jar, ['mcp_edge_login', 'x'.repeat(43)]]) },
    { name: 'an empty binding cookie', cookie: (jar) => new Map([...jar, ['mcp_edge_login', '']]) },
  ]
  for (const b of browsers) {
    it(`${b.name} → 403, nothing issued; the sign-in cannot be finished afterwards`, async () => {
      const t = await toConsent()
      const callback = await throughUpstream(t)
      const before = await issued(stack)
      const res = await send(callback, { jar: b.cookie(t.jar) })
      await assertEnded(res, 403, b.name, before)
      assert.match(res.text, /another browser/)
      // The transaction is spent: the rightful browser coming back now is refused too.
      const late = await send(callback, { jar: t.jar })
      await assertEnded(late, 400, `${b.name}: the rightful browser afterwards`, before)
    })
  }

  it('the binding cookie is HttpOnly, SameSite=Lax, scoped to the callback path', async () => {
    const t = await toConsent()
    const approve = form(t.consent, 'approve')
    const res = await send(new URL(approve.action, stack.url).href, { method: 'POST', jar: t.jar, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(approve.fields).toString() })
    const cookie = [res.headers['set-cookie']].flat().find((c) => String(c).startsWith('mcp_edge_login='))
    assert.ok(cookie)
    assert.match(String(cookie), /HttpOnly/i)
    assert.match(String(cookie), /SameSite=Lax/i)
    assert.match(String(cookie), /Path=\/oauth\/callback/i)
  })
})

describe('upstream callback state', () => {
  it('a callback replayed after a completed login → 400, nothing more issued', async () => {
    const t = await toConsent()
    const callback = await throughUpstream(t)
    const jarCopy = new Map(t.jar)
    const done = await follow(callback, t.jar)
    assert.ok(done.callback?.searchParams.get('code'), 'the first use logs in')
    const before = await issued(stack)
    // Even with the binding cookie as it was before the first use.
    await assertEnded(await send(callback, { jar: jarCopy }), 400, 'replayed callback', before)
  })

  const states: { name: string; edit: (u: URL) => void }[] = [
    { name: 'an unknown state', edit: (u) => u.searchParams.set('state', 'x'.repeat(43)) },
    { name: 'no state', edit: (u) => u.searchParams.delete('state') },
    { name: 'an empty state', edit: (u) => u.searchParams.set('state', '') },
  ]
  for (const s of states) {
    it(`${s.name} → 400, nothing issued`, async () => {
      const t = await toConsent()
      const callback = new URL(await throughUpstream(t))
      s.edit(callback)
      const before = await issued(stack)
      await assertEnded(await send(callback.href, { jar: t.jar }), 400, s.name, before)
    })
  }
})

describe('CSRF on the consent forms', () => {
  const variants: { name: string; csrf: (t: Trip, other: Trip) => string | undefined; contentType?: string; body?: (fields: Record<string, string>) => string }[] = [
    { name: 'no csrf field', csrf: () => undefined },
    { name: 'an empty csrf', csrf: () => '' },
    { name: 'a made-up csrf', csrf: () => 'x'.repeat(43) },
    { name: 'the csrf of another sign-in', csrf: (_t, other) => form(other.consent, 'approve').fields.csrf },
    { name: 'the right csrf sent as JSON', csrf: (t) => form(t.consent, 'approve').fields.csrf, contentType: 'application/json', body: (f) => JSON.stringify(f) },
    { name: 'the right csrf in a body over 4 KiB', csrf: (t) => form(t.consent, 'approve').fields.csrf, body: (f) => `${new URLSearchParams(f)}&pad=${'p'.repeat(5000)}` },
  ]
  let other: Trip
  before(async () => {
    other = await toConsent()
  })
  for (const which of ['approve', 'deny'] as const) {
    for (const v of variants) {
      it(`${which} with ${v.name} → 403, nothing issued; the page's own form still works`, async () => {
        const t = await toConsent()
        const f = form(t.consent, which)
        const before = await issued(stack)
        const fields = { ...f.fields, csrf: v.csrf(t, other) }
        const res = await post(t.jar, f.action, fields, { contentType: v.contentType, body: v.body?.(fields as Record<string, string>) })
        await assertEnded(res, 403, `${which}: ${v.name}`, before)
        assert.equal((await post(t.jar, f.action, f.fields)).status, 303, 'the genuine form afterwards')
      })
    }
  }

  it('approve from another browser (no interaction cookie), right csrf → 400, nothing issued', async () => {
    const t = await toConsent()
    const f = form(t.consent, 'approve')
    const before = await issued(stack)
    await assertEnded(await post(new Map(), f.action, f.fields), 400, 'no interaction cookie', before)
  })

  it('the missing-role page\'s forms: without or with a wrong csrf → 403; a wrong or replayed token → 400', async () => {
    stack.idp.nextUser(BOB)
    const t = await toConsent({ scope: 'mcp:read' })
    const { end } = await follow(await throughUpstream(t), t.jar)
    assert.equal(end.status, 403, 'bob lacks the role for mcp:read')
    const cancel = form(end, 'cancel')
    const before = await issued(stack)
    for (const csrf of [undefined, '', 'x'.repeat(43), form(other.consent, 'approve').fields.csrf]) {
      await assertEnded(await post(t.jar, cancel.action, { ...cancel.fields, csrf }), 403, `finish with csrf ${String(csrf).slice(0, 8)}`, before)
    }
    for (const token of [undefined, '', 'x'.repeat(32)]) {
      await assertEnded(await post(t.jar, cancel.action, { ...cancel.fields, t: token }), 400, `finish with token ${String(token).slice(0, 8)}`, before)
    }
    const done = await post(t.jar, cancel.action, cancel.fields)
    assert.equal(done.status, 303, 'the genuine cancel')
    const { callback } = await follow(new URL(done.location!, stack.url).href, t.jar)
    assert.equal(callback?.searchParams.get('error'), 'access_denied')
    await assertEnded(await post(t.jar, cancel.action, cancel.fields), 400, 'the finish token replayed', before)
  })
})

describe('interaction and finish tokens: single use, bound to their interaction', () => {
  it('the finish link replayed, or carried to another interaction → 400, nothing issued', async () => {
    const t = await toConsent()
    const callback = await throughUpstream(t)
    const res = await send(callback, { jar: t.jar })
    assert.equal(res.status, 303)
    const finish = new URL(res.location!, stack.url)
    const token = finish.searchParams.get('t')!
    // Another interaction of the same browser's kind cannot use this token.
    const other = await toConsent()
    const before = await issued(stack)
    const elsewhere = await send(`${stack.url}/interaction/${other.uid}/finish?t=${token}`, { jar: other.jar })
    await assertEnded(elsewhere, 400, 'finish token of another interaction', before)
    const made = await send(`${stack.url}/interaction/${t.uid}/finish?t=${'x'.repeat(32)}`, { jar: t.jar })
    await assertEnded(made, 400, 'a made-up finish token', before)
    // The token was taken by the refused attempt: it is spent for its own interaction too.
    await assertEnded(await send(finish.href, { jar: t.jar }), 400, 'spent finish token', before)
  })

  it('a completed interaction replayed → 400 page, nothing more issued', async () => {
    const l = await login(stack, { clientId, redirectUri: REDIRECT })
    const uid = /\/interaction\/([^/?]+)/.exec(l.visits.map((v) => v.url).join(' '))![1]!
    const before = await issued(stack)
    for (const path of ['', '/finish?t=x']) {
      await assertEnded(await send(`${stack.url}/interaction/${uid}${path}`, { jar: l.jar }), 400, `replayed interaction${path}`, before)
    }
    const approve = await post(l.jar, `/interaction/${uid}/approve`, { csrf: 'x' })
    await assertEnded(approve, 400, 'approve on a finished interaction', before)
  })

  it('an interaction and its finish token past loginTtl → 400, nothing issued', async () => {
    const t = await toConsent()
    const callback = await throughUpstream(t)
    const res = await send(callback, { jar: t.jar })
    const finish = new URL(res.location!, stack.url).href
    const waiting = await toConsent()
    // The store's clock moves past loginTtl (600 s by default): interactions, login transactions and finish tokens expire.
    stack.store.advance(601_000)
    const before = await issued(stack)
    await assertEnded(await send(finish, { jar: t.jar }), 400, 'expired finish', before)
    await assertEnded(await send(`${stack.url}/interaction/${waiting.uid}`, { jar: waiting.jar }), 400, 'expired consent page', before)
    const approve = form(waiting.consent, 'approve')
    await assertEnded(await post(waiting.jar, approve.action, approve.fields), 400, 'approve after expiry', before)
  })
})

describe('upstream failures end on the gateway\'s page', () => {
  const failures: { name: string; arrange: () => void; status: number; text: RegExp; hides?: string }[] = [
    { name: 'the user declines at the IdP', arrange: () => void (stack.idp.knobs.deny = true), status: 403, text: /did not sign in/ },
    { name: 'the callback names another issuer (mix-up)', arrange: () => void (stack.idp.knobs.wrongIss = 'https://login.attacker.example/v2.0'), status: 403, text: /another issuer than the upstream/, hides: 'attacker.example' },
  ]
  for (const f of failures) {
    it(`${f.name} → ${f.status} page with a safe message, nothing issued, no account kept`, async () => {
      const t = await toConsent()
      f.arrange()
      const callback = await throughUpstream(t)
      const before = await issued(stack)
      const accounts = (await stack.store.keys('broker:account:')).length
      const { end, callback: toClient } = await follow(callback, t.jar)
      assert.equal(toClient, undefined, 'no redirect to the client')
      await assertEnded(end, f.status, f.name, before)
      assert.match(end.text, f.text)
      if (f.hides) assert.doesNotMatch(end.text, new RegExp(f.hides.replace('.', '\\.')))
      assert.doesNotMatch(end.text, /code=|eyJ/, 'no code or token on the page')
      assert.equal((await stack.store.keys('broker:account:')).length, accounts)
    })
  }

  it('the IdP is down when the gateway exchanges the code → 403 page with a safe message, nothing issued', async () => {
    const t = await toConsent()
    const callback = await throughUpstream(t)
    stack.idp.knobs.down = true
    const before = await issued(stack)
    const { end } = await follow(callback, t.jar)
    await assertEnded(end, 403, 'upstream down', before)
    assert.match(end.text, /code exchange failed with 503/)
    assert.doesNotMatch(end.text, /down for maintenance/, 'the upstream\'s own text is not echoed')
  })

  it('a refused sign-in leaves the client nothing to redeem: the interaction cannot be finished', async () => {
    const t = await toConsent()
    stack.idp.knobs.deny = true
    const callback = await throughUpstream(t)
    await follow(callback, t.jar)
    const before = await issued(stack)
    await assertEnded(await send(`${stack.url}/interaction/${t.uid}/finish?t=${'x'.repeat(32)}`, { jar: t.jar }), 400, 'finish after a refusal', before)
  })
})

describe('allowedDomains (Google-like upstream)', () => {
  let google: BrokerStack
  let googleClient: string
  before(async () => {
    google = await startBrokerStack({ kind: 'google', upstream: { allowedDomains: ['example.com'] } })
    googleClient = await newClient(google, [REDIRECT])
  })
  after(() => google.close())

  const users: { name: string; id: string; allowed: boolean }[] = [
    { name: 'ann@example.com (Workspace example.com)', id: '104857600000000000001', allowed: true },
    { name: 'gus@gmail.com', id: '104857600000000000002', allowed: false },
    { name: 'eve@example.com with an unverified email', id: '104857600000000000003', allowed: false },
  ]
  for (const u of users) {
    it(`${u.name} → ${u.allowed ? 'past the domain check' : '403 page, nothing issued, no account'}`, async () => {
      google.idp.nextUser(u.id)
      const jar: CookieJar = new Map()
      const { challenge } = pkce()
      const first = await send(authorizeUrl(google, authParams(google, { clientId: googleClient, redirectUri: REDIRECT, challenge })), { jar })
      const consent = await send(new URL(first.location!, google.url).href, { jar })
      const approve = forms(consent.text).find((x) => x.action.endsWith('/approve'))!
      const res = await send(new URL(approve.action, google.url).href, { method: 'POST', jar, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(approve.fields).toString() })
      const callback = (await google.idp.browse(res.location!, jar)).href
      const before = await issued(google)
      const back = await send(callback, { jar })
      if (u.allowed) {
        assert.equal(back.status, 303, back.text)
        assert.match(back.location ?? '', /\/finish\?t=/)
        return
      }
      assertGatewayPage(assert, back, 403, u.name)
      assert.match(back.text, /domain/)
      assert.doesNotMatch(back.text, /gmail\.com|eve@/, 'the page does not echo the address')
      assert.deepEqual(await issued(google), before)
      assert.equal((await google.store.keys(`broker:account:${u.id}`)).length, 0)
    })
  }
})

describe('the genuine flow through the same steps issues tokens', () => {
  it('consent → upstream → callback → finish → code → token', async () => {
    const t = await toConsent({ state: 'genuine' })
    const { callback } = await follow(await throughUpstream(t), t.jar)
    assert.equal(callback?.searchParams.get('state'), 'genuine')
    const res = await exchange(stack, { callback: callback!, verifier: t.verifier, visits: [], state: 'genuine', jar: t.jar }, { clientId, redirectUri: REDIRECT })
    assert.equal(res.status, 200, res.text)
  })
})
