import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { pino } from 'pino'
import { ConfigError } from '../../gateway/config/errors.js'
import { telemetrySettings } from '../../gateway/observability/telemetry-env.js'
import {
  TRACING_OFF,
  outcomeOf,
  startTracing,
  type Tracing,
} from '../../gateway/observability/tracing.js'
import {
  SPAN_KIND,
  startOtlpReceiver,
  withEnv,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.js'

const log = pino({ level: 'silent' })

const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_SPAN = '00f067aa0ba902b7'
const HEADER_TRACE = '0af7651916cd43dd8448eb211c80319c'
const HEADER_SPAN = 'b7ad6b7169203331'
const traceparent = (trace: string, span: string, flags = '01') => `00-${trace}-${span}-${flags}`

describe('telemetry settings from the OTEL_* environment', () => {
  const cases: [string, Record<string, string>, ReturnType<typeof telemetrySettings>][] = [
    ['nothing set: off', {}, undefined],
    ['blank endpoint: off', { OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }, undefined],
    [
      'an OTLP endpoint: traces and metrics, http/protobuf (the specification default)',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' },
      {
        traces: { kind: 'otlp', protocol: 'http/protobuf' },
        metrics: { kind: 'otlp', protocol: 'http/protobuf' },
        userAttributes: false,
      },
    ],
    [
      'a traces endpoint only: traces only',
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c/v1/traces' },
      {
        traces: { kind: 'otlp', protocol: 'http/protobuf' },
        metrics: undefined,
        userAttributes: false,
      },
    ],
    [
      'OTEL_TRACES_EXPORTER=none keeps traces off beside an endpoint',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_TRACES_EXPORTER: 'none' },
      {
        traces: undefined,
        metrics: { kind: 'otlp', protocol: 'http/protobuf' },
        userAttributes: false,
      },
    ],
    [
      'an exporter named without an endpoint (the SDK default localhost:4318)',
      { OTEL_TRACES_EXPORTER: 'OTLP', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' },
      {
        traces: { kind: 'otlp', protocol: 'http/json' },
        metrics: undefined,
        userAttributes: false,
      },
    ],
    [
      'the signal protocol wins over the general one',
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/protobuf',
      },
      {
        traces: { kind: 'otlp', protocol: 'http/json' },
        metrics: { kind: 'otlp', protocol: 'http/protobuf' },
        userAttributes: false,
      },
    ],
    [
      'console',
      { OTEL_TRACES_EXPORTER: 'console', MCP_EDGE_OTEL_USER_ATTRIBUTES: 'TRUE' },
      { traces: { kind: 'console' }, metrics: undefined, userAttributes: true },
    ],
    [
      'OTEL_SDK_DISABLED=true wins, even over variables that would not load',
      {
        OTEL_SDK_DISABLED: 'true',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
        OTEL_TRACES_EXPORTER: 'zipkin',
      },
      undefined,
    ],
  ]
  for (const [name, env, expected] of cases)
    test(name, () => assert.deepEqual(telemetrySettings(env), expected))

  const refused: [string, Record<string, string>, RegExp][] = [
    [
      'grpc (no gRPC exporter is shipped)',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      /OTEL_EXPORTER_OTLP_PROTOCOL: grpc: not supported/,
    ],
    [
      'an exporter the gateway does not ship',
      { OTEL_TRACES_EXPORTER: 'otlp,zipkin' },
      /OTEL_TRACES_EXPORTER: zipkin: not supported/,
    ],
    [
      'prometheus (the gateway serves /metrics itself)',
      { OTEL_METRICS_EXPORTER: 'prometheus' },
      /OTEL_METRICS_EXPORTER/,
    ],
    [
      'a boolean that is not one',
      { OTEL_SDK_DISABLED: 'yes' },
      /OTEL_SDK_DISABLED: yes: true or false/,
    ],
  ]
  for (const [name, env, message] of refused)
    test(`refused at start-up: ${name}`, () => {
      assert.throws(
        () => telemetrySettings(env),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
      )
    })

  // README: a variable the gateway cannot honour stops start-up "with its name": the one set.
  const named: [string, Record<string, string>, string[]][] = [
    [
      'the protocol for both signals, named once',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      ['OTEL_EXPORTER_OTLP_PROTOCOL'],
    ],
    [
      "one signal's own protocol",
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: ' GRPC ' },
      ['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'],
    ],
    [
      "a signal's own protocol wins over the shared one",
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      },
      ['OTEL_EXPORTER_OTLP_PROTOCOL'],
    ],
    [
      'both own protocols wrong, the shared one right',
      {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_METRICS_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/grpc',
      },
      ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'],
    ],
  ]
  for (const [name, env, variables] of named)
    test(`a refused protocol names the variable set: ${name}`, () => {
      assert.throws(
        () => telemetrySettings(env),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError)
          assert.deepEqual(
            err.problems.map((p) => p.path),
            variables,
          )
          return true
        },
      )
    })

  test('every problem at once', () => {
    assert.throws(
      () =>
        telemetrySettings({
          OTEL_TRACES_EXPORTER: 'jaeger',
          OTEL_METRICS_EXPORTER: 'prometheus',
          MCP_EDGE_OTEL_USER_ATTRIBUTES: 'maybe',
        }),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 3,
    )
  })
})

