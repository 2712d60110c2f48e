// A browser walking the broker's login one request at a time (raw HTTP, no redirect followed
// unless asked), so a test can stop at any step, replay it, or take it from another browser.
import assert from 'node:assert/strict'
import { forms } from './broker-browser.js'
import {
  assertGatewayPage,
  authorizeUrl,
  authParams,
  issuedSince,
  NOTHING_ISSUED,
  pkce,
  send,
  type Answer,
  type Issued,
} from './broker-raw.js'
import type { BrokerStack } from './broker-stack.js'
import type { CookieJar } from './oauth-flow.js'

/** One browser's trip, step by step. */
export interface Trip {
  jar: CookieJar
  uid: string
  consent: Answer
  verifier: string
}

/** The form of a consent or missing-role page for `which`. */
export function form(page: Answer, which: 'approve' | 'deny' | 'continue' | 'cancel') {
  const all = forms(page.text)
  const f =
    which === 'approve' || which === 'deny'
      ? all.find((x) => x.action.endsWith(`/${which}`))
      : all.find((x) => x.fields.choice === which)
  assert.ok(f, `a ${which} form on the page`)
  return f
}

/** The steps, for `clientId` logging in to `stack` with `redirectUri`. */
export function steps(stack: BrokerStack, clientId: string, redirectUri: string) {
  /** POSTs a form as `jar`'s browser, with `fields` changed (undefined: left out). */
  const post = (
    jar: CookieJar,
    action: string,
    fields: Record<string, string | undefined>,
    o: { contentType?: string; body?: string } = {},
  ): Promise<Answer> => {
    const body = new URLSearchParams()
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) body.append(k, v)
    return send(new URL(action, stack.url).href, {
      method: 'POST',
      jar,
      headers: { 'content-type': o.contentType ?? 'application/x-www-form-urlencoded' },
      body: o.body ?? body.toString(),
    })
  }
  return {
    post,
    /** GET /authorize and follow to the consent page, in a new browser. */
    async toConsent(o: { scope?: string; state?: string } = {}): Promise<Trip> {
      const jar: CookieJar = new Map()
      const { verifier, challenge } = pkce()
      const first = await send(
        authorizeUrl(
          stack,
          authParams(stack, { clientId, redirectUri, challenge, scope: o.scope, state: o.state }),
        ),
        { jar },
      )
      assert.equal(first.status, 303, first.text)
      const consent = await send(new URL(first.location!, stack.url).href, { jar })
      assert.equal(consent.status, 200, consent.text)
      const uid = /\/interaction\/([^/]+)\/approve/.exec(consent.text)![1]!
      return { jar, uid, consent, verifier }
    },
    /** Approves and signs in upstream; returns the gateway callback URL the IdP sent the browser to. */
    async throughUpstream(t: Trip): Promise<string> {
      const approve = form(t.consent, 'approve')
      const res = await post(t.jar, approve.action, approve.fields)
      assert.equal(res.status, 303, res.text)
      return (await stack.idp.browse(res.location!, t.jar)).href
    },
    /** Follows the gateway's redirects from `url` until the client's redirect URI or a page. */
    async follow(url: string, jar: CookieJar): Promise<{ end: Answer; callback?: URL }> {
      let next = url
      for (let hop = 0; hop < 10; hop++) {
        const res = await send(next, { jar })
        if (res.status !== 303 && res.status !== 302) return { end: res }
        const to = new URL(res.location!, next)
        if (to.href.startsWith(redirectUri)) return { end: res, callback: to }
        next = to.href
      }
      throw new Error('too many redirects')
    },
    /** A page that ends the sign-in: its status, no redirect, not framable, nothing issued since `before`. */
    async assertEnded(res: Answer, status: number, what: string, before: Issued): Promise<void> {
      assertGatewayPage(assert, res, status, what)
      assert.deepEqual(await issuedSince(stack, before), NOTHING_ISSUED, `${what}: nothing issued`)
    },
  }
}
