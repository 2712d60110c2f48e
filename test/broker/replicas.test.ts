// Two gateway replicas sharing a real Redis (redis-server started here, on a loopback port),
// behind one public URL: a client registered on one is known on the other; a login on A gives
// a code B exchanges; refresh tokens rotate across replicas, and a reused one (on either, or
// the same one at both at once; a code too) revokes the grant on both; a browser's session and
// remembered consent carry over; an access token of one is accepted by the other's MCP
// endpoint; one user's upstream re-checks take turns. Redis holds upstream tokens sealed, the
// broker's own only as digests, and every key expires but the client index, whose expired
// members leave the client cap. Missing keys refuse start-up; Redis down or stalled during a
// refresh is a clean error, and the refresh token still works once it is back.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createClient } from '@redis/client'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { ConfigError } from '../../gateway/config/errors.js'
import { brokerLogin, type Choices, type Visit } from '../helpers/broker-browser.js'
import {
  startBrokerReplicas,
  type BrokerReplicas,
  type ReplicaName,
} from '../helpers/broker-replicas.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import { NO_REDIS } from '../helpers/redis.js'
import { type CallInit, replicaCall } from '../helpers/replica-call.js'
import { waitFor } from '../helpers/wait-for.js'

let s: BrokerReplicas
const notes = () => `${s.publicUrl}/mcp/notes`

/** A request to the public URL that the router sends to replica `via`. */
const call = (via: ReplicaName, path: string, o: CallInit = {}) => replicaCall(s, via, path, o)

/** A hosted (web) client's callback, on the default allow-list; nothing is fetched from it. */
const WEB_REDIRECT = 'https://claude.ai/api/mcp/auth_callback'

/** A registered client: its id and its one redirect URI. */
interface TestClient {
  id: string
  redirect: string
}

/**
 * RFC 7591 registration of a public client at replica `via`: native (a loopback redirect, as
 * MCP Inspector or a desktop app), or web (a hosted client's https callback).
 */
async function register(
  via: ReplicaName,
  o: { name?: string; web?: boolean } = {},
): Promise<TestClient> {
  const redirect = o.web ? WEB_REDIRECT : REDIRECT
  const res = await call(via, '/register', {
    json: {
      client_name: o.name ?? 'replica test client',
      redirect_uris: [redirect],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
  })
  assert.equal(res.status, 201, res.text)
  return { id: res.json.client_id!, redirect }
}

/**
 * A browser's trip from the authorization request to the client's redirect URI, every request
 * of it routed as `mode` says; returns the code, its verifier and the pages seen.
 */
async function authorize(o: {
  client: TestClient
  mode: ReplicaName | 'alternate'
  jar: Map<string, string>
  choices?: Choices
  scope?: string
}) {
  const verifier = randomBytes(32).toString('base64url')
  const state = randomBytes(16).toString('base64url')
  const url = new URL(`${s.publicUrl}/authorize`)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: o.client.id,
    redirect_uri: o.client.redirect,
    scope: o.scope ?? 'mcp:read',
    resource: notes(),
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString()
  s.router.mode = o.mode
  const { callback, visits } = await brokerLogin(url.href, {
    redirectUri: o.client.redirect,
    choices: o.choices ?? { consent: 'allow' },
    jar: o.jar,
  })
  assert.equal(callback.searchParams.get('state'), state)
  assert.equal(callback.searchParams.get('iss'), s.publicUrl)
  const code = callback.searchParams.get('code')
  assert.ok(code, `no code: ${callback.href}`)
  return { code, verifier, visits }
}

async function exchange(via: ReplicaName, client: TestClient, code: string, verifier: string) {
  return call(via, '/token', {
    form: {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: client.redirect,
      client_id: client.id,
      resource: notes(),
    },
  })
}

async function refresh(via: ReplicaName, client: TestClient, refreshToken: string) {
  return call(via, '/token', {
    form: { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.id },
  })
}

/** A user logged in through A (every request of the login on A), the code exchanged at B. */
async function loggedIn(client: TestClient, jar = new Map<string, string>()) {
  const { code, verifier, visits } = await authorize({ client, mode: 'a', jar })
  const res = await exchange('b', client, code, verifier)
  assert.equal(res.status, 200, res.text)
  return { access: res.json.access_token!, refresh: res.json.refresh_token!, jar, visits }
}

/** An MCP initialize at replica `via`: its status and the session id (`<replicaId>.…`). */
async function initialize(via: ReplicaName, token: string) {
  const res = await call(via, '/mcp/notes', {
    json: {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'replicas', version: '0' },
      },
    },
    headers: { authorization: `Bearer ${token}`, accept: 'application/json, text/event-stream' },
  })
  return { status: res.status, session: String(res.headers['mcp-session-id'] ?? '') }
}

