// Review stop 64 (an outsider's attack on authorize61's sign-in guard and review63's changes).
// Findings are marked in the test's name with their rating. What held, kept here: see each
// describe's comment.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { admitSignIn } from '../../gateway/broker/sign-in-guard.js'
import { authorizeUrl, authParams, newClient, pkce } from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { rawHttp } from '../helpers/raw-http.js'
import { recordingStore } from '../helpers/recording-store.js'

const REDIRECT = 'http://127.0.0.1:43150/cb'
/** Every stack's window clock: held 30 s into a minute, so no count crosses a window. */
const MID_WINDOW = Math.floor(Date.now() / 60_000) * 60_000 + 30_000
const clock = () => MID_WINDOW

describe('stop64: request targets the sign-in guard must count', () => {
  const PER_ADDRESS = 3
  let stack: BrokerStack
  let clientId: string
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      broker: { signIn: { perAddressPerMinute: PER_ADDRESS } },
      start: { signInClock: clock },
    })
    clientId = await newClient(stack, [REDIRECT])
  })
  after(() => stack?.close())

  const interactions = async () => (await stack.store.keys('oidc:Interaction:')).length
  /** The authorization request's path and query, relative to the broker. */
  const target = () => {
    const u = new URL(
      authorizeUrl(
        stack,
        authParams(stack, { clientId, redirectUri: REDIRECT, challenge: pkce().challenge }),
      ),
    )
    return { path: u.pathname, query: u.search, host: u.host }
  }
  const raw = (line: string, host: string) =>
    rawHttp(
      Number(new URL(stack.url).port),
      `GET ${line} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    )

  it('medium: a fragment or an absolute-form target reached oidc-provider uncounted (koa reads its path as /authorize); every spelling now counts against one address', async () => {
    const spellings: ((t: ReturnType<typeof target>) => string)[] = [
      (t) => `${t.path}#x${t.query}`,
      (t) => `${t.path}${t.query}#x`,
      (t) => `http://${t.host}${t.path}${t.query}`,
      (t) => `${t.path}${t.query}`,
    ]
    const before = await interactions()
    const statuses: number[] = []
    for (let i = 0; i < 4 * PER_ADDRESS; i++) {
      const t = target()
      statuses.push((await raw(spellings[i % spellings.length]!(t), t.host)).status)
    }
    const stored = (await interactions()) - before
    assert.ok(stored <= PER_ADDRESS, `Interactions stored: ${stored}, statuses ${statuses}`)
    // Each counts (the first, its query in the fragment, is refused by oidc-provider: 400).
    assert.deepEqual(statuses.slice(PER_ADDRESS), Array<number>(3 * PER_ADDRESS).fill(429))
  })
})

describe('stop64: the sign-in counts themselves', () => {
  it('medium: every new address stored a counter even past perMinute, so many addresses (an IPv6 /48 is 65,536 buckets) filled the store with counters; now at most perMinute counters a window', async () => {
    const store = recordingStore({ maxKeys: 1000 })
    const o = { store, perAddressPerMinute: 2, perMinute: 50, now: clock }
    const refused: string[] = []
    for (let i = 0; i < 2000; i++) {
      // 2000 /64s of one /48, each starting one step.
      const r = await admitSignIn(o, `2001:db8:7:${i.toString(16)}::1`)
      if (r !== undefined) refused.push(r.bound)
    }
    assert.equal(refused.length, 2000 - 50)
    assert.ok(refused.every((b) => b === 'all'))
    const counters = await store.keys('broker:sign-in:')
    // 50 addresses admitted and the count in all; the refused ones stored nothing.
    assert.equal(counters.length, 51, `${counters.length} counters`)
    // The store has room for everyone else (without it the 1000th address filled it: full, 503).
    await store.set('someone:else', 'x', { ttlMs: 60_000 })
  })
})
