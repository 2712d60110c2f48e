// The person-facing half of the broker, driven step by step by raw HTTP: the upstream trip is
// bound to the browser that approved (another browser's callback is refused), the consent
// and missing-role forms need their CSRF token, and interaction, finish and callback tokens
// are single use and expire. Nothing is issued on any of them.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { exchange, issued, login, newClient, send } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { form, steps, type Trip } from '../helpers/broker-steps.js'
import type { CookieJar } from '../helpers/oauth-flow.js'

const REDIRECT = 'http://127.0.0.1:43160/cb'
const BOB = 'bob-pairwise-sub'

let stack: BrokerStack
let clientId: string
let st: ReturnType<typeof steps>
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    broker: { registration: { perAddressPerMinute: 1000 } },
  })
  clientId = await newClient(stack, [REDIRECT])
  st = steps(stack, clientId, REDIRECT)
})
afterEach(() => stack.idp.reset())
after(() => stack.close())

describe('browser binding of the upstream trip', () => {
  const browsers: { name: string; cookie: (jar: CookieJar) => CookieJar }[] = [
    { name: 'another browser (no cookies at all)', cookie: () => new Map() },
    {
      name: 'the same cookies without the binding cookie',
      cookie: (jar) => new Map([...jar].filter(([k]) => k !== 'mcp_edge_login')),
    },
    {
      name: 'a binding cookie of another sign-in',
      cookie: (jar) => new Map([...jar, ['mcp_edge_login', 'x'.repeat(43)]]),
    },
    { name: 'an empty binding cookie', cookie: (jar) => new Map([...jar, ['mcp_edge_login', '']]) },
  ]
  for (const b of browsers) {
    it(`${b.name} → 403, nothing issued; the sign-in cannot be finished afterwards`, async () => {
      const t = await st.toConsent()
      const callback = await st.throughUpstream(t)
      const before = await issued(stack)
      const res = await send(callback, { jar: b.cookie(t.jar) })
      await st.assertEnded(res, 403, b.name, before)
      assert.match(res.text, /another browser/)
      // The transaction is spent: the rightful browser coming back now is refused too.
      const late = await send(callback, { jar: t.jar })
      await st.assertEnded(late, 400, `${b.name}: the rightful browser afterwards`, before)
    })
  }

  it('the binding cookie is HttpOnly, SameSite=Lax, scoped to the callback path', async () => {
    const t = await st.toConsent()
    const approve = form(t.consent, 'approve')
    const res = await send(new URL(approve.action, stack.url).href, {
      method: 'POST',
      jar: t.jar,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(approve.fields).toString(),
    })
    const cookie = [res.headers['set-cookie']]
      .flat()
      .find((c) => String(c).startsWith('mcp_edge_login='))
    assert.ok(cookie)
    assert.match(String(cookie), /HttpOnly/i)
    assert.match(String(cookie), /SameSite=Lax/i)
    assert.match(String(cookie), /Path=\/oauth\/callback/i)
  })
})

describe('upstream callback state', () => {
  it('a callback replayed after a completed login → 400, nothing more issued', async () => {
    const t = await st.toConsent()
    const callback = await st.throughUpstream(t)
    const jarCopy = new Map(t.jar)
    const done = await st.follow(callback, t.jar)
    assert.ok(done.callback?.searchParams.get('code'), 'the first use logs in')
    const before = await issued(stack)
    // Even with the binding cookie as it was before the first use.
    await st.assertEnded(await send(callback, { jar: jarCopy }), 400, 'replayed callback', before)
  })

  const states: { name: string; edit: (u: URL) => void }[] = [
    { name: 'an unknown state', edit: (u) => u.searchParams.set('state', 'x'.repeat(43)) },
    { name: 'no state', edit: (u) => u.searchParams.delete('state') },
    { name: 'an empty state', edit: (u) => u.searchParams.set('state', '') },
  ]
  for (const s of states) {
    it(`${s.name} → 400, nothing issued`, async () => {
      const t = await st.toConsent()
      const callback = new URL(await st.throughUpstream(t))
      s.edit(callback)
      const before = await issued(stack)
      await st.assertEnded(await send(callback.href, { jar: t.jar }), 400, s.name, before)
    })
  }
})

