// POST /register bounds, through real HTTP to a tiny Hono app on 127.0.0.1:0 whose handler
// reads the raw Node stream (as oidc-provider does): refused requests never reach it, and
// admitted ones reach it with their body unread.
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, beforeEach, describe, it, test } from 'node:test'
import { createAdaptorServer, type HttpBindings } from '@hono/node-server'
import { createClient } from '@redis/client'
import { Hono } from 'hono'
import { CLIENTS_SET, clientKey, pruneClients } from '../../gateway/broker/adapter.js'
import { RegistrationGuardError } from '../../gateway/broker/client-errors.js'
import {
  admitRegistration,
  registrationGuard,
  type RegistrationGuardOptions,
} from '../../gateway/broker/registration-guard.js'
import { DEFAULT_CLIENT_CAP_RETRY_AFTER_S } from '../../gateway/config/schema.js'
import { startBrokerReplicas, type BrokerReplicas } from '../helpers/broker-replicas.js'
import { type BrokerFront, clientMetadata, register } from '../helpers/broker-raw.js'
import { testStore } from '../helpers/memory-store.js'
import { NO_REDIS } from '../helpers/redis.js'

const MAX_BYTES = 1024
const PER_MINUTE = 20
/** Registrations one IPv6 /48 may make a minute (2 /64s at their bound). */
const PER_NETWORK = 40
/** Registrations everyone may make a minute. */
const IN_ALL = 100
const MAX_CLIENTS = 5
/** A clock the tests move: the middle of a minute window. */
let clock = Math.floor(1.7e12 / 60_000) * 60_000 + 30_000

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One POST over a fresh connection; `body` undefined leaves the request open after the headers. */
function post(port: number, headers: Record<string, string>, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/register', method: 'POST', headers, agent: false },
      (res) => {
        let text = ''
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (text += d))
          .on('end', () => {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text })
            req.destroy()
          })
      },
    )
    req.on('error', reject)
    if (body === undefined) req.flushHeaders()
    else req.end(body)
  })
}

