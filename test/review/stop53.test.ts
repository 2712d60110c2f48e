// stop53: an outsider's attack on fix51 and fix52, each finding a failing test first, then the
// fix; what held is kept here as tests.
// 1. The metrics listener (`metrics.listen`) checked the Host header only: an absolute-form
//    target (`GET http://evil.example/metrics`, RFC 9112 §3.2.2: its authority replaces Host)
//    naming a host not ours was served, where every route of the main listener refuses it.
// 6. The dev IdP's listener (loopback only) answered any Host: a DNS-rebinding page (a name of
//    its own resolving to 127.0.0.1) could read its discovery document (which then named the
//    page's host as the authorization endpoint), register a client and run the passwordless
//    sign-in for the dev user. Its Host (and an absolute-form target) must be a plain loopback
//    host[:port] now, 403 'host not allowed' otherwise, as at the gateway.
// What held, kept as tests:
// 1b. No Host (HTTP/1.0) and two Host headers are refused on both listeners.
// 2. Tool pins: names YAML reads as something else unquoted (null, ~, booleans, numbers,
//    dates, indicators, merge keys, line breaks, BOM, NEL, lone surrogates, a key past YAML's
//    1024-character simple-key limit, __proto__) are written and read back equal.
// 3. A malformed 2026-07-28 request at an endpoint and at a host-routed endpoint is told what
//    is wrong (400 -32600), a member name cut at 64 never inside a surrogate pair's escape,
//    the processes reading nothing; a client's JSON-RPC response or notification with the
//    2026-07-28 header is not taken for a malformed request.
// 4. mcp_edge_sessions: a DELETE by another subject ends nothing, the process of a server
//    session crashing ends its session, each counted once.
// 5. The audit file sink's gathering, written to a FIFO whose reader opens late and reads
//    slowly (a slow disk, writes held out): every line once, in order, none lost.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import pino from 'pino'
import { request } from 'undici'
import { createAuditLog } from '../../gateway/observability/audit.js'
import { pinTool } from '../../gateway/pins/edits.js'
import { loadPins } from '../../gateway/pins/file.js'
import { editPins } from '../../gateway/pins/write.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { rawHttp } from '../helpers/raw-http.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

