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
// What held is pinned as "held: …": no client-written value or subject in a /metrics series;
// hostile Origin spellings, two Origin headers and smuggled framing refused before any process;
// a refused or unread body never read as a next request; the legacy endpoint event and session
// ids; a secret deleted on one replica gone on the other (Redis).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { connectAs } from '../helpers/sdk-session.js'
import { NO_REDIS, startRedis, type RedisServer } from '../helpers/redis.js'
import { startOtlpReceiver, withEnv, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { legacyEndpoint } from '../helpers/legacy-endpoint.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ACCEPT = 'application/json, text/event-stream'

/** POSTs `body` as JSON to `path` of the stack. */
const post = (stack: Stack, path: string, body: unknown, headers: Record<string, string>) =>
  postMcp(`${stack.url}${path}`, body, headers)

/** A session-era initialize request asking for `protocolVersion`. */
const initialize = (protocolVersion = '2025-11-25') => ({
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion, capabilities: {}, clientInfo: { name: 'stop41', version: '0' } },
})

/**
 * Writes `raw` on one connection to the stack and ends it; resolves what the gateway answered
 * once the connection closed (every request the gateway read on it answered by then). A close
 * with a body unread may come as a reset that drops the answer: check it only when read.
 */
async function rawExchange(stack: Stack, raw: string): Promise<string> {
  const { Socket } = await import('node:net')
  const port = Number(new URL(stack.url).port)
  return new Promise<string>((resolve) => {
    const socket = new Socket()
    let text = ''
    socket.on('data', (d) => (text += d))
    socket.on('close', () => resolve(text))
    socket.on('error', () => {})
    socket.connect(port, '127.0.0.1', () => socket.end(raw))
  })
}

/** initialize + notifications/initialized; returns the session id. */
async function openSession(
  stack: Stack,
  server: string,
  token: string,
  protocolVersion = '2025-11-25',
): Promise<string> {
  const auth = { authorization: `Bearer ${token}` }
  const init = await post(stack, `/mcp/${server}`, initialize(protocolVersion), auth)
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

describe('held: /metrics grows no series from what a client writes, and names nobody', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack()
  })
  after(() => stack.close())

  it('invented servers, paths, sessions, tools, methods and tokens: every label value is one the gateway chose', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const auth = { authorization: `Bearer ${token}` }
    const HOSTILE = 'zz-hostile'
    // Unknown servers on every transport, with and without a token.
    for (const path of [
      `/mcp/${HOSTILE}-1`,
      `/sse/${HOSTILE}-2`,
      `/messages/${HOSTILE}-3?sessionId=${HOSTILE}`,
      `/mcp/${HOSTILE}%0a4`,
      `/.well-known/oauth-protected-resource/mcp/${HOSTILE}-5`,
    ]) {
      for (const headers of [{}, auth]) {
        const res = await request(`${stack.url}${path}`, {
          method: path.startsWith('/sse') || path.startsWith('/.well') ? 'GET' : 'POST',
          headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
          ...(path.startsWith('/sse') || path.startsWith('/.well') ? {} : { body: '{}' }),
        })
        await res.body.dump()
        assert.ok(res.statusCode >= 400, `${path}: ${res.statusCode}`)
      }
    }
    // Unknown session ids, invented tools and methods on a real session.
    const sid = await openSession(stack, 'fixture', token)
    for (let i = 0; i < 3; i++) {
      const gone = await post(
        stack,
        '/mcp/fixture',
        { jsonrpc: '2.0', id: i, method: 'tools/list' },
        { ...auth, 'mcp-session-id': `${HOSTILE}-session-${i}` },
      )
      assert.equal(gone.status, 404)
      const call = await post(
        stack,
        '/mcp/fixture',
        {
          jsonrpc: '2.0',
          id: 10 + i,
          method: 'tools/call',
          params: { name: `${HOSTILE}-tool-${i}` },
        },
        { ...auth, 'mcp-session-id': sid },
      )
      assert.equal(call.status, 200, call.text)
      const crash = await post(
        stack,
        '/mcp/fixture',
        { jsonrpc: '2.0', id: 20 + i, method: 'tools/call', params: { name: 'crash' } },
        { ...auth, 'mcp-session-id': sid },
      )
      assert.match(crash.text, /-32010/, 'denied by policy')
    }
    // Tokens that fail in every way a client can choose: garbage, forged kid and issuer.
    for (const bad of [
      `${HOSTILE}.x.y`,
      await stack.forge({ sub: HOSTILE, iss: `https://${HOSTILE}.example`, aud: 'x' }),
      await stack.forge({ sub: HOSTILE }, { kid: HOSTILE }),
    ]) {
      const res = await post(
        stack,
        '/mcp/fixture',
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { authorization: `Bearer ${bad}` },
      )
      assert.equal(res.status, 401)
    }
    const scrape = await request(`${stack.url}/metrics`)
    const text = await scrape.body.text()
    assert.equal(scrape.statusCode, 200)
    const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))
    assert.deepEqual(
      series.filter((l) => /hostile|alice|invented/i.test(l)),
      [],
      'no client-written value and no subject in any series',
    )
    assert.ok(!text.includes(token), 'no token')
    const configured = new Set(['echo', 'notes', 'fixture', 'impatient', 'echojson', 'broken'])
    const servers = new Set([...text.matchAll(/server="([^"]*)"/g)].map((m) => m[1]!))
    assert.ok(servers.size > 0, 'decisions are counted by server')
    for (const s of servers) assert.ok(configured.has(s), `server label ${s} is a configured one`)
    const codes = new Set(
      [...text.matchAll(/mcp_edge_auth_failures_total\{code="([^"]*)"/g)].map((m) => m[1]!),
    )
    for (const c of codes) assert.match(c, /^[a-z_]+$/, `auth failure code ${c}`)
    // /readyz says nothing of anyone either.
    const ready = await request(`${stack.url}/readyz`)
    const readyText = await ready.body.text()
    assert.doesNotMatch(readyText, /hostile|alice/i)
  })
})

