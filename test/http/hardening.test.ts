// Resource exhaustion and leaks found by an adversarial pass, each closed and proved with real
// components: HEAD must not open anything, one subject cannot take the gateway, a failed
// initialize leaves no session, batches and stalled bodies are bounded on every transport, and
// /metrics can be kept off the public listener.
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { request } from 'undici'
import { validateConfig } from '../../gateway/config/load.js'
import { startGateway } from '../../gateway/gateway.js'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'
const node = process.execPath
const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'h', version: '0' },
  },
}
// A process that answers every request with an error: its initialize fails.
const REFUSER =
  "process.stdin.on('data', (d) => { for (const l of String(d).split('\\n')) { if (!l) continue; const m = JSON.parse(l); if (m.id !== undefined) process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message: 'refusing everything' } }) + '\\n') } })"

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: {
      plain: { command: node, args: [join(SERVERS_DIR, 'echo.js')] },
      refuser: { command: node, args: ['-e', REFUSER] },
      refuserjson: { command: node, args: ['-e', REFUSER], responses: 'json' },
    },
    policy: `${TEST_POLICY}${['plain', 'refuser', 'refuserjson'].map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`).join('')}`,
  })
})
after(() => stack.close())

async function post(
  path: string,
  token: string | undefined,
  body: unknown,
  extra: Record<string, string> = {},
) {
  const res = await request(`${stack.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...extra,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.body.text()
  const data = sseData(text)
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: data.length
      ? JSON.parse(data.at(-1)!)
      : text.startsWith('{')
        ? JSON.parse(text)
        : undefined,
  }
}

const sessionsOf = () => stack.gateway.registry.size

describe('HEAD opens nothing', () => {
  it('70 HEADs of /sse/<server> with a valid token: 405, no session, no process', async () => {
    const token = await stack.token('alice', { server: 'plain' })
    const before = sessionsOf()
    for (let i = 0; i < 70; i++) {
      const res = await request(`${stack.url}/sse/plain`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      })
      assert.equal(res.statusCode, 405)
      assert.equal(res.headers.allow, 'GET')
      await res.body.dump()
    }
    assert.equal(sessionsOf(), before)
    const logs = stack.logLines.filter(
      (l) => l.includes('"session opened"') && l.includes('"server":"plain"'),
    )
    assert.equal(logs.length, 0)
  })

  it('HEAD is refused wherever GET would act, and answered where GET only reads', async () => {
    const cases: [string, number][] = [
      ['/sse/plain', 405],
      ['/mcp/plain', 405],
      ['/messages/plain?sessionId=x', 405],
      ['/nowhere', 405],
      ['/healthz', 200],
      ['/readyz', 200],
      ['/metrics', 200],
      ['/.well-known/oauth-protected-resource/mcp/plain', 200],
    ]
    for (const [path, status] of cases) {
      const res = await request(`${stack.url}${path}`, { method: 'HEAD' })
      assert.equal(res.statusCode, status, path)
      await res.body.dump()
    }
  })
})

describe('one subject cannot take the gateway', () => {
  it('by default a subject holds at most 8 sessions of a server, even when it starts 30 at once; another subject still gets in', async () => {
    const alice = await stack.token('alice', { server: 'plain' })
    const results = await Promise.all(
      Array.from({ length: 30 }, () => post('/mcp/plain', alice, INIT)),
    )
    // Each new session made room by reclaiming an idle one of alice's, or was refused: never more than 8 live.
    const live = results
      .filter((r) => r.status === 200)
      .map((r) => r.headers['mcp-session-id'] as string)
    let alive = 0
    for (const sid of live) {
      const ping = await post(
        '/mcp/plain',
        alice,
        { jsonrpc: '2.0', id: 2, method: 'ping' },
        { 'mcp-session-id': sid },
      )
      if (ping.status === 200) alive++
      else assert.equal(ping.status, 404)
    }
    assert.ok(alive <= 8, `${alive} sessions of one subject are live`)
    for (const r of results.filter((x) => x.status !== 200)) assert.equal(r.status, 429, r.text)
    const bob = await post('/mcp/plain', await stack.token('bob', { server: 'plain' }), INIT)
    assert.equal(bob.status, 200, bob.text)
  })
})

describe('a failed initialize leaves nothing behind', () => {
  for (const server of ['refuser', 'refuserjson']) {
    it(`${server}: the server's error comes back with the request id and no Mcp-Session-Id; the process ends`, async () => {
      const token = await stack.token('alice', { server })
      const before = sessionsOf()
      const res = await post(`/mcp/${server}`, token, INIT)
      assert.equal(res.status, 200, res.text)
      assert.equal(res.headers['mcp-session-id'], undefined)
      assert.deepEqual(res.json, {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32603, message: 'refusing everything' },
      })
      assert.equal(sessionsOf(), before)
    })
  }

  it('a body nested 100,000 deep is 400 -32600 before any session or process', async () => {
    const token = await stack.token('dev', { server: 'plain' })
    const before = sessionsOf()
    const deep = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"0"},"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`
    for (const body of [
      deep,
      `${'['.repeat(65)}${']'.repeat(65)}`,
      `{"a":${'{"a":'.repeat(70)}1${'}'.repeat(70)}}`,
    ]) {
      const res = await post('/mcp/plain', token, body)
      assert.equal(res.status, 400)
      assert.equal(res.json.error.code, -32600)
      assert.match(res.json.error.message, /nests deeper than 64 levels/)
      assert.equal(res.headers['mcp-session-id'], undefined)
    }
    // Brackets inside strings are not nesting.
    const strings = await post('/mcp/plain', token, {
      ...INIT,
      params: { ...INIT.params, clientInfo: { name: '['.repeat(1000), version: '{"\\"' } },
    })
    assert.equal(strings.status, 200, strings.text)
    const del = await request(stack.local('plain'), {
      method: 'DELETE',
      headers: {
        authorization: `Bearer ${token}`,
        'mcp-session-id': strings.headers['mcp-session-id'] as string,
      },
    })
    await del.body.dump()
    assert.equal(sessionsOf(), before)
  })
})

