// Small builders for tool entries and results, shared by the conformance server's tool tables.
import type { CallToolResult, Tool } from '@modelcontextprotocol/server'
import { ClientError, type Call } from './peer.js'

export type Args = Record<string, unknown>

/** A tool as listed, and what calling it does. */
export interface ToolEntry {
  tool: Tool
  run: (call: Call, args: Args) => Promise<CallToolResult> | CallToolResult
}

export const NO_ARGS = { type: 'object', properties: {} } as const

export const entry = (
  name: string,
  description: string,
  run: ToolEntry['run'],
  inputSchema: Tool['inputSchema'] = NO_ARGS,
): ToolEntry => ({
  tool: { name, description, inputSchema },
  run,
})

export const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] })

/** A tool execution error (isError): the call reached the tool and the tool failed. */
export const failed = (t: string): CallToolResult => ({
  content: [{ type: 'text', text: t }],
  isError: true,
})

/** A string argument; undefined when missing or not a string (the tool then reports it). */
export const str = (args: Args, name: string): string | undefined =>
  typeof args[name] === 'string' ? args[name] : undefined

/**
 * Runs a server→client round trip. The client's refusal becomes a tool error; anything else
 * (a malformed answer, an id already outstanding, a cancellation) stays a JSON-RPC error.
 */
export async function attempt(fn: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof ClientError) return failed(`the client refused: ${err.message}`)
    throw err
  }
}
