// Concluded (brief store32): a session or interaction id that the store holds is honoured only
// with its cookie's signature (oidc-provider's signed cookies, keyed by auth.broker.cookieKeys).
// An id read out of Redis (a dump, a replica, a backup), sent without its signature, with a
// made-up one, or with another cookie's, is no session: on either replica. Two broker replicas
// on one real redis-server, a real upstream IdP, real logins.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { brokerLogin } from '../helpers/broker-browser.js'
import {
  REPLICA_HEADER,
  startBrokerReplicas,
  type BrokerReplicas,
  type ReplicaName,
} from '../helpers/broker-replicas.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import { request, type CookieJar } from '../helpers/oauth-flow.js'
import { NO_REDIS } from '../helpers/redis.js'
import { authorizeUrl, registerClient } from '../helpers/replica-call.js'

const SESSION = '_mcp_edge_session'
const INTERACTION = '_mcp_edge_interaction'
const ALICE_EMAIL = 'alice@contoso.example'

let s: BrokerReplicas

const register = () => registerClient(s, 'a', 'signed-cookies client')

const authorize = (clientId: string) => authorizeUrl(s, clientId).url

const header = (jar: CookieJar) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')

/** GET `url` at replica `via` with `cookie`: status, location, the cookies set, the page. */
async function get(via: ReplicaName, url: string, cookie: string) {
  const res = await request(url, { headers: { cookie, [REPLICA_HEADER]: via } })
  const set = new Map<string, string>()
  for (const line of [res.headers['set-cookie'] ?? []].flat()) {
    const [pair] = line.split(';')
    const eq = pair!.indexOf('=')
    set.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim())
  }
  const location = res.headers.location
  return {
    status: res.statusCode,
    location: typeof location === 'string' ? new URL(location, url).href : undefined,
    set,
    html: await res.body.text(),
  }
}

/**
 * A new client's /authorize at `via` with the session cookies `session` sends (its interaction
 * cookies as set), and the page the interaction shows: the consent page names the person when
 * the session was taken as theirs.
 */
async function consentPage(via: ReplicaName, clientId: string, session: string) {
  const start = await get(via, authorize(clientId), session)
  assert.equal(start.status, 303, start.html)
  const interaction = [...start.set].map(([k, v]) => `${k}=${v}`).join('; ')
  return get(via, start.location!, [session, interaction].filter(Boolean).join('; '))
}

describe('held: ids the store holds need their cookie signature', {
  skip: NO_REDIS,
  timeout: 300_000,
}, () => {
  let alice: CookieJar
  let bob: CookieJar
  before(async () => {
    s = await startBrokerReplicas()
    s.router.mode = 'a'
    const clientId = await register()
    alice = new Map()
    await brokerLogin(authorize(clientId), { redirectUri: REDIRECT, jar: alice })
    s.idp.nextUser('bob-pairwise-sub')
    bob = new Map()
    await brokerLogin(authorize(clientId), {
      redirectUri: REDIRECT,
      jar: bob,
      choices: { consent: 'allow', missingRole: 'continue' },
    }).catch(() => {})
  })
  after(() => s?.close())

  it("held: a session id without its signature, with a made-up one, or with another cookie's is no session, on either replica", async () => {
    const id = alice.get(SESSION)!
    const sig = alice.get(`${SESSION}.sig`)!
    assert.ok(id && sig, 'the session cookie is signed')
    const bobSig = bob.get(`${SESSION}.sig`)
    const forged = randomBytes(20).toString('base64url')
    const hostile: Record<string, string> = {
      'no signature': `${SESSION}=${id}`,
      'empty signature': `${SESSION}=${id}; ${SESSION}.sig=`,
      'made-up signature': `${SESSION}=${id}; ${SESSION}.sig=${forged}`,
      'signature with a byte changed': `${SESSION}=${id}; ${SESSION}.sig=${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`,
      "another user's signature": `${SESSION}=${id}; ${SESSION}.sig=${bobSig ?? forged}`,
      'signature under another name': `${SESSION}=${id}; ${SESSION}.SIG=${sig}`,
      'signature of a cookie of another name': `${SESSION}=${id}; ${INTERACTION}.sig=${sig}`,
      'the id with whitespace, its signature': `${SESSION}= ${id} ; ${SESSION}.sig=${sig}`,
      // The first of a name is the one read (the cookies library): a signature must cover it.
      'another id first, the signed id after': `${SESSION}=${bob.get(SESSION) ?? forged}; ${SESSION}=${id}; ${SESSION}.sig=${sig}`,
    }
    for (const via of ['a', 'b'] as const) {
      const clientId = await register()
      // The control: the whole signed cookie is Alice's session, on either replica.
      const signed = await consentPage(
        via,
        clientId,
        header(
          new Map([
            [SESSION, id],
            [`${SESSION}.sig`, sig],
          ]),
        ),
      )
      assert.equal(signed.status, 200, `${via} signed: ${signed.html.slice(0, 300)}`)
      assert.ok(signed.html.includes(ALICE_EMAIL), `${via}: the signed session is Alice's`)
      for (const [what, cookie] of Object.entries(hostile)) {
        const page = await consentPage(via, clientId, cookie)
        assert.ok(!page.html.includes(ALICE_EMAIL), `${via} ${what}: not taken as Alice's session`)
        assert.ok(page.status < 500, `${via} ${what}: ${page.status}`)
      }
    }
  })

  it('held: an interaction id without its signature, or with a made-up one, finds no interaction, on either replica', async () => {
    for (const via of ['a', 'b'] as const) {
      const clientId = await register()
      const start = await get(via, authorize(clientId), '')
      assert.equal(start.status, 303)
      const uid = start.set.get(INTERACTION)!
      const sig = start.set.get(`${INTERACTION}.sig`)!
      assert.ok(uid && sig, 'the interaction cookie is signed')
      const other = via === 'a' ? 'b' : 'a'
      const signed = await get(
        other,
        start.location!,
        `${INTERACTION}=${uid}; ${INTERACTION}.sig=${sig}`,
      )
      assert.equal(signed.status, 200, `${via}: the signed interaction is found on ${other}`)
      for (const [what, cookie] of Object.entries({
        'no signature': `${INTERACTION}=${uid}`,
        'made-up signature': `${INTERACTION}=${uid}; ${INTERACTION}.sig=${randomBytes(20).toString('base64url')}`,
        "the session's signature": `${INTERACTION}=${uid}; ${INTERACTION}.sig=${alice.get(`${SESSION}.sig`)}`,
      })) {
        const page = await get(other, start.location!, cookie)
        assert.ok(page.status >= 400 && page.status < 500, `${via} ${what}: ${page.status}`)
        assert.ok(!page.html.includes('/approve'), `${via} ${what}: no consent form`)
      }
    }
  })
})
