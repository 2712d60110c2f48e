// Tracing through a real gateway: a real IdP, real fixture processes, real clients over HTTP,
// and the spans exported with the official OTLP exporter to a real OTLP/HTTP receiver. Each
// case reads the span tree the receiver got (SERVER span → auth, policy, lease, CLIENT span),
// and what the fixture process received in `_meta`.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { request } from 'undici'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import {
  SPAN_KIND,
  startOtlpReceiver,
  withEnv,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.js'

const ACCEPT = 'application/json, text/event-stream'
const V = '2026-07-28'
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'
const HEADER_TRACE = '0af7651916cd43dd8448eb211c80319c'
const HEADER_SPAN = 'b7ad6b7169203331'
const traceparent = (t: string, s: string) => `00-${t}-${s}-01`

const LIMITS = `
rateLimits:
  - name: pid-once
    servers: [fixture]
    tools: [pid]
    limit: 1
    interval: 1h
`

async function post(
  stack: Stack,
  path: string,
  body: unknown,
  headers: Record<string, string | string[]>,
) {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const data = text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .pop()
  return {
    status: res.statusCode,
    headers: res.headers,
    json: text === '' ? undefined : JSON.parse(data === undefined ? text : data.slice(6)),
  }
}

/** initialize + notifications/initialized on a session-era endpoint; returns the session id. */
async function openSession(stack: Stack, path: string, token: string): Promise<string> {
  const auth = { authorization: `Bearer ${token}` }
  const init = await post(
    stack,
    path,
    {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'trace-test', version: '0' },
      },
    },
    auth,
  )
  assert.equal(init.status, 200)
  const sid = init.headers['mcp-session-id'] as string
  const ack = await post(
    stack,
    path,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...auth, 'mcp-session-id': sid },
  )
  assert.equal(ack.status, 202)
  return sid
}

/** The tools/call requests the fixture process received, in order. */
function received(stack: Stack): { id: unknown; params: Record<string, unknown> }[] {
  const file = join(stack.dir, 'fixture-record.jsonl')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((m) => m.method === 'tools/call')
}

/** The SERVER span of request `id`, and its tree: children by name and kind. */
async function tree(receiver: OtlpReceiver, stack: Stack, match: (s: ReceivedSpan) => boolean) {
  await stack.gateway.tracing.flush()
  const server = await receiver.span((s) => s.kind === SPAN_KIND.server && match(s))
  const children = receiver.spans.filter(
    (s) => s.traceId === server.traceId && s.parentSpanId === server.spanId,
  )
  const steps = children.filter((s) => s.kind === SPAN_KIND.internal).map((s) => s.name)
  const client = children.find((s) => s.kind === SPAN_KIND.client)
  return { server, steps, client }
}

/** The traceparent the process got must be the CLIENT span's own context. */
function assertPropagated(
  meta: Record<string, unknown> | undefined,
  client: ReceivedSpan | undefined,
) {
  assert.ok(client, 'a CLIENT span for the round trip to the process')
  assert.equal(meta?.traceparent, traceparent(client.traceId, client.spanId))
}

