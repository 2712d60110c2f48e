#!/usr/bin/env node
// lax: a stdio MCP server that answers a call of a tool it never listed with an `isError`
// result, not a JSON-RPC error, as the Python SDKs do (tests only). It lists `known` and
// the names in `LAX_TOOLS` (a JSON array, for degenerate names); every call is answered.
import { Peer, type Handler } from './conformance/peer.js'

const names = (): string[] => ['known', ...(JSON.parse(process.env.LAX_TOOLS ?? '[]') as string[])]

const handlers: Record<string, Handler> = {
  initialize: ({ params }) => ({
    protocolVersion: (params.protocolVersion as string | undefined) ?? '2025-11-25',
    capabilities: { tools: {} },
    serverInfo: { name: 'lax', version: '1.0.0' },
  }),
  ping: () => ({}),
  'tools/list': () => ({
    tools: names().map((name) => ({ name, inputSchema: { type: 'object', properties: {} } })),
  }),
  'tools/call': ({ params }) => {
    const name = String(params.name)
    return names().includes(name)
      ? { content: [{ type: 'text', text: `called ${name}` }] }
      : { content: [{ type: 'text', text: `Unknown tool: ${name}` }], isError: true }
  },
}

new Peer(handlers).listen()
