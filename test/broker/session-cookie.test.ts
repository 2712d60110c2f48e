// The broker's browser-session cookie on https is `__Host-mcp_edge_session` (Secure, Path=/, no
// Domain): a page on a sibling subdomain (evil.example.com beside gw.example.com) can plant a
// cookie with Domain=example.com, which the browser sends to the broker too, before the broker's
// own when it is older, but never a `__Host-` one. What it can plant is the plain name, which the
// broker no longer reads: Sign out on the account page ends the real session and leaves the
// planted one alone, and an authorization in that browser is the real user's, whichever cookie
// comes first. A broker behind a TLS terminator (a test CA), real upstream logins, raw requests
// carrying the Cookie header a browser would send.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici'
import { brokerSessionCookie } from '../../gateway/broker/provider.js'
import { formFor, pageSignIn, startAccountStack, submit } from '../helpers/account.js'
import { authorizeUrl, authParams, newClient, pkce, send } from '../helpers/broker-raw.js'
import type { BrokerStack } from '../helpers/broker-stack.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import { loopbackAgent, makeTestCa } from '../helpers/test-ca.js'

const SESSION = '__Host-mcp_edge_session'
/** The name a sibling subdomain can plant (and the broker's own on plain http). */
const PLAIN = '_mcp_edge_session'
const ALICE = 'alice@contoso.example'
const BOB = 'bob@contoso.example'

let stack: BrokerStack
let previous: Dispatcher

const header = (jar: CookieJar) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')

/** Signs `user` in to the account page in a new browser: its cookies and the page. */
async function signedIn(user: string) {
  stack.idp.nextUser(user)
  const jar: CookieJar = new Map()
  const { page, setCookies } = await pageSignIn(stack.url, jar)
  return { jar, page, setCookies }
}

/** The user a consent page for a new client names, when the browser sends `cookie`. */
async function consentFor(cookie: string): Promise<string> {
  const clientId = await newClient(stack, [REDIRECT])
  const params = authParams(stack, {
    clientId,
    redirectUri: REDIRECT,
    server: 'echo',
    challenge: pkce().challenge,
  })
  const start = await send(authorizeUrl(stack, params), { headers: { cookie } })
  assert.equal(start.status, 303, start.text)
  const interaction = [start.headers['set-cookie'] ?? []]
    .flat()
    .map((line) => line.split(';')[0]!)
    .join('; ')
  const page = await send(new URL(start.location!, stack.url).href, {
    // This authorization's interaction cookies first: the jar still has the sign-in's.
    headers: { cookie: `${interaction}; ${cookie}` },
  })
  assert.equal(page.status, 200, page.text.slice(0, 300))
  return [ALICE, BOB].find((who) => page.text.includes(who)) ?? 'nobody'
}

/** The name the broker gives its session cookie (what the planted cases read from the jars). */
const ours = () => brokerSessionCookie(stack.url)

/** Whether the broker still holds the browser session `id`. */
const held = async (id: string) => (await stack.store.get(`oidc:Session:${id}`)) !== undefined

before(async () => {
  const ca = makeTestCa()
  previous = getGlobalDispatcher()
  // The test's requests trust the CA; the gateway's own calls use their own agents.
  setGlobalDispatcher(loopbackAgent(ca.ca))
  stack = await startAccountStack({ tls: { ca } })
})
after(async () => {
  await stack?.close()
  setGlobalDispatcher(previous)
})

describe('the broker session cookie', () => {
  it('is __Host- on https (any spelling of the scheme), the plain name on http', () => {
    for (const [issuer, name] of [
      ['https://gw.example.com', SESSION],
      ['HTTPS://GW.EXAMPLE.COM/base', SESSION],
      ['https://127.0.0.1:8443', SESSION],
      ['http://127.0.0.1:8080', PLAIN],
      ['http://localhost:3000/base', PLAIN],
      ['http://[::1]:8080', PLAIN],
    ])
      assert.equal(brokerSessionCookie(issuer!), name, issuer)
  })

  it('on https: set as __Host- with Secure, Path=/, no Domain, signed; never the plain name', async () => {
    const { page, setCookies } = await signedIn('alice-pairwise-sub')
    assert.match(page.text, new RegExp(ALICE))
    const ours = setCookies.filter(
      (l) => l.startsWith(`${SESSION}=`) || l.startsWith(`${SESSION}.sig=`),
    )
    assert.deepEqual(
      new Set(ours.map((l) => l.split('=')[0])),
      new Set([SESSION, `${SESSION}.sig`]),
      setCookies.join('\n'),
    )
    for (const line of ours) {
      const attributes = line
        .split(';')
        .slice(1)
        .map((a) => a.trim().toLowerCase())
      assert.ok(attributes.includes('path=/'), line)
      assert.ok(attributes.includes('secure'), line)
      assert.ok(attributes.includes('httponly'), line)
      assert.ok(attributes.includes('samesite=lax'), line)
      assert.ok(!attributes.some((a) => a.startsWith('domain')), line)
    }
    assert.ok(!setCookies.some((l) => l.startsWith(`${PLAIN}=`) || l.startsWith(`${PLAIN}.`)))
  })

  // What a page on a sibling subdomain can plant under the plain name: another user's whole
  // signed session (its own, signed in at the broker), an id with no signature, a made-up pair.
  const planted: { name: string; cookie: (mallory: CookieJar) => string; of?: string }[] = [
    {
      name: "another user's signed session",
      cookie: (m) => `${PLAIN}=${m.get(ours())}; ${PLAIN}.sig=${m.get(`${ours()}.sig`)}`,
      of: 'mallory',
    },
    {
      name: 'an id with no signature',
      cookie: () => `${PLAIN}=${randomBytes(16).toString('base64url')}`,
    },
    {
      name: 'a made-up id and signature',
      cookie: () =>
        `${PLAIN}=${randomBytes(16).toString('base64url')}; ${PLAIN}.sig=${randomBytes(20).toString('base64url')}`,
    },
  ]
  for (const p of planted) {
    for (const order of ['planted first', 'planted last'] as const) {
      it(`${p.name}, ${order}: the broker reads the real session; Sign out ends it, not the planted one`, async () => {
        const mallory = await signedIn('bob-pairwise-sub')
        assert.match(mallory.page.text, new RegExp(BOB))
        const alice = await signedIn('alice-pairwise-sub')
        assert.match(alice.page.text, new RegExp(ALICE))
        const aliceId = alice.jar.get(ours())
        const malloryId = mallory.jar.get(ours())
        assert.ok(aliceId && malloryId, [...alice.jar.keys()].join(', '))
        const plant = p.cookie(mallory.jar)
        const cookie =
          order === 'planted first'
            ? `${plant}; ${header(alice.jar)}`
            : `${header(alice.jar)}; ${plant}`
        // An authorization in Alice's browser is Alice's.
        assert.equal(await consentFor(cookie), ALICE)
        const out = await submit(
          stack.url,
          alice.jar,
          formFor(alice.page.text, 'logout'),
          {},
          {
            cookie,
          },
        )
        assert.equal(out.status, 303, out.text)
        assert.match(String(out.location), /signed_out=1/)
        assert.equal(await held(aliceId), false, "Alice's broker session ended")
        assert.equal(await held(malloryId), true, "the other user's session is not touched")
      })
    }
  }
})
