#!/usr/bin/env node
// stray-server: a raw newline-delimited JSON-RPC stdio MCP server that misbehaves the way a
// gateway sharing one process between requests must survive (tests only). Tools:
// - `stray`: first answers ids nobody sent (a result and an error) and sends a log nobody asked
//   for, then answers its own request with its arguments.
// - `hold`: answers once `free` names it (requests held at once, on one process).
// - `ask`: sends an elicitation/create and answers with what the client said (or its error).
// - `odd`: answers with a JSON-RPC error whose `code` is the `code` argument, whatever its type
//   (an object with a `toString` that is not a function cannot be made a string).
import { createInterface } from 'node:readline'

type Id = string | number
type Message = {
  id?: Id
  method?: string
  params?: Record<string, unknown>
  result?: unknown
  error?: { message?: string }
}

const send = (m: Record<string, unknown>): void =>
  void process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', ...m })}\n`)
const text = (t: string) => ({ content: [{ type: 'text', text: t }] })
const held = new Map<string, Id[]>()
const asked = new Map<Id, Id>()
let nextAsk = 0

const tools = ['stray', 'hold', 'free', 'ask', 'odd'].map((name) => ({
  name,
  inputSchema: { type: 'object' },
}))

function call(id: Id, name: unknown, args: Record<string, unknown>): void {
  switch (name) {
    case 'stray':
      send({ id: `forged-${id}`, result: text('not yours') })
      send({ id: 987654321, error: { code: -32603, message: 'not yours either' } })
      send({ method: 'notifications/message', params: { level: 'error', data: 'unasked log' } })
      return send({ id, result: text(JSON.stringify(args)) })
    case 'hold': {
      const key = String(args.name)
      held.set(key, [...(held.get(key) ?? []), id])
      return
    }
    case 'free':
      for (const waiting of held.get(String(args.name)) ?? [])
        send({ id: waiting, result: text(`freed ${String(args.name)}`) })
      held.delete(String(args.name))
      return send({ id, result: text('ok') })
    case 'ask': {
      const askId = `ask-${++nextAsk}`
      asked.set(askId, id)
      return send({
        id: askId,
        method: 'elicitation/create',
        params: { mode: 'form', message: 'name?', requestedSchema: { type: 'object' } },
      })
    }
    case 'odd':
      return send({ id, error: { code: args.code, message: 'odd code' } })
    default:
      send({ id, error: { code: -32602, message: `Unknown tool: ${String(name)}` } })
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line) as Message
  if (m.method === undefined) {
    // The answer to one of our questions: its tool call answers with it.
    const caller = m.id === undefined ? undefined : asked.get(m.id)
    if (caller === undefined) return
    asked.delete(m.id!)
    const said = m.error ? `refused: ${m.error.message}` : `answered: ${JSON.stringify(m.result)}`
    return send({ id: caller, result: text(said) })
  }
  if (m.id === undefined) return
  switch (m.method) {
    case 'initialize':
      return send({
        id: m.id,
        result: {
          protocolVersion: String(m.params?.protocolVersion ?? '2025-11-25'),
          capabilities: { tools: {} },
          serverInfo: { name: 'stray', version: '1.0.0' },
        },
      })
    case 'ping':
      return send({ id: m.id, result: {} })
    case 'tools/list':
      return send({ id: m.id, result: { tools } })
    case 'tools/call':
      return call(m.id, m.params?.name, (m.params?.arguments ?? {}) as Record<string, unknown>)
    default:
      send({ id: m.id, error: { code: -32601, message: `no method ${m.method}` } })
  }
})