describe('registrationGuard over HTTP', () => {
  let store = testStore(() => clock)
  let reached: { length: number; body: string }[] = []
  let server: http.Server
  let port = 0
  const app = new Hono<{ Bindings: HttpBindings }>()
  const options = (): RegistrationGuardOptions => ({
    store,
    maxBodyBytes: MAX_BYTES,
    maxClients: MAX_CLIENTS,
    perAddressPerMinute: PER_MINUTE,
    perNetworkPerMinute: PER_NETWORK,
    perMinute: IN_ALL,
    retryAfterWhenFull: DEFAULT_CLIENT_CAP_RETRY_AFTER_S,
    // Stands in for a trusted proxy's forwarded address when a test sets it.
    peer: (c) => c.req.header('x-test-peer') ?? c.env.incoming.socket.remoteAddress,
    now: () => clock,
    recount: () => pruneClients(store),
  })
  app.post(
    '/register',
    (c, next) => registrationGuard(options())(c, next),
    async (c) => {
      // Like oidc-provider: read the Node request stream itself.
      const chunks: Buffer[] = []
      for await (const chunk of c.env.incoming) chunks.push(chunk as Buffer)
      const body = Buffer.concat(chunks).toString()
      reached.push({ length: body.length, body })
      return c.json({ client_id: 'x' }, 201)
    },
  )
  app.onError((err, c) => c.json({ error: 'server_error', why: err.message }, 500))

  before(async () => {
    server = createAdaptorServer({ fetch: app.fetch }) as http.Server
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  beforeEach(() => {
    store = testStore(() => clock)
    reached = []
  })

  const json = (size: number) => `{"client_name":"${'n'.repeat(size - 18)}"}`

  test('a body of exactly maxBodyBytes reaches the handler whole and unread', async () => {
    const body = json(MAX_BYTES)
    assert.equal(body.length, MAX_BYTES)
    const r = await post(
      port,
      { 'content-type': 'application/json', 'content-length': String(MAX_BYTES) },
      body,
    )
    assert.equal(r.status, 201)
    assert.deepEqual(reached, [{ length: MAX_BYTES, body }])
  })

  test('a declared body one byte over is refused 413 before it is sent', async () => {
    const r = await post(port, {
      'content-type': 'application/json',
      'content-length': String(MAX_BYTES + 1),
    })
    assert.equal(r.status, 413)
    assert.deepEqual(JSON.parse(r.body), {
      error: 'invalid_request',
      error_description: `a registration request is at most ${MAX_BYTES} bytes`,
    })
    assert.equal(r.headers.connection, 'close')
    assert.deepEqual(reached, [])
  })

  test('a huge declared body is refused without reading it', async () => {
    const r = await post(port, {
      'content-type': 'application/json',
      'content-length': String(10 * 1024 * 1024 * 1024),
    })
    assert.equal(r.status, 413)
    assert.deepEqual(reached, [])
  })

  test('a chunked body is refused 411 before it is read', async () => {
    const r = await post(port, {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
    })
    assert.equal(r.status, 411)
    assert.equal(JSON.parse(r.body).error, 'invalid_request')
    assert.equal(r.headers.connection, 'close')
    assert.deepEqual(reached, [])
  })

  test('a registration without any body length is refused 411', async () => {
    const r = await post(
      port,
      { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      '{"redirect_uris":[]}',
    )
    assert.equal(r.status, 411)
    assert.deepEqual(reached, [])
  })

  test('the 21st registration in a minute from one address is refused 429 until the next minute', async () => {
    const body = '{}'
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    for (let i = 0; i < PER_MINUTE; i++)
      assert.equal((await post(port, headers, body)).status, 201, `registration ${i + 1}`)
    const refused = await post(port, headers, body)
    assert.equal(refused.status, 429)
    assert.deepEqual(JSON.parse(refused.body), {
      error: 'slow_down',
      error_description: 'too many registrations from this address; retry later',
    })
    // 30 s into the window: 30 s to its end.
    assert.equal(refused.headers['retry-after'], '30')
    assert.equal(reached.length, PER_MINUTE)
    // Another address is not affected.
    assert.equal(
      (await post(port, { ...headers, 'x-test-peer': '198.51.100.7' }, body)).status,
      201,
    )
    // The next window starts afresh.
    clock += 30_000
    assert.equal((await post(port, headers, body)).status, 201)
    clock -= 30_000
  })

  test('addresses of one IPv6 /64 share their count; another /64 does not', async () => {
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    for (let i = 0; i < PER_MINUTE; i++) {
      const r = await post(
        port,
        { ...headers, 'x-test-peer': `2001:db8:1:2::${(i + 1).toString(16)}` },
        '{}',
      )
      assert.equal(r.status, 201)
    }
    assert.equal(
      (await post(port, { ...headers, 'x-test-peer': '2001:db8:1:2:ffff::1' }, '{}')).status,
      429,
    )
    assert.equal(
      (await post(port, { ...headers, 'x-test-peer': '2001:db8:1:3::1' }, '{}')).status,
      201,
    )
  })

  test('an IPv4-mapped peer counts as its IPv4 address', async () => {
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    for (let i = 0; i < PER_MINUTE; i++)
      await post(
        port,
        { ...headers, 'x-test-peer': i % 2 ? '203.0.113.9' : '::ffff:203.0.113.9' },
        '{}',
      )
    assert.equal((await post(port, { ...headers, 'x-test-peer': '203.0.113.9' }, '{}')).status, 429)
  })

  test('one IPv6 /48 in any spelling makes PER_NETWORK registrations, its /64s together; a third /64 is refused 429 "from this network" and stores no counter; the next /48 registers', async () => {
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    const spellings = [
      '2001:db8:48:1::1',
      '2001:0DB8:0048:0002:0000:0000:0000:0002',
      '2001:db8:48:1::3%eth0',
      '2001:0db8:048:2::4',
    ]
    for (let i = 0; i < PER_NETWORK; i++) {
      const from = spellings[i % spellings.length]!
      assert.equal((await post(port, { ...headers, 'x-test-peer': from }, '{}')).status, 201, from)
    }
    const keys = store.values.size
    const refused = await post(port, { ...headers, 'x-test-peer': '2001:DB8:48:3::1' }, '{}')
    assert.equal(refused.status, 429)
    assert.deepEqual(JSON.parse(refused.body), {
      error: 'slow_down',
      error_description: 'too many registrations from this network; retry later',
    })
    assert.equal(refused.headers['retry-after'], '30')
    assert.equal(store.values.size, keys, 'no counter for the refused /64')
    assert.equal(reached.length, PER_NETWORK)
    assert.equal(
      (await post(port, { ...headers, 'x-test-peer': '2001:db8:49::1' }, '{}')).status,
      201,
    )
  })

  test('IPv4-mapped peers are IPv4 addresses, never one /48: more of them than a /48 may make all register', async () => {
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    for (let i = 0; i < PER_NETWORK + 10; i++) {
      const from = `::ffff:203.0.113.${i + 1}`
      assert.equal((await post(port, { ...headers, 'x-test-peer': from }, '{}')).status, 201, from)
    }
  })

  test('past perMinute every address is refused 429 "right now" until the next minute, storing no counter; what one address was refused is not counted', async () => {
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    const from = (peer: string) => ({ ...headers, 'x-test-peer': peer })
    // One address past its own bound: its refusals do not spend the bound in all.
    for (let i = 0; i < PER_MINUTE + 10; i++) await post(port, from('192.0.2.200'), '{}')
    for (let n = 1; reached.length < IN_ALL; n++)
      for (let i = 0; i < PER_MINUTE && reached.length < IN_ALL; i++)
        assert.equal((await post(port, from(`192.0.2.${n}`), '{}')).status, 201)
    const keys = store.values.size
    for (const peer of ['198.51.100.1', '2001:db8:50::1', '::ffff:198.51.100.2', '192.0.2.1']) {
      const r = await post(port, from(peer), '{}')
      assert.equal(r.status, 429, peer)
      assert.deepEqual(JSON.parse(r.body), {
        error: 'slow_down',
        error_description: 'too many registrations right now; retry later',
      })
      assert.equal(r.headers['retry-after'], '30', peer)
    }
    assert.equal(store.values.size, keys, 'no counter for the refused')
    assert.equal(reached.length, IN_ALL)
    clock += 30_000
    assert.equal((await post(port, from('198.51.100.1'), '{}')).status, 201, 'the next minute')
    clock -= 30_000
  })

  test('at maxClients registered clients, the next registration is refused 429', async () => {
    const add = async (id: string) => {
      await store.sadd(CLIENTS_SET, id)
      await store.set(clientKey(id), '{}')
    }
    for (let i = 0; i < MAX_CLIENTS - 1; i++) await add(`client-${i}`)
    const headers = { 'content-type': 'application/json', 'content-length': '2' }
    assert.equal((await post(port, headers, '{}')).status, 201)
    await add(`client-${MAX_CLIENTS - 1}`)
    const r = await post(port, headers, '{}')
    assert.equal(r.status, 429)
    assert.deepEqual(JSON.parse(r.body), {
      error: 'too_many_clients',
      error_description:
        'this server holds as many client registrations as it accepts; retry later',
    })
    assert.equal(r.headers['retry-after'], String(DEFAULT_CLIENT_CAP_RETRY_AFTER_S))
    assert.equal(r.headers['cache-control'], 'no-store')
    assert.equal(reached.length, 1)
    // A client forgotten makes room again.
    await store.srem(CLIENTS_SET, 'client-0')
    assert.equal((await post(port, headers, '{}')).status, 201)
    // So does one whose record expired unused, although the set still names it.
    await add('client-0')
    assert.equal((await post(port, headers, '{}')).status, 429)
    await store.del([clientKey('client-1')])
    assert.equal((await post(port, headers, '{}')).status, 201)
    assert.equal(await store.scard(CLIENTS_SET), MAX_CLIENTS - 1)
  })

  test('a store failure is an error for the app, not an admission', async () => {
    store.incr = async () => {
      throw new Error('store down')
    }
    const r = await post(port, { 'content-type': 'application/json', 'content-length': '2' }, '{}')
    assert.equal(r.status, 500)
    assert.deepEqual(reached, [])
  })
})

describe('admitRegistration: request headers', () => {
  const o = (): RegistrationGuardOptions => ({
    store: testStore(() => clock),
    maxBodyBytes: MAX_BYTES,
    maxClients: 10,
    perAddressPerMinute: 5,
    perNetworkPerMinute: 10,
    perMinute: 100,
    retryAfterWhenFull: DEFAULT_CLIENT_CAP_RETRY_AFTER_S,
    peer: () => undefined,
    now: () => clock,
  })
  const cases: [string, string | undefined, string | undefined, string | undefined][] = [
    ['no Content-Length', undefined, undefined, 'length_required'],
    ['chunked', undefined, 'chunked', 'length_required'],
    ['chunked with a length', '10', 'chunked', 'length_required'],
    ['any transfer coding', '10', 'gzip', 'length_required'],
    ['empty', '', undefined, 'bad_content_length'],
    ['two lengths joined', '10, 10', undefined, 'bad_content_length'],
    ['negative', '-1', undefined, 'bad_content_length'],
    ['signed', '+10', undefined, 'bad_content_length'],
    ['hex', '0x10', undefined, 'bad_content_length'],
    ['fractional', '10.5', undefined, 'bad_content_length'],
    ['exponent', '1e3', undefined, 'bad_content_length'],
    ['padded', ' 10', undefined, 'bad_content_length'],
    ['absurdly long', '9'.repeat(40), undefined, 'body_too_large'],
    ['over the limit', String(MAX_BYTES + 1), undefined, 'body_too_large'],
    ['at the limit', String(MAX_BYTES), undefined, undefined],
    ['zero', '0', undefined, undefined],
    ['leading zeros', '0010', undefined, undefined],
  ]
  for (const [name, contentLength, transferEncoding, code] of cases) {
    test(`${name} → ${code ?? 'admitted'}`, async () => {
      const admitted = admitRegistration(o(), { contentLength, transferEncoding }, '192.0.2.1')
      if (code === undefined) return await admitted
      await assert.rejects(
        admitted,
        (err) => err instanceof RegistrationGuardError && err.code === code,
      )
    })
  }

  test('requests without a known peer share one bucket', async () => {
    const opts = o()
    for (let i = 0; i < 5; i++)
      await admitRegistration(opts, { contentLength: '2', transferEncoding: undefined }, undefined)
    await assert.rejects(
      admitRegistration(opts, { contentLength: '2', transferEncoding: undefined }, undefined),
      (err) => err instanceof RegistrationGuardError && err.code === 'slow_down',
    )
  })

  test('a refused body costs no count; an admitted one does', async () => {
    const opts = o()
    for (let i = 0; i < 10; i++)
      await assert.rejects(
        admitRegistration(
          opts,
          { contentLength: undefined, transferEncoding: 'chunked' },
          '192.0.2.1',
        ),
      )
    for (let i = 0; i < 5; i++)
      await admitRegistration(
        opts,
        { contentLength: '2', transferEncoding: undefined },
        '192.0.2.1',
      )
    await assert.rejects(
      admitRegistration(opts, { contentLength: '2', transferEncoding: undefined }, '192.0.2.1'),
      (err) =>
        err instanceof RegistrationGuardError && err.code === 'slow_down' && err.retryAfterS === 30,
    )
  })
})

describe('registration counts shared by replicas (Redis), behind a trusted proxy', {
  skip: NO_REDIS,
}, () => {
  const REDIRECT = 'http://127.0.0.1:43150/cb'
  /** The replicas' count clock: 30 s into a minute, so no count crosses a window. */
  const held = Math.floor(Date.now() / 60_000) * 60_000 + 30_000
  let s: BrokerReplicas
  let front: BrokerFront
  before(async () => {
    s = await startBrokerReplicas({
      broker: { registration: { perAddressPerMinute: 2, perNetworkPerMinute: 3, perMinute: 6 } },
      config: { trustProxy: true },
      signInClock: () => held,
    })
    front = { url: s.publicUrl, endpoint: (server) => `${s.publicUrl}/mcp/${server}` }
  })
  after(() => s?.close())

  it('each bound is met once for both replicas: per address, per /48 in any spelling, in all; refused registrations add no client', async () => {
    s.router.mode = 'alternate'
    const outcomes: string[] = []
    const from = [
      // One /48: three /64s in three spellings, then a fourth /64 with a zone id.
      '2001:db8:cc:1::1',
      '2001:DB8:CC:2::1',
      '2001:0db8:00cc:0003:0:0:0:1',
      '2001:db8:cc:4::1%eth0',
      // One IPv4 address, mapped or not: twice, then refused.
      '192.0.2.1',
      '::ffff:192.0.2.1',
      '192.0.2.1',
      // The sixth registration in all, then everyone is refused.
      '192.0.2.2',
      '192.0.2.3',
      '2001:db8:dd::1',
    ]
    for (const peer of from) {
      const r = await register(front, clientMetadata([REDIRECT], {}), { 'x-forwarded-for': peer })
      const why = r.status === 429 ? String(r.json.error_description).split(';')[0] : ''
      outcomes.push(`${r.status} ${why}`.trim())
      if (r.status === 429) assert.equal(r.headers['retry-after'], '30', peer)
    }
    assert.deepEqual(outcomes, [
      '201',
      '201',
      '201',
      '429 too many registrations from this network',
      '201',
      '201',
      '429 too many registrations from this address',
      '201',
      '429 too many registrations right now',
      '429 too many registrations right now',
    ])
    assert.ok(s.router.hits.a >= 5 && s.router.hits.b >= 5, JSON.stringify(s.router.hits))
    const client = createClient({ url: s.redis.url })
    client.on('error', () => {})
    await client.connect()
    try {
      assert.equal(await client.sCard(`${s.keyPrefix}${CLIENTS_SET}`), 6, 'clients registered')
    } finally {
      await client.quit()
    }
  })
})
