// Stop 41 (b): label sets a client can grow. /metrics (Prometheus) and the OTLP metrics
// (mcp.server.operation.duration) against invented server names, paths, methods, tool names,
// session ids, with a real gateway, real tokens and real stdio servers.
// Finding (a failing test first, then the fix):
// - the OTLP operation histogram took `mcp.method.name` as the client wrote it: any method name
//   an authenticated client invents (refused or not) opened a series of its own, and 2000 of them
//   (the SDK's cardinality limit per instrument) sent every later series, the real ones too, to
//   the SDK's overflow series: anyone with a token could blind the operator's dashboards. A
//   method the MCP specification does not name is recorded as `_OTHER` (as the HTTP conventions
//   do for methods), on the span it stays as it was.
// What held is pinned as "held: …".
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { startStack, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'

/** Sets `vars` in process.env (the SDK reads it) while `fn` runs, then restores it. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
  }
}

async function post(
  stack: Stack,
  path: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

/** initialize + notifications/initialized; returns the session id. */
async function openSession(
  stack: Stack,
  server: string,
  token: string,
  protocolVersion = '2025-11-25',
): Promise<string> {
  const auth = { authorization: `Bearer ${token}` }
  const init = await post(
    stack,
    `/mcp/${server}`,
    {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion,
        capabilities: {},
        clientInfo: { name: 'stop41', version: '0' },
      },
    },
    auth,
  )
  assert.equal(init.status, 200, init.text)
  const sid = init.headers['mcp-session-id'] as string
  const ack = await post(
    stack,
    `/mcp/${server}`,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...auth, 'mcp-session-id': sid },
  )
  assert.equal(ack.status, 202)
  return sid
}

describe('stop 41: the OTLP operation histogram takes no method name a client invents', () => {
  let receiver: OtlpReceiver
  let stack: Stack
  before(async () => {
    receiver = await startOtlpReceiver()
    stack = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_METRIC_EXPORT_INTERVAL: '3600000',
      },
      () => startStack(),
    )
  })
  after(async () => {
    await stack.close()
    await receiver.close()
  })

  it('invented requests and notifications, on a session and sessionless: one _OTHER series, the real methods as they are', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const auth = { authorization: `Bearer ${token}` }
    const sid = await openSession(stack, 'fixture', token)
    const invented = (i: number) => `x/invented-${i}`
    for (let i = 0; i < 6; i++) {
      const asked = await post(
        stack,
        '/mcp/fixture',
        { jsonrpc: '2.0', id: 100 + i, method: invented(i), params: {} },
        { ...auth, 'mcp-session-id': sid },
      )
      assert.equal(asked.status, 200, asked.text)
      const told = await post(
        stack,
        '/mcp/fixture',
        { jsonrpc: '2.0', method: `notifications/${invented(i)}` },
        { ...auth, 'mcp-session-id': sid },
      )
      assert.equal(told.status, 202, told.text)
    }
    // Sessionless (2026-07-28): the method is in the header and the body.
    for (let i = 0; i < 3; i++) {
      const method = `x/sessionless-invented-${i}`
      const res = await post(
        stack,
        '/mcp/fixture',
        {
          jsonrpc: '2.0',
          id: `m${i}`,
          method,
          params: {
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        },
        { ...auth, 'mcp-protocol-version': '2026-07-28', 'mcp-method': method },
      )
      assert.ok(res.status < 500, `${res.status} ${res.text}`)
    }
    // A real method, for the series that must stay.
    const listed = await post(
      stack,
      '/mcp/fixture',
      { jsonrpc: '2.0', id: 200, method: 'tools/list' },
      { ...auth, 'mcp-session-id': sid },
    )
    assert.equal(listed.status, 200, listed.text)
    // held: a version the client asks for at initialize is not one the session runs by.
    for (const v of ['v-invented-1', '2099-01-01']) await openSession(stack, 'fixture', token, v)
    await stack.gateway.tracing.flush()
    const versions = new Set(
      receiver.points
        .filter((p) => p.metric.startsWith('mcp.server.'))
        .map((p) => p.attributes['mcp.protocol.version']),
    )
    assert.ok(
      [...versions].every(
        (v) => v === undefined || (/^20\d\d-\d\d-\d\d$/.test(String(v)) && v !== '2099-01-01'),
      ),
      [...versions].join(' '),
    )
    const methods = new Set(
      receiver.points
        .filter((p) => p.metric === 'mcp.server.operation.duration')
        .map((p) => p.attributes['mcp.method.name']),
    )
    assert.ok(methods.has('tools/list'), [...methods].join(' '))
    assert.ok(methods.has('initialize'), [...methods].join(' '))
    assert.deepEqual(
      [...methods].filter((m) => String(m).includes('invented')),
      [],
      'no invented name is a series',
    )
    assert.ok(methods.has('_OTHER'), [...methods].join(' '))
  })
})