/** One raw GET of `target` (as written: origin- or absolute-form) with `host` to `url`'s port. */
function rawGet(
  url: string,
  target: string,
  host: string,
): Promise<{ status: number; body: string }> {
  return rawHttp(
    Number(new URL(url).port),
    `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
  )
}

/** One raw POST of `body` (JSON text) to `path` with `host` and `headers` to `url`'s port. */
function rawPost(
  url: string,
  path: string,
  host: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; body: string }> {
  const head = Object.entries(headers)
    .filter(([k]) => !['host', 'content-length'].includes(k.toLowerCase()))
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  const length = Buffer.byteLength(body)
  return rawHttp(
    Number(new URL(url).port),
    `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${head}Content-Length: ${length}\r\nConnection: close\r\n\r\n${body}`,
  )
}

describe('stop53 1: an absolute-form target must name us on the metrics listener too', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      config: {
        allowedHosts: ['mcp.example.com'],
        metrics: { listen: { host: '127.0.0.1', port: 0 } },
      },
    })
  })
  after(() => stack.close())

  const EVIL = ['http://evil.example', 'http://evil.example:80', 'http://127.0.0.1:1@evil.example']
  it('the main listener refuses a target naming another host (held)', async () => {
    for (const origin of EVIL)
      for (const path of [
        '/healthz',
        '/metrics',
        '/.well-known/oauth-protected-resource/mcp/echo',
      ]) {
        const res = await rawGet(stack.url, `${origin}${path}`, new URL(stack.url).host)
        assert.equal(res.status, 403, `${origin}${path}: ${res.status}`)
        assert.match(res.body, /host not allowed/)
      }
  })

  it('no Host (HTTP/1.0) or two Host headers: refused on both listeners (held)', async () => {
    for (const url of [stack.url, stack.gateway.metricsUrl!]) {
      const port = Number(new URL(url).port)
      const host = new URL(url).host
      const none = await rawHttp(port, 'GET /metrics HTTP/1.0\r\n\r\n')
      assert.ok([400, 403].includes(none.status), `${url}: no Host: ${none.status}`)
      for (const [a, b] of [
        [host, 'evil.example'],
        ['evil.example', host],
        [host, host],
      ]) {
        const text = `GET /metrics HTTP/1.1\r\nHost: ${a}\r\nHost: ${b}\r\nConnection: close\r\n\r\n`
        const res = await rawHttp(port, text)
        assert.ok([400, 403].includes(res.status), `${url}: Host ${a}, Host ${b}: ${res.status}`)
        assert.doesNotMatch(res.body, /mcp_edge_/)
      }
    }
  })

  it('the metrics listener refuses it too, 403 host not allowed', async () => {
    const url = stack.gateway.metricsUrl!
    for (const origin of EVIL) {
      const res = await rawGet(url, `${origin}/metrics`, new URL(url).host)
      assert.equal(res.status, 403, `${origin}/metrics: ${res.status}`)
      assert.match(res.body, /host not allowed/)
    }
    // Its own authority, in either form, is served.
    assert.equal((await rawGet(url, '/metrics', new URL(url).host)).status, 200)
    assert.equal(
      (await rawGet(url, `${new URL(url).origin}/metrics`, new URL(url).host)).status,
      200,
    )
    assert.equal((await rawGet(url, 'http://10.0.0.7:9464/metrics', '10.0.0.7')).status, 200)
  })
})

describe('stop53 2: pinned tool names YAML would read as something else round-trip (held)', () => {
  const NAMES = [
    ...['null', '~', 'Null', 'true', 'yes', 'no', 'on', 'off', 'y', '1', '-1', '0x1F', '0o17'],
    ...['1e3', '.inf', '-.inf', '.nan', '-', '?', '? x', '*a', '&a', '!t', '!!str', '%x', '@x'],
    ...['`x', '#x', "'", '"', '- x', ': x', ':', 'a: b', 'a #b', '\uFEFF', '\tx\t', ' x ', '\\'],
    ...['a\nb', 'a\r\nb', 'a\rb', '{', '}', '[', ']', ',', '|', '>', '2001-01-01', '12:30'],
    ...['1_000', '0b1', '=', '<<', '\u0085', '\ud83d', '\udc00x', 'e\u0301', '__proto__'],
    ...['constructor', '...', '---', 'a\u0000b', 'x'.repeat(1025)],
  ]
  const dir = mkdtempSync(join(tmpdir(), 'stop53-pins-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  it('each written (the file re-read and checked before each write) and read back equal', () => {
    const file = join(dir, 'pins.yaml')
    const hash = `sha256:${'a'.repeat(64)}`
    for (const name of NAMES) editPins(file, 10_000_000, (doc) => pinTool(doc, 's', name, hash))
    const tools = loadPins(file, 10_000_000).servers.get('s')!.tools
    assert.equal(tools.size, NAMES.length)
    for (const name of NAMES) assert.equal(tools.get(name), hash, JSON.stringify(name))
  })
})

