#!/usr/bin/env node
// tickets: a stdio MCP server playing a ticketing API that acts with the caller's own API key,
// read from TICKETS_API_KEY at start (the gateway's per-user credentials put it there). It starts
// and lists its tools without one; every call then fails, saying the key is missing. It never
// shows the key: an answer names it by a fingerprint (the first 8 hex digits of its SHA-256) and,
// for a key of 16 characters or more, its last 4, so a user can tell that *their* key was used.
// Tickets live in memory, per process: one user's process, one user's tickets.
import { createHash } from 'node:crypto'
import { McpServer } from '@modelcontextprotocol/server'
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio'
import type { CallToolResult } from '@modelcontextprotocol/server'
import * as z from 'zod/v4'

/** The variable the key comes in; the gateway's default config fills it from the user's secret. */
const KEY_ENV = 'TICKETS_API_KEY'
/** Keys at least this long may show their last 4 characters (a shorter one would show too much of itself). */
const SHOW_TAIL_FROM = 16

const key = process.env[KEY_ENV] || undefined
const server = new McpServer({ name: 'tickets', version: '1.0.0' })
const tickets: { id: string; title: string; status: 'open' }[] = []

const text = (t: string, isError = false): CallToolResult => ({
  content: [{ type: 'text', text: t }],
  ...(isError ? { isError } : {}),
})

/** How an answer names the key: never the key itself. */
function keyName(k: string): string {
  const fingerprint = createHash('sha256').update(k).digest('hex').slice(0, 8)
  return k.length >= SHOW_TAIL_FROM
    ? `API key …${k.slice(-4)}, sha256 ${fingerprint}`
    : `API key with sha256 ${fingerprint}`
}

/** Runs `act` with the key, or answers that there is none. */
function withKey(act: (k: string) => string): CallToolResult {
  if (key === undefined)
    return text(
      `${KEY_ENV} is not set: the tickets API needs your own API key (behind mcp-edge, set it on the account page)`,
      true,
    )
  return text(act(key))
}

server.registerTool(
  'list_tickets',
  { description: 'List your tickets (JSON)', annotations: { readOnlyHint: true } },
  () => withKey((k) => `${JSON.stringify(tickets)}\n[${keyName(k)}]`),
)

server.registerTool(
  'create_ticket',
  {
    description: 'Open a ticket',
    inputSchema: z.object({ title: z.string().min(1).max(200).describe('What is wrong') }),
    annotations: { readOnlyHint: false, idempotentHint: false, openWorldHint: false },
  },
  (args) =>
    withKey((k) => {
      const ticket = { id: `T-${tickets.length + 1}`, title: args.title, status: 'open' as const }
      tickets.push(ticket)
      return `opened ${ticket.id}: ${ticket.title}\n[${keyName(k)}]`
    }),
)

await server.connect(new StdioServerTransport())