describe('held: the edge refuses hostile Origin spellings and smuggled framing on every transport, before any process', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({ publicUrl: 'https://mcp.example.com' })
  })
  after(() => stack.close())

  const ORIGINS = [
    'null',
    'https://mcp.example.com.',
    'https://mcp.example.com:444',
    'http://mcp.example.com',
    'https://user@mcp.example.com',
    'https://mcp.example.com.evil.example',
    'https://evil.example/https://mcp.example.com',
    'https://mcp.example.com, https://evil.example',
    'https://evil.example, https://mcp.example.com',
    'https://xn--mcp-example-com.evil',
    'http://127.0.0.1.nip.io',
    'file://',
  ]

  it('Origin: 403 origin not allowed on /mcp, /sse and /messages, with a good token, and no session opens', async () => {
    const token = await stack.token('alice', { server: 'echo' })
    const sessions = stack.gateway.registry.size
    const audited = stack.audit().length
    for (const origin of ORIGINS)
      for (const [method, path] of [
        ['POST', '/mcp/echo'],
        ['GET', '/sse/echo'],
        ['POST', '/messages/echo?sessionId=x'],
        ['OPTIONS', '/mcp/echo'],
      ] as const) {
        const res = await request(`${stack.url}${path}`, {
          method,
          headers: {
            origin,
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: ACCEPT,
          },
          ...(method === 'POST' ? { body: JSON.stringify(initialize()) } : {}),
        })
        const text = await res.body.text()
        assert.equal(res.statusCode, 403, `${method} ${path} Origin ${origin}: ${text}`)
        assert.match(text, /origin not allowed/)
        assert.equal(res.headers['access-control-allow-origin'], undefined)
      }
    assert.equal(stack.gateway.registry.size, sessions, 'no session opened')
    assert.equal(stack.audit().length, audited, 'nothing reached a decision')
  })

  it('two Origin headers, one of them ours, are refused as one joined value', async () => {
    const answer = await rawExchange(
      stack,
      'GET /sse/echo HTTP/1.1\r\nHost: mcp.example.com\r\nOrigin: https://mcp.example.com\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n',
    )
    assert.match(answer, /^HTTP\/1\.1 403 /)
  })

  for (const [what, head] of [
    ['two different Content-Length', 'Content-Length: 2\r\nContent-Length: 40\r\n'],
    ['Content-Length and chunked', 'Content-Length: 40\r\nTransfer-Encoding: chunked\r\n'],
    ['chunked twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'],
    ['a Content-Length with a sign', 'Content-Length: +40\r\n'],
  ] as const)
    it(`${what}: 400 from the parser, nothing read as a request`, async () => {
      const token = await stack.token('alice', { server: 'echo' })
      const sessions = stack.gateway.registry.size
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }).padEnd(40, ' ')
      const answer = await rawExchange(
        stack,
        `POST /mcp/echo HTTP/1.1\r\nHost: mcp.example.com\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: ${ACCEPT}\r\n${head}\r\n${body}`,
      )
      assert.match(answer, /^HTTP\/1\.1 400 /, answer.slice(0, 200))
      assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer: nothing smuggled')
      assert.equal(stack.gateway.registry.size, sessions)
    })
})

