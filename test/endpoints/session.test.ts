// A session-era session on an aggregating endpoint, with the SDK v2 client: logs relayed as a
// server's own session relays them.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const POLICY = `${TEST_POLICY}  watched:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      watched: { command: process.execPath, args: [join(SERVERS_DIR, 'conformance.js'), 'watched'] },
    },
    config: { endpoints: { subs: { servers: ['watched'] } } },
  })
})
after(() => stack.close())

const url = () => `${stack.url}/mcp/subs`

async function connect(client: string, o: { capabilities?: Record<string, unknown>; setup?: (c: Client) => void } = {}) {
  const c = new Client({ name: `session-${client}`, version: '0' }, { capabilities: o.capabilities ?? {} })
  o.setup?.(c)
  await c.connect(new StreamableHTTPClientTransport(new URL(url()), { requestInit: { headers: { authorization: `Bearer ${await stack.token(client, { resource: url() })}` } } }))
  return { c }
}

describe('logs on an endpoint session', () => {
  it('a client that never set a level hears every log of a call; after logging/setLevel, those at or above it', async () => {
    const logs: string[] = []
    const { c } = await connect('alice', { setup: (x) => x.setNotificationHandler('notifications/message', (n) => void logs.push(`${n.params.level}: ${String(n.params.data)}`)) })
    try {
      // Logs of a call travel on its stream, ahead of its reply.
      await c.callTool({ name: 'watched_test_logging_tool', arguments: {} })
      assert.deepEqual(logs, ['debug: test_logging_tool: debug detail', 'info: test_logging_tool: done'])
      logs.length = 0
      await c.setLoggingLevel('info')
      await c.callTool({ name: 'watched_test_logging_tool', arguments: {} })
      assert.deepEqual(logs, ['info: test_logging_tool: done'])
    } finally {
      await c.close()
    }
  })
})