/**
 * The status an initialize with `token` gets at `via` once it is refused: another replica's
 * revocation arrives by message, so this waits for that event (bounded), never for a time.
 */
async function refusedAt(via: ReplicaName, token: string): Promise<number> {
  let status = 0
  await waitFor(
    async () => (status = (await initialize(via, token)).status) === 401,
    () => `${via} still answers ${status}`,
  )
  return status
}

/** The raw Redis client the tests inspect the shared state with. */
async function redisClient() {
  const client = createClient({ url: s.redis.url })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** Every key of this stack in Redis, without the prefix, with its type and time to live (ms; -1: none). */
async function keys(): Promise<{ key: string; type: string; ttl: number; values: string[] }[]> {
  const client = await redisClient()
  try {
    const out = []
    for await (const batch of client.scanIterator({ MATCH: `${s.keyPrefix}*`, COUNT: 1000 })) {
      for (const key of [batch].flat() as string[]) {
        const type = await client.type(key)
        const values =
          type === 'set'
            ? await client.sMembers(key)
            : type === 'string'
              ? [String(await client.get(key))]
              : []
        out.push({ key: key.slice(s.keyPrefix.length), type, ttl: await client.pTTL(key), values })
      }
    }
    return out
  } finally {
    client.destroy()
  }
}

/** The grant a refresh token belongs to, read from Redis. */
async function grantOf(refreshToken: string): Promise<string> {
  const stored = createHash('sha256').update(refreshToken).digest('base64url')
  const found = (await keys()).find((k) => k.key === `oidc:RefreshToken:${stored}`)
  assert.ok(found, 'the refresh token is in Redis')
  return (JSON.parse(found.values[0]!) as { grantId: string }).grantId
}

async function grantExists(grantId: string): Promise<boolean> {
  return (await keys()).some((k) => k.key === `oidc:Grant:${grantId}`)
}

const pagesShown = (visits: Visit[]) => visits.filter((v) => v.status === 200 || v.status === 403)

describe('two broker replicas sharing one Redis', { skip: NO_REDIS }, () => {
  before(async () => {
    s = await startBrokerReplicas()
  })
  after(() => s?.close())

  it('a client registered on A is known on B; the whole login on A; B exchanges the code; its token works on both', async () => {
    const client = await register('a')
    // B knows the client: a wrong code is the grant's fault, not the client's.
    const unknownCode = await exchange('b', client, 'not-a-code', 'x'.repeat(43))
    assert.equal(unknownCode.json.error, 'invalid_grant', unknownCode.text)
    const bHits = s.router.hits.b
    const upstreamLogins = s.idp.counts.token
    const { code, verifier, visits } = await authorize({ client, mode: 'a', jar: new Map() })
    assert.equal(s.router.hits.b, bHits, 'every request of the login went to A')
    assert.equal(s.idp.counts.token, upstreamLogins + 1, 'one upstream login')
    assert.ok(
      visits.some((v) => v.html.includes('Allow')),
      'the consent page was shown',
    )
    const res = await exchange('b', client, code, verifier)
    assert.equal(res.status, 200, res.text)
    assert.ok(res.json.refresh_token)
    const claims = decodeJwt(res.json.access_token!)
    assert.equal(claims.iss, s.publicUrl)
    assert.equal(claims.aud, notes())
    assert.equal(claims.sub, '00000000-0000-0000-0000-00000000a11c')
    for (const via of ['a', 'b'] as const) {
      const mcp = await initialize(via, res.json.access_token!)
      assert.equal(mcp.status, 200, via)
      assert.match(
        mcp.session,
        new RegExp(`^${via}\\.`),
        'the session lives on the replica that answered',
      )
    }
    // The code is single use on every replica; used again, its grant ends, with the access
    // token already issued from it (RFC 9700 §4.14.2 / RFC 6749 §4.1.2).
    const again = await exchange('a', client, code, verifier)
    assert.equal(again.status, 400)
    assert.equal(again.json.error, 'invalid_grant')
    assert.equal((await initialize('a', res.json.access_token!)).status, 401)
  })

  it('refresh at B, then at A: each rotates; the access token A issued is accepted by B', async () => {
    const client = await register('a')
    const first = await loggedIn(client)
    const atB = await refresh('b', client, first.refresh)
    assert.equal(atB.status, 200, atB.text)
    assert.notEqual(atB.json.refresh_token, first.refresh)
    const atA = await refresh('a', client, atB.json.refresh_token!)
    assert.equal(atA.status, 200, atA.text)
    assert.notEqual(atA.json.refresh_token, atB.json.refresh_token)
    assert.equal(
      (await initialize('b', atA.json.access_token!)).status,
      200,
      'B verifies what A signed',
    )
    assert.equal(
      (await initialize('a', atB.json.access_token!)).status,
      200,
      'A verifies what B signed',
    )
  })

  it('a refresh token reused at A after B rotated it: invalid_grant, and the grant is revoked on both', async () => {
    const client = await register('a')
    const { refresh: old } = await loggedIn(client)
    const grantId = await grantOf(old)
    const rotated = await refresh('b', client, old)
    assert.equal(rotated.status, 200, rotated.text)
    const reuse = await refresh('a', client, old)
    assert.equal(reuse.status, 400)
    assert.equal(reuse.json.error, 'invalid_grant')
    for (const via of ['b', 'a'] as const) {
      const res = await refresh(via, client, rotated.json.refresh_token!)
      assert.equal(res.status, 400, `B's new refresh token at ${via}`)
      assert.equal(res.json.error, 'invalid_grant')
    }
    assert.equal(await grantExists(grantId), false, 'the grant is gone from Redis')
  })

  it("a refresh token reused at A: the grant's access token is refused at once on A, and on B as soon as A's message lands; another grant works on both", async () => {
    const client = await register('a')
    const t = await loggedIn(client)
    const other = await loggedIn(await register('b'))
    for (const via of ['a', 'b'] as const)
      assert.equal((await initialize(via, t.access)).status, 200, `before, at ${via} (now cached)`)
    const rotated = await refresh('a', client, t.refresh)
    assert.equal(rotated.status, 200, rotated.text)
    assert.equal((await refresh('a', client, t.refresh)).json.error, 'invalid_grant')
    assert.equal((await initialize('a', t.access)).status, 401, 'at A, the replica that revoked')
    assert.equal(await refusedAt('b', t.access), 401, 'at B, told over Redis pub/sub')
    for (const via of ['a', 'b'] as const)
      assert.equal((await initialize(via, other.access)).status, 200, `another grant at ${via}`)
  })

  it('a revocation B did not hear (its subscription cut) is loaded when it resubscribes; readiness and metrics say so', async () => {
    const client = await register('a')
    const t = await loggedIn(client)
    assert.equal((await initialize('b', t.access)).status, 200)
    const raw = await redisClient()
    try {
      // Listed in Redis without a message, as while B's subscription was down.
      const tag = String(decodeJwt(t.access).grant_tag)
      const end = Number((await raw.time())[0]) * 1000 + 60_000
      await raw.zAdd(`${s.keyPrefix}broker:revoked`, { score: end, value: `g.${tag}` })
      assert.equal((await initialize('b', t.access)).status, 200, 'not heard of yet')
      await raw.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub'])
    } finally {
      raw.destroy()
    }
    assert.equal(await refusedAt('b', t.access), 401, 'loaded once B resubscribed')
    const metrics = await (await request(`${s.replicas.b.url}/metrics`)).body.text()
    assert.match(metrics, /mcp_edge_revocations_total\{event="subscription_lost"\} [1-9]/)
    assert.match(metrics, /mcp_edge_revocations_total\{event="resynced"\} [1-9]/)
    const ready = await request(`${s.replicas.b.url}/readyz`)
    assert.equal(ready.statusCode, 200, await ready.body.text())
  })

  it('the same refresh token at A and B at once: exactly one wins every round, and the grant is revoked', async () => {
    const client = await register('a')
    const jar = new Map<string, string>()
    let { refresh: rt } = await loggedIn(client, jar)
    const rounds = 12
    for (let round = 0; round < rounds; round++) {
      const grantId = await grantOf(rt)
      const [a, b] = await Promise.all([refresh('a', client, rt), refresh('b', client, rt)])
      const statuses = [a.status, b.status].sort()
      assert.deepEqual(statuses, [200, 400], `round ${round}: ${a.text} | ${b.text}`)
      const [won, lost] = a.status === 200 ? [a, b] : [b, a]
      assert.equal(lost.json.error, 'invalid_grant', `round ${round}`)
      // The reuse ended the grant: the winner's new refresh token is worth nothing, anywhere.
      for (const via of ['a', 'b'] as const) {
        const res = await refresh(via, client, won.json.refresh_token!)
        assert.equal(
          res.status,
          400,
          `round ${round}: the winner's refresh token at ${via}: ${res.text}`,
        )
      }
      assert.equal(await grantExists(grantId), false, `round ${round}: the grant is gone`)
      // The next round: a new grant from the same browser (its session is still good).
      const next = await authorize({ client, mode: round % 2 === 0 ? 'b' : 'a', jar })
      const res = await exchange(round % 2 === 0 ? 'a' : 'b', client, next.code, next.verifier)
      assert.equal(res.status, 200, res.text)
      rt = res.json.refresh_token!
    }
  })

  it('the same code at A and B at once: exactly one exchange wins, and the grant it gave is revoked', async () => {
    const client = await register('b')
    const jar = new Map<string, string>()
    for (let round = 0; round < 6; round++) {
      const { code, verifier } = await authorize({ client, mode: round % 2 === 0 ? 'a' : 'b', jar })
      const [a, b] = await Promise.all([
        exchange('a', client, code, verifier),
        exchange('b', client, code, verifier),
      ])
      assert.deepEqual(
        [a.status, b.status].sort(),
        [200, 400],
        `round ${round}: ${a.text} | ${b.text}`,
      )
      const won = a.status === 200 ? a : b
      assert.equal((a.status === 200 ? b : a).json.error, 'invalid_grant')
      // RFC 6749 §4.1.2: tokens issued from a code used twice are revoked.
      const res = await refresh('a', client, won.json.refresh_token!)
      assert.equal(res.status, 400, `round ${round}: ${res.text}`)
    }
  })

  it("a browser's session and remembered consent work on the other replica", async () => {
    const client = await register('a', { web: true })
    const jar = new Map<string, string>()
    await loggedIn(client, jar)
    const upstreamLogins = s.idp.counts.token
    // Same client, on B: the consent B remembers from A, the session cookie A signed: no page, no upstream trip.
    const aHits = s.router.hits.a
    const same = await authorize({ client, mode: 'b', jar })
    assert.equal(s.router.hits.a, aHits, 'every request went to B')
    assert.deepEqual(pagesShown(same.visits), [], 'no page was shown')
    assert.equal(s.idp.counts.token, upstreamLogins, 'no upstream login')
    const res = await exchange('a', client, same.code, same.verifier)
    assert.equal(res.status, 200, res.text)
    // Another client, registered on B: consent is asked for it, the session still holds.
    const other = await register('b', { name: 'another client', web: true })
    const second = await authorize({ client: other, mode: 'b', jar })
    const consent = pagesShown(second.visits)
    assert.equal(consent.length, 1)
    assert.match(consent[0]!.html, /another client/)
    assert.match(consent[0]!.html, /Signed in as/, 'B knows who is signed in')
    assert.equal(s.idp.counts.token, upstreamLogins, 'still no upstream login')
    assert.equal((await exchange('a', other, second.code, second.verifier)).status, 200)
    // A native client (loopback redirect) is asked every time (RFC 8252 §8.6: any app can
    // claim its redirect), but the session carries over all the same.
    const native = await register('a')
    await loggedIn(native, jar)
    const again = await authorize({ client: native, mode: 'b', jar })
    assert.equal(pagesShown(again.visits).length, 1, 'the consent page')
    assert.equal(s.idp.counts.token, upstreamLogins, 'no upstream login')
  })

  it('a login whose every request goes to the other replica than the one before still completes', async () => {
    const client = await register('b')
    const hits = { ...s.router.hits }
    const { code, verifier, visits } = await authorize({
      client,
      mode: 'alternate',
      jar: new Map(),
    })
    assert.ok(visits.length >= 6, 'consent, upstream and back: several hops')
    assert.ok(s.router.hits.a - hits.a >= 3 && s.router.hits.b - hits.b >= 3, 'on both replicas')
    const res = await exchange('a', client, code, verifier)
    assert.equal(res.status, 200, res.text)
  })

  it("upstream tokens in Redis are sealed, the broker's own are not there, and every key expires but the client index", async () => {
    let upstream: Record<string, unknown> | undefined
    s.idp.knobs.tamperToken = (body) => (upstream = body)
    const client = await register('a')
    await loggedIn(client)
    assert.ok(upstream, 'the upstream token response was seen')
    const secrets = ['access_token', 'refresh_token', 'id_token']
      .map((k) => upstream![k])
      .filter((v): v is string => typeof v === 'string')
    assert.ok(secrets.length >= 2)
    const all = await keys()
    const sealed = all.find((k) => k.key === 'broker:upstream:00000000-0000-0000-0000-00000000a11c')
    assert.ok(sealed, 'the upstream tokens are kept')
    assert.match(sealed.values[0]!, /^s1\.k1\./, 'sealed with the configured key')
    for (const k of all) {
      for (const secret of secrets) {
        assert.ok(
          !k.key.includes(secret) && !k.values.some((v) => v.includes(secret)),
          `${k.key} holds an upstream token in plaintext`,
        )
        // Not even a part long enough to be a signature or a token body.
        for (const part of secret.split('.').filter((p) => p.length >= 16)) {
          assert.ok(
            !k.values.some((v) => v.includes(part)),
            `${k.key} holds part of an upstream token`,
          )
        }
      }
    }
    // The broker's own refresh tokens are bearer credentials of a public client: a copy of the
    // store (a dump, a backup, a Redis replica) must not hold one it could use.
    const { refresh: rt } = await loggedIn(client)
    const rotated = await refresh('a', client, rt)
    assert.equal(rotated.status, 200, rotated.text)
    const now = await keys()
    for (const token of [rt, rotated.json.refresh_token!]) {
      const holders = now
        .filter((k) => k.key.includes(token) || k.values.some((v) => v.includes(token)))
        .map((k) => k.key.replace(token, '<token>'))
      assert.deepEqual(holders, [], 'keys naming or holding a refresh token')
    }
    // The sealing-key check: one constant per active key, under its keyed hash (no one's data),
    // and the list of them.
    const forever = all
      .filter((k) => k.ttl < 0)
      .map((k) => k.key.replace(/^secrets-keycheck:[\w-]{43}$/, 'secrets-keycheck:<mac>'))
    // The index of registered clients: its size is the client count; members leave as clients
    // expire.
    assert.deepEqual(
      forever.sort(),
      ['broker:clients', 'secrets-keycheck:<mac>', 'secrets-keychecks'],
      'keys without a time to live',
    )
  })

  it('Redis stopped during a refresh: a clean error without token; once it is back, the same refresh token works', async () => {
    const client = await register('a')
    const { refresh: rt } = await loggedIn(client)
    await s.redis.stop()
    try {
      for (const via of ['a', 'b'] as const) {
        const res = await refresh(via, client, rt)
        assert.ok(res.status >= 500 && res.status < 600, `${via}: ${res.status} ${res.text}`)
        assert.equal(res.json.access_token, undefined)
        assert.ok(res.json.error, `${via}: an OAuth error body: ${res.text}`)
      }
      // The replicas themselves still answer.
      assert.equal((await call('a', '/healthz')).status, 200)
      assert.equal((await call('b', '/healthz')).status, 200)
    } finally {
      await s.redis.start()
      await Promise.all([reconnected('a', client), reconnected('b', client)])
    }
    const res = await refresh('b', client, rt)
    assert.equal(res.status, 200, res.text)
    for (const r of Object.values(s.replicas))
      assert.ok(!r.logLines.some((l) => l.includes(rt)), `${r.id} logged the refresh token`)
  })

  it('Redis not answering (paused): the refresh fails after the command timeout and consumes nothing; after it resumes it works', async () => {
    const client = await register('a')
    const { refresh: rt } = await loggedIn(client)
    s.redis.pause()
    let res
    try {
      res = await refresh('b', client, rt)
    } finally {
      s.redis.resume()
    }
    assert.ok(res.status >= 500 && res.status < 600, `${res.status} ${res.text}`)
    assert.equal(res.json.access_token, undefined)
    const again = await refresh('a', client, rt)
    assert.equal(again.status, 200, again.text)
  })
})

describe('upstream re-checks at every refresh, on both replicas at once', {
  skip: NO_REDIS,
}, () => {
  before(async () => {
    s = await startBrokerReplicas({ upstream: { recheckInterval: 0 } })
  })
  after(() => s?.close())

  it("one user's refreshes at A and B at once re-check upstream one at a time: its rotating refresh token is never used twice", async () => {
    // Two clients of one user (one browser: the second login needs no upstream trip).
    const jar = new Map<string, string>()
    const first = await register('a')
    const second = await register('b')
    let one = (await loggedIn(first, jar)).refresh
    const next = await authorize({ client: second, mode: 'b', jar })
    const exchanged = await exchange('a', second, next.code, next.verifier)
    assert.equal(exchanged.status, 200, exchanged.text)
    let two = exchanged.json.refresh_token!
    const rounds = 8
    const before = s.idp.counts.token
    for (let round = 0; round < rounds; round++) {
      const [a, b] = await Promise.all([refresh('a', first, one), refresh('b', second, two)])
      assert.equal(a.status, 200, `round ${round}, A: ${a.text}`)
      assert.equal(b.status, 200, `round ${round}, B: ${b.text}`)
      one = a.json.refresh_token!
      two = b.json.refresh_token!
    }
    assert.equal(
      s.idp.counts.token - before,
      2 * rounds,
      'one upstream refresh per refresh, none refused',
    )
  })
})

describe('the client cap, counted in Redis by both replicas', { skip: NO_REDIS }, () => {
  before(async () => {
    s = await startBrokerReplicas({ broker: { registration: { maxClients: 2 } } })
  })
  after(() => s?.close())

  it('the cap holds across replicas, and clients that expired unused no longer count', async () => {
    await register('a')
    await register('b')
    const full = await call('b', '/register', {
      json: { client_name: 'third', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' },
    })
    assert.equal(full.status, 429, full.text)
    assert.equal(full.json.error, 'too_many_clients')
    // Both registrations expire unused, as after registration.unusedTtl: Redis deletes a key
    // whose expiry time is past. Their places in the cap are free again.
    const client = await redisClient()
    try {
      const records = (await keys()).filter((k) => k.key.startsWith('oidc:Client:'))
      assert.equal(records.length, 2)
      for (const r of records) assert.equal(await client.pExpireAt(`${s.keyPrefix}${r.key}`, 1), 1)
    } finally {
      client.destroy()
    }
    const again = await call('a', '/register', {
      json: { client_name: 'third', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' },
    })
    assert.equal(again.status, 201, again.text)
    const index = (await keys()).find((k) => k.key === 'broker:clients')!
    assert.deepEqual(index.values, [again.json.client_id], 'the index holds only the live client')
  })
})

describe('a Redis store without shared keys', { skip: NO_REDIS }, () => {
  before(async () => {
    s = await startBrokerReplicas()
  })
  after(() => s?.close())

  const cases: {
    name: string
    edit: (raw: Record<string, any>) => void
    path: RegExp
    message: RegExp
  }[] = [
    {
      name: 'no signing keys',
      edit: (r) => delete r.auth.broker.signingKeys,
      path: /auth\.broker\.signingKeys/,
      message: /shared store/,
    },
    {
      name: 'no cookie keys',
      edit: (r) => delete r.auth.broker.cookieKeys,
      path: /auth\.broker\.cookieKeys/,
      message: /shared store/,
    },
    {
      name: 'no sealing keys',
      edit: (r) => delete r.secrets,
      path: /secrets/,
      message: /shared store/,
    },
    {
      name: 'none of them',
      edit: (r) => {
        delete r.auth.broker.signingKeys
        delete r.auth.broker.cookieKeys
        delete r.secrets
      },
      path: /auth\.broker\.signingKeys: [^\n]*\n\s*configuration: auth\.broker\.cookieKeys: [^\n]*\n\s*configuration: secrets: /,
      message: /shared store/,
    },
  ]
  for (const c of cases) {
    it(`${c.name}: start-up is refused, naming what is missing`, async () => {
      const raw = s.rawConfig('c')
      c.edit(raw)
      await assert.rejects(s.start(raw), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err))
        assert.match(err.message, c.path)
        assert.match(err.message, c.message)
        return true
      })
    })
  }
})

/**
 * Waits until replica `via` reaches Redis again: each replica reconnects on its own (backing
 * off), and until then its store fails fast. A refresh token that does not exist is asked for
 * until the answer is the store's (invalid_grant), not the outage's (server_error).
 */
async function reconnected(via: ReplicaName, client: TestClient): Promise<void> {
  await waitFor(
    async () => (await refresh(via, client, 'no-such-refresh-token')).status < 500,
    `${via} reached Redis again`,
  )
}
