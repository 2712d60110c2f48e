// Checklist items of sections A, D, E and F (metadata, Streamable HTTP, sessions, compatibility)
// that no other test checked black-box: each test's name starts with its item id (see
// test/checklist/README.md).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Pool, request } from 'undici'
import { postMcp } from '../helpers/post-mcp.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { initBody, openSession as openIn } from './open-session.js'

const ACCEPT = 'application/json, text/event-stream'
const V = '2026-07-28'
const init = (protocolVersion = '2025-11-25') => initBody({}, protocolVersion)

let stack: Stack
let alice: string
before(async () => {
  stack = await startStack()
  alice = await stack.token('alice')
})
after(() => stack.close())

const openSession = (server: string, token: string) => openIn(stack, server, token)

const post = (server: string, body: unknown, headers: Record<string, string> = {}) =>
  postMcp(stack.local(server), body, headers)

describe('A: protected resource metadata', () => {
  it('A16: each authorization_servers entry is byte-equal to the issuer its metadata names', async () => {
    const prm = (await (
      await request(`${stack.url}/.well-known/oauth-protected-resource/mcp/echo`)
    ).body.json()) as { authorization_servers: string[] }
    assert.ok(prm.authorization_servers.length >= 1)
    for (const issuer of prm.authorization_servers) {
      // OpenID Connect Discovery appends the well-known suffix to the issuer.
      const res = await request(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)
      assert.equal(res.statusCode, 200)
      const meta = (await res.body.json()) as { issuer: string }
      assert.equal(meta.issuer, issuer)
    }
  })

  it('A19: other methods than GET and HEAD on metadata are 405, and create nothing', async () => {
    const url = `${stack.url}/.well-known/oauth-protected-resource/mcp/echo`
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      const res = await request(url, { method, body: method === 'DELETE' ? undefined : '{}' })
      await res.body.dump()
      assert.equal(res.statusCode, 405, method)
      assert.match(String(res.headers.allow), /GET/, method)
    }
  })
})

