// One POST to an MCP endpoint as a Streamable HTTP client sends it, its answer read whole.
import type { IncomingHttpHeaders } from 'node:http'
import { request } from 'undici'
import { firstData } from './sse.js'

const ACCEPT = 'application/json, text/event-stream'

/** A whole answer: status, headers, body, and its first message (SSE or JSON) parsed. */
export interface McpAnswer {
  status: number
  headers: IncomingHttpHeaders
  text: string
  json(): any
}

/** POSTs `body` (a string as is, anything else as JSON) to `url` with JSON and SSE accepted. */
export async function postMcp(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<McpAnswer> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.body.text()
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: () => JSON.parse(firstData(text) ?? text),
  }
}

/** A session-era (2025-11-25) `initialize` request, id 1, of a client declaring no capabilities. */
export function initializeRequest(client: string): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: client, version: '0' },
    },
  }
}
