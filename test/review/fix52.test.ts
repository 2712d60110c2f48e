// fix52: what review51 left open, each a failing test first, then the fix.
// 1. A server that answers a call of a tool it never listed with an `isError` result (the
//    Python SDKs do) let a client's made-up names through to the OTLP operation histogram: one
//    series per name until the SDK's 2000 cap sent the real ones to its overflow series. A tool
//    name labels a series only when the server listed it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { join } from 'node:path'
import { connectAs } from '../helpers/sdk-session.js'
import { modernRequest } from '../helpers/modern-request.js'
import { exportingTo, startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const LAX_POLICY = `${TEST_POLICY}
  lax:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  laxshared:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
`
const lax = (extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'lax.js')],
  ...extra,
})

describe('fix52 1: a tool name the server never listed labels no metric series', () => {
  let receiver: OtlpReceiver
  let stack: Stack
  before(async () => {
    receiver = await startOtlpReceiver()
    stack = await exportingTo(receiver, () =>
      startStack({
        policy: LAX_POLICY,
        servers: { lax: lax(), laxshared: lax({ mode: 'shared' }) },
      }),
    )
  })
  after(async () => {
    await stack.close()
    await receiver.close()
  })

  it('made-up names answered isError, on a session, a shared process and sessionless: no series of their own; the listed tool keeps its name', async () => {
    const invented = (where: string, i: number) => `zz-invented-${where}-${i}`
    for (const server of ['lax', 'laxshared']) {
      const { client } = await connectAs(stack, 'alice', server)
      try {
        // Called before any list: the server has listed nothing yet.
        const early = await client.callTool({ name: invented(`${server}-early`, 0) })
        assert.equal(early.isError, true)
        const { tools } = await client.listTools()
        assert.ok(tools.some((t) => t.name === 'known'))
        assert.equal((await client.callTool({ name: 'known' })).isError, undefined)
        for (let i = 0; i < 4; i++) {
          const r = await client.callTool({ name: invented(server, i) })
          assert.equal(r.isError, true, JSON.stringify(r))
        }
      } finally {
        await client.close()
      }
    }
    // Sessionless (2026-07-28), the name also in the Mcp-Name header.
    const token = await stack.token('alice', { server: 'lax' })
    for (let i = 0; i < 3; i++) {
      const name = invented('sessionless', i)
      const res = await request(
        stack.local('lax'),
        modernRequest(token, 'tools/call', { name, arguments: {} }, { id: i + 1, name }),
      )
      const text = await res.body.text()
      assert.equal(res.statusCode, 200, text)
      assert.match(text, /"isError":true/)
    }
    await stack.gateway.tracing.flush()
    const tools = new Set(
      receiver.points
        .filter((p) => p.metric === 'mcp.server.operation.duration')
        .map((p) => p.attributes['gen_ai.tool.name'])
        .filter((n) => n !== undefined),
    )
    assert.deepEqual([...tools], ['known'], 'only the listed tool names a series')
    // The tool errors are still counted, without a name.
    assert.ok(
      receiver.points.some(
        (p) =>
          p.metric === 'mcp.server.operation.duration' &&
          p.attributes['error.type'] === 'tool_error' &&
          p.attributes['gen_ai.tool.name'] === undefined,
      ),
    )
    // held: /metrics (prom-client) has no tool label at all.
    const scrape = await request(`${stack.url}/metrics`)
    const text = await scrape.body.text()
    assert.equal(scrape.statusCode, 200)
    assert.doesNotMatch(text, /zz-invented/)
  })
})
