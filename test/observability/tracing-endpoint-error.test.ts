// An endpoint request that fails inside the gateway (its backend's per-user credentials cannot
// be read: Redis stopped mid-way) answers -32603 internal error, and its SERVER span is ended
// and exported with that error like every other. A real redis-server, real fixture process,
// spans through the official OTLP exporter to a real OTLP/HTTP receiver.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import { SPAN_KIND, startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const OTEL = {
  OTEL_EXPORTER_OTLP_ENDPOINT: '',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_METRIC_EXPORT_INTERVAL: '3600000',
}

describe('an endpoint request failing inside the gateway', {
  skip: NO_REDIS,
  timeout: 60_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-trace-endpoint-'))
  let receiver: OtlpReceiver
  let redis: RedisServer
  let gateway: Gateway
  const saved = Object.fromEntries(Object.keys(OTEL).map((k) => [k, process.env[k]]))
  before(async () => {
    receiver = await startOtlpReceiver()
    redis = await startRedis()
    writeFileSync(
      join(dir, 'policy.yaml'),
      'servers:\n  vault:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n',
    )
    process.env.MCP_EDGE_TEST_TRACE_REDIS_URL = redis.url
    process.env.MCP_EDGE_TEST_TRACE_SEAL_KEYS = JSON.stringify({
      k1: randomBytes(32).toString('base64url'),
    })
    const config = validateConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        store: { kind: 'redis', url: { env: 'MCP_EDGE_TEST_TRACE_REDIS_URL' } },
        secrets: { keys: { env: 'MCP_EDGE_TEST_TRACE_SEAL_KEYS' }, active: 'k1' },
        servers: {
          vault: {
            command: process.execPath,
            args: [join(SERVERS_DIR, 'fixture.js')],
            credentials: { VAULT_TOKEN: { secret: 'vault_token' } },
          },
        },
        endpoints: { tools: { servers: ['vault'] } },
        policies: join(dir, 'policy.yaml'),
      },
      { file: 'test', baseDir: dir },
    )
    // The tracing SDK reads its settings from the environment at start.
    Object.assign(process.env, OTEL, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url })
    try {
      gateway = await startGateway(config, { log: pino({ level: 'silent' }), insecureNoAuth: true })
    } finally {
      for (const [k, v] of Object.entries(saved))
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
    }
  })
  after(async () => {
    await gateway?.close()
    await redis?.close()
    await receiver?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const post = async (body: unknown, sid?: string) => {
    const res = await request(`${gateway.url}/mcp/tools`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(sid ? { 'mcp-session-id': sid } : {}),
      },
      body: JSON.stringify(body),
    })
    const text = await res.body.text()
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .pop()
    return {
      status: res.statusCode,
      sid: res.headers['mcp-session-id'] as string | undefined,
      json: text === '' ? undefined : JSON.parse(data === undefined ? text : data.slice(6)),
    }
  }

  it('answers -32603 and ends its SERVER span with the error', async () => {
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 't', version: '0' },
      },
    })
    assert.equal(init.status, 200)
    const sid = init.sid!
    assert.equal(
      (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid)).status,
      202,
    )
    // Listed while Redis is up: the name routes without the store.
    const listed = await post({ jsonrpc: '2.0', id: 'list', method: 'tools/list' }, sid)
    assert.ok(
      (listed.json.result.tools as { name: string }[]).some((t) => t.name === 'vault_credential'),
      JSON.stringify(listed.json),
    )
    await redis.stop()
    const res = await post(
      {
        jsonrpc: '2.0',
        id: 'boom',
        method: 'tools/call',
        params: { name: 'vault_credential', arguments: { name: 'VAULT_TOKEN' } },
      },
      sid,
    )
    assert.deepEqual(
      res.json?.error,
      { code: -32603, message: 'internal error' },
      JSON.stringify(res.json),
    )
    await gateway.tracing.flush()
    const span = receiver.spans.find(
      (s) => s.kind === SPAN_KIND.server && s.attributes['jsonrpc.request.id'] === 'boom',
    )
    assert.ok(span, 'the SERVER span of the failed request was ended and exported')
    assert.equal(span.name, 'tools/call vault_credential')
    assert.equal(span.attributes['error.type'], '-32603')
    assert.equal(span.attributes['rpc.response.status_code'], '-32603')
  })
})