describe('outcomeOf', () => {
  const cases: [string, unknown, ReturnType<typeof outcomeOf>][] = [
    ['a result', { jsonrpc: '2.0', id: 1, result: { content: [] } }, undefined],
    [
      'a JSON-RPC error',
      { jsonrpc: '2.0', id: 1, error: { code: -32602, message: 'Unknown tool' } },
      { code: -32602, message: 'Unknown tool' },
    ],
    [
      'an error without a numeric code',
      { error: { code: 'x' } },
      { errorType: '_OTHER', message: undefined },
    ],
    ['a tool error', { result: { content: [], isError: true } }, { toolError: true }],
    ['not an object', 'nope', undefined],
  ]
  for (const [name, reply, expected] of cases)
    test(name, () => assert.deepEqual(outcomeOf(reply), expected))
})

describe('tracing off', () => {
  test('no environment: the constant off object, every call a no-op', async () => {
    const t = await startTracing(log, {})
    assert.equal(t, TRACING_OFF)
    const http = t.begin(new Headers({ traceparent: traceparent(PARENT_TRACE, PARENT_SPAN) }))
    const span = http.message({ method: 'tools/call', id: 1, server: 'echo' })
    const message = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } }
    // `_meta` passes unchanged: the very same object.
    assert.equal(span.toChild(message), message)
    assert.equal(t.begin(new Headers()), http)
  })

  test('the SDK is never loaded when off, and is when on', async () => {
    // A fresh process: what a gateway that never traces has loaded.
    const script = `
      import { createRequire } from 'node:module'
      import { pino } from 'pino'
      const { startTracing } = await import(${JSON.stringify(new URL('../../gateway/observability/tracing.js', import.meta.url).href)})
      const t = await startTracing(pino({ level: 'silent' }), JSON.parse(process.argv[1]))
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => /@opentelemetry[\\\\/](sdk-|exporter-|resources|core)/.test(p))
      await t.close()
      console.log(JSON.stringify({ on: t.on, loaded: loaded.length }))
    `
    const run = async (env: Record<string, string>) => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--input-type=module', '-e', script, JSON.stringify(env)],
        { cwd: new URL('../../', import.meta.url).pathname },
      )
      return JSON.parse(stdout.trim().split('\n').pop()!) as { on: boolean; loaded: number }
    }
    assert.deepEqual(await run({}), { on: false, loaded: 0 })
    const on = await run({ OTEL_TRACES_EXPORTER: 'console' })
    assert.equal(on.on, true)
    assert.ok(on.loaded > 0, 'the check sees the SDK when it is loaded')
  })
})