describe('held: a body refused or left unread is never read as the next request on the connection', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({ config: { limits: { maxBodyBytes: 1024 } } })
  })
  after(() => stack.close())

  // What a proxy reusing the connection for another client would run, hidden in the body.
  const HIDDEN = 'GET /no-such-path-smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
  const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`

  for (const [what, path, extra, status] of [
    ['/mcp, over the limit', '/mcp/echo', '', 413],
    [
      '/mcp, an unknown session (the body is read first: 413)',
      '/mcp/echo',
      'Mcp-Session-Id: nope\r\n',
      413,
    ],
    [
      '/messages, an unknown session (answered before the body)',
      '/messages/echo?sessionId=x',
      '',
      404,
    ],
  ] as const) {
    it(`${what}: one answer (${status}), the hidden request never runs, declared or chunked`, async () => {
      const token = await stack.token('alice', { server: 'echo' })
      const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: ${ACCEPT}\r\n${extra}`
      const declared = HIDDEN.padStart(1100, ' ')
      for (const raw of [
        `${head}Content-Length: ${declared.length}\r\n\r\n${declared}`,
        `${head}Transfer-Encoding: chunked\r\n\r\n${chunk(' '.repeat(1100))}${chunk(HIDDEN)}0\r\n\r\n`,
      ]) {
        const answer = await rawExchange(stack, raw)
        if (answer !== '') assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), answer)
        assert.ok((answer.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0) <= 1, answer)
      }
      const ran = stack.logLines.filter((l) => l.includes('no-such-path-smuggled'))
      assert.deepEqual(ran, [], 'the hidden request never ran')
    })
  }
})

describe('held: the legacy transport names its own endpoint and finds sessions only for their owner', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      publicUrl: 'https://mcp.example.com/base',
      config: { trustProxy: true, allowedHosts: ['evil.example'] },
    })
  })
  after(() => stack.close())

  const endpointOf = (token: string, headers: Record<string, string> = {}) =>
    legacyEndpoint(stack, 'echo', token, headers)

  it('the endpoint event is publicUrl’s path, whatever Host and X-Forwarded-* say (trustProxy true)', async () => {
    const { endpoint, close } = await endpointOf(await stack.token('alice'), {
      host: 'evil.example',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
      'x-forwarded-prefix': '/evil',
      forwarded: 'host=evil.example;proto=http',
    })
    try {
      assert.match(endpoint, /^\/base\/messages\/echo\?sessionId=[\w.-]+$/)
    } finally {
      await close()
    }
  })

  it("another subject's id, the id on another server, its case changed or cut: 404, nothing reaches the process", async () => {
    const alice = await stack.token('alice')
    const { endpoint, close } = await endpointOf(alice)
    try {
      const id = new URL(endpoint, 'https://x').searchParams.get('sessionId')!
      const audited = () => stack.audit().filter((e) => e.method === 'ping').length
      const before = audited()
      const cases: [string, string][] = [
        [await stack.token('bob'), `/messages/echo?sessionId=${id}`],
        [await stack.token('alice', { server: 'notes' }), `/messages/notes?sessionId=${id}`],
        [alice, `/messages/echo?sessionId=${id.toUpperCase()}`],
        [alice, `/messages/echo?sessionId=${id.slice(0, -1)}`],
        [alice, `/messages/echo?sessionId=${id}%00`],
        [alice, `/messages/echo?sessionId=%20${id}`],
      ]
      for (const [token, path] of cases) {
        const res = await post(
          stack,
          path,
          { jsonrpc: '2.0', id: 1, method: 'ping' },
          {
            authorization: `Bearer ${token}`,
          },
        )
        assert.equal(res.status, 404, `${path}: ${res.text}`)
      }
      assert.equal(audited(), before, 'no ping was relayed')
      // held: its owner's POST is accepted (the refusals above were not the request's fault).
      const ok = await post(
        stack,
        endpoint.replace(/^\/base/, ''),
        { jsonrpc: '2.0', id: 2, method: 'ping' },
        {
          authorization: `Bearer ${alice}`,
        },
      )
      assert.equal(ok.status, 202, ok.text)
      await waitFor(() => audited() === before + 1, 'the owner’s ping is relayed and audited')
    } finally {
      await close()
    }
  })
})

