// Rate limits from the policy files, through a real gateway, a real IdP and real fixture
// processes, on every transport and era: the refusal's status, code, Retry-After and text, that
// the process never saw a refused call, the audit line and the metric, per-subject counting,
// caller conditions, hot reload.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const _ACCEPT = 'application/json, text/event-stream'
const RATE_LIMITED = -32029

const LIMITS = `
rateLimits:
  - name: pid-per-user
    servers: [fixture]
    tools: [pid]
    limit: 3
    interval: 1h
  - name: echo-args-as-result
    servers: [fixture]
    tools: [echo_args]
    limit: 1
    interval: 1h
    refuseAs: toolResult
  - name: notes-sessions
    servers: [notes]
    methods: [initialize]
    when: { roles: [mcp-user] }
    limit: 2
    interval: 1h
  - name: env-per-client
    per: client
    servers: [fixture]
    tools: ["env"]
    limit: 2
    interval: 1d
`

let stack: Stack
before(async () => {
  stack = await startStack({ policy: TEST_POLICY + LIMITS })
})
after(() => stack.close())

/** POSTs to `server`'s MCP endpoint on the stack. */
const post = (server: string, body: unknown, headers: Record<string, string> = {}) =>
  postMcp(stack.local(server), body, headers)

const INIT = initBody()

async function session(server: string, token: string) {
  const auth = { authorization: `Bearer ${token}` }
  const res = await post(server, INIT, auth)
  assert.equal(res.status, 200, res.text)
  const sid = res.headers['mcp-session-id'] as string
  await post(
    server,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...auth, 'mcp-session-id': sid },
  )
  let id = 10
  const call = (name: string, args: Record<string, unknown> = {}) =>
    post(
      server,
      { jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name, arguments: args } },
      { ...auth, 'mcp-session-id': sid },
    )
  return { sid, call }
}

/** tools/call requests the fixture processes received for `name`. */
function seen(name: string): number {
  let text = ''
  try {
    text = readFileSync(join(stack.dir, 'fixture-record.jsonl'), 'utf8')
  } catch {}
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { method?: string; params?: { name?: string } })
    .filter((m) => m.method === 'tools/call' && m.params?.name === name).length
}

describe('rate limits inside a session (2025-11-25)', () => {
  it('the call past the limit is a JSON-RPC error on a 200 with Retry-After; the process never sees it', async () => {
    const s = await session('fixture', await stack.token('alice', { server: 'fixture' }))
    const before = seen('pid')
    for (let i = 0; i < 3; i++)
      assert.equal((await s.call('pid')).json().result?.isError, undefined)
    const refused = await s.call('pid')
    assert.equal(refused.status, 200)
    const body = refused.json()
    assert.equal(body.error.code, RATE_LIMITED)
    assert.match(
      body.error.message,
      /^Rate limit reached \(pid-per-user: 3 per 3600 s\); retry in \d+ s$/,
    )
    assert.equal(body.error.data.rule, 'pid-per-user')
    const retry = Number(refused.headers['retry-after'])
    assert.ok(retry >= 1 && retry <= 3600, String(retry))
    assert.equal(body.error.data.retryAfter, retry)
    assert.equal(body.id, 13)
    assert.equal(seen('pid'), before + 3, 'the refused call never reached the process')
    // Another tool of the same server is not under this limit.
    assert.equal((await s.call('echo_args', { session: 1, i: 1 })).json().result.isError, undefined)
  })

  it('counts per subject: another user has their own count, in every session of theirs', async () => {
    const bob = await stack.token('bob', { server: 'fixture' })
    const one = await session('fixture', bob)
    const two = await session('fixture', bob)
    assert.equal((await one.call('pid')).json().error, undefined)
    assert.equal((await two.call('pid')).json().error, undefined)
    assert.equal((await one.call('pid')).json().error, undefined)
    assert.equal((await two.call('pid')).json().error?.code, RATE_LIMITED)
  })

  it('per client: two users of one client share its count; another client has its own', async () => {
    const as = (sub: string, azp: string) =>
      stack.forge({ sub, azp, aud: stack.endpoint('fixture'), scope: 'mcp:read' })
    const carol = await session('fixture', await as('carol', 'shared-app'))
    const dave = await session('fixture', await as('dave', 'shared-app'))
    const erin = await session('fixture', await as('erin', 'other-app'))
    assert.equal((await carol.call('env')).json().error, undefined)
    assert.equal((await dave.call('env')).json().error, undefined)
    assert.equal((await carol.call('env')).json().error?.code, RATE_LIMITED)
    assert.equal((await dave.call('env')).json().error?.code, RATE_LIMITED)
    assert.equal((await erin.call('env')).json().error, undefined)
  })

  it('refuseAs: toolResult answers with an error result the model reads', async () => {
    const s = await session('fixture', await stack.token('dev', { server: 'fixture' }))
    const before = seen('echo_args')
    assert.equal((await s.call('echo_args', { session: 1, i: 1 })).json().result.isError, undefined)
    const refused = await s.call('echo_args', { session: 1, i: 2 })
    assert.equal(refused.status, 200)
    const result = refused.json().result
    assert.equal(result.isError, true)
    assert.match(
      result.content[0].text,
      /^Rate limit reached \(echo-args-as-result: 1 per 3600 s\); retry in \d+ s$/,
    )
    assert.ok(Number(refused.headers['retry-after']) >= 1)
    assert.equal(seen('echo_args'), before + 1)
  })

  it('the SDK client gets an McpError with the code and the time to wait', async () => {
    const token = await stack.token('admin', { server: 'fixture' })
    const client = new Client({ name: 'sdk', version: '0' })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('fixture')), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      for (let i = 0; i < 3; i++) await client.callTool({ name: 'pid', arguments: {} })
      await assert.rejects(
        client.callTool({ name: 'pid', arguments: {} }),
        (err: Error & { code?: number }) => {
          assert.equal(err.code, RATE_LIMITED)
          assert.match(err.message, /retry in \d+ s/)
          return true
        },
      )
    } finally {
      await client.close()
    }
  })

  it('audits every refusal and counts it in /metrics', async () => {
    const events = stack.audit().filter((e) => e.decision === 'rate_limited')
    const pid = events.find((e) => e.sub === 'alice' && e.name === 'pid')!
    assert.equal(pid.server, 'fixture')
    assert.equal(pid.method, 'tools/call')
    assert.equal(pid.outcome, 'refused')
    assert.match(String(pid.rule), /policy\.yaml:\d+ rate limit pid-per-user: 3 per 3600 s/)
    const text = await (await request(`${stack.url}/metrics`)).body.text()
    assert.match(text, /mcp_edge_rate_limited_total\{server="fixture",rule="pid-per-user"\} [2-9]/)
    assert.match(
      text,
      /mcp_edge_policy_decisions_total\{server="fixture",decision="rate_limited"\} \d+/,
    )
  })
})

