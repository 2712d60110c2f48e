// The HTTP floor: the SDK's own Streamable HTTP server for the echo tool (same tool as
// servers/echo.ts), stateful, one transport and McpServer per session, default SSE replies.
// Listens on 127.0.0.1:0 and prints {"port":N} on stdout. Needs `--serve`: everything under
// dist/test/ matches `node --test dist/test/`, and a server started there would never exit.
import { randomUUID } from 'node:crypto'
import { serve } from '@hono/node-server'
import { McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server'
import * as z from 'zod/v4'

function echoServer(): McpServer {
  const server = new McpServer({ name: 'echo', version: '1.0.0' })
  server.registerTool(
    'echo',
    {
      description: 'Return the given text unchanged',
      inputSchema: z.object({ text: z.string() }),
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ text }) => ({ content: [{ type: 'text', text }] }),
  )
  return server
}

if (process.argv[2] !== '--serve') {
  process.stderr.write('sdk-http-server: started by test/bench/run.ts with --serve; exiting\n')
  process.exit(0)
}

const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>()

async function handle(req: Request): Promise<Response> {
  if (new URL(req.url).pathname !== '/mcp') return new Response('not found', { status: 404 })
  const id = req.headers.get('mcp-session-id')
  if (id !== null) {
    const transport = sessions.get(id)
    if (transport) return transport.handleRequest(req)
    // MCP Streamable HTTP §Session Management: unknown session → 404.
    const error = { code: -32001, message: 'Session not found' }
    return Response.json({ jsonrpc: '2.0', error, id: null }, { status: 404 })
  }
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (sid) => {
      sessions.set(sid, transport)
    },
    onsessionclosed: (sid) => {
      sessions.delete(sid)
    },
  })
  await echoServer().connect(transport)
  const res = await transport.handleRequest(req)
  // Not an accepted initialize: nothing of it may stay.
  if (transport.sessionId === undefined) await transport.close()
  return res
}

const server = serve({ fetch: handle, hostname: '127.0.0.1', port: 0 }, (info) => {
  process.stdout.write(`${JSON.stringify({ port: info.port })}\n`)
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close()
    process.exit(0)
  })
}
