#!/usr/bin/env node
// pinned: a stdio MCP server whose tool definitions a test rewrites while it runs (tests only).
//
// PINNED_TOOLS names a JSON file holding an array of tool definitions, read again on every
// tools/list, so a test changes what the server announces without restarting it; `{client}` in
// it stands for MCP_EDGE_CLIENT_ID (identityEnv: a server listing per client). The tool
// `announce` (always listed) sends notifications/tools/list_changed, as a server does after
// changing its tools. Every tools/call is appended to PINNED_CALLS (one JSON line each), so a
// test can prove what reached the server. Raw JSON-RPC, like the conformance server: the
// definitions go out exactly as written, which the SDK's server would reshape.
import { appendFileSync, readFileSync } from 'node:fs'
import { CODE, Peer, RpcError, type Handler } from './conformance/peer.js'

const ANNOUNCE = {
  name: 'announce',
  description: 'Send notifications/tools/list_changed',
  inputSchema: { type: 'object', properties: {} },
}

function tools(): Record<string, unknown>[] {
  const file = process.env.PINNED_TOOLS?.replaceAll(
    '{client}',
    process.env.MCP_EDGE_CLIENT_ID ?? '',
  )
  if (!file) return [ANNOUNCE]
  return [ANNOUNCE, ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>[])]
}

const handlers: Record<string, Handler> = {
  initialize: ({ params }) => ({
    protocolVersion: (params.protocolVersion as string | undefined) ?? '2025-11-25',
    capabilities: { tools: { listChanged: true } },
    serverInfo: { name: 'pinned', version: '1.0.0' },
  }),
  ping: () => ({}),
  'tools/list': () => ({ tools: tools() }),
  'tools/call': ({ params, peer }) => {
    const name = params.name
    if (process.env.PINNED_CALLS)
      appendFileSync(process.env.PINNED_CALLS, `${JSON.stringify({ name, pid: process.pid })}\n`)
    if (name === 'announce') peer.notify('notifications/tools/list_changed', {})
    else if (!tools().some((t) => t.name === name))
      throw new RpcError(CODE.invalidParams, `Unknown tool: ${String(name)}`)
    return { content: [{ type: 'text', text: `called ${String(name)}` }] }
  },
}

new Peer(handlers).listen()