describe('rate limits before a session exists', () => {
  it('an initialize past the limit is HTTP 429 with Retry-After, and opens no session', async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const auth = { authorization: `Bearer ${token}` }
    await session('notes', token)
    await session('notes', token)
    const sessions = stack.gateway.registry.size
    const refused = await post('notes', INIT, auth)
    assert.equal(refused.status, 429)
    assert.equal(refused.headers['mcp-session-id'], undefined)
    assert.ok(Number(refused.headers['retry-after']) >= 1)
    const body = JSON.parse(refused.text)
    assert.equal(body.id, 1)
    assert.equal(body.error.code, RATE_LIMITED)
    assert.equal(stack.gateway.registry.size, sessions, 'no session, no process')
  })

  it('`when` picks who is limited: an admin opens as many as they like', async () => {
    const token = await stack.token('admin', { server: 'notes' })
    for (let i = 0; i < 4; i++) await session('notes', token)
  })
})

describe('rate limits on the other transports and eras', () => {
  it('2026-07-28 sessionless: a JSON-RPC error naming the retry time; nothing reaches a process', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const before = seen('pid')
    const res = await post(
      'fixture',
      {
        jsonrpc: '2.0',
        id: 77,
        method: 'tools/call',
        params: {
          name: 'pid',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      },
      {
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'pid',
      },
    )
    assert.equal(res.status, 200, res.text)
    const body = res.json()
    assert.equal(body.id, 77)
    assert.equal(body.error.code, RATE_LIMITED)
    assert.ok(Number(res.headers['retry-after']) >= 1)
    assert.equal(seen('pid'), before)
  })

  it('legacy HTTP+SSE: the refusal arrives on the event stream as the call’s error', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const client = new V1Client({ name: 'legacy', version: '0' })
    await client.connect(
      new SSEClientTransport(new URL(`${stack.url}/sse/fixture`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      await assert.rejects(
        client.callTool({ name: 'pid', arguments: {} }),
        (err: Error & { code?: number }) => {
          assert.equal(err.code, RATE_LIMITED)
          return true
        },
      )
    } finally {
      await client.close()
    }
  })
})

describe('rate limits reload with the policy', () => {
  it('an unchanged rule keeps its count across a reload; an edited one starts afresh', async () => {
    const file = join(stack.dir, 'policy.yaml')
    const token = await stack.token('alice', { server: 'fixture' })
    const s = await session('fixture', token)
    assert.equal((await s.call('pid')).json().error?.code, RATE_LIMITED)
    const reloads = async () =>
      (await stack.gateway.metrics.policyReloads.get()).values.find((v) => v.labels.result === 'ok')
        ?.value ?? 0
    // Another rule edited: pid-per-user is the same rule, its count stays.
    let before = await reloads()
    writeFileSync(
      file,
      TEST_POLICY + LIMITS.replace('limit: 2\n    interval: 1d', 'limit: 9\n    interval: 1d'),
    )
    await waitFor(async () => (await reloads()) > before, 'the policy reload')
    assert.equal((await s.call('pid')).json().error?.code, RATE_LIMITED)
    // pid-per-user edited: a fresh count.
    before = await reloads()
    writeFileSync(
      file,
      TEST_POLICY + LIMITS.replace('limit: 3\n    interval: 1h', 'limit: 4\n    interval: 1h'),
    )
    await waitFor(async () => (await reloads()) > before, 'the policy reload')
    assert.equal((await s.call('pid')).json().error, undefined)
  })

  it('a bad rateLimits edit keeps the last good policy in force, with file and line', async () => {
    const file = join(stack.dir, 'policy.yaml')
    const failed = async () =>
      (await stack.gateway.metrics.policyReloads.get()).values.find(
        (v) => v.labels.result === 'failed',
      )?.value ?? 0
    const before = await failed()
    writeFileSync(file, `${TEST_POLICY}\nrateLimits:\n  - limit: 0\n    interval: 1w\n`)
    await waitFor(async () => (await failed()) > before, 'the failed reload')
    const ready = await (await request(`${stack.url}/readyz`)).body.json()
    const warning = (ready as { warnings: string[] }).warnings.join(' ')
    assert.match(warning, /policy\.yaml:\d+/)
    assert.match(warning, /rateLimits/)
  })
})
