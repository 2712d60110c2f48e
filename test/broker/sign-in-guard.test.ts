// Sign-in steps that store state for anyone who asks (an authorization request stores an
// Interaction, a trip upstream a login transaction), bounded per address and in all: one
// anonymous client flooding /authorize could fill the memory store (then nobody signs in or
// refreshes) or grow Redis. Real brokers (memory store of 1000 keys; two replicas on a real
// redis-server), raw HTTP; every refusal is a page with 429 and Retry-After and stores nothing.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient } from '@redis/client'
import { admitSignIn, startsSignIn } from '../../gateway/broker/sign-in-guard.js'
import { createMemoryStore } from '../../gateway/store/memory.js'
import { startBrokerReplicas, type BrokerReplicas } from '../helpers/broker-replicas.js'
import {
  assertGatewayPage,
  authorizeUrl,
  authParams,
  exchange,
  login,
  newClient,
  pkce,
  send,
  type Answer,
  type BrokerFront,
} from '../helpers/broker-raw.js'
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.js'
import { form } from '../helpers/broker-steps.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { NO_REDIS } from '../helpers/redis.js'

const REDIRECT = 'http://127.0.0.1:43150/cb'
/** Every stack's window clock: held 30 s into a minute, so no count crosses a window. */
const MID_WINDOW = Math.floor(Date.now() / 60_000) * 60_000 + 30_000
const clock = () => MID_WINDOW

/** An authorization request for `clientId`, from `headers` (X-Forwarded-For), as `method`. */
function authorize(
  stack: BrokerFront,
  clientId: string,
  o: {
    headers?: Record<string, string>
    method?: 'GET' | 'HEAD' | 'POST'
    path?: string
    jar?: CookieJar
  } = {},
): Promise<Answer> {
  const params = authParams(stack, { clientId, redirectUri: REDIRECT, challenge: pkce().challenge })
  const url = new URL(authorizeUrl(stack, params))
  if (o.path !== undefined) url.pathname = o.path
  if (o.method === 'POST') {
    const body = url.searchParams.toString()
    url.search = ''
    return send(url.href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...o.headers },
      body,
    })
  }
  return send(url.href, { method: o.method ?? 'GET', headers: o.headers, jar: o.jar })
}

/** A refusal: the page, 429, the rest of the window as Retry-After. */
function assertTooMany(res: Answer, what: string): void {
  assertGatewayPage(assert, res, 429, what)
  assert.equal(res.headers['retry-after'], '30', `${what}: Retry-After`)
  assert.match(res.text, /Too many sign-ins/, what)
}

const xff = (address: string) => ({ 'x-forwarded-for': address })

