// Stop 25: an outsider's review of what changed since stop 24 (probe paths and the host guard,
// request timeouts on one timer, sessionless lanes given back after the answer, the warm pool
// spawning one per turn). Each finding is a failing test first (real gateway, real processes,
// real tokens), then the fix:
// - a sessionless call that ended without the process's answer (the client went, or the
//   request timed out) gave its lane back at once, while the process, told only
//   `notifications/cancelled` (which a server may ignore), still ran it: the next request of
//   the user on that lane (another app of theirs, say) got the abandoned call's progress and
//   log notifications as its own;
// - a session's request waiting at the credential gate (its process being replaced after the
//   user's secret changed) that the client cancelled, then sent again under the same id (free
//   once cancelled, as JSON-RPC allows), was forwarded all the same when the gate let it go:
//   it took the new request's in-flight entry, so the cancelled call ran at the server and its
//   result answered the new request (which then ran too, its answer dropped), and its timeout
//   was left armed for whatever request held that id later;
// - at an aggregating endpoint, a request the client cancelled while it waited for a process
//   (the user's lanes of the server busy) or at the credential gate was not cancelled: the
//   cancel found no call yet and was dropped, and the call ran once a lane freed.
// And pins of what held: 43 raw spellings of a probe target (dot segments, encodings, case,
// `;`, `?`/`#`, absolute form, backslash, NUL, 70 kB) with an IP-literal Host reach /healthz or
// nothing; hostile sessionless `_meta` (`__proto__`, `constructor`, wrong types) declares nothing.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const fixture = join(SERVERS_DIR, 'fixture.js')
const record = join(mkdtempSync(join(tmpdir(), 'mcp-edge-stop25-')), 'vault.jsonl')
const erecord = join(mkdtempSync(join(tmpdir(), 'mcp-edge-stop25-')), 'efix.jsonl')
const SERVERS = {
  efix: {
    command: process.execPath,
    args: [fixture],
    maxSessionsPerSubject: 1,
    env: { FIXTURE_RECORD_FILE: erecord },
  },
  lanes: { command: process.execPath, args: [fixture], pool: { min: 0 } },
  vault: {
    command: process.execPath,
    args: [fixture],
    credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
    env: { FIXTURE_RECORD_FILE: record },
  },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
  .join('')}`
const LOG_LEVEL = 'io.modelcontextprotocol/logLevel'

describe('stop 25: a lane is not handed on while the process still runs an abandoned call', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: SERVERS,
      policy: POLICY,
      config: { endpoints: { agg: { servers: ['efix'] } } },
    })
  })
  after(() => stack.close())

  it('what held: hostile _meta (prototype keys, wrong types) declares nothing and pollutes nothing', async () => {
    const token = await stack.token('alice', { server: 'lanes' })
    const V = '"io.modelcontextprotocol/protocolVersion":"2026-07-28"'
    const C = '"io.modelcontextprotocol/clientCapabilities"'
    const send = async (meta: string, name = 'sample', args = '{"prompt":"x"}') => {
      const res = await request(stack.local('lanes'), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${token}`,
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': name,
        },
        body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${name}","arguments":${args},"_meta":{${meta}}}}`,
      })
      return { status: res.statusCode, json: (await res.body.json()) as any }
    }
    // A capability or a progress token behind __proto__ is no declaration: the server's
    // sampling request is refused as undeclared.
    for (const meta of [
      `${V},${C}:{"__proto__":{"sampling":{}}}`,
      `${V},${C}:{},"__proto__":{"progressToken":"p","${'io.modelcontextprotocol/clientCapabilities'}":{"sampling":{}}}`,
      `${V},${C}:{},"constructor":{"prototype":{"sampling":{}}}`,
    ]) {
      const r = await send(meta)
      assert.equal(r.status, 400, JSON.stringify(r.json))
      assert.equal(r.json.error.code, -32021, JSON.stringify(r.json))
    }
    // Wrong types are refused before any process is taken.
    for (const meta of [
      `${V},${C}:[]`,
      `${V},${C}:{"sampling":"yes"}`,
      `"io.modelcontextprotocol/protocolVersion":["2026-07-28"],${C}:{}`,
    ]) {
      const r = await send(meta)
      assert.equal(r.status, 400, JSON.stringify(r.json))
      assert.equal(r.json.error.code, -32602, JSON.stringify(r.json))
    }
    const probe = {} as Record<string, unknown>
    assert.equal(probe.sampling, undefined)
    assert.equal(probe.progressToken, undefined)
  })

  it('an endpoint request cancelled while it waits for a process never runs', async () => {
    const url = `${stack.url}/mcp/agg`
    const token = await stack.token('alice', { resource: url })
    const base = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    }
    const post = (body: unknown, extra: Record<string, string> = {}) =>
      request(url, { method: 'POST', headers: { ...base, ...extra }, body: JSON.stringify(body) })
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'stop25', version: '0' },
      },
    })
    assert.equal(init.statusCode, 200)
    await init.body.text()
    const h = {
      'mcp-session-id': init.headers['mcp-session-id'] as string,
      'mcp-protocol-version': '2025-11-25',
    }
    await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).body.text()
    const recorded = () =>
      existsSync(erecord)
        ? readFileSync(erecord, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { method?: string; params?: any })
        : []
    const call = (id: number, name: string, args: Record<string, unknown>) =>
      post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, h)
    const cancel = async (requestId: number) =>
      (
        await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } }, h)
      ).body.text()
    // The user's one process of efix (maxSessionsPerSubject 1) is busy.
    const busy = await call(1, 'efix_gate', { name: 'busy' })
    await waitFor(() => recorded().some((m) => m.params?.name === 'gate'))
    const waiting = await call(2, 'efix_echo_args', { session: 7, i: 7 })
    await waitFor(async () => {
      const text = await (await request(`${stack.url}/metrics`)).body.text()
      return /^mcp_edge_lane_waiters\{server="efix"\} 1$/m.test(text)
    }, 'the request waits for a process')
    await cancel(2)
    await cancel(1)
    await Promise.all([busy.body.text(), waiting.body.text()])
    // A later request waits behind anything still waiting: once answered, 2 ran or never will.
    const later = await call(3, 'efix_echo_args', { session: 8, i: 8 })
    assert.match(await later.body.text(), /session\\":8/)
    const ran = recorded()
      .filter((m) => m.method === 'tools/call' && m.params?.name === 'echo_args')
      .map((m) => m.params.arguments.session)
    assert.deepEqual(ran, [8], 'the cancelled request reached the server')
  })

  it('a request cancelled at the credential gate and sent again under its id runs once, as sent again', async () => {
    const owner = { iss: stack.idp.issuer, sub: 'alice' }
    const secrets = stack.gateway.secrets!
    await secrets.set(owner, 'vault_token', 'vault-v1')
    const token = await stack.token('alice', { server: 'vault' })
    const base = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    }
    // Answers once its headers came: a 2025-11-25 stream is primed at once, its request in flight.
    const post = (body: unknown, extra: Record<string, string> = {}) =>
      request(stack.local('vault'), {
        method: 'POST',
        headers: { ...base, ...extra },
        body: JSON.stringify(body),
      })
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'stop25', version: '0' },
      },
    })
    assert.equal(init.statusCode, 200)
    await init.body.text()
    const sid = init.headers['mcp-session-id'] as string
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }
    await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h)).body.text()
    const recorded = () =>
      existsSync(record)
        ? readFileSync(record, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { id?: unknown; method?: string; params?: any })
        : []
    const call = (id: number, name: string, args: Record<string, unknown>) =>
      post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, h)
    const cancel = async (requestId: number) =>
      (
        await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } }, h)
      ).body.text()
    // A call in flight at the process: a replacement waits for it to end.
    const busy = await call(1, 'gate', { name: 'busy' })
    await waitFor(() => recorded().some((m) => m.id === 1))
    // The user's secret changes: the next call waits at the gate for a new process.
    await secrets.set(owner, 'vault_token', 'vault-v2')
    const old = await call(5, 'echo_args', { session: 1, i: 1 })
    await cancel(5)
    const again = await call(5, 'echo_args', { session: 2, i: 2 })
    // The call in flight ends (cancelled): the process is replaced, the gate lets go.
    await cancel(1)
    await Promise.all([busy.body.text(), old.body.text()])
    const text = await again.body.text()
    const answers = sseData(text).map((d) => JSON.parse(d) as { id?: unknown; result?: any })
    const answer = answers.find((m) => m.id === 5)
    assert.equal(answer?.result?.content?.[0]?.text, JSON.stringify({ session: 2, i: 2 }), text)
    const calls = recorded().filter((m) => m.method === 'tools/call' && m.id === 5)
    assert.deepEqual(
      calls.map((m) => m.params.arguments),
      [{ session: 2, i: 2 }],
      'the cancelled call never reached the server',
    )
  })

  it("another app of the user does not get a call's progress and logs that its client left", async () => {
    const token = await stack.token('alice', { server: 'lanes' })
    // App A: a call deaf to cancellation, its progress and logs asked for; A leaves mid-call.
    const ac = new AbortController()
    const first = await request(stack.local('lanes'), {
      ...modernToolCall(
        token,
        'linger',
        { name: 'g' },
        { id: 1, meta: { progressToken: 'p', [LOG_LEVEL]: 'debug' } },
      ),
      signal: ac.signal,
    })
    assert.equal(first.headers['content-type'], 'text/event-stream')
    // It runs at the process (its first progress came), then the client goes.
    let seen = ''
    await new Promise<void>((resolve, reject) => {
      first.body.on('data', (chunk: Buffer) => {
        seen += chunk.toString()
        if (seen.includes('waiting at g')) resolve()
      })
      first.body.on('error', () => {})
      first.body.on('end', () => reject(new Error(`ended early: ${seen}`)))
    })
    ac.abort()
    await waitFor(() => stack.audit().find((e) => e.name === 'linger' && e.outcome === 'cancelled'))
    // App B, the same user: the same progress token (clients count from 0 or 1), logs asked.
    const res = await request(
      stack.local('lanes'),
      modernToolCall(
        token,
        'open_gate',
        { name: 'g', settle: true },
        { id: 1, meta: { progressToken: 'p', [LOG_LEVEL]: 'debug' } },
      ),
    )
    const text = await res.body.text()
    const messages = sseData(text).map((d) => JSON.parse(d) as Record<string, unknown>)
    const foreign = messages.filter((m) => JSON.stringify(m).includes('after g'))
    assert.deepEqual(foreign, [], `B's stream carried A's notifications: ${text}`)
    assert.ok(text.includes('opened g'), text)
  })
})