describe('bodies are bounded on every transport', () => {
  const pings = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'ping' }))

  it('Streamable HTTP: a batch of 101 or an empty batch is 400 -32600; 100 pass', async () => {
    const token = await stack.token('alice', { server: 'plain' })
    const init = await post('/mcp/plain', token, {
      ...INIT,
      params: { ...INIT.params, protocolVersion: '2025-03-26' },
    })
    const sid = init.headers['mcp-session-id'] as string
    for (const [body, status] of [
      [pings(101), 400],
      [[], 400],
      [pings(100), 200],
    ] as [unknown[], number][]) {
      const res = await post('/mcp/plain', token, body, { 'mcp-session-id': sid })
      assert.equal(res.status, status, `${body.length}: ${res.text.slice(0, 200)}`)
      if (status === 400) assert.equal(res.json.error.code, -32600)
    }
  })

  it('legacy /messages: a batch of 12,000 is 400 -32600 and nothing reaches the process', async () => {
    const token = await stack.token('alice', { server: 'plain' })
    const stream = await request(`${stack.url}/sse/plain`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    })
    const first = String((await stream.body[Symbol.asyncIterator]().next()).value)
    const endpoint = /data: (.*)\n/.exec(first)![1]!
    try {
      for (const body of [pings(12_000), pings(101), []]) {
        const res = await post(endpoint, token, body)
        assert.equal(res.status, 400, `${body.length}`)
        assert.equal(res.json.error.code, -32600)
      }
      assert.equal((await post(endpoint, token, pings(100))).status, 202)
    } finally {
      stream.body.destroy()
    }
  })

  it('a POST that declares a body and stalls is answered 408 and closed after bodyTimeout', async () => {
    // A short bodyTimeout on a gateway of its own: every body sent to the shared one (the batch
    // of 12,000 is half a megabyte) would otherwise race 300 ms on a busy machine.
    const stalled = await startStack({ config: { limits: { bodyTimeout: 300 } } })
    try {
      const token = await stalled.token('alice', { server: 'echo' })
      const { port } = new URL(stalled.url)
      const socket = connect(Number(port), '127.0.0.1')
      const answer = new Promise<string>((resolve) => {
        let text = ''
        socket.on('data', (d) => (text += String(d)))
        socket.on('close', () => resolve(text))
      })
      socket.write(
        `POST /mcp/echo HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\naccept: ${ACCEPT}\r\nauthorization: Bearer ${token}\r\ncontent-length: 1000\r\n\r\n{"jsonrpc":`,
      )
      const text = await answer
      assert.match(text, /^HTTP\/1\.1 408 /)
      assert.match(text, /connection: close/i)
      assert.match(text, /did not arrive within 300 ms/)
    } finally {
      await stalled.close()
    }
  })
})

describe('/metrics off the public listener', () => {
  it('metrics.listen: the main listener answers 404, the metrics listener serves them (and checks Host)', async () => {
    const config = validateConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        metrics: { listen: { host: '127.0.0.1', port: 0 } },
        auth: { issuer: stack.idp.issuer },
        servers: { echo: { command: node, args: [join(SERVERS_DIR, 'echo.js')] } },
      },
      { file: 'test', baseDir: '/' },
    )
    const gw = await startGateway(config, { log: pino({ level: 'silent' }) })
    try {
      const main = await request(`${gw.url}/metrics`)
      assert.equal(main.statusCode, 404)
      await main.body.dump()
      assert.notEqual(gw.metricsUrl, `${gw.url}/metrics`)
      const own = await request(gw.metricsUrl)
      assert.equal(own.statusCode, 200)
      assert.match(await own.body.text(), /mcp_edge_sessions /)
      const rebound = await request(gw.metricsUrl, { headers: { host: 'evil.example' } })
      assert.equal(rebound.statusCode, 403)
      await rebound.body.dump()
      const other = await request(gw.metricsUrl.replace('/metrics', '/healthz'))
      assert.equal(other.statusCode, 404)
      await other.body.dump()
    } finally {
      await gw.close()
    }
  })

  it('metrics.allowFrom: a peer outside the list gets 403; one inside gets the metrics', async () => {
    for (const [allowFrom, status] of [
      [['10.0.0.0/8'], 403],
      [['127.0.0.0/8', '::1'], 200],
    ] as [string[], number][]) {
      const config = validateConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          metrics: { allowFrom },
          auth: { issuer: stack.idp.issuer },
          servers: { echo: { command: node, args: [join(SERVERS_DIR, 'echo.js')] } },
        },
        { file: 'test', baseDir: '/' },
      )
      const gw = await startGateway(config, { log: pino({ level: 'silent' }) })
      try {
        const res = await request(`${gw.url}/metrics`)
        assert.equal(res.statusCode, status, allowFrom.join())
        await res.body.dump()
      } finally {
        await gw.close()
      }
    }
  })
})
