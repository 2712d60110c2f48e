// A session-era (2025-11-25) MCP session through a test gateway, with the real SDK v2 client.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import type { Stack } from './stack.js'

/**
 * A session of `user` (a token from the stack's IdP for `server`) on `server`, the client
 * declaring `capabilities` and `setup` setting its handlers before it connects; `name` is the
 * client's name (default `test-<user>`).
 */
export async function connectAs(
  stack: Stack,
  user: string,
  server: string,
  o: {
    capabilities?: Record<string, unknown>
    setup?: (c: Client) => void
    name?: string
  } = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client(
    { name: o.name ?? `test-${user}`, version: '0' },
    { capabilities: o.capabilities ?? {} },
  )
  o.setup?.(client)
  const token = await stack.token(user, { server })
  const transport = new StreamableHTTPClientTransport(new URL(stack.local(server)), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  return { client, transport }
}
