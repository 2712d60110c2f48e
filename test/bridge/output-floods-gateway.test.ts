// A server answering one call with 500 replies to requests nobody sent, through a real gateway:
// session mode warns `server sent a reply to no pending request` at most
// warnings.linesPerWindow (5 here) times, and when its process ends (the session deleted) one
// line counts the rest, as does mcp_edge_log_lines_suppressed_total{source="warnings"}; shared
// mode's replica likewise (`shared server replied to no pending request`), counted when the
// gateway stops it. Windows of an hour: a window ends only with its process. Real processes, a
// real gateway, raw HTTP.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const STRAYS = 500
const BUDGET = 5

// On tools/call: STRAYS replies to ids nobody sent, then the call's own reply.
const FLOODER = `
import { createInterface } from 'node:readline'
const out = (m) => JSON.stringify(m) + '\\n'
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    return process.stdout.write(out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'flooder', version: '0' } } }))
  if (m.id === undefined) return
  if (m.method === 'tools/list')
    return process.stdout.write(out({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'flood', inputSchema: { type: 'object' } }] } }))
  if (m.method !== 'tools/call') return process.stdout.write(out({ jsonrpc: '2.0', id: m.id, result: {} }))
  let text = ''
  for (let i = 0; i < ${STRAYS}; i++) text += out({ jsonrpc: '2.0', id: 'stray-' + i, result: {} })
  process.stdout.write(text + out({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'flooded' }] } }))
})
`

let stack: Stack | undefined
before(async () => {
  const script = join(tmpdir(), `output-floods-gateway-${process.pid}.mjs`)
  writeFileSync(script, FLOODER)
  const server = (mode: string) => ({
    command: process.execPath,
    args: [script],
    mode,
    warnings: { linesPerWindow: BUDGET, window: 3_600_000 },
  })
  const rules = `
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
`
  stack = await startStack({
    servers: { flood: server('session'), floodsh: server('shared') },
    policy: `${TEST_POLICY}  flood:${rules}  floodsh:${rules}`,
  })
})
after(() => stack?.close())

const entries = (from: number) =>
  stack!.logLines.slice(from).map((l) => JSON.parse(l) as { msg: string; suppressed?: number })

async function suppressedMetric(server: string): Promise<number> {
  const res = await request(`${stack!.url}/metrics`)
  const text = await res.body.text()
  const line = text
    .split('\n')
    .find((l) =>
      l.startsWith(`mcp_edge_log_lines_suppressed_total{server="${server}",source="warnings"}`),
    )
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

/** Opens a session of `server` and makes the call that floods; the session's headers. */
async function flood(server: string): Promise<Record<string, string>> {
  const url = stack!.local(server)
  const auth = { authorization: `Bearer ${await stack!.token('alice', { server })}` }
  const opened = await postMcp(url, initBody({}, '2025-11-25'), auth)
  assert.equal(opened.status, 200, opened.text)
  const headers = {
    ...auth,
    'mcp-session-id': opened.headers['mcp-session-id'] as string,
    'mcp-protocol-version': '2025-11-25',
  }
  await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)
  const res = await postMcp(
    url,
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood', arguments: {} } },
    headers,
  )
  assert.equal(res.status, 200, res.text)
  assert.match(res.text, /flooded/)
  return headers
}

describe('a server flooding replies to no pending request', () => {
  it(`session mode: ${BUDGET} warnings, then one line counting ${STRAYS - BUDGET} more when the process ends`, async () => {
    const from = stack!.logLines.length
    const headers = await flood('flood')
    const deleted = await request(stack!.local('flood'), { method: 'DELETE', headers })
    assert.equal(deleted.statusCode, 200)
    await deleted.body.dump()
    const told = await waitFor(
      () => entries(from).find((e) => e.msg.includes('more warnings about what the server')),
      'the count, once the process ended',
    )
    assert.equal(told.suppressed, STRAYS - BUDGET)
    assert.equal(
      entries(from).filter((e) => e.msg === 'server sent a reply to no pending request; dropped')
        .length,
      BUDGET,
    )
    assert.equal(await suppressedMetric('flood'), STRAYS - BUDGET)
  })

  it(`shared mode: the replica's ${BUDGET} warnings, the rest counted`, async () => {
    const from = stack!.logLines.length
    await flood('floodsh')
    // Read in one stdout read and handled in one turn: every stray is handled once the reply is.
    const warned = entries(from).filter(
      (e) => e.msg === 'shared server replied to no pending request; dropped',
    )
    assert.equal(warned.length, BUDGET)
    // Its window ends when the process does: the gateway stops it.
    const registry = stack!.gateway.metrics.registry
    const closing = stack!
    stack = undefined
    await closing.close()
    const counted = await waitFor(async () => {
      const m = await registry.getSingleMetric('mcp_edge_log_lines_suppressed_total')?.get()
      return m?.values.find((v) => v.labels.server === 'floodsh')?.value
    }, 'the shared process counted')
    assert.equal(counted, STRAYS - BUDGET)
  })
})
