// The deprecated HTTP+SSE transport (2024-11-05) with the SDK's own SSE client (SDK v1: v2
// dropped it): same token, sessions, policy and audit as the MCP endpoint.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { request } from 'undici'
import { legacyEndpoint } from '../helpers/legacy-endpoint.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

const sseUrl = (server: string) => `${stack.url}/sse/${server}`

async function connect(server: string, token: string) {
  const client = new Client({ name: 'legacy', version: '0' })
  const transport = new SSEClientTransport(new URL(sseUrl(server)), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  return { client, transport }
}

/** Opens the event stream by hand and reads its first event (the endpoint). */
const endpointOf = (server: string, token: string) => legacyEndpoint(stack, server, token)

describe('HTTP+SSE (2024-11-05)', () => {
  it('the SDK SSE client initializes, lists tools filtered by policy, and calls one', async () => {
    const { client } = await connect('notes', await stack.token('alice', { server: 'notes' }))
    try {
      const { tools } = await client.listTools()
      assert.deepEqual(tools.map((t) => t.name).sort(), ['list_notes', 'read_note'])
      const result = await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } })
      assert.match((result.content as { text: string }[])[0]!.text, /./)
      // Denied outright: the JSON-RPC error arrives on the stream, as any reply does.
      await assert.rejects(
        client.callTool({ name: 'no_such_tool', arguments: {} }),
        /denied by policy/,
      )
    } finally {
      await client.close()
    }
    const events = stack
      .audit()
      .filter((e) => e.server === 'notes' && e.name === 'read_note' && e.outcome === 'ok')
    assert.ok(events.length > 0, 'audited like any call')
  })

  it('needs a token on the stream and on every message', async () => {
    const stream = await request(sseUrl('echo'), { headers: { accept: 'text/event-stream' } })
    assert.equal(stream.statusCode, 401)
    assert.match(stream.headers['www-authenticate'] as string, /resource_metadata=/)
    await stream.body.dump()
    const { endpoint, close } = await endpointOf('echo', await stack.token('alice'))
    try {
      const post = await request(`${stack.url}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      })
      assert.equal(post.statusCode, 401)
      await post.body.dump()
    } finally {
      await close()
    }
  })

  it("another user's session id is 404, a missing one 400, and a foreign Origin 403", async () => {
    const { endpoint, close } = await endpointOf('echo', await stack.token('alice'))
    try {
      assert.match(endpoint, /^\/messages\/echo\?sessionId=[\w-]{32}$/)
      const bob = await stack.token('bob')
      const cases = [
        { path: endpoint, headers: { authorization: `Bearer ${bob}` }, status: 404 },
        { path: '/messages/echo', headers: { authorization: `Bearer ${bob}` }, status: 400 },
        {
          path: endpoint,
          headers: { authorization: `Bearer ${bob}`, origin: 'https://evil.example' },
          status: 403,
        },
      ]
      for (const c of cases) {
        const res = await request(`${stack.url}${c.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...c.headers },
          body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        })
        assert.equal(res.statusCode, c.status, JSON.stringify(c))
        await res.body.dump()
      }
    } finally {
      await close()
    }
  })

  it('closing the stream ends the session and its process', async () => {
    const sessions = stack.gateway.registry.size
    const { close } = await endpointOf('echo', await stack.token('alice'))
    assert.equal(stack.gateway.registry.size, sessions + 1)
    const pid = JSON.parse(stack.logLines.filter((l) => l.includes('"session opened"')).at(-1)!)
      .pid as number
    await close()
    assert.equal(stack.gateway.registry.size, sessions)
    const alive = () => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    await waitFor(() => !alive(), `process ${pid} still runs`)
  })
})

describe('HTTP+SSE: refusals a client can act on, and its log lines', () => {
  it("a step-up is the POST's own 403 naming the request id and -32011; a denial arrives on the stream as -32010", async () => {
    const token = await stack.token('alice', { server: 'notes' })
    const { endpoint, close } = await endpointOf('notes', token)
    try {
      const post = (body: unknown) =>
        request(`${stack.url}${endpoint}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(body),
        })
      await (
        await post({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: '2024-11-05',
            capabilities: {},
            clientInfo: { name: 'l', version: '0' },
          },
        })
      ).body.dump()
      const res = await post({
        jsonrpc: '2.0',
        id: 'write-1',
        method: 'tools/call',
        params: { name: 'write_note', arguments: { name: 'a', text: 'b' } },
      })
      assert.equal(res.statusCode, 403)
      assert.match(
        String(res.headers['www-authenticate']),
        /error="insufficient_scope".*scope="mcp:read mcp:write".*resource_metadata="[^"]*\/\.well-known\/oauth-protected-resource\/sse\/notes"/,
      )
      const body = (await res.body.json()) as { id: unknown; error: { code: number } }
      assert.equal(body.id, 'write-1')
      assert.equal(body.error.code, -32011)
    } finally {
      await close()
    }
  })

  it('answered legacy requests log at debug (their audit event says the rest); a closed stream logs that its session ended', async () => {
    const token = await stack.token('alice')
    const before = stack.logLines.length
    const { endpoint, close } = await endpointOf('echo', token)
    const res = await request(`${stack.url}${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    })
    assert.equal(res.statusCode, 202)
    await res.body.dump()
    await close()
    const lines = stack.logLines
      .slice(before)
      .map((l) => JSON.parse(l) as { level: number; msg: string; path?: string; status?: number })
    const http = lines.filter((l) => l.msg === 'request' && l.path?.startsWith('/messages/echo'))
    assert.ok(http.length > 0)
    for (const l of http) assert.equal(l.level, 20, JSON.stringify(l)) // pino's debug
    assert.ok(
      lines.some((l) => l.msg === 'legacy event stream closed by the client; its session ended'),
      'the end of the session is logged',
    )
  })
})
