// Rate limits shared by two gateway replicas through a real redis-server: one count for both,
// and what each does when Redis goes away (one fails closed, the other open) and comes back.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { firstData } from '../helpers/sse.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const RATE_LIMITED = -32029
const PUBLIC = 'https://mcp.replicas.test'
const URL_VAR = 'MCP_EDGE_TEST_RATE_REDIS_URL'

const POLICY = `${TEST_POLICY}
rateLimits:
  - name: pid
    servers: [fixture]
    tools: [pid]
    limit: 3
    interval: 1h
`

describe('rate limits across replicas (Redis)', { skip: NO_REDIS }, () => {
  let redis: RedisServer
  let a: Stack
  let b: Stack
  before(async () => {
    redis = await startRedis()
    process.env[URL_VAR] = redis.url
    const store = {
      kind: 'redis',
      url: { env: URL_VAR },
      keyPrefix: 'rl-replicas:',
      connectTimeout: 2000,
      commandTimeout: 500,
    }
    a = await startStack({
      policy: POLICY,
      publicUrl: PUBLIC,
      config: { store, rateLimits: { onStoreError: 'closed' } },
    })
    b = await startStack({
      policy: POLICY,
      publicUrl: PUBLIC,
      idpOf: a,
      config: { store, rateLimits: { onStoreError: 'open' } },
    })
  })
  after(async () => {
    await b?.close()
    await a?.close()
    await redis?.close()
    delete process.env[URL_VAR]
  })

  async function session(stack: Stack, token: string) {
    const post = async (body: unknown, sid?: string) => {
      const res = await request(stack.local('fixture'), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${token}`,
          ...(sid ? { 'mcp-session-id': sid } : {}),
        },
        body: JSON.stringify(body),
      })
      const text = await res.body.text()
      return { status: res.statusCode, headers: res.headers, text }
    }
    const init = await post(initBody())
    assert.equal(init.status, 200, init.text)
    const sid = init.headers['mcp-session-id'] as string
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
    let id = 10
    return async () => {
      const res = await post(
        { jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name: 'pid', arguments: {} } },
        sid,
      )
      return { ...res, json: JSON.parse(firstData(res.text) ?? res.text) }
    }
  }

  const ready = async (stack: Stack) => {
    const res = await request(`${stack.url}/readyz`)
    return {
      status: res.statusCode,
      body: (await res.body.json()) as { problems: string[]; warnings: string[] },
    }
  }

  it('one count for both replicas', async () => {
    const token = await a.token('alice', { server: 'fixture' })
    const onA = await session(a, token)
    const onB = await session(b, token)
    assert.equal((await onA()).json.error, undefined)
    assert.equal((await onB()).json.error, undefined)
    assert.equal((await onA()).json.error, undefined)
    const refusedB = await onB()
    assert.equal(refusedB.json.error?.code, RATE_LIMITED)
    assert.equal((await onA()).json.error?.code, RATE_LIMITED)
    // Another user is counted apart on both.
    const bob = await a.token('bob', { server: 'fixture' })
    assert.equal((await (await session(b, bob))()).json.error, undefined)
  })

  it('Redis away: the closed replica refuses and says so in /readyz, the open one lets calls through', async () => {
    const token = await a.token('dev', { server: 'fixture' })
    const onA = await session(a, token)
    const onB = await session(b, token)
    await redis.stop()
    const closed = await onA()
    assert.equal(closed.status, 200)
    assert.equal(closed.json.error?.code, RATE_LIMITED)
    assert.match(closed.json.error.message, /cannot be counted right now/)
    const readyA = await ready(a)
    assert.equal(readyA.status, 503)
    assert.match(
      readyA.body.problems.join(' '),
      /rate limits: .*refused \(rateLimits\.onStoreError: closed\)/,
    )
    // Open: through, uncounted, and a warning (the replica still serves).
    for (let i = 0; i < 5; i++) assert.equal((await onB()).json.error, undefined)
    const readyB = await ready(b)
    assert.equal(readyB.status, 200)
    assert.match(readyB.body.warnings.join(' '), /let through uncounted/)
    const metrics = await (await request(`${a.url}/metrics`)).body.text()
    assert.match(metrics, /mcp_edge_rate_limit_store_errors_total\{handling="closed"\} [1-9]/)

    // Back: counting resumes (Redis restarted empty) and readiness recovers.
    await redis.start()
    let error: unknown
    await waitFor(
      async () => (error = (await onA()).json.error) === undefined,
      () => `a call is counted again once Redis is back: ${JSON.stringify(error)}`,
    )
    assert.equal((await ready(a)).status, 200)
  })
})