describe('held: a secret deleted on one replica is gone on the other (Redis)', {
  skip: NO_REDIS,
}, () => {
  const URL_VAR = 'MCP_EDGE_TEST_STOP41_REDIS'
  const KEYS_VAR = 'MCP_EDGE_TEST_STOP41_SEALING'
  const VAULT = { VAULT_TOKEN: { secret: 'vault_token' } }
  const POLICY = `${TEST_POLICY}  vault:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`
  const sha = (v: string) => createHash('sha256').update(v).digest('hex')
  let redis: RedisServer
  let a: Stack
  let b: Stack
  before(async () => {
    redis = await startRedis()
    process.env[URL_VAR] = redis.url
    process.env[KEYS_VAR] = JSON.stringify({ k1: randomBytes(32).toString('base64url') })
    const config = {
      store: { kind: 'redis', url: { env: URL_VAR }, keyPrefix: 'stop41:' },
      secrets: { keys: { env: KEYS_VAR }, active: 'k1' },
      credentials: { pollInterval: 20 },
    }
    const servers = {
      vault: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'fixture.js')],
        credentials: VAULT,
      },
    }
    a = await startStack({ policy: POLICY, servers, config, publicUrl: 'https://mcp.example.com' })
    b = await startStack({
      policy: POLICY,
      servers,
      config,
      publicUrl: 'https://mcp.example.com',
      idpOf: a,
    })
  })
  after(async () => {
    await b?.close()
    await a?.close()
    await redis?.close()
    delete process.env[URL_VAR]
    delete process.env[KEYS_VAR]
  })

  const textOf = (result: unknown) =>
    ((result as { content?: { text: string }[] }).content ?? []).map((c) => c.text).join('')

  it('set on A, used on B; deleted on A: B refuses the next call, lists nothing, and its process ends', async () => {
    const alice = { iss: a.idp.issuer, sub: 'alice' }
    await a.gateway.secrets!.set(alice, 'vault_token', 'set-on-a')
    assert.deepEqual(
      (await b.gateway.secrets!.list(alice)).map((x) => x.name),
      ['vault_token'],
    )
    const { client } = await connectAs(b, 'alice', 'vault')
    try {
      const first = JSON.parse(
        textOf(await client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })),
      ) as { pid: number; sha256: string }
      assert.equal(first.sha256, sha('set-on-a'))
      await a.gateway.secrets!.remove(alice, 'vault_token')
      assert.deepEqual(await b.gateway.secrets!.list(alice), [])
      assert.equal(await b.gateway.secrets!.value(alice, 'vault_token'), undefined)
      const refused = await client.callTool({
        name: 'credential',
        arguments: { name: 'VAULT_TOKEN' },
      })
      assert.equal((refused as { isError?: boolean }).isError, true, textOf(refused))
      assert.doesNotMatch(textOf(refused), /set-on-a/)
      await waitFor(() => {
        try {
          process.kill(first.pid, 0)
          return false
        } catch {
          return true
        }
      }, 'the process holding the deleted value exited')
    } finally {
      await client.close()
    }
  })
})
