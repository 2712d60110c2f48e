// Upstream failures during a broker login, step by step by raw HTTP: the user declines at
// the IdP, the callback names another issuer (RFC 9207 mix-up), the IdP is down when the code
// is exchanged, or the user is outside allowedDomains (Google-like). Each ends on the
// gateway's page with a safe message: no redirect to the client, nothing issued, no account.
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, it } from 'node:test'
import { forms } from '../helpers/broker-browser.js'
import {
  assertGatewayPage,
  authorizeUrl,
  authParams,
  issued,
  issuedSince,
  NOTHING_ISSUED,
  newClient,
  pkce,
  send,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { steps } from '../helpers/broker-steps.js'
import type { CookieJar } from '../helpers/oauth-flow.js'

const REDIRECT = 'http://127.0.0.1:43165/cb'

let stack: BrokerStack
let st: ReturnType<typeof steps>
before(async () => {
  stack = await startBrokerStack({
    kind: 'entra',
    broker: { registration: { perAddressPerMinute: 1000 } },
  })
  st = steps(stack, await newClient(stack, [REDIRECT]), REDIRECT)
})
afterEach(() => stack.idp.reset())
after(() => stack.close())

describe("upstream failures end on the gateway's page", () => {
  const failures: {
    name: string
    arrange: () => void
    status: number
    text: RegExp
    hides?: string
  }[] = [
    {
      name: 'the user declines at the IdP',
      arrange: () => void (stack.idp.knobs.deny = true),
      status: 403,
      text: /did not sign in/,
    },
    {
      name: 'the callback names another issuer (mix-up)',
      arrange: () => void (stack.idp.knobs.wrongIss = 'https://login.attacker.example/v2.0'),
      status: 403,
      text: /another issuer than the upstream/,
      hides: 'attacker.example',
    },
  ]
  for (const f of failures) {
    it(`${f.name} → ${f.status} page with a safe message, nothing issued, no account kept`, async () => {
      const t = await st.toConsent()
      f.arrange()
      const callback = await st.throughUpstream(t)
      const before = await issued(stack)
      const accounts = (await stack.store.keys('broker:account:')).length
      const { end, callback: toClient } = await st.follow(callback, t.jar)
      assert.equal(toClient, undefined, 'no redirect to the client')
      await st.assertEnded(end, f.status, f.name, before)
      assert.match(end.text, f.text)
      if (f.hides) assert.doesNotMatch(end.text, new RegExp(f.hides.replace('.', '\\.')))
      assert.doesNotMatch(end.text, /code=|eyJ/, 'no code or token on the page')
      assert.equal((await stack.store.keys('broker:account:')).length, accounts)
    })
  }

  it('the IdP is down when the gateway exchanges the code → 403 page with a safe message, nothing issued', async () => {
    const t = await st.toConsent()
    const callback = await st.throughUpstream(t)
    stack.idp.knobs.down = true
    const before = await issued(stack)
    const { end } = await st.follow(callback, t.jar)
    await st.assertEnded(end, 403, 'upstream down', before)
    assert.match(end.text, /code exchange failed with 503/)
    assert.doesNotMatch(end.text, /down for maintenance/, "the upstream's own text is not echoed")
  })

  it('a refused sign-in leaves the client nothing to redeem: the interaction cannot be finished', async () => {
    const t = await st.toConsent()
    stack.idp.knobs.deny = true
    const callback = await st.throughUpstream(t)
    await st.follow(callback, t.jar)
    const before = await issued(stack)
    await st.assertEnded(
      await send(`${stack.url}/interaction/${t.uid}/finish?t=${'x'.repeat(32)}`, { jar: t.jar }),
      400,
      'finish after a refusal',
      before,
    )
  })
})

describe('allowedDomains (Google-like upstream)', () => {
  let google: BrokerStack
  let googleClient: string
  before(async () => {
    google = await startBrokerStack({
      kind: 'google',
      upstream: { allowedDomains: ['example.com'] },
    })
    googleClient = await newClient(google, [REDIRECT])
  })
  after(() => google.close())

  const users: { name: string; id: string; allowed: boolean }[] = [
    { name: 'ann@example.com (Workspace example.com)', id: '104857600000000000001', allowed: true },
    { name: 'gus@gmail.com', id: '104857600000000000002', allowed: false },
    {
      name: 'eve@example.com with an unverified email',
      id: '104857600000000000003',
      allowed: false,
    },
  ]
  for (const u of users) {
    it(`${u.name} → ${u.allowed ? 'past the domain check' : '403 page, nothing issued, no account'}`, async () => {
      google.idp.nextUser(u.id)
      const jar: CookieJar = new Map()
      const { challenge } = pkce()
      const first = await send(
        authorizeUrl(
          google,
          authParams(google, { clientId: googleClient, redirectUri: REDIRECT, challenge }),
        ),
        { jar },
      )
      const consent = await send(new URL(first.location!, google.url).href, { jar })
      const approve = forms(consent.text).find((x) => x.action.endsWith('/approve'))!
      const res = await send(new URL(approve.action, google.url).href, {
        method: 'POST',
        jar,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(approve.fields).toString(),
      })
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
      assert.deepEqual(await issuedSince(google, before), NOTHING_ISSUED)
      assert.equal((await google.store.keys(`broker:account:${u.id}`)).length, 0)
    })
  }
})