describe('stop53 3: a malformed 2026-07-28 request at endpoints is told what is wrong (held)', () => {
  const ROUTED = 'tools.example.com'
  let stack: Stack
  before(async () => {
    stack = await startStack({
      config: {
        endpoints: { both: { servers: ['echo', 'fixture'] } },
        hosts: { [ROUTED]: { endpoint: 'both' } },
      },
    })
  })
  after(() => stack.close())
  const seen = () => {
    const file = join(stack.dir, 'fixture-record.jsonl')
    return existsSync(file) ? readFileSync(file, 'utf8') : ''
  }
  /** [where, the Host, the path, the token's resource] */
  const WHERE = (): [string, string, string, string][] => {
    const port = new URL(stack.url).port
    return [
      ['an endpoint', new URL(stack.url).host, '/mcp/both', `${stack.url}/mcp/both`],
      ['a host-routed endpoint', `${ROUTED}:${port}`, '/mcp', `http://${ROUTED}:${port}/mcp`],
    ]
  }
  // [case, what is changed in a valid request, the message's end]
  const CASES: [string, Record<string, unknown>, RegExp][] = [
    ['a null id', { id: null }, /: id must be a string or an integer$/],
    ['a result member', { result: {} }, /: a request has no "result" member/],
    // 63 characters, then a surrogate pair: the cut never leaves half of it escaped alone.
    [
      'a long member name ending in a surrogate pair',
      { [`${'k'.repeat(63)}\u{1F600}tail`]: 1 },
      /: unknown member "k{63}(\\ud83d)?…"$/,
    ],
    ['a control character', { 'a\u0007': 1 }, /: unknown member "a\\u0007"$/],
  ]
  it('400 -32600 naming the member, valid JSON, the process reading nothing', async () => {
    const before = seen()
    for (const [where, host, path, resource] of WHERE()) {
      const token = await stack.token('alice', { resource })
      for (const [what, change, message] of CASES) {
        const r = modernToolCall(token, 'fixture_pid', {})
        const body = JSON.stringify({ ...JSON.parse(r.body), ...change })
        const res = await rawPost(stack.url, path, host, r.headers, body)
        assert.equal(res.status, 400, `${where}, ${what}: ${res.body}`)
        const answer = JSON.parse(res.body.slice(res.body.indexOf('{'))) as {
          error: { code: number; message: string }
        }
        assert.equal(answer.error.code, -32600, `${where}, ${what}`)
        assert.match(answer.error.message, /^Bad Request: not a valid 2026-07-28 JSON-RPC request/)
        assert.match(answer.error.message, message, `${where}, ${what}`)
        assert.doesNotMatch(
          answer.error.message,
          /[\ud800-\udfff]/u,
          `${where}, ${what}: no lone surrogate`,
        )
      }
      // The same request unchanged is answered (the endpoint and the token are right).
      const ok = modernToolCall(token, 'fixture_pid', {})
      const res = await rawPost(stack.url, path, host, ok.headers, ok.body)
      assert.equal(res.status, 200, `${where}: ${res.body}`)
    }
    assert.equal(seen().replace(before, '').includes('"id":null'), false)
  })

  it('a JSON-RPC response or a notification with the 2026-07-28 header is not called malformed', async () => {
    const url = `${stack.url}/mcp/both`
    const token = await stack.token('alice', { resource: url })
    const headers = modernToolCall(token, 'fixture_pid', {}).headers
    for (const body of [
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x' } },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
    ]) {
      const res = await request(url, { method: 'POST', headers, body: JSON.stringify(body) })
      const text = await res.body.text()
      assert.doesNotMatch(text, /not a valid 2026-07-28/, JSON.stringify(body))
    }
  })
})

describe('stop53 4: mcp_edge_sessions ends each session once, every way (held)', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      // The fixture's crash tool is allowed here: a crash is one way a session ends.
      policy: TEST_POLICY.replace('      crash: deny\n', ''),
      config: { endpoints: { both: { servers: ['echo', 'fixture'] } } },
    })
  })
  after(() => stack.close())
  async function gauge(): Promise<{ server: number; endpoint: number }> {
    const text = await (await request(`${stack.url}/metrics`)).body.text()
    const kind = (k: string) =>
      Number(new RegExp(`^mcp_edge_sessions\\{kind="${k}"\\} (\\d+)$`, 'm').exec(text)?.[1])
    return { server: kind('server'), endpoint: kind('endpoint') }
  }
  async function connectAs(user: string, path: string) {
    const url = `${stack.url}/mcp/${path}`
    const token = await stack.token(user, { resource: url })
    const client = new Client({ name: 'stop53', version: '0' })
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    })
    await client.connect(transport)
    return { client, transport, url, token }
  }

  it("another subject's DELETE ends nothing; a crash ends its session; each counted once", async () => {
    const server = await connectAs('alice', 'fixture')
    const endpoint = await connectAs('alice', 'both')
    try {
      assert.deepEqual(await gauge(), { server: 1, endpoint: 1 })
      // Bob deletes Alice's sessions by their ids: refused, nothing ends.
      for (const s of [server, endpoint]) {
        const bob = await stack.token('bob', { resource: s.url })
        const res = await request(s.url, {
          method: 'DELETE',
          headers: {
            authorization: `Bearer ${bob}`,
            'mcp-session-id': s.transport.sessionId!,
            'mcp-protocol-version': '2025-11-25',
          },
        })
        await res.body.dump()
        assert.ok([403, 404].includes(res.statusCode), `DELETE by Bob: ${res.statusCode}`)
      }
      assert.deepEqual(await gauge(), { server: 1, endpoint: 1 })
      // The server session's process crashes: its session ends, counted once.
      await server.client.callTool({ name: 'crash', arguments: {} }).catch(() => undefined)
      await waitFor(async () => (await gauge()).server === 0, 'the crashed session ended')
      assert.deepEqual(await gauge(), { server: 0, endpoint: 1 })
      await endpoint.transport.terminateSession()
      await waitFor(async () => (await gauge()).endpoint === 0, 'the endpoint session ended')
      assert.deepEqual(await gauge(), { server: 0, endpoint: 0 })
    } finally {
      await server.client.close().catch(() => undefined)
      await endpoint.client.close()
    }
  })
})

