// The broker on Redis with Redis down: every OAuth endpoint answers 503 temporarily_unavailable
// (OAuth error JSON, Retry-After) instead of a 500 server_error, the cause is logged once, and
// all of it works again once Redis is back. A real redis-server, stopped mid-way.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import {
  REPLICA_HEADER,
  startBrokerReplicas,
  type BrokerReplicas,
} from '../helpers/broker-replicas.js'
import { send } from '../helpers/broker-raw.js'
import type { CookieJar } from '../helpers/oauth-flow.js'
import { REDIRECT } from '../helpers/oauth-provider.js'
import { NO_REDIS } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait-for.js'

let s: BrokerReplicas

async function call(path: string, o: { form?: Record<string, string>; json?: unknown } = {}) {
  const body = o.form ? new URLSearchParams(o.form).toString() : JSON.stringify(o.json)
  const res = await request(`${s.publicUrl}${path}`, {
    method: o.form || o.json ? 'POST' : 'GET',
    headers: {
      [REPLICA_HEADER]: 'a',
      accept: 'application/json',
      ...(o.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      ...(o.json ? { 'content-type': 'application/json' } : {}),
    },
    body: o.form || o.json ? body : undefined,
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text }
}

const registration = {
  client_name: 'outage test client',
  redirect_uris: [REDIRECT],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
}

describe('the broker with its Redis down', { skip: NO_REDIS, timeout: 120_000 }, () => {
  before(async () => {
    s = await startBrokerReplicas()
  })
  after(() => s?.close())

  it('answers 503 temporarily_unavailable with Retry-After on /token, /register, /authorize and /revoke, logs it once, and recovers', async () => {
    const reg = await call('/register', { json: registration })
    assert.equal(reg.status, 201, reg.text)
    const clientId = (JSON.parse(reg.text) as { client_id: string }).client_id
    const token = {
      grant_type: 'refresh_token',
      refresh_token: 'not-a-refresh-token',
      client_id: clientId,
    }
    const before = s.replicas.a.logLines.length
    await s.redis.stop()
    try {
      const authorize = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: REDIRECT,
        scope: 'mcp:read',
        code_challenge: 'x'.repeat(43),
        code_challenge_method: 'S256',
      })
      const requests = {
        token: () => call('/token', { form: token }),
        register: () => call('/register', { json: registration }),
        authorize: () => call(`/authorize?${authorize}`),
        revoke: () => call('/revoke', { form: { token: 'opaque', client_id: clientId } }),
        'token again': () => call('/token', { form: token }),
      }
      for (const [name, send] of Object.entries(requests)) {
        const res = await send()
        assert.equal(res.status, 503, `${name}: ${res.text}`)
        // No figure the gateway could stand behind: when Redis answers again is not known.
        assert.equal(res.headers['retry-after'], undefined, `${name}: no Retry-After`)
        if (name === 'authorize') {
          // A browser is at the other end, and the client cannot be looked up to redirect to:
          // the broker's page says it, as for every error it cannot send back.
          assert.match(res.text, /cannot reach its storage; retry later/, res.text)
          continue
        }
        assert.match(String(res.headers['content-type']), /^application\/json/, name)
        assert.equal(JSON.parse(res.text).error, 'temporarily_unavailable', `${name}: ${res.text}`)
      }
      const lines = s.replicas.a.logLines.slice(before)
      const told = lines.filter((l) => l.includes('broker store unavailable'))
      assert.equal(told.length, 1, `the outage is logged once:\n${told.join('\n')}`)
      assert.match(told[0]!, /Redis/, 'with its cause')
      assert.ok(
        !lines.some(
          (l) => l.includes('"server_error"') || l.includes('authorization server error'),
        ),
      )
    } finally {
      await s.redis.start()
    }
    // Back: the client is known again (the outage neither lost nor refused it for good). The
    // Redis client reconnects on its own schedule (store.reconnectMaxDelay): asked until it has,
    // not a count of back-to-back tries, which a fast machine used up before the reconnect.
    let res = await call('/token', { form: token })
    await waitFor(
      async () => res.status !== 503 || ((res = await call('/token', { form: token })), false),
      () => `still 503 after Redis came back: ${res.text}`,
    )
    assert.equal(res.status, 400, res.text)
    assert.equal(JSON.parse(res.text).error, 'invalid_grant')
  })
})

describe('the broker sign-in page with its Redis down', {
  skip: NO_REDIS,
  timeout: 120_000,
}, () => {
  before(async () => {
    s = await startBrokerReplicas()
  })
  after(() => s?.close())

  it('answers the broker page with 503 and Retry-After, not "This sign-in has expired", and works again after', async () => {
    const reg = await call('/register', { json: registration })
    assert.equal(reg.status, 201, reg.text)
    const clientId = (JSON.parse(reg.text) as { client_id: string }).client_id
    const jar: CookieJar = new Map()
    const authorize = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: REDIRECT,
      scope: 'mcp:read',
      resource: `${s.publicUrl}/mcp/notes`,
      state: 'a-state',
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
    })
    s.router.mode = 'a'
    const first = await send(`${s.publicUrl}/authorize?${authorize}`, { jar })
    assert.equal(first.status, 303, first.text)
    const page = new URL(first.location!, s.publicUrl).href
    assert.match(page, /\/interaction\//)
    await s.redis.stop()
    try {
      const down = await send(page, { jar })
      assert.equal(down.status, 503, down.text)
      assert.equal(down.headers['retry-after'], undefined, 'no Retry-After')
      assert.match(down.text, /cannot reach its storage; retry later/)
      assert.doesNotMatch(down.text, /expired/)
    } finally {
      await s.redis.start()
    }
    // Back: the same page, the same browser, goes on with the sign-in.
    // Until the replica's Redis client has reconnected (its backoff), bounded.
    const up = await waitFor(async () => {
      const r = await send(page, { jar })
      return r.status !== 503 && r
    }, "the replica's Redis client reconnected")
    assert.ok(up.status === 200 || up.status === 303, `${up.status} ${up.text.slice(0, 300)}`)
    assert.doesNotMatch(up.text, /expired/)
  })
})