describe('tracing on, exported to a real OTLP/HTTP receiver', () => {
  let receiver: OtlpReceiver
  let tracing: Tracing
  before(async () => {
    receiver = await startOtlpReceiver()
    tracing = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        MCP_EDGE_OTEL_USER_ATTRIBUTES: 'false',
      },
      () => startTracing(log),
    )
  })
  after(async () => {
    await tracing.close()
    await receiver.close()
  })

  const byId = (id: string) => (s: ReceivedSpan) => s.spanId === id

  test('a tools/call: SERVER span under the _meta parent, auth, policy, lease and the CLIENT span', async () => {
    const http = tracing.begin(
      new Headers({ traceparent: traceparent(HEADER_TRACE, HEADER_SPAN) }),
      '10.0.0.9',
    )
    http.step('auth').end()
    // The server listed the tool: the operation metric may carry its name.
    tracing.listed('echo', 'tools/list', { tools: [{ name: 'echo' }] })
    const params = {
      name: 'echo',
      arguments: { text: 'hi' },
      _meta: {
        traceparent: traceparent(PARENT_TRACE, PARENT_SPAN),
        tracestate: 'rojo=00f067aa0ba902b7',
        progressToken: 7,
      },
    }
    const span = http.message({
      method: 'tools/call',
      id: 42,
      params,
      server: 'echo',
      sessionId: 'sess-1',
      protocolVersion: '2025-11-25',
      subject: 'alice',
    })
    const policy = span.step('policy')
    span.decision('allow', 'policies/demo.yaml:12 echo')
    policy.end()
    span.step('lease').end()
    span.take()
    const message = { jsonrpc: '2.0', id: 42, method: 'tools/call', params }
    const sent = span.toChild(message, { id: 'c-42', server: 'echo' })
    assert.notEqual(sent, message)
    assert.deepEqual(message.params._meta.traceparent, traceparent(PARENT_TRACE, PARENT_SPAN))
    const meta = sent.params._meta as Record<string, unknown>
    assert.equal(meta.progressToken, 7, 'the rest of _meta passes unchanged')
    assert.equal(meta.tracestate, 'rojo=00f067aa0ba902b7', 'the parent tracestate is carried on')
    const [, childTrace, childSpan, flags] = String(meta.traceparent).split('-')
    assert.equal(childTrace, PARENT_TRACE)
    assert.equal(flags, '01')
    span.childDone()
    span.end()
    http.done({ code: -1 }) // taken: left alone
    await tracing.flush()

    const server = await receiver.span(
      (s) => s.kind === SPAN_KIND.server && s.name === 'tools/call echo',
    )
    assert.equal(server.traceId, PARENT_TRACE)
    assert.equal(server.parentSpanId, PARENT_SPAN)
    assert.deepEqual(server.links, [{ traceId: HEADER_TRACE, spanId: HEADER_SPAN }])
    assert.deepEqual(server.status, { code: 0 })
    assert.deepEqual(
      {
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': 'echo',
        'gen_ai.operation.name': 'execute_tool',
        'jsonrpc.request.id': '42',
        'mcp.session.id': 'sess-1',
        'mcp.protocol.version': '2025-11-25',
        'network.transport': 'tcp',
        'network.protocol.name': 'http',
        'mcp_edge.server': 'echo',
        'mcp_edge.policy.decision': 'allow',
        'mcp_edge.policy.rule': 'policies/demo.yaml:12 echo',
      },
      server.attributes,
    )
    assert.equal(server.resource['service.name'], 'mcp-edge')
    const client = await receiver.span(byId(childSpan!))
    assert.equal(client.kind, SPAN_KIND.client)
    assert.equal(client.name, 'tools/call echo')
    assert.equal(client.parentSpanId, server.spanId)
    assert.equal(client.attributes['network.transport'], 'pipe')
    assert.equal(client.attributes['jsonrpc.request.id'], 'c-42')
    for (const name of ['auth', 'policy', 'lease']) {
      const step = await receiver.span((s) => s.name === name && s.traceId === PARENT_TRACE)
      assert.equal(step.kind, SPAN_KIND.internal)
      assert.equal(step.parentSpanId, server.spanId, name)
      assert.ok(step.startNs >= server.startNs && step.endNs <= server.endNs, `${name} inside`)
    }
  })

  test('the HTTP traceparent is the parent when _meta has none; a refusal carries its decision', async () => {
    const http = tracing.begin(new Headers({ traceparent: traceparent(HEADER_TRACE, HEADER_SPAN) }))
    const span = http.message({
      method: 'tools/call',
      id: 'r1',
      params: { name: 'crash' },
      server: 'fixture',
    })
    span.decision('deny', 'policies/demo.yaml:30 crash')
    http.done({ code: -32001, message: 'denied by policy' })
    await tracing.flush()
    const server = await receiver.span((s) => s.attributes['jsonrpc.request.id'] === 'r1')
    assert.equal(server.traceId, HEADER_TRACE)
    assert.equal(server.parentSpanId, HEADER_SPAN)
    assert.deepEqual(server.links, [])
    assert.equal(server.attributes['mcp_edge.policy.decision'], 'deny')
    assert.equal(server.attributes['error.type'], '-32001')
    assert.equal(server.attributes['rpc.response.status_code'], '-32001')
    assert.deepEqual(server.status, { code: 2, message: 'denied by policy' })
  })

  test('a tool error is tool_error; a prompt names its span; a resource URI is no part of the name', async () => {
    const http = tracing.begin(new Headers())
    const tool = http.message({
      method: 'tools/call',
      id: 't',
      params: { name: 'boom' },
      server: 's',
    })
    const prompt = http.message({
      method: 'prompts/get',
      id: 'p',
      params: { name: 'greet' },
      server: 's',
    })
    const read = http.message({
      method: 'resources/read',
      id: 'u',
      params: { uri: 'file:///a' },
      server: 's',
    })
    tool.end(outcomeOf({ result: { isError: true } }))
    prompt.end()
    read.end()
    await tracing.flush()
    const t = await receiver.span((s) => s.attributes['jsonrpc.request.id'] === 't')
    assert.equal(t.attributes['error.type'], 'tool_error')
    assert.equal(t.status.code, 2)
    const p = await receiver.span((s) => s.attributes['jsonrpc.request.id'] === 'p')
    assert.equal(p.name, 'prompts/get greet')
    assert.equal(p.attributes['gen_ai.prompt.name'], 'greet')
    const r = await receiver.span((s) => s.attributes['jsonrpc.request.id'] === 'u')
    assert.equal(r.name, 'resources/read')
    assert.equal(r.attributes['mcp.resource.uri'], 'file:///a')
    assert.equal(p.parentSpanId, undefined, 'no context anywhere: a root span')
  })

  const hostile: [string, Headers, Record<string, unknown> | undefined][] = [
    ['malformed', new Headers({ traceparent: 'not-a-traceparent' }), undefined],
    [
      'all-zero trace id',
      new Headers({ traceparent: traceparent('0'.repeat(32), HEADER_SPAN) }),
      undefined,
    ],
    [
      'all-zero span id',
      new Headers({ traceparent: traceparent(HEADER_TRACE, '0'.repeat(16)) }),
      undefined,
    ],
    ['version ff', new Headers({ traceparent: `ff-${HEADER_TRACE}-${HEADER_SPAN}-01` }), undefined],
    [
      'upper-case hex',
      new Headers({ traceparent: traceparent(HEADER_TRACE.toUpperCase(), HEADER_SPAN) }),
      undefined,
    ],
    [
      'version 00 with extra fields',
      new Headers({ traceparent: `${traceparent(HEADER_TRACE, HEADER_SPAN)}-x` }),
      undefined,
    ],
    [
      'huge',
      // A later version may carry more fields (W3C §3.2.4): valid, but past the length bound.
      new Headers({ traceparent: `01-${HEADER_TRACE}-${HEADER_SPAN}-01-${'a'.repeat(600)}` }),
      undefined,
    ],
    [
      'duplicated header',
      (() => {
        const h = new Headers()
        h.append('traceparent', traceparent(HEADER_TRACE, HEADER_SPAN))
        h.append('traceparent', traceparent(PARENT_TRACE, PARENT_SPAN))
        return h
      })(),
      undefined,
    ],
    ['a number in _meta', new Headers(), { traceparent: 42 }],
    ['an object in _meta', new Headers(), { traceparent: { toString: 'x' } }],
    ['an array in _meta', new Headers(), { traceparent: [traceparent(PARENT_TRACE, PARENT_SPAN)] }],
    [
      'huge in _meta',
      new Headers(),
      { traceparent: `01-${PARENT_TRACE}-${PARENT_SPAN}-01-${'a'.repeat(600)}` },
    ],
    [
      'an inherited key in _meta',
      new Headers(),
      Object.create({ traceparent: traceparent(PARENT_TRACE, PARENT_SPAN) }),
    ],
  ]
  for (const [name, headers, meta] of hostile)
    test(`a hostile traceparent is ignored: ${name}`, async () => {
      const id = `hostile ${name}`
      const http = tracing.begin(headers)
      const span = http.message({
        method: 'ping',
        id,
        params: meta === undefined ? undefined : { _meta: meta },
        server: 's',
      })
      const sent = span.toChild({ jsonrpc: '2.0', id, method: 'ping', params: { _meta: meta } })
      span.end()
      await tracing.flush()
      const s = await receiver.span(
        (x) => x.kind === SPAN_KIND.server && x.attributes['jsonrpc.request.id'] === id,
      )
      assert.equal(s.parentSpanId, undefined)
      assert.notEqual(s.traceId, HEADER_TRACE)
      assert.notEqual(s.traceId, PARENT_TRACE)
      assert.match(s.traceId, /^[0-9a-f]{32}$/)
      assert.notEqual(s.traceId, '0'.repeat(32))
      // The child gets the gateway's own, valid context in place of the hostile value.
      assert.equal(
        (sent.params._meta as Record<string, unknown>).traceparent,
        traceparent(
          s.traceId,
          (await receiver.span((x) => x.kind === SPAN_KIND.client && x.traceId === s.traceId))
            .spanId,
        ),
      )
    })

  test("metrics: mcp.server.operation.duration with the conventions' buckets", async () => {
    await tracing.flush()
    const points = receiver.points.filter((p) => p.metric === 'mcp.server.operation.duration')
    assert.ok(points.length > 0)
    assert.equal(points[0]!.unit, 's')
    assert.deepEqual(
      points[0]!.bounds,
      [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    )
    const denied = points.find((p) => p.attributes['error.type'] === '-32001')
    assert.ok(denied)
    assert.equal(denied.attributes['gen_ai.tool.name'], undefined, 'a refused name opens no series')
    const echo = points.find((p) => p.attributes['gen_ai.tool.name'] === 'echo')
    assert.ok(echo, 'an allowed, answered tool keeps its name')
    assert.equal(echo.attributes['mcp.method.name'], 'tools/call')
    assert.equal(echo.attributes['jsonrpc.request.id'], undefined, 'no per-request attribute')
    tracing.sessionEnded({ durationMs: 1500, protocolVersion: '2025-11-25' })
    await tracing.flush()
    const session = receiver.points.find((p) => p.metric === 'mcp.server.session.duration')
    assert.ok(session)
    assert.equal(session.sum, 1.5)
    assert.equal(session.attributes['mcp.protocol.version'], '2025-11-25')
  })
})

