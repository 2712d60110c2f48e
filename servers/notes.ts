#!/usr/bin/env node
// notes: a stdio MCP server keeping named text notes in memory (lost on exit).
import { McpServer } from '@modelcontextprotocol/server'
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio'
import type { CallToolResult } from '@modelcontextprotocol/server'
import * as z from 'zod/v4'

const notes = new Map<string, string>([['welcome', 'Hello from the notes server.']])
const server = new McpServer({ name: 'notes', version: '1.0.0' })

const text = (t: string, isError = false): CallToolResult => ({
  content: [{ type: 'text', text: t }],
  ...(isError ? { isError } : {}),
})
const name = z.string().min(1).describe('Note name')

server.registerTool(
  'list_notes',
  { description: 'List note names (JSON array)', annotations: { readOnlyHint: true } },
  () => text(JSON.stringify([...notes.keys()])),
)

server.registerTool(
  'read_note',
  {
    description: 'Read a note',
    inputSchema: z.object({ name }),
    annotations: { readOnlyHint: true },
  },
  (args) => {
    const note = notes.get(args.name)
    return note === undefined ? text(`no note named ${args.name}`, true) : text(note)
  },
)

server.registerTool(
  'write_note',
  {
    description: 'Create or overwrite a note',
    inputSchema: z.object({ name, text: z.string() }),
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  },
  (args) => {
    notes.set(args.name, args.text)
    return text(`saved ${args.name}`)
  },
)

server.registerTool(
  'delete_note',
  {
    description: 'Delete a note',
    inputSchema: z.object({ name }),
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  },
  (args) =>
    notes.delete(args.name)
      ? text(`deleted ${args.name}`)
      : text(`no note named ${args.name}`, true),
)

await server.connect(new StdioServerTransport())