describe('D: Streamable HTTP', () => {
  it('D2: a body that is not UTF-8 is 400 -32700 with no id, and opens nothing', async () => {
    const sessions = stack.gateway.registry.size
    const bytes = Buffer.from(JSON.stringify(init()))
    const bad = Buffer.concat([
      bytes.subarray(0, 20),
      Buffer.from([0xff, 0xfe]),
      bytes.subarray(20),
    ])
    const res = await request(stack.local('echo'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${alice}`,
      },
      body: bad,
    })
    const body = (await res.body.json()) as { error: { code: number }; id?: unknown }
    assert.equal(res.statusCode, 400)
    assert.equal(body.error.code, -32700)
    assert.ok(body.id === undefined || body.id === null)
    assert.equal(res.headers['mcp-session-id'], undefined)
    assert.equal(stack.gateway.registry.size, sessions)
  })

  it('D6: a message that cannot be accepted is 4xx, its JSON-RPC error without an id', async () => {
    const sid = await openSession('echo', alice)
    for (const msg of [{ jsonrpc: '2.0', method: 42 }, { jsonrpc: '1.0', id: 3 }, { id: 3 }]) {
      const res = await post('echo', msg, {
        authorization: `Bearer ${alice}`,
        'mcp-session-id': sid,
      })
      assert.ok(res.status >= 400 && res.status < 500, `${JSON.stringify(msg)}: ${res.status}`)
      if (res.text) {
        const body = res.json()
        assert.ok(body.id === undefined || body.id === null, res.text)
        assert.ok(body.error.code < 0)
      }
    }
  })

  it('D26: initialize gets the version asked when supported, else the latest session-era one', async () => {
    for (const [asked, got] of [
      ['2025-06-18', '2025-06-18'],
      ['2025-03-26', '2025-03-26'],
      ['2099-01-01', '2025-11-25'],
      ['1999-01-01', '2025-11-25'],
    ]) {
      const res = await post('echo', init(asked), { authorization: `Bearer ${alice}` })
      assert.equal(res.status, 200, res.text)
      assert.equal(res.json().result.protocolVersion, got, asked)
    }
  })

  it('D44: two modern requests on one connection are each decided on their own _meta', async () => {
    const dev = await stack.token('dev', { server: 'fixture' })
    const pool = new Pool(stack.url, { connections: 1, pipelining: 1 })
    try {
      const send = async (caps: Record<string, unknown>, id: number) => {
        const b = {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: {
            name: 'sample',
            arguments: { prompt: `d44 ${id}` },
            _meta: {
              'io.modelcontextprotocol/protocolVersion': V,
              'io.modelcontextprotocol/clientCapabilities': caps,
            },
          },
        }
        const res = await pool.request({
          path: '/mcp/fixture',
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: ACCEPT,
            authorization: `Bearer ${dev}`,
            'mcp-protocol-version': V,
            'mcp-method': 'tools/call',
            'mcp-name': 'sample',
          },
          body: JSON.stringify(b),
        })
        const text = await res.body.text()
        const json = JSON.parse(text.startsWith('event:') ? text.split('data: ').at(-1)! : text)
        return { status: res.statusCode, json }
      }
      const withCaps = await send({ sampling: {} }, 1)
      assert.equal(withCaps.status, 200)
      assert.equal(withCaps.json.result.resultType, 'input_required')
      const without = await send({}, 2)
      assert.equal(without.status, 400)
      assert.equal(without.json.error.code, -32021)
      const again = await send({ sampling: {} }, 3)
      assert.equal(again.status, 200)
      assert.equal(again.json.result.resultType, 'input_required')
    } finally {
      await pool.close()
    }
  })
})

describe('E: sessions and stdio hardening', () => {
  it('E7: a deleted session id is 404 for good, and a new initialize never reuses it', async () => {
    const sid = await openSession('echo', alice)
    const del = await request(stack.local('echo'), {
      method: 'DELETE',
      headers: { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
    })
    await del.body.dump()
    assert.ok(del.statusCode >= 200 && del.statusCode < 300, String(del.statusCode))
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
    for (let i = 0; i < 2; i++) {
      const res = await post('echo', list, {
        authorization: `Bearer ${alice}`,
        'mcp-session-id': sid,
      })
      assert.equal(res.status, 404)
    }
    const again = await openSession('echo', alice)
    assert.notEqual(again, sid)
  })

  it('E9: a path, query or header naming a command spawns nothing and is 404', async () => {
    const sessions = stack.gateway.registry.size
    for (const path of [
      '/mcp/..%2f..%2fbin%2fsh',
      '/mcp/%2e%2e/%2e%2e/bin/sh',
      '/mcp/echo%2f..%2fsh',
    ]) {
      const res = await request(`${stack.url}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          authorization: `Bearer ${alice}`,
        },
        body: JSON.stringify(init()),
      })
      await res.body.dump()
      assert.equal(res.statusCode, 404, path)
    }
    // A query or a header never chooses the command: the configured echo answers as echo.
    const res = await request(`${stack.local('echo')}?cmd=/bin/sh&command=/bin/sh`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${alice}`,
        'x-command': '/bin/sh',
      },
      body: JSON.stringify(init()),
    })
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, text)
    assert.match(text, /"name":"echo"/)
    assert.equal(stack.gateway.registry.size, sessions + 1)
  })

  it('E11: a session id in the query string is not a session', async () => {
    const sid = await openSession('echo', alice)
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
    for (const q of ['Mcp-Session-Id', 'mcp-session-id', 'sessionId']) {
      const res = await postMcp(`${stack.local('echo')}?${q}=${sid}`, list, {
        authorization: `Bearer ${alice}`,
        'mcp-protocol-version': '2025-11-25',
      })
      assert.equal(res.status, 400, `${q}: ${res.text}`)
    }
    // control: the header form is the session
    const ok = await post('echo', list, { authorization: `Bearer ${alice}`, 'mcp-session-id': sid })
    assert.equal(ok.status, 200)
    // The id leaks nowhere the gateway writes: logs and audit carry at most a prefix of it.
    assert.ok(stack.logLines.length > 0)
    for (const line of stack.logLines) assert.ok(!line.includes(sid), line)
    for (const event of stack.audit()) assert.ok(!JSON.stringify(event).includes(sid))
  })
})

describe('F: compatibility', () => {
  it('F9: without the broker, the origin serves no authorization server metadata (2025-03-26 auth unsupported)', async () => {
    for (const path of [
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
      '/authorize',
      '/token',
      '/register',
    ]) {
      const res = await request(`${stack.url}${path}`)
      await res.body.dump()
      assert.equal(res.statusCode, 404, path)
    }
  })

  it('F15: an argument holding newlines reaches the process as one message and comes back whole', async () => {
    const sid = await openSession('echo', alice)
    const text = 'one\ntwo\r\nthree\u2028four'
    const res = await post(
      'echo',
      {
        jsonrpc: '2.0',
        id: 5,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text } },
      },
      { authorization: `Bearer ${alice}`, 'mcp-session-id': sid },
    )
    assert.equal(res.status, 200, res.text)
    assert.equal(res.json().result.content[0].text, text)
  })
})