describe('sign-in steps behind a proxy (trustProxy), memory store of 1000 keys', () => {
  const PER_ADDRESS = 10
  const PER_NETWORK = 20
  let stack: BrokerStack
  let clientId: string
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      config: { trustProxy: true },
      broker: { signIn: { perAddressPerMinute: PER_ADDRESS, perNetworkPerMinute: PER_NETWORK } },
      storeMaxKeys: 1000,
      start: { signInClock: clock },
    })
    clientId = await newClient(stack, [REDIRECT])
  })
  after(() => stack.close())

  const interactions = async () => (await stack.store.keys('oidc:Interaction:')).length

  it('1000 anonymous /authorize from one address store 10 Interactions, not 1000; a user elsewhere still signs in', async () => {
    const before = await interactions()
    const statuses = new Map<number, number>()
    let last: Answer | undefined
    for (let i = 0; i < 1000; i++) {
      last = await authorize(stack, clientId, { headers: xff('203.0.113.9') })
      statuses.set(last.status, (statuses.get(last.status) ?? 0) + 1)
    }
    // The store has room: a colleague from another address signs in and gets tokens (without
    // the bound the 997th request filled the store, and the sign-in ended temporarily_unavailable).
    const l = await login(stack, { clientId, redirectUri: REDIRECT })
    assert.equal(l.callback.searchParams.get('error'), null, l.callback.search)
    const tokens = await exchange(stack, l, { clientId, redirectUri: REDIRECT })
    assert.equal(tokens.status, 200, tokens.text)
    assert.ok(tokens.json.access_token)
    assert.deepEqual(Object.fromEntries(statuses), { 303: PER_ADDRESS, 429: 1000 - PER_ADDRESS })
    assertTooMany(last!, 'the 1000th')
    assert.equal((await interactions()) - before, PER_ADDRESS, 'Interactions stored')
  })

  it('every spelling of the path oidc-provider takes counts (/authorize/); the others store nothing', async () => {
    const from = xff('198.51.100.20')
    const before = await interactions()
    const spellings: Parameters<typeof authorize>[2][] = [{ path: '/authorize/' }, {}]
    for (let i = 0; i < PER_ADDRESS; i++) {
      const res = await authorize(stack, clientId, { headers: from, ...spellings[i % 2] })
      assert.equal(res.status, 303, `${i}: ${res.text}`)
    }
    assert.equal((await interactions()) - before, PER_ADDRESS)
    for (const s of spellings)
      assertTooMany(await authorize(stack, clientId, { headers: from, ...s }), JSON.stringify(s))
    // Not an authorization request to oidc-provider (POST is not enabled there; the gateway
    // answers the others first): nothing stored, whether counted or not.
    const elsewhere = xff('198.51.100.21')
    for (const s of [
      { method: 'HEAD' as const },
      { method: 'POST' as const },
      { path: '/AUTHORIZE' },
      { path: '/%61uthorize' },
      { path: '/authorize;x' },
      { path: '//authorize' },
    ]) {
      const res = await authorize(stack, clientId, { headers: elsewhere, ...s })
      assert.notEqual(res.status, 303, JSON.stringify(s))
    }
    assert.equal((await interactions()) - before, PER_ADDRESS, 'nothing stored past the bound')
  })

  it('one IPv6 /64 in any spelling, one IPv4 mapped or not, the client-written XFF entries: one address each', async () => {
    const groups: { name: string; spellings: string[]; other: string }[] = [
      {
        name: 'IPv6 /64',
        spellings: [
          '2001:db8:1:2::1',
          '2001:DB8:1:2::2',
          '2001:0db8:0001:0002:0000:0000:0000:0003',
          '[2001:db8:1:2::4]:443',
          '2001:db8:1:2:ffff:ffff:ffff:ffff',
        ],
        other: '2001:db8:1:3::1',
      },
      {
        name: 'IPv4, mapped',
        spellings: ['192.0.2.77', '::ffff:192.0.2.77', '::FFFF:c000:024d', '192.0.2.77:5555'],
        other: '192.0.2.78',
      },
      {
        name: 'client-written entries to the left',
        spellings: ['10.0.0.1, 198.51.100.44', '1.1.1.1,198.51.100.44', 'x, 198.51.100.44'],
        other: '198.51.100.45',
      },
    ]
    for (const g of groups) {
      for (let i = 0; i < PER_ADDRESS; i++) {
        const res = await authorize(stack, clientId, {
          headers: xff(g.spellings[i % g.spellings.length]!),
        })
        assert.equal(res.status, 303, `${g.name} ${i}`)
      }
      for (const spelling of g.spellings)
        assertTooMany(await authorize(stack, clientId, { headers: xff(spelling) }), spelling)
      const other = await authorize(stack, clientId, { headers: xff(g.other) })
      assert.equal(other.status, 303, `${g.other} is another address`)
    }
  })

  it('one IPv6 /48 in any spelling (X-Forwarded-For) gets 20 steps, its /64s together; its other /64s store nothing; the next /48 signs in', async () => {
    const before = await interactions()
    const spellings = [
      '2001:db8:48:1::1',
      '2001:0DB8:0048:0002:0000:0000:0000:0001',
      '[2001:db8:48:3::1]:443',
      '2001:db8:48:4::1%eth0',
      '2001:db8:0048:5::1',
      // Entries to the left are the client's word: the rightmost is counted.
      '2001:db8:ffff::1, 2001:db8:48:6::1',
    ]
    for (let i = 0; i < PER_NETWORK; i++) {
      const from = spellings[i % spellings.length]!
      assert.equal((await authorize(stack, clientId, { headers: xff(from) })).status, 303, from)
    }
    // Fresh /64s of the /48, in each spelling: each refused (none is at its own bound).
    for (const fresh of [
      '2001:db8:48:71::1',
      '2001:0DB8:0048:0072:0000:0000:0000:0001',
      '[2001:db8:48:73::1]:443',
      '2001:db8:48:74::1%eth0',
      '2001:db8:0048:75::1',
      '2001:db8:ffff::1, 2001:db8:48:76::1',
    ])
      assertTooMany(await authorize(stack, clientId, { headers: xff(fresh) }), fresh)
    assert.equal((await interactions()) - before, PER_NETWORK, 'Interactions stored')
    const next = await authorize(stack, clientId, { headers: xff('2001:db8:49::1') })
    assert.equal(next.status, 303, 'the next /48')
  })

  it('IPv4-mapped addresses count as their IPv4 address, and never as one IPv6 /48', async () => {
    // One address, mapped or not: PER_ADDRESS steps in all.
    const one = ['::ffff:198.51.100.90', '198.51.100.90', '::FFFF:C633:645A']
    for (let i = 0; i < PER_ADDRESS; i++) {
      const res = await authorize(stack, clientId, { headers: xff(one[i % one.length]!) })
      assert.equal(res.status, 303, `${i}`)
    }
    for (const spelling of one)
      assertTooMany(await authorize(stack, clientId, { headers: xff(spelling) }), spelling)
    // More mapped addresses than a /48 may start steps: each is its own IPv4 address.
    for (let i = 0; i < PER_NETWORK + 5; i++) {
      const from = `::ffff:198.51.101.${i + 1}`
      assert.equal((await authorize(stack, clientId, { headers: xff(from) })).status, 303, from)
    }
  })

  it('CIMD client ids count the same (refused before any document is fetched)', async () => {
    const from = xff('198.51.100.60')
    for (let i = 0; i < PER_ADDRESS; i++) {
      const res = await authorize(stack, `https://cimd-${i}.example/client.json`, { headers: from })
      assert.notEqual(res.status, 429, `${i}`)
    }
    assertTooMany(
      await authorize(stack, 'https://cimd-last.example/client.json', { headers: from }),
      'the CIMD one past the bound',
    )
    assertTooMany(await authorize(stack, clientId, { headers: from }), 'a registered one after')
  })

  it('each trip upstream counts: one consent page approved again and again stores no more than the bound', async () => {
    const from = '198.51.100.80'
    // A browser behind the proxy: every step from one address.
    const jar: CookieJar = new Map()
    const first = await authorize(stack, clientId, { headers: xff(from), jar })
    const consent = await send(new URL(first.location!, stack.url).href, { jar })
    const approve = form(consent, 'approve')
    const txs = async () => (await stack.store.keys('broker:tx:')).length
    const before = await txs()
    const post = () =>
      send(new URL(approve.action, stack.url).href, {
        method: 'POST',
        jar,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...xff(from) },
        body: new URLSearchParams(approve.fields).toString(),
      })
    // The authorization request spent one of the address's steps.
    for (let i = 1; i < PER_ADDRESS; i++) assert.equal((await post()).status, 303, `trip ${i}`)
    assertTooMany(await post(), 'one trip too many')
    assert.equal((await txs()) - before, PER_ADDRESS - 1, 'login transactions stored')
  })
})

