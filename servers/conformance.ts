#!/usr/bin/env node
// conformance: a session-era stdio MCP server with what the MCP conformance suite's server scenarios call (tests only).
//
// Raw newline-delimited JSON-RPC, no SDK server: the ids of its server→client requests are
// chosen by hand, because the gateway exposes them as 2026-07-28 inputRequests keys. It never
// speaks 2026-07-28 itself; the gateway translates for modern clients.
import type { InitializeResult, LoggingLevel } from '@modelcontextprotocol/server'
import { INPUT_TOOLS } from './conformance/input-tools.js'
import { CODE, LEVELS, Peer, RpcError, type Handler } from './conformance/peer.js'
import { PROMPT_HANDLERS } from './conformance/prompts.js'
import { RESOURCE_HANDLERS } from './conformance/resources.js'
import { TOOLS } from './conformance/tools.js'

/** Versions this server speaks, newest first; anything else is answered with the newest. */
const VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26']

const tools = new Map([...TOOLS, ...INPUT_TOOLS].map((t) => [t.tool.name, t]))

const handlers: Record<string, Handler> = {
  initialize: ({ params }): InitializeResult => ({
    // Lifecycle §Version Negotiation: echo a supported version, else offer our latest.
    protocolVersion: VERSIONS.includes(params.protocolVersion as string)
      ? (params.protocolVersion as string)
      : VERSIONS[0]!,
    capabilities: {
      tools: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true },
      logging: {},
      completions: {},
    },
    serverInfo: { name: 'conformance', version: '1.0.0' },
  }),
  ping: () => ({}),
  'logging/setLevel': ({ params, peer }) => {
    if (!LEVELS.includes(params.level as LoggingLevel))
      throw new RpcError(CODE.invalidParams, `level must be one of ${LEVELS.join(', ')}`)
    peer.level = params.level as LoggingLevel
    return {}
  },
  'tools/list': () => ({ tools: [...tools.values()].map((t) => t.tool) }),
  'tools/call': (call) => {
    const { name, arguments: args } = call.params as { name?: unknown; arguments?: unknown }
    const entry = tools.get(name as string)
    if (entry === undefined) throw new RpcError(CODE.invalidParams, `Unknown tool: ${String(name)}`)
    return entry.run(
      call,
      typeof args === 'object' && args !== null && !Array.isArray(args)
        ? (args as Record<string, unknown>)
        : {},
    )
  },
  ...RESOURCE_HANDLERS,
  ...PROMPT_HANDLERS,
}

new Peer(handlers).listen()
