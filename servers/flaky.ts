#!/usr/bin/env node
// flaky: a stdio MCP server for start-failure tests (tests only). Each start appends a line to
// FLAKY_STARTS_FILE; then FLAKY_MODE_FILE says what it does: `exit` (exit 1 at once), `hang`
// (read everything, answer nothing), `fragile` (exit 1 on an initialize from a client named
// `crash`, as a hand-written server might on input it did not expect), anything else (serve
// one tool, `ping`). Written without
// the SDK: it reads its mode before anything else, and starts as fast as node does.
import { appendFileSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const startsFile = process.env.FLAKY_STARTS_FILE
if (startsFile) appendFileSync(startsFile, `${process.pid}\n`)
const modeFile = process.env.FLAKY_MODE_FILE
const mode = modeFile ? readFileSync(modeFile, 'utf8').trim() : 'serve'
if (mode === 'exit') process.exit(1)

const send = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`)

const TOOLS = [
  {
    name: 'ping',
    description: 'Answers pong',
    inputSchema: { type: 'object', properties: {} },
  },
]

createInterface({ input: process.stdin }).on('line', (line) => {
  if (mode === 'hang') return
  let m: {
    id?: string | number
    method?: string
    params?: { protocolVersion?: string; clientInfo?: { name?: string } }
  }
  try {
    m = JSON.parse(line)
  } catch {
    return
  }
  if (m.id === undefined || typeof m.method !== 'string') return
  const reply = (result: unknown) => send({ jsonrpc: '2.0', id: m.id, result })
  switch (m.method) {
    case 'initialize':
      if (mode === 'fragile' && m.params?.clientInfo?.name === 'crash') process.exit(1)
      return reply({
        protocolVersion: m.params?.protocolVersion ?? '2025-11-25',
        capabilities: { tools: {} },
        serverInfo: { name: 'flaky', version: '1.0.0' },
      })
    case 'ping':
      return reply({})
    case 'tools/list':
      return reply({ tools: TOOLS })
    case 'tools/call':
      return reply({ content: [{ type: 'text', text: 'pong' }] })
    default:
      return send({
        jsonrpc: '2.0',
        id: m.id,
        error: { code: -32601, message: `Method not found: ${m.method}` },
      })
  }
})