describe('tracing on: spans exported to a real OTLP/HTTP receiver', () => {
  let receiver: OtlpReceiver
  let stack: Stack
  let alice: string
  before(async () => {
    receiver = await startOtlpReceiver()
    stack = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_METRIC_EXPORT_INTERVAL: '3600000',
      },
      () =>
        startStack({
          policy: TEST_POLICY + LIMITS,
          config: { endpoints: { tools: { servers: ['fixture'] } } },
        }),
    )
    alice = await stack.token('alice', { server: 'fixture' })
  })
  after(async () => {
    await stack.close()
    await receiver.close()
  })

  it('session era: SERVER span under the HTTP traceparent, auth/policy/lease, CLIENT span, child joins', async () => {
    const sid = await openSession(stack, '/mcp/fixture', alice)
    // The server lists its tools: the operation metric may carry their names (fix52).
    const listed = await post(
      stack,
      '/mcp/fixture',
      { jsonrpc: '2.0', id: 'list-1', method: 'tools/list' },
      { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
    )
    assert.equal(listed.status, 200)
    const res = await post(
      stack,
      '/mcp/fixture',
      {
        jsonrpc: '2.0',
        id: 'sess-1',
        method: 'tools/call',
        params: { name: 'echo_args', arguments: { session: 1, i: 1 } },
      },
      {
        authorization: `Bearer ${alice}`,
        'mcp-session-id': sid,
        traceparent: traceparent(HEADER_TRACE, HEADER_SPAN),
      },
    )
    assert.equal(res.status, 200)
    const { server, steps, client } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'sess-1',
    )
    assert.equal(server.name, 'tools/call echo_args')
    assert.equal(server.traceId, HEADER_TRACE)
    assert.equal(server.parentSpanId, HEADER_SPAN)
    assert.deepEqual(steps.sort(), ['auth', 'lease', 'policy'])
    assert.equal(server.attributes['mcp.method.name'], 'tools/call')
    assert.equal(server.attributes['gen_ai.tool.name'], 'echo_args')
    assert.equal(server.attributes['mcp.session.id'], sid)
    assert.equal(server.attributes['mcp.protocol.version'], '2025-11-25')
    assert.equal(server.attributes['mcp_edge.policy.decision'], 'allow')
    assert.match(String(server.attributes['mcp_edge.policy.rule']), /policy\.yaml:\d+/)
    assert.equal(server.attributes['user.id'], undefined, 'no user attributes unless turned on')
    assert.equal(server.status.code, 0)
    assert.equal(client?.name, 'tools/call echo_args')
    assert.equal(client?.attributes['network.transport'], 'pipe')
    assert.ok(client!.startNs >= server.startNs && client!.endNs <= server.endNs)
    const got = received(stack).find((m) => m.id === 'sess-1')
    assertPropagated(got?.params._meta as Record<string, unknown>, client)
    // The initialize had its span too, its session learnt from the server's answer.
    const init = await tree(
      receiver,
      stack,
      (s) => s.name === 'initialize' && s.attributes['mcp.session.id'] === sid,
    )
    assert.deepEqual(init.steps.sort(), ['auth', 'lease', 'policy'])
    assert.equal(init.server.attributes['mcp.protocol.version'], '2025-11-25')
  })

  it('SEP-414: a traceparent in params._meta is the parent; the HTTP one becomes a link', async () => {
    const sid = await openSession(stack, '/mcp/fixture', alice)
    await post(
      stack,
      '/mcp/fixture',
      {
        jsonrpc: '2.0',
        id: 'meta-1',
        method: 'tools/call',
        params: {
          name: 'echo_args',
          arguments: { session: 1, i: 2 },
          _meta: { traceparent: traceparent(CLIENT_TRACE, CLIENT_SPAN), progressToken: 'p' },
        },
      },
      {
        authorization: `Bearer ${alice}`,
        'mcp-session-id': sid,
        traceparent: traceparent(HEADER_TRACE, HEADER_SPAN),
      },
    )
    const { server, client } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'meta-1',
    )
    assert.equal(server.traceId, CLIENT_TRACE)
    assert.equal(server.parentSpanId, CLIENT_SPAN)
    assert.deepEqual(server.links, [{ traceId: HEADER_TRACE, spanId: HEADER_SPAN }])
    const meta = received(stack).find((m) => m.id === 'meta-1')?.params._meta as Record<
      string,
      unknown
    >
    assertPropagated(meta, client)
    assert.equal(meta.progressToken, 'p', 'the rest of _meta is the client’s')
  })

  it('sessionless 2026-07-28: the same tree, the version from the request', async () => {
    const body = {
      jsonrpc: '2.0',
      id: 'modern-1',
      method: 'tools/call',
      params: {
        name: 'echo_args',
        arguments: { session: 2, i: 1 },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': {},
          traceparent: traceparent(CLIENT_TRACE, CLIENT_SPAN),
        },
      },
    }
    const res = await post(stack, '/mcp/fixture', body, {
      authorization: `Bearer ${alice}`,
      'mcp-protocol-version': V,
      'mcp-method': 'tools/call',
      'mcp-name': 'echo_args',
    })
    assert.equal(res.status, 200)
    const { server, steps, client } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'modern-1',
    )
    assert.equal(server.name, 'tools/call echo_args')
    assert.equal(server.parentSpanId, CLIENT_SPAN)
    assert.equal(server.attributes['mcp.protocol.version'], V)
    assert.equal(server.attributes['mcp.session.id'], undefined, 'no session in this era')
    assert.deepEqual(steps.sort(), ['auth', 'lease', 'policy'])
    const meta = received(stack).find((m) =>
      JSON.stringify(m.params.arguments).includes('"session":2'),
    )?.params._meta as Record<string, unknown>
    assertPropagated(meta, client)
    assert.equal(meta[`io.modelcontextprotocol/protocolVersion`], undefined)
  })

  it('legacy HTTP+SSE: the span says so; _meta from the SDK client is the parent', async () => {
    const token = await stack.token('alice', { server: 'echo' })
    const client = new V1Client({ name: 'legacy-trace', version: '0' })
    const transport = new SSEClientTransport(new URL(`${stack.url}/sse/echo`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      eventSourceInit: {
        fetch: (url, init) =>
          fetch(url, {
            ...init,
            headers: { ...(init?.headers as object), authorization: `Bearer ${token}` },
          }),
      },
    })
    await client.connect(transport)
    try {
      await client.callTool({
        name: 'echo',
        arguments: { text: 'hi' },
        _meta: { traceparent: traceparent(CLIENT_TRACE, CLIENT_SPAN) },
      })
    } finally {
      await client.close()
    }
    const {
      server,
      steps,
      client: child,
    } = await tree(
      receiver,
      stack,
      (s) => s.name === 'tools/call echo' && s.attributes['mcp_edge.transport'] === 'sse',
    )
    assert.equal(server.parentSpanId, CLIENT_SPAN)
    assert.deepEqual(steps.sort(), ['auth', 'lease', 'policy'])
    assert.equal(child?.parentSpanId, server.spanId)
  })

  it('an endpoint: the public name on the SERVER span, the backend name on the CLIENT span', async () => {
    const path = '/mcp/tools'
    const token = await stack.token('alice', { resource: `${stack.url}${path}` })
    const sid = await openSession(stack, path, token)
    const res = await post(
      stack,
      path,
      {
        jsonrpc: '2.0',
        id: 'ep-1',
        method: 'tools/call',
        params: { name: 'fixture_echo_args', arguments: { session: 3, i: 1 } },
      },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 200)
    const { server, steps, client } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'ep-1',
    )
    assert.equal(server.name, 'tools/call fixture_echo_args')
    assert.equal(server.attributes['mcp_edge.server'], 'tools')
    assert.deepEqual(steps.sort(), ['auth', 'lease', 'lease', 'policy'])
    assert.equal(client?.name, 'tools/call echo_args')
    assert.equal(client?.attributes['mcp_edge.server'], 'fixture')
    const meta = received(stack).find((m) =>
      JSON.stringify(m.params.arguments).includes('"session":3'),
    )?.params._meta as Record<string, unknown>
    assertPropagated(meta, client)
  })

  it('a policy refusal: the span carries the decision and the error; nothing reached the process', async () => {
    const sid = await openSession(stack, '/mcp/fixture', alice)
    const before = received(stack).length
    const res = await post(
      stack,
      '/mcp/fixture',
      { jsonrpc: '2.0', id: 'deny-1', method: 'tools/call', params: { name: 'crash' } },
      { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
    )
    assert.equal(res.json.error.code, -32010)
    const { server, steps, client } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'deny-1',
    )
    assert.equal(server.attributes['mcp_edge.policy.decision'], 'deny')
    assert.match(String(server.attributes['mcp_edge.policy.rule']), /crash/)
    assert.equal(server.attributes['error.type'], '-32010')
    assert.equal(server.status.code, 2)
    assert.deepEqual(steps.sort(), ['auth', 'policy'])
    assert.equal(client, undefined)
    assert.equal(received(stack).length, before)
  })

  it('a missing scope: decision challenge, the 403 step-up, its code', async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const sid = await openSession(stack, '/mcp/notes', token)
    const res = await post(
      stack,
      '/mcp/notes',
      {
        jsonrpc: '2.0',
        id: 'up-1',
        method: 'tools/call',
        params: { name: 'write_note', arguments: { title: 't', body: 'b' } },
      },
      { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 403)
    const { server, client } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'up-1',
    )
    assert.equal(server.attributes['mcp_edge.policy.decision'], 'challenge')
    assert.equal(server.attributes['error.type'], '-32011')
    assert.equal(client, undefined)
  })

  it('a rate-limit refusal: decision rate_limited, its rule, its code', async () => {
    const sid = await openSession(stack, '/mcp/fixture', alice)
    const call = (id: string) =>
      post(
        stack,
        '/mcp/fixture',
        { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'pid' } },
        { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
      )
    await call('rl-1')
    const second = await call('rl-2')
    assert.equal(second.json.error.code, -32029)
    const { server } = await tree(
      receiver,
      stack,
      (s) => s.attributes['jsonrpc.request.id'] === 'rl-2',
    )
    assert.equal(server.attributes['mcp_edge.policy.decision'], 'rate_limited')
    assert.match(String(server.attributes['mcp_edge.policy.rule']), /pid-once|policy\.yaml/)
    assert.equal(server.attributes['error.type'], '-32029')
  })

  it('hostile traceparent headers are ignored: a root span, a valid context to the child', async () => {
    const sid = await openSession(stack, '/mcp/fixture', alice)
    const cases: [string, string | string[]][] = [
      ['hostile-malformed', 'zz-not-a-trace'],
      ['hostile-zero', traceparent('0'.repeat(32), HEADER_SPAN)],
      [
        'hostile-dup',
        [traceparent(HEADER_TRACE, HEADER_SPAN), traceparent(CLIENT_TRACE, CLIENT_SPAN)],
      ],
      ['hostile-huge', `01-${HEADER_TRACE}-${HEADER_SPAN}-01-${'a'.repeat(4000)}`],
    ]
    for (const [id, value] of cases) {
      const res = await post(
        stack,
        '/mcp/fixture',
        {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'echo_args', arguments: { session: 9, i: 1 } },
        },
        { authorization: `Bearer ${alice}`, 'mcp-session-id': sid, traceparent: value },
      )
      assert.equal(res.status, 200, id)
      const { server, client } = await tree(
        receiver,
        stack,
        (s) => s.attributes['jsonrpc.request.id'] === id,
      )
      assert.equal(server.parentSpanId, undefined, id)
      assert.ok(![HEADER_TRACE, CLIENT_TRACE, '0'.repeat(32)].includes(server.traceId), id)
      assertPropagated(
        received(stack).find((m) => m.id === id)?.params._meta as Record<string, unknown>,
        client,
      )
    }
  })

  it('metrics: operation and session durations, exported on close', async () => {
    const sid = await openSession(stack, '/mcp/fixture', alice)
    const del = await request(`${stack.url}/mcp/fixture`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
    })
    await del.body.dump()
    await stack.gateway.tracing.flush()
    const ops = receiver.points.filter((p) => p.metric === 'mcp.server.operation.duration')
    assert.ok(ops.some((p) => p.attributes['gen_ai.tool.name'] === 'echo_args'))
    assert.ok(ops.some((p) => p.attributes['error.type'] === '-32010'))
    const sessions = receiver.points.filter((p) => p.metric === 'mcp.server.session.duration')
    assert.ok(sessions.length > 0)
    assert.equal(sessions[0]!.attributes['mcp.protocol.version'], '2025-11-25')
    // An endpoint's session too.
    const path = '/mcp/tools'
    const token = await stack.token('alice', { resource: `${stack.url}${path}` })
    const endpointSid = await openSession(stack, path, token)
    // Cumulative histograms: the latest count of each attribute set, summed.
    const ended = () => {
      const latest = new Map<string, number>()
      for (const p of receiver.points.filter((x) => x.metric === 'mcp.server.session.duration')) {
        const key = JSON.stringify(p.attributes)
        latest.set(key, Math.max(latest.get(key) ?? 0, p.count))
      }
      return [...latest.values()].reduce((a, b) => a + b, 0)
    }
    const before = ended()
    const gone = await request(`${stack.url}${path}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': endpointSid },
    })
    await gone.body.dump()
    await stack.gateway.tracing.flush()
    assert.equal(ended(), before + 1, 'the endpoint session ended is counted')
  })
})

describe('tracing off (no OTEL_* variables)', () => {
  let receiver: OtlpReceiver
  let stack: Stack
  before(async () => {
    receiver = await startOtlpReceiver()
    // The receiver listens, but nothing names it: nothing may reach it.
    stack = await startStack()
  })
  after(async () => {
    await stack.close()
    await receiver.close()
  })

  it('nothing is exported, and the client’s _meta reaches the process unchanged', async () => {
    assert.equal(stack.gateway.tracing.on, false)
    const alice = await stack.token('alice', { server: 'fixture' })
    const sid = await openSession(stack, '/mcp/fixture', alice)
    const meta = {
      traceparent: traceparent(CLIENT_TRACE, CLIENT_SPAN),
      tracestate: 'rojo=1',
      progressToken: 3,
    }
    await post(
      stack,
      '/mcp/fixture',
      {
        jsonrpc: '2.0',
        id: 'off-1',
        method: 'tools/call',
        params: { name: 'echo_args', arguments: { session: 1, i: 1 }, _meta: meta },
      },
      {
        authorization: `Bearer ${alice}`,
        'mcp-session-id': sid,
        traceparent: traceparent(HEADER_TRACE, HEADER_SPAN),
      },
    )
    const plain = {
      jsonrpc: '2.0',
      id: 'off-2',
      method: 'tools/call',
      params: { name: 'echo_args', arguments: { session: 1, i: 2 } },
    }
    await post(stack, '/mcp/fixture', plain, {
      authorization: `Bearer ${alice}`,
      'mcp-session-id': sid,
    })
    const got = received(stack)
    assert.deepEqual(got.find((m) => m.id === 'off-1')?.params._meta, meta)
    assert.equal(got.find((m) => m.id === 'off-2')?.params._meta, undefined, 'nothing added')
    await stack.gateway.tracing.flush()
    assert.equal(receiver.deliveries.length, 0)
  })
})