/** One raw request on its own socket (undici would normalize the target): the whole answer. */
function raw(url: string, target: string, host: string, token: string): Promise<string> {
  const { port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1')
    let out = ''
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')))
    socket.on('close', () => resolve(out))
    socket.on('error', () => resolve(out))
    socket.write(
      `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n` +
        'Accept: application/json, text/event-stream\r\nConnection: close\r\n\r\n',
      'latin1',
    )
  })
}

describe('stop 25, what held: a probe path lets an IP-literal Host reach the probe only', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({})
  })
  after(() => stack.close())

  it('43 spellings of a target, raw on a socket, with an IP or a foreign Host', async () => {
    const token = await stack.token('alice', { server: 'echo' })
    // What the router takes for /healthz itself: the probe, nothing else.
    const probe = [
      '/healthz',
      '/healthz?x',
      '/healthz#x',
      '/./healthz',
      '/%68ealthz',
      '/healthz?/../mcp/echo',
    ]
    const refused = [
      '/healthz/../mcp/echo',
      '/healthz/%2e%2e/mcp/echo',
      '/healthz/%2E%2E/mcp/echo',
      '/healthz%2f..%2fmcp%2fecho',
      '/healthz%2F..%2Fmcp%2Fecho',
      '//healthz',
      '//healthz/../mcp/echo',
      '/healthz/',
      '/HEALTHZ',
      '/Healthz',
      '/healthz;x',
      '/metrics;x',
      '/healthz/.',
      '/readyz/..',
      '/metrics/../whoami',
      '/metrics/..%2fwhoami',
      '/healthz/../.well-known/oauth-protected-resource/mcp/echo',
      '/healthz/../account/api/secrets',
      '/healthz/../authorize',
      '/healthz%3f/../mcp/echo',
      '/healthz%23/../mcp/echo',
      '/healthz%00',
      '/healthz%20',
      'http://evil.example/healthz',
      'http://10.1.2.3/healthz/../mcp/echo',
      'http://10.1.2.3/mcp/echo',
      'https://10.1.2.3/mcp/echo',
      '/whoami',
      '/mcp/echo',
      '/.well-known/oauth-protected-resource/mcp/echo',
      '/.well-known/oauth-authorization-server',
      '/account/api/secrets',
      '/healthz\\..\\mcp\\echo',
      '/healthz\u0000',
      '/healthz\t',
      '*',
      `/${'a'.repeat(70_000)}/../healthz`,
    ]
    for (const host of ['10.1.2.3', '[fd00::1]:80', '10.1.2.3:8080']) {
      for (const target of probe) {
        const out = await raw(stack.url, target, host, token)
        assert.match(out, /^HTTP\/1\.1 200 /, `${target} (Host ${host}): ${out.slice(0, 200)}`)
        assert.ok(out.endsWith('{"status":"ok"}'), `${target}: ${out.slice(0, 300)}`)
      }
      for (const target of refused) {
        const out = await raw(stack.url, target, host, token)
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(out)?.[1])
        assert.ok(
          status === 403 || status === 400 || status === 431,
          `${target.slice(0, 80)} (Host ${host}): ${out.slice(0, 200)}`,
        )
        if (status === 403) assert.match(out, /host not allowed/)
      }
    }
    // A foreign name is refused even at the probe (only IP addresses pass there).
    for (const target of probe) {
      const out = await raw(stack.url, target, 'evil.example', token)
      assert.match(out, /^HTTP\/1\.1 403 /, target)
    }
    // Nothing of it reached a server process or an audited route.
    assert.deepEqual(stack.audit(), [])
  })
})
