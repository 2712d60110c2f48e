#!/usr/bin/env node
// plain: a stdio MCP server written without the SDK (tests only), for cases where what the
// process is does not matter, only that it starts, answers, holds a call and exits: each start
// costs what node's own does (the SDK-based fixture and echo spend ~0.2 s of CPU on their
// imports, start after start). Tools as the fixture names them: `pid` (its process id), `crash`
// (exits before answering), `gate` (runs until cancelled, never answering), `slow` (answers
// `done` after `ms` milliseconds, nothing once cancelled). Prompts: an empty list. PLAIN_RECORD_FILE: every message received is appended there before it is handled.
// PLAIN_CRASH_ON=<method>: exit 4 on a message with that method.
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

type Id = string | number
interface Message {
  id?: Id
  method?: string
  params?: {
    protocolVersion?: string
    name?: string
    arguments?: { ms?: number }
    requestId?: Id
  }
}

const recordFile = process.env.PLAIN_RECORD_FILE
const crashOn = process.env.PLAIN_CRASH_ON
const send = (message: unknown): void => void process.stdout.write(`${JSON.stringify(message)}\n`)
/** The `slow` calls running, by request id: a cancellation stops one unanswered. */
const slow = new Map<Id, NodeJS.Timeout>()
const TOOLS = ['pid', 'crash', 'gate', 'slow'].map((name) => ({
  name,
  inputSchema: { type: 'object', properties: {} },
}))

function handle(m: Message): void {
  if (typeof m !== 'object' || m === null) return
  if (recordFile) appendFileSync(recordFile, `${JSON.stringify(m)}\n`)
  if (crashOn !== undefined && m.method === crashOn) {
    process.stderr.write(`plain: crashing on ${crashOn}\n`)
    process.exit(4)
  }
  // MCP: a cancelled request gets no answer (a cancelled gate or slow call stays unanswered).
  if (m.method === 'notifications/cancelled' && m.params?.requestId !== undefined) {
    clearTimeout(slow.get(m.params.requestId))
    slow.delete(m.params.requestId)
  }
  if (m.id === undefined || typeof m.method !== 'string') return
  const id = m.id
  const reply = (result: unknown) => send({ jsonrpc: '2.0', id: m.id, result })
  switch (m.method) {
    case 'initialize':
      return reply({
        protocolVersion: m.params?.protocolVersion ?? '2025-11-25',
        capabilities: { tools: {}, prompts: {} },
        serverInfo: { name: 'plain', version: '1.0.0' },
      })
    case 'ping':
      return reply({})
    case 'tools/list':
      return reply({ tools: TOOLS })
    case 'prompts/list':
      return reply({ prompts: [] })
    case 'tools/call':
      if (m.params?.name === 'pid')
        return reply({ content: [{ type: 'text', text: `${process.pid}` }] })
      if (m.params?.name === 'crash') {
        process.stderr.write('plain: crashing with exit code 1\n')
        process.exit(1)
      }
      if (m.params?.name === 'gate') return
      if (m.params?.name === 'slow') {
        const done = () => (slow.delete(id), reply({ content: [{ type: 'text', text: 'done' }] }))
        return void slow.set(id, setTimeout(done, Number(m.params.arguments?.ms ?? 0)))
      }
      return send({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: 'Unknown tool' } })
    default:
      return send({
        jsonrpc: '2.0',
        id: m.id,
        error: { code: -32601, message: `Method not found: ${m.method}` },
      })
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let message: Message | Message[]
  try {
    message = JSON.parse(line)
  } catch {
    return
  }
  for (const m of Array.isArray(message) ? message : [message]) handle(m)
})