describe('CSRF on the consent forms', () => {
  const variants: {
    name: string
    csrf: (t: Trip, other: Trip) => string | undefined
    contentType?: string
    body?: (fields: Record<string, string>) => string
  }[] = [
    { name: 'no csrf field', csrf: () => undefined },
    { name: 'an empty csrf', csrf: () => '' },
    { name: 'a made-up csrf', csrf: () => 'x'.repeat(43) },
    {
      name: 'the csrf of another sign-in',
      csrf: (_t, other) => form(other.consent, 'approve').fields.csrf,
    },
    {
      name: 'the right csrf sent as JSON',
      csrf: (t) => form(t.consent, 'approve').fields.csrf,
      contentType: 'application/json',
      body: (f) => JSON.stringify(f),
    },
    {
      name: 'the right csrf in a body over 4 KiB',
      csrf: (t) => form(t.consent, 'approve').fields.csrf,
      body: (f) => `${new URLSearchParams(f)}&pad=${'p'.repeat(5000)}`,
    },
  ]
  let other: Trip
  before(async () => {
    other = await st.toConsent()
  })
  for (const which of ['approve', 'deny'] as const) {
    for (const v of variants) {
      it(`${which} with ${v.name} → 403, nothing issued; the page's own form still works`, async () => {
        const t = await st.toConsent()
        const f = form(t.consent, which)
        const before = await issued(stack)
        const fields = { ...f.fields, csrf: v.csrf(t, other) }
        const res = await st.post(t.jar, f.action, fields, {
          contentType: v.contentType,
          body: v.body?.(fields as Record<string, string>),
        })
        await st.assertEnded(res, 403, `${which}: ${v.name}`, before)
        assert.equal(
          (await st.post(t.jar, f.action, f.fields)).status,
          303,
          'the genuine form afterwards',
        )
      })
    }
  }

  it('approve from another browser (no interaction cookie), right csrf → 400, nothing issued', async () => {
    const t = await st.toConsent()
    const f = form(t.consent, 'approve')
    const before = await issued(stack)
    await st.assertEnded(
      await st.post(new Map(), f.action, f.fields),
      400,
      'no interaction cookie',
      before,
    )
  })

  it("the missing-role page's forms: without or with a wrong csrf → 403; a wrong or replayed token → 400", async () => {
    stack.idp.nextUser(BOB)
    const t = await st.toConsent({ scope: 'mcp:read' })
    const { end } = await st.follow(await st.throughUpstream(t), t.jar)
    assert.equal(end.status, 403, 'bob lacks the role for mcp:read')
    const cancel = form(end, 'cancel')
    const before = await issued(stack)
    for (const csrf of [
      undefined,
      '',
      'x'.repeat(43),
      form(other.consent, 'approve').fields.csrf,
    ]) {
      await st.assertEnded(
        await st.post(t.jar, cancel.action, { ...cancel.fields, csrf }),
        403,
        `finish with csrf ${String(csrf).slice(0, 8)}`,
        before,
      )
    }
    for (const token of [undefined, '', 'x'.repeat(32)]) {
      await st.assertEnded(
        await st.post(t.jar, cancel.action, { ...cancel.fields, t: token }),
        400,
        `finish with token ${String(token).slice(0, 8)}`,
        before,
      )
    }
    const done = await st.post(t.jar, cancel.action, cancel.fields)
    assert.equal(done.status, 303, 'the genuine cancel')
    const { callback } = await st.follow(new URL(done.location!, stack.url).href, t.jar)
    assert.equal(callback?.searchParams.get('error'), 'access_denied')
    await st.assertEnded(
      await st.post(t.jar, cancel.action, cancel.fields),
      400,
      'the finish token replayed',
      before,
    )
  })
})

describe('interaction and finish tokens: single use, bound to their interaction', () => {
  it('the finish link replayed, or carried to another interaction → 400, nothing issued', async () => {
    const t = await st.toConsent()
    const callback = await st.throughUpstream(t)
    const res = await send(callback, { jar: t.jar })
    assert.equal(res.status, 303)
    const finish = new URL(res.location!, stack.url)
    const token = finish.searchParams.get('t')!
    // Another interaction of the same browser's kind cannot use this token.
    const other = await st.toConsent()
    const before = await issued(stack)
    const elsewhere = await send(`${stack.url}/interaction/${other.uid}/finish?t=${token}`, {
      jar: other.jar,
    })
    await st.assertEnded(elsewhere, 400, 'finish token of another interaction', before)
    const made = await send(`${stack.url}/interaction/${t.uid}/finish?t=${'x'.repeat(32)}`, {
      jar: t.jar,
    })
    await st.assertEnded(made, 400, 'a made-up finish token', before)
    // The token was taken by the refused attempt: it is spent for its own interaction too.
    await st.assertEnded(await send(finish.href, { jar: t.jar }), 400, 'spent finish token', before)
  })

  it('a completed interaction replayed → 400 page, nothing more issued', async () => {
    const l = await login(stack, { clientId, redirectUri: REDIRECT })
    const uid = /\/interaction\/([^/?]+)/.exec(l.visits.map((v) => v.url).join(' '))![1]!
    const before = await issued(stack)
    for (const path of ['', '/finish?t=x']) {
      await st.assertEnded(
        await send(`${stack.url}/interaction/${uid}${path}`, { jar: l.jar }),
        400,
        `replayed interaction${path}`,
        before,
      )
    }
    const approve = await st.post(l.jar, `/interaction/${uid}/approve`, { csrf: 'x' })
    await st.assertEnded(approve, 400, 'approve on a finished interaction', before)
  })

  it('an interaction and its finish token past loginTtl → 400, nothing issued', async () => {
    const t = await st.toConsent()
    const callback = await st.throughUpstream(t)
    const res = await send(callback, { jar: t.jar })
    const finish = new URL(res.location!, stack.url).href
    const waiting = await st.toConsent()
    // The store's clock moves past loginTtl (600 s by default): interactions, login transactions and finish tokens expire.
    stack.store.advance(601_000)
    const before = await issued(stack)
    await st.assertEnded(await send(finish, { jar: t.jar }), 400, 'expired finish', before)
    await st.assertEnded(
      await send(`${stack.url}/interaction/${waiting.uid}`, { jar: waiting.jar }),
      400,
      'expired consent page',
      before,
    )
    const approve = form(waiting.consent, 'approve')
    await st.assertEnded(
      await st.post(waiting.jar, approve.action, approve.fields),
      400,
      'approve after expiry',
      before,
    )
  })
})

describe('the genuine flow through the same steps issues tokens', () => {
  it('consent → upstream → callback → finish → code → token', async () => {
    const t = await st.toConsent({ state: 'genuine' })
    const { callback } = await st.follow(await st.throughUpstream(t), t.jar)
    assert.equal(callback?.searchParams.get('state'), 'genuine')
    const res = await exchange(
      stack,
      { callback: callback!, verifier: t.verifier, visits: [], state: 'genuine', jar: t.jar },
      { clientId, redirectUri: REDIRECT },
    )
    assert.equal(res.status, 200, res.text)
  })
})
