#!/usr/bin/env node
// echo: a minimal, unmodified stdio MCP server with one tool that returns its input.
import { McpServer } from '@modelcontextprotocol/server'
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio'
import * as z from 'zod/v4'

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

await server.connect(new StdioServerTransport())