describe('sign-in steps without a trusted proxy, default bounds', () => {
  let stack: BrokerStack
  let clientId: string
  before(async () => {
    stack = await startBrokerStack({
      kind: 'entra',
      broker: { signIn: {} },
      start: { signInClock: clock },
    })
    clientId = await newClient(stack, [REDIRECT])
  })
  after(() => stack.close())

  it('a user behind the same NAT as colleagues who started 29 sign-ins this minute still signs in (default 60 steps, 2 a sign-in); X-Forwarded-For is not believed', async () => {
    for (let i = 0; i < 58; i++) {
      const res = await authorize(stack, clientId, { headers: xff(`203.0.113.${i}`) })
      assert.equal(res.status, 303, `${i}`)
    }
    const l = await login(stack, { clientId, redirectUri: REDIRECT })
    assert.equal((await exchange(stack, l, { clientId, redirectUri: REDIRECT })).status, 200)
    // 60 steps spent: a new X-Forwarded-For each time buys nothing.
    for (const address of ['203.0.113.200', '2001:db8::1', '', 'unknown'])
      assertTooMany(await authorize(stack, clientId, { headers: xff(address) }), address)
  })
})

describe('sign-in counts in all', () => {
  it('past perMinute every address is refused; what one address was refused is not counted in all', async () => {
    const store = createMemoryStore()
    const o = { store, perAddressPerMinute: 3, perNetworkPerMinute: 5, perMinute: 5, now: clock }
    const got = async (peer: string) => (await admitSignIn(o, peer))?.bound ?? 'admitted'
    const a = [await got('192.0.2.1'), await got('192.0.2.1'), await got('192.0.2.1')]
    assert.deepEqual(a, ['admitted', 'admitted', 'admitted'])
    // Refused by its own bound, 10 times: the shared count stays at 3.
    for (let i = 0; i < 10; i++) assert.equal(await got('192.0.2.1'), 'address')
    assert.deepEqual(
      [await got('192.0.2.2'), await got('2001:db8::1'), await got('192.0.2.3')],
      ['admitted', 'admitted', 'all'],
    )
    assert.equal((await admitSignIn(o, undefined))?.retryAfterS, 30)
  })

  it('which requests are authorization requests, as oidc-provider routes them', () => {
    const cases: [string, string, boolean][] = [
      ['GET', '/authorize?client_id=x', true],
      ['HEAD', '/authorize', true],
      ['POST', '/authorize', true],
      ['GET', '/authorize/', true],
      ['GET', '/AUTHORIZE', true],
      ['GET', '/Authorize/?x=1', true],
      ['GET', '/authorize/abc', false], // the resume after the upstream: no new Interaction
      ['GET', '/authorize//', false],
      ['PUT', '/authorize', false],
      ['OPTIONS', '/authorize', false],
      ['GET', '/token', false],
    ]
    for (const [method, path, want] of cases)
      assert.equal(startsSignIn(method, path, '/authorize'), want, `${method} ${path}`)
  })
})

