// Streamable HTTP by hand over an undici Agent: requests, sessions, and event streams read
// event by event with their arrival times.
import { request, type Agent, type Dispatcher } from 'undici'

export const ACCEPT = 'application/json, text/event-stream'

/** The initialize request; `capabilities` are the client's. */
export const initialize = (capabilities: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities,
    clientInfo: { name: 'edge-test', version: '0' },
  },
})

/** A tools/call request. */
export const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
})

/** The parts of a JSON-RPC answer the tests read. */
export interface Rpc {
  result?: { content: { text: string }[] }
  error?: { code: number; message: string }
}

/** A finished response. */
export interface Answer {
  status: number
  headers: Dispatcher.ResponseData['headers']
  text: string
  /** The JSON body, or the last `data:` of an event stream. */
  json(): Rpc
}

/** POST/GET/DELETE with the MCP headers, read to the end. */
export async function send(
  agent: Agent,
  url: string,
  o: { method?: 'POST' | 'GET' | 'DELETE'; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await request(url, {
    dispatcher: agent,
    method: o.method ?? 'POST',
    headers: {
      accept: ACCEPT,
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...o.headers,
    },
    body: o.body === undefined || typeof o.body === 'string' ? o.body : JSON.stringify(o.body),
  })
  const text = await res.body.text()
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: () => {
      const data = text
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .pop()
      return JSON.parse(data === undefined ? text : data.slice(6))
    },
  }
}

/** initialize + notifications/initialized; returns the session id. */
export async function openSession(
  agent: Agent,
  url: string,
  token: string,
  capabilities: Record<string, unknown> = {},
): Promise<string> {
  const auth = { authorization: `Bearer ${token}` }
  const init = await send(agent, url, { body: initialize(capabilities), headers: auth })
  if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.text}`)
  const sid = init.headers['mcp-session-id'] as string
  const ack = await send(agent, url, {
    body: { jsonrpc: '2.0', method: 'notifications/initialized' },
    headers: { ...auth, 'mcp-session-id': sid },
  })
  if (ack.status !== 202) throw new Error(`notifications/initialized: ${ack.status} ${ack.text}`)
  return sid
}

/** One server-sent event with the time it arrived (performance.now()). */
export interface TimedEvent {
  at: number
  data: string
}

/**
 * Reads an event stream, handing each event to `onEvent` as it arrives; resolves with the
 * time the stream ended. Comments (keep-alives) and empty priming events are skipped.
 */
export async function readEvents(
  body: AsyncIterable<Buffer>,
  onEvent: (e: TimedEvent) => void,
): Promise<number> {
  let buffer = ''
  for await (const chunk of body) {
    buffer += chunk.toString('utf8')
    let end: number
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .join('\n')
      if (data !== '') onEvent({ at: performance.now(), data })
    }
  }
  return performance.now()
}
