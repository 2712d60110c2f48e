// `mcp_edge_sessions` counts every live session-era session, by kind: `server` (a server's own
// URL, either transport) and `endpoint` (an aggregate's, whose calls run on the user's lanes:
// counted once, as an endpoint session, never again as the processes it uses). Operators size on
// the sum; sessionless requests are lanes, not sessions. Before, an endpoint session was not
// counted at all.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

let stack: Stack
before(async () => {
  stack = await startStack({ config: { endpoints: { both: { servers: ['echo', 'fixture'] } } } })
})
after(() => stack.close())

/** The gauge's series now by kind, and the sum of all its series (what operators size on). */
async function sessions(): Promise<{ server?: number; endpoint?: number; total: number }> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  const kind = (k: string) => {
    const m = new RegExp(`^mcp_edge_sessions\\{kind="${k}"\\} (\\d+)$`, 'm').exec(text)
    return m ? Number(m[1]) : undefined
  }
  return {
    server: kind('server'),
    endpoint: kind('endpoint'),
    total: [...text.matchAll(/^mcp_edge_sessions(?:\{[^}]*\})? (\d+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    ),
  }
}

/** A session-era client of `path` (a server or an endpoint) for Alice. */
async function connect(
  path: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const url = `${stack.url}/mcp/${path}`
  const token = await stack.token('alice', { resource: url })
  const client = new Client({ name: 'gauge', version: '0' })
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  return { client, transport }
}

describe('mcp_edge_sessions', () => {
  it('counts server and endpoint sessions apart, each once; sessionless requests are not sessions', async () => {
    const server = await connect('echo')
    const endpoint = await connect('both')
    try {
      // The endpoint session's calls run on Alice's lanes: they are not more sessions.
      await endpoint.client.callTool({ name: 'echo_echo', arguments: { text: 'a' } })
      await endpoint.client.callTool({ name: 'fixture_pid', arguments: {} })
      await server.client.callTool({ name: 'echo', arguments: { text: 'b' } })
      const url = `${stack.url}/mcp/echo`
      const token = await stack.token('alice', { resource: url })
      const modern = await request(url, modernToolCall(token, 'echo', { text: 'c' }))
      assert.equal(modern.statusCode, 200)
      await modern.body.dump()
      assert.equal((await sessions()).total, 2, 'one server session, one endpoint session')
      assert.deepEqual(await sessions(), { server: 1, endpoint: 1, total: 2 })
      await endpoint.transport.terminateSession()
      await waitFor(async () => (await sessions()).endpoint === 0, 'the endpoint session ended')
      assert.deepEqual(await sessions(), { server: 1, endpoint: 0, total: 1 })
      await server.transport.terminateSession()
      await waitFor(async () => (await sessions()).server === 0, 'the server session ended')
      assert.deepEqual(await sessions(), { server: 0, endpoint: 0, total: 0 })
    } finally {
      await endpoint.client.close()
      await server.client.close()
    }
  })
})