describe('stop53 5: the audit file sink through a slow FIFO: each line once, in order (held)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stop53-fifo-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  it('20,000 events, half before the reader opens, the rest while writes are out', async () => {
    const fifo = join(dir, 'audit.fifo')
    execFileSync('mkfifo', [fifo])
    const main = pino({ level: 'info' }, { write() {} })
    let lost = 0
    const retry = { next: () => 1_000, reset() {} }
    const audit = createAuditLog(fifo, main, undefined, { retry, lost: (n) => (lost += n) })
    const N = 20_000
    // Names of varied length (up to 300 characters): chunks end anywhere in a line.
    const event = (i: number) => ({
      sub: 'alice',
      iss: 'https://idp.example',
      clientId: 'c',
      server: 's',
      method: 'tools/call',
      name: `t${i}-${'x'.repeat(i % 300)}`,
      decision: 'allow' as const,
      rule: 'r',
      outcome: 'ok',
    })
    // The open of a FIFO for writing waits for its reader: these all wait in the sink.
    for (let i = 0; i < N / 2; i++) audit.record(event(i))
    let text = ''
    const reader = createReadStream(fifo, { encoding: 'utf8', highWaterMark: 512 })
    reader.on('data', (d) => (text += d))
    try {
      for (let i = N / 2; i < N; i++) {
        audit.record(event(i))
        if (i % 1_000 === 0) await new Promise((r) => setImmediate(r))
      }
      await audit.flush()
      await waitFor(() => text.split('\n').length > N, 'every line read')
      const names = text
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { name: string }).name.replace(/-x*$/, ''))
      assert.equal(names.length, N)
      const wrong = names.map((n, i) => (n === `t${i}` ? '' : `${i}: ${n}`)).filter(Boolean)
      assert.deepEqual(wrong.slice(0, 5), [])
      assert.equal(lost, 0)
    } finally {
      audit.close?.()
      reader.destroy()
      // The reader's last read waits for data (the sink keeps its end open): a line ends it.
      writeFileSync(fifo, '\n')
    }
  })
})

describe("stop53 6: the dev IdP's listener takes only a loopback Host", () => {
  let stack: Stack
  before(async () => {
    stack = await startStack()
  })
  after(() => stack.close())
  const PATHS = ['/.well-known/openid-configuration', '/jwks', '/auth?client_id=x', '/reg']
  it('a rebinding name, a hostile form or an absolute-form target naming another host: 403', async () => {
    const issuer = stack.idp.issuer
    const port = new URL(issuer).port
    const cases: [string, string][] = [
      ...['evil.example', `evil.example:${port}`, `127.0.0.1:${port}@evil.example`].map(
        (host): [string, string] => [host, ''],
      ),
      ...[`127.0.0.1:${port}:1`, 'localhost.', `127.0.0.1:${port}, evil.example`].map(
        (host): [string, string] => [host, ''],
      ),
      [`127.0.0.1:${port}`, `http://evil.example:${port}`],
    ]
    for (const [host, origin] of cases)
      for (const path of PATHS) {
        const res = await rawGet(issuer, `${origin}${path}`, host)
        assert.equal(res.status, 403, `${host} ${origin}${path}: ${res.status}`)
        assert.match(res.body, /host not allowed/)
        assert.doesNotMatch(res.body, /evil/)
      }
  })
  it('loopback names are served (any case, any port), the token grant too', async () => {
    const issuer = stack.idp.issuer
    const port = new URL(issuer).port
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      'LOCALHOST',
      '127.0.0.1',
      '[::1]:9',
    ])
      assert.equal(
        (await rawGet(issuer, '/.well-known/openid-configuration', host)).status,
        200,
        host,
      )
    assert.ok((await stack.token('alice')).length > 0)
  })
})