describe('sign-in counts shared by replicas (Redis)', { skip: NO_REDIS }, () => {
  const PER_ADDRESS = 4
  const PER_NETWORK = 6
  let s: BrokerReplicas
  let front: BrokerFront
  let clientId: string
  before(async () => {
    s = await startBrokerReplicas({
      broker: { signIn: { perAddressPerMinute: PER_ADDRESS, perNetworkPerMinute: PER_NETWORK } },
      // The router is a trusted proxy: the tests name the client's address in X-Forwarded-For.
      config: { trustProxy: true },
      signInClock: clock,
    })
    front = { url: s.publicUrl, endpoint: (server) => `${s.publicUrl}/mcp/${server}` }
    clientId = await newClient(front, [REDIRECT])
  })
  after(() => s.close())

  it('one address alternating between replicas gets the bound once, not once per replica; Redis holds that many Interactions', async () => {
    s.router.mode = 'alternate'
    const statuses: number[] = []
    for (let i = 0; i < 2 * PER_ADDRESS; i++) {
      const res = await authorize(front, clientId)
      statuses.push(res.status)
      if (res.status === 429) assertTooMany(res, `${i}`)
    }
    assert.deepEqual(statuses, [
      ...Array<number>(PER_ADDRESS).fill(303),
      ...Array<number>(PER_ADDRESS).fill(429),
    ])
    assert.ok(s.router.hits.a >= PER_ADDRESS && s.router.hits.b >= PER_ADDRESS)
    const client = createClient({ url: s.redis.url })
    client.on('error', () => {})
    await client.connect()
    try {
      const held: string[] = []
      for await (const batch of client.scanIterator({
        MATCH: `${s.keyPrefix}oidc:Interaction:*`,
        COUNT: 1000,
      }))
        held.push(...([batch].flat() as string[]))
      assert.equal(held.length, PER_ADDRESS)
    } finally {
      await client.quit()
    }
  })

  it('one IPv6 /48 alternating between replicas gets its bound once, not once per replica', async () => {
    s.router.mode = 'alternate'
    const hits = { ...s.router.hits }
    const statuses: number[] = []
    // Three /64s of one /48 in turn, spelled differently each time.
    const spellings = ['2001:db8:aa:1::1', '2001:DB8:AA:2::2', '2001:0db8:00aa:0003::3']
    for (let i = 0; i < 3 * PER_ADDRESS; i++) {
      const res = await authorize(front, clientId, { headers: xff(spellings[i % 3]!) })
      statuses.push(res.status)
      if (res.status === 429) assertTooMany(res, `${i}`)
    }
    assert.deepEqual(statuses, [
      ...Array<number>(PER_NETWORK).fill(303),
      ...Array<number>(3 * PER_ADDRESS - PER_NETWORK).fill(429),
    ])
    assert.ok(
      s.router.hits.a - hits.a >= PER_NETWORK / 2 && s.router.hits.b - hits.b >= PER_NETWORK / 2,
    )
    // Another /48, and an IPv4 address, through either replica.
    for (const from of ['2001:db8:ab::1', '192.0.2.200'])
      assert.equal((await authorize(front, clientId, { headers: xff(from) })).status, 303, from)
  })
})
