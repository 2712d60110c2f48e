// nginx/mcp-edge.conf.template rendered and run in front of two gateway replicas sharing one
// IdP and one public https URL: TLS, redirects, headers, metadata, MCP with the SDK client,
// unbuffered event streams, the body cap, session affinity and a replica dying.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { Agent, fetch as undiciFetch, request } from 'undici'
import { freePort } from '../helpers/ports.js'
import {
  ACCEPT,
  call,
  openSession,
  readEvents,
  send,
  type Answer,
  type TimedEvent,
} from './mcp-raw.js'
import { hasNginx, type Nginx, runNginx, selfSignedCert } from './nginx-run.js'
import { startReplicas, type Replicas } from './replicas.js'

// In CI (.ci/run installs nginx) a missing nginx is a failure, not a skip.
const SKIP =
  hasNginx() || process.env.CI === 'true'
    ? false
    : 'nginx is not on PATH (CI installs it in .ci/run): edge tests skipped'
const MAX_BODY = 1024 * 1024
const METADATA = '/.well-known/oauth-protected-resource/mcp/fixture'

describe('nginx in front of two gateway replicas', { skip: SKIP }, () => {
  let dir: string
  let base: string
  let httpBase: string
  let pem: string
  let replicas: Replicas
  let nginx: Nginx | undefined
  let agent: Agent
  const tokens: Record<string, string> = {}
  const url = (server: string) => `${base}/mcp/${server}`
  const bearer = (server: string) => ({ authorization: `Bearer ${tokens[server]}` })
  const get = (path: string, headers: Record<string, string> = {}) =>
    send(agent, `${base}${path}`, { method: 'GET', headers })
  /** A POST to an MCP endpoint with that server's token (and session, if given). */
  const mcp = (server: string, body: unknown, sid?: string) =>
    send(agent, url(server), {
      body,
      headers: { ...bearer(server), ...(sid ? { 'mcp-session-id': sid } : {}) },
    })

  before(async () => {
    if (!hasNginx()) throw new Error('CI=true but nginx is not on PATH: .ci/run installs it')
    dir = mkdtempSync(join(tmpdir(), 'mcp-edge-nginx-'))
    const [httpsPort, httpPort] = [await freePort(), await freePort()]
    base = `https://127.0.0.1:${httpsPort}`
    httpBase = `http://127.0.0.1:${httpPort}`
    const cert = selfSignedCert(dir)
    pem = cert.pem
    replicas = await startReplicas({ ids: ['a', 'b'], publicUrl: base, dir })
    nginx = await runNginx(dir, {
      SERVER_NAME: 'localhost 127.0.0.1',
      PUBLIC_URL: base,
      TLS_CERT: cert.cert,
      TLS_KEY: cert.key,
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(httpsPort),
      REPLICAS: replicas.list.map((r) => `${r.id}=${new URL(r.gateway.url).host}`).join(' '),
      MAX_BODY: String(MAX_BODY),
    })
    agent = new Agent({ connect: { ca: pem } })
    tokens.fixture = await replicas.token('fixture')
    tokens.shared = await replicas.token('shared')
  })

  after(async () => {
    await nginx?.stop()
    await agent?.close()
    await replicas?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('speaks TLS 1.2 (forward-secret AEAD suites) and 1.3 only, and HTTP/2 by ALPN', async () => {
    const port = Number(new URL(base).port)
    const cbc = 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA:AES128-SHA'
    const cases: {
      name: string
      opts: ConnectionOptions
      protocol?: string
      cipher?: RegExp
      alpn?: string
    }[] = [
      { name: 'TLS 1.3', opts: { minVersion: 'TLSv1.3' }, protocol: 'TLSv1.3' },
      {
        name: 'TLS 1.2',
        opts: { maxVersion: 'TLSv1.2' },
        protocol: 'TLSv1.2',
        cipher: /^ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/,
      },
      { name: 'TLS 1.2, CBC suites only', opts: { maxVersion: 'TLSv1.2', ciphers: cbc } },
      {
        name: 'TLS 1.1',
        opts: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' },
      },
      {
        name: 'ALPN h2',
        opts: { ALPNProtocols: ['h2', 'http/1.1'] },
        protocol: 'TLSv1.3',
        alpn: 'h2',
      },
    ]
    for (const c of cases) {
      type Shook = { protocol: string | null; cipher: string; alpn: string | false }
      const got = await new Promise<Shook | Error>((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, ca: pem, ...c.opts }, () => {
          resolve({
            protocol: socket.getProtocol(),
            cipher: socket.getCipher().name,
            alpn: socket.alpnProtocol ?? false,
          })
          socket.end()
        })
        socket.on('error', resolve)
      })
      if (c.protocol === undefined) {
        assert.ok(got instanceof Error, `${c.name}: must be refused, got ${JSON.stringify(got)}`)
        continue
      }
      assert.ok(!(got instanceof Error), `${c.name}: ${got}`)
      assert.equal(got.protocol, c.protocol, c.name)
      if (c.cipher) assert.match(got.cipher, c.cipher, c.name)
      if (c.alpn) assert.equal(got.alpn, c.alpn, c.name)
    }
  })

  it('redirects plain HTTP permanently to the same path on the https public URL', async () => {
    const cases = [
      { method: 'GET', path: '/mcp/fixture' },
      { method: 'POST', path: '/mcp/fixture' },
      { method: 'GET', path: `${METADATA}?x=1` },
      { method: 'GET', path: '/' },
    ] as const
    for (const c of cases) {
      const res = await request(`${httpBase}${c.path}`, { method: c.method })
      await res.body.dump()
      assert.equal(res.statusCode, 301, `${c.method} ${c.path}`)
      assert.equal(res.headers.location, `${base}${c.path}`)
    }
  })

  it('sends HSTS and the security headers on every answer, errors included, each once', async () => {
    const huge = `{"pad":"${'x'.repeat(MAX_BODY)}"}`
    const cases: { name: string; status: number; go: () => Promise<Answer> }[] = [
      { name: 'health', status: 200, go: () => get('/healthz') },
      { name: 'metadata', status: 200, go: () => get(METADATA) },
      {
        name: 'MCP without token',
        status: 401,
        go: () => send(agent, url('fixture'), { body: call(1, 'pid') }),
      },
      { name: 'gateway 404', status: 404, go: () => get('/nope') },
      { name: 'metrics blocked at the edge', status: 404, go: () => get('/metrics') },
      { name: 'readiness blocked at the edge', status: 404, go: () => get('/readyz') },
      ...['/readyz?x=1', '//readyz', '/%72eadyz', '/readyz/', '/./readyz', '/x/../readyz'].map(
        (path) => ({ name: `readiness as ${path}, blocked`, status: 404, go: () => get(path) }),
      ),
      { name: 'nginx 413', status: 413, go: () => mcp('fixture', huge) },
    ]
    for (const c of cases) {
      const res = await c.go()
      assert.equal(res.status, c.status, `${c.name}: ${res.text.slice(0, 200)}`)
      const h = res.headers
      assert.equal(h['strict-transport-security'], 'max-age=31536000; includeSubDomains', c.name)
      assert.equal(h['x-content-type-options'], 'nosniff', c.name)
      assert.equal(h['referrer-policy'], 'no-referrer', c.name)
      assert.equal(h['x-frame-options'], 'DENY', c.name)
      assert.match(String(h['content-security-policy']), /frame-ancestors 'none'/, c.name)
      assert.match(
        String(h['x-request-id']),
        /^[0-9a-f]{32}$/,
        `${c.name}: one X-Request-Id, nginx's`,
      )
      assert.match(
        String(h['content-type']),
        /^application\/json/,
        `${c.name}: JSON, even from nginx`,
      )
    }
  })

  it('serves metadata naming the https resource, cacheable and uncompressed', async () => {
    const res = await get(METADATA, { 'accept-encoding': 'gzip' })
    assert.equal(res.status, 200)
    const doc = JSON.parse(res.text) as { resource: string; authorization_servers: string[] }
    assert.equal(doc.resource, `${base}/mcp/fixture`)
    assert.deepEqual(doc.authorization_servers, [replicas.idp.issuer])
    assert.match(String(res.headers['cache-control']), /^public, max-age=\d+$/)
    assert.equal(res.headers['content-encoding'], undefined)
    const challenge = await send(agent, url('fixture'), { body: call(1, 'pid') })
    assert.ok(
      String(challenge.headers['www-authenticate']).includes(
        `resource_metadata="${base}${METADATA}"`,
      ),
    )
  })

  it("passes its request id and the real peer address, never the client's own", async () => {
    const res = await get('/nope', {
      'x-request-id': 'chosen-by-client',
      'x-forwarded-for': '203.0.113.9',
    })
    const id = String(res.headers['x-request-id'])
    assert.notEqual(id, 'chosen-by-client')
    const lines = replicas.list
      .flatMap((r) => r.logLines)
      .map((l) => JSON.parse(l) as { req?: string; ip?: string; msg: string })
    const line = lines.find((l) => l.req === id && l.msg === 'request')
    assert.ok(line, "the gateway logged the request under nginx's id (trustProxy)")
    assert.equal(line.ip, '127.0.0.1')
  })

  it('carries a tool call of the SDK client, progress included', async () => {
    const client = new Client({ name: 'edge-test', version: '0' })
    const fetchVia = ((input: string | URL, init?: RequestInit) =>
      undiciFetch(input, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url('fixture')), {
        requestInit: { headers: bearer('fixture') },
        fetch: fetchVia,
      }),
    )
    try {
      const progress: number[] = []
      const onprogress = (p: { progress: number }) => void progress.push(p.progress)
      const result = await client.callTool(
        { name: 'notify', arguments: { count: 3 } },
        { onprogress },
      )
      assert.deepEqual(result.content, [{ type: 'text', text: 'notified 3' }])
      assert.deepEqual(progress, [1, 2, 3])
      const pid = await client.callTool({ name: 'pid', arguments: {} })
      assert.match((pid.content as { text: string }[])[0]!.text, /^\d+$/)
    } finally {
      await client.close()
    }
  })

  it("streams events unbuffered: a request on the call's stream arrives before the call can end", async (t) => {
    // The fixture's `sample` asks the client to sample on the call's own stream and waits for
    // the answer, which is sent only once that request has arrived: a buffering proxy would hold
    // the request until the stream ended, and the stream cannot end before the answer. So the
    // call finishing at all proves the events flowed; the guard only ends a deadlock early.
    const sid = await openSession(agent, url('fixture'), tokens.fixture!, { sampling: {} })
    const abort = new AbortController()
    const guard = setTimeout(
      () => abort.abort(new Error('no event came: the stream is buffered')),
      30_000,
    )
    t.after(() => clearTimeout(guard))
    const res = await request(url('fixture'), {
      dispatcher: agent,
      method: 'POST',
      headers: {
        ...bearer('fixture'),
        'mcp-session-id': sid,
        accept: ACCEPT,
        'content-type': 'application/json',
        'accept-encoding': 'gzip',
      },
      body: JSON.stringify(call(7, 'sample', { prompt: 'hi' })),
      signal: abort.signal,
    })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/event-stream/)
    assert.equal(res.headers['content-encoding'], undefined)
    const events: TimedEvent[] = []
    let answered: Promise<Answer> | undefined
    await readEvents(res.body, (e) => {
      events.push(e)
      const msg = JSON.parse(e.data) as { id?: number; method?: string }
      if (msg.method !== 'sampling/createMessage') return
      const reply = { role: 'assistant', model: 'm', content: { type: 'text', text: 'late' } }
      answered = mcp('fixture', { jsonrpc: '2.0', id: msg.id, result: reply }, sid)
    })
    clearTimeout(guard)
    assert.ok(answered, 'the sampling request arrived on the open stream')
    assert.equal((await answered).status, 202)
    const requestAt = events.findIndex(
      (e) => (JSON.parse(e.data) as { method?: string }).method === 'sampling/createMessage',
    )
    const last = JSON.parse(events.at(-1)!.data) as {
      id: number
      result: { content: { text: string }[] }
    }
    assert.ok(requestAt >= 0 && requestAt < events.length - 1, 'the request came before the result')
    assert.equal(last.id, 7)
    assert.equal(last.result.content[0]!.text, 'late')
  })

  it('stops bodies over limits.maxBodyBytes with 413 before any replica sees them', async () => {
    const exactly = (n: number) => {
      const head = '{"jsonrpc":"2.0","method":"notifications/initialized","params":{"pad":"'
      return `${head}${'x'.repeat(n - head.length - 3)}"}}`
    }
    const chunked = () =>
      Readable.from(
        (function* () {
          for (let i = 0; i < 32; i++) yield Buffer.alloc(64 * 1024, 0x20)
        })(),
      )
    const cases: { name: string; body: string | Readable; status: number; from: string }[] = [
      // At the cap the body passes nginx, and the gateway answers (no session yet).
      { name: 'exactly the cap', body: exactly(MAX_BODY), status: 400, from: 'gateway' },
      { name: 'one byte over', body: exactly(MAX_BODY + 1), status: 413, from: 'nginx' },
      { name: 'chunked, 2 MiB', body: chunked(), status: 413, from: 'nginx' },
    ]
    for (const c of cases) {
      const before = replicas.list.map((r) => r.logLines.length)
      const res = await request(url('shared'), {
        dispatcher: agent,
        method: 'POST',
        body: c.body,
        headers: { ...bearer('shared'), 'content-type': 'application/json', accept: ACCEPT },
      })
      const text = await res.body.text()
      assert.equal(res.statusCode, c.status, `${c.name}: ${text.slice(0, 200)}`)
      const seen = replicas.list.some((r, i) =>
        r.logLines.slice(before[i]).some((l) => l.includes('"msg":"request"')),
      )
      assert.equal(seen, c.from === 'gateway', `${c.name}: answered by ${c.from}`)
      if (c.from === 'nginx') assert.match(text, new RegExp(`larger than ${MAX_BODY} bytes`))
    }
  })

  describe('session affinity', () => {
    const SESSIONS = 100
    const pidOf: Record<string, string> = {}
    const sessions: { sid: string; replica: string }[] = []
    let ids = 0
    const pidCall = (sid: string) => mcp('shared', call(++ids, 'pid'), sid)
    const pidIn = (res: Answer) => res.json().result!.content[0]!.text

    before(async () => {
      // Each replica's `shared` server is one process: its pid names the replica.
      for (const r of replicas.list) {
        const direct = `${r.gateway.url}/mcp/shared`
        const sid = await openSession(agent, direct, tokens.shared!)
        const headers = { ...bearer('shared'), 'mcp-session-id': sid }
        pidOf[r.id] = pidIn(await send(agent, direct, { body: call(1, 'pid'), headers }))
      }
      assert.notEqual(pidOf.a, pidOf.b)
    })

    it(`spreads ${SESSIONS} sessions over both replicas and keeps each on its own`, async (t) => {
      const statuses = new Map<number, number>()
      await inParallel(SESSIONS, 10, async () => {
        const sid = await openSession(agent, url('shared'), tokens.shared!)
        const replica = sid.split('.')[0]!
        sessions.push({ sid, replica })
        for (let i = 0; i < 3; i++) {
          const res = await pidCall(sid)
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
          assert.equal(res.status, 200, res.text)
          assert.equal(pidIn(res), pidOf[replica], `session ${replica}.… answered by its replica`)
        }
      })
      const count = (id: string) => sessions.filter((s) => s.replica === id).length
      assert.deepEqual([...statuses], [[200, SESSIONS * 3]])
      assert.equal(count('a') + count('b'), SESSIONS, 'every id carries a known marker')
      t.diagnostic(
        `sessions per replica: a ${count('a')}, b ${count('b')}; ${SESSIONS * 3} follow-up calls`,
      )
      assert.ok(count('a') > 0 && count('b') > 0, `a: ${count('a')}, b: ${count('b')}`)
    })

    it('keeps legacy HTTP+SSE sessions (?sessionId=) on their replica too', async () => {
      const base = url('shared').replace(/\/mcp\/shared$/, '')
      const markers = new Set<string>()
      for (let i = 0; i < 10; i++) {
        const stream = await request(`${base}/sse/shared`, {
          dispatcher: agent,
          headers: { ...bearer('shared'), accept: 'text/event-stream' },
        })
        assert.equal(stream.statusCode, 200)
        // Read the first event without ending the stream (leaving a for-await loop would close
        // it, and the session with it).
        const events = stream.body[Symbol.asyncIterator]()
        let text = ''
        while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
        const endpoint = /data: (\S+)/.exec(text)![1]!
        markers.add(/sessionId=([a-z0-9-]+)\./.exec(endpoint)![1]!)
        const post = await request(`${base}${endpoint}`, {
          dispatcher: agent,
          method: 'POST',
          headers: { ...bearer('shared'), 'content-type': 'application/json' },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: {
              protocolVersion: '2024-11-05',
              capabilities: {},
              clientInfo: { name: 't', version: '0' },
            },
          }),
        })
        assert.equal(
          post.statusCode,
          202,
          `the message reached the replica holding the session (${endpoint}: ${post.statusCode} ${await post.body.text()})`,
        )
        await post.body.dump()
        stream.body.destroy()
      }
      assert.equal(markers.size, 2, 'sessions on both replicas, so routing by marker is exercised')
    })

    it("routes a principal's 2026-07-28 requests to one replica, so a multi-round request completes", async () => {
      const meta = (caps: Record<string, unknown> = {}) => ({
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': caps,
      })
      const modern = (
        server: string,
        name: string,
        params: Record<string, unknown>,
        caps?: Record<string, unknown>,
      ) =>
        send(agent, url(server), {
          body: {
            jsonrpc: '2.0',
            id: ++ids,
            method: 'tools/call',
            params: { name, ...params, _meta: meta(caps) },
          },
          headers: {
            ...bearer(server),
            'mcp-protocol-version': '2026-07-28',
            'mcp-method': 'tools/call',
            'mcp-name': name,
          },
        })
      const pids = new Set<string>()
      for (let i = 0; i < 10; i++) pids.add(pidIn(await modern('shared', 'pid', {})))
      assert.equal(pids.size, 1, 'one token, one replica')
      const caps = { sampling: {} }
      const first = (
        await modern('fixture', 'sample', { arguments: { prompt: 'q' } }, caps)
      ).json() as { result?: Record<string, any> }
      assert.equal(first.result?.resultType, 'input_required', JSON.stringify(first))
      const key = Object.keys(first.result!.inputRequests)[0]!
      const answer = {
        role: 'assistant',
        model: 'm',
        content: { type: 'text', text: 'through nginx' },
      }
      const done = await modern(
        'fixture',
        'sample',
        {
          arguments: { prompt: 'q' },
          inputResponses: { [key]: answer },
          requestState: first.result!.requestState,
        },
        caps,
      )
      assert.equal(done.status, 200, done.text)
      assert.equal(done.json().result?.content[0]!.text, 'through nginx')
    })

    it('sends an unknown marker to the pool, whose replica answers 404', async () => {
      for (const sid of ['zz.unknown', 'no-marker-at-all']) {
        const res = await pidCall(sid)
        assert.equal(res.status, 404, sid)
        assert.equal(res.json().error?.message, 'session not found')
      }
    })

    it('a replica dies: its sessions get a gateway 404 (not 502), the others keep working', async () => {
      await replicas.list.find((r) => r.id === 'a')!.gateway.close()
      for (const s of sessions) {
        const res = await pidCall(s.sid)
        if (s.replica === 'a') {
          assert.equal(res.status, 404, `dead replica's session: ${res.text}`)
          assert.equal(res.json().error?.message, 'session not found')
        } else {
          assert.equal(res.status, 200, res.text)
          assert.equal(pidIn(res), pidOf.b)
        }
      }
      // The client's recovery: initialize again, which lands on the living replica.
      for (let i = 0; i < 5; i++) {
        const sid = await openSession(agent, url('shared'), tokens.shared!)
        assert.match(sid, /^b\./)
        assert.equal(pidIn(await pidCall(sid)), pidOf.b)
      }
      assert.equal((await get('/healthz')).status, 200)
    })
  })
})

/** Runs `task` n times, at most `width` at once; rejects with the first failure. */
async function inParallel(
  n: number,
  width: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < n) await task(next++)
  }
  await Promise.all(Array.from({ length: width }, worker))
}