describe('sampling, protobuf, resource and user attributes', () => {
  let receiver: OtlpReceiver
  before(async () => {
    receiver = await startOtlpReceiver()
  })
  after(() => receiver.close())

  test('unsampled (always_off): nothing exported, the context still flows to the child with flags 00', async () => {
    const t = await withEnv(
      {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_TRACES_SAMPLER: 'always_off',
      },
      () => startTracing(log),
    )
    const http = t.begin(new Headers())
    http.step('auth').end()
    const span = http.message({
      method: 'tools/call',
      id: 1,
      params: { name: 'echo' },
      server: 'echo',
    })
    span.step('policy').end()
    const sent = span.toChild({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo' },
    })
    span.end()
    await t.close()
    const meta = (sent.params as { _meta?: Record<string, unknown> })._meta
    assert.match(String(meta?.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
    assert.equal(receiver.spans.length, 0)
    assert.equal(receiver.deliveries.length, 0)
  })

  test('http/protobuf (the default protocol): the span reaches the receiver as protobuf', async () => {
    const t = await withEnv(
      { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_METRICS_EXPORTER: 'none' },
      () => startTracing(log),
    )
    const http = t.begin(new Headers({ traceparent: traceparent(HEADER_TRACE, HEADER_SPAN) }))
    http.message({ method: 'tools/list', id: 1, server: 'echo' })
    http.done()
    await t.close()
    const delivery = receiver.deliveries.find((d) => d.path === '/v1/traces')
    assert.ok(delivery)
    assert.equal(delivery.contentType, 'application/x-protobuf')
    assert.ok(delivery.body.includes(Buffer.from(HEADER_TRACE, 'hex')), 'the trace id, in binary')
    assert.ok(delivery.body.includes(Buffer.from('tools/list')))
  })

  test('a metric export interval below the default timeout starts (the timeout follows it)', async () => {
    const t = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_METRIC_EXPORT_INTERVAL: '5000',
      },
      () => startTracing(log),
    )
    assert.equal(t.on, true)
    await t.close()
  })

  test('OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; user attributes only when turned on', async () => {
    const t = await withEnv(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'edge-eu',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod',
        MCP_EDGE_OTEL_USER_ATTRIBUTES: 'true',
      },
      () => startTracing(log),
    )
    const http = t.begin(new Headers(), '192.0.2.7')
    http.message({ method: 'tools/list', id: 'user', server: 'echo', subject: 'alice' })
    http.done()
    await t.close()
    const s = await receiver.span((x) => x.attributes['jsonrpc.request.id'] === 'user')
    assert.equal(s.resource['service.name'], 'edge-eu')
    assert.equal(s.resource['deployment.environment.name'], 'prod')
    assert.equal(s.attributes['user.id'], 'alice')
    assert.equal(s.attributes['client.address'], '192.0.2.7')
  })
})
