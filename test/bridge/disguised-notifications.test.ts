// A server process's notification named like one of MCP's in disguise (`notifications/Tools/
// list_changed`, `notifications/progress\u200b`, `notifications/message `) is dropped as it is
// read (child.ts) and logged, in every process model: a session's owner relayed it as it is,
// past the checks it makes of the real one by its exact name (a resource update of a URI the
// user may not read, a task's status for a tool denied), to clients that fold names. Real
// processes (node scripts), a real gateway, raw HTTP.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { request } from 'undici'
import { spawnChild } from '../../gateway/bridge/child.js'
import { configSchema } from '../../gateway/config/schema.js'
import { disguisedMethod, MCP_METHODS } from '../../gateway/policy/method-names.js'
import { initBody } from '../checklist/open-session.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { sseData } from '../helpers/sse.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

/** Server notifications in disguise, each with the MCP notification it folds to. */
const DISGUISES: [string, string][] = [
  ['notifications/Tools/list_changed', 'notifications/tools/list_changed'],
  ['NOTIFICATIONS/PROMPTS/LIST_CHANGED', 'notifications/prompts/list_changed'],
  ['notifications/resources/list_changed\u200b', 'notifications/resources/list_changed'],
  ['notifications/progress\u200b', 'notifications/progress'],
  ['notifications/Progress', 'notifications/progress'],
  ['\ufeffnotifications/progress', 'notifications/progress'],
  ['notifications/message ', 'notifications/message'],
  ['notifications/message\u0000', 'notifications/message'],
  ['notifications/message\u0000x', 'notifications/message'],
  ['notifications/Resources/updated', 'notifications/resources/updated'],
  ['notifications/resources/updated\u00ad', 'notifications/resources/updated'],
  ['\uff4eotifications/resources/updated', 'notifications/resources/updated'],
  ['notifications/tasks/Status', 'notifications/tasks/status'],
  ['notifications/cancelled\t', 'notifications/cancelled'],
  ['notifications/elicitation/COMPLETE', 'notifications/elicitation/complete'],
  ['notifications/İnitialized', 'notifications/initialized'],
]

/** What each notification carries: the request's own progress token, a URI the user may not read. */
const PARAMS = `(method, token) => ({
  progressToken: token, progress: 1, uri: 'test://secret', taskId: 't-1', status: 'working',
  requestId: 1, level: 'error', data: 'disguised ' + method, elicitationId: 'e-1',
})`

// On tools/call `emit`: every disguise (argv[2]), then the real progress and log line and an
// update of the secret URI (which policy drops), then the reply.
const EMITTER = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const disguises = JSON.parse(process.argv[2])
const params = ${PARAMS}
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    return out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: { listChanged: true }, logging: {}, resources: { subscribe: true } },
      serverInfo: { name: 'emitter', version: '0' } } })
  if (m.id === undefined) return
  if (m.method === 'tools/list')
    return out({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'emit', inputSchema: { type: 'object' } }] } })
  if (m.method !== 'tools/call') return out({ jsonrpc: '2.0', id: m.id, result: {} })
  const token = m.params._meta?.progressToken
  for (const method of disguises) out({ jsonrpc: '2.0', method, params: params(method, token) })
  out({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'test://secret' } })
  out({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: 2 } })
  out({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'error', data: 'real' } })
  out({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'emitted' }] } })
})
`

describe('a server notification in disguise is dropped as it is read; exact and custom ones are not', () => {
  it('the process hands its owner no disguise, logs each, and hands on the rest', async () => {
    const lines: string[] = []
    const log = pino(
      { level: 'warn' },
      new Writable({
        write: (c, _e, done) => {
          lines.push(String(c))
          done()
        },
      }),
    )
    const exact = ['notifications/progress', 'notifications/message', 'x/custom', 'tools/Calls']
    const requests = ['Sampling/CreateMessage', 'roots/list ']
    const written = [
      ...DISGUISES.map(([method]) => ({ jsonrpc: '2.0', method })),
      ...exact.map((method) => ({ jsonrpc: '2.0', method })),
      // Requests in disguise are the owner's to refuse (-32601), so the process gets an answer.
      ...requests.map((method, i) => ({ jsonrpc: '2.0', id: i + 1, method })),
      { jsonrpc: '2.0', id: 9, result: {} },
    ]
    const config = configSchema.parse({
      servers: {
        f: {
          command: process.execPath,
          args: ['-e', `process.stdout.write(${JSON.stringify(lineOf(written))})`],
        },
      },
    }).servers.f!
    const child = await spawnChild(config, log)
    const handed: JSONRPCMessage[] = []
    child.onmessage = (m) => handed.push(m)
    await child.exited
    assert.deepEqual(
      handed.map((m) => ('method' in m ? m.method : 'id' in m ? m.id : undefined)),
      [...exact, ...requests, 9],
    )
    for (const [method, meant] of DISGUISES) {
      const warned = lines
        .map((l) => JSON.parse(l) as { msg: string; method: string; meant: string })
        .filter((l) => l.msg.includes('in disguise; dropped') && l.method === method)
      assert.equal(warned.length, 1, `${JSON.stringify(method)} logged once`)
      assert.equal(warned[0]!.meant, meant)
    }
  })

  it('a long disguise is logged cut short', async () => {
    const lines: string[] = []
    const log = pino(
      { level: 'warn' },
      new Writable({
        write: (c, _e, done) => {
          lines.push(String(c))
          done()
        },
      }),
    )
    // NUL: the part before it folds to MCP's, whatever follows.
    const method = `notifications/progress\u0000${'x'.repeat(100_000)}`
    assert.equal(disguisedMethod(method), 'notifications/progress')
    const config = configSchema.parse({
      servers: {
        f: {
          command: process.execPath,
          args: [
            '-e',
            `process.stdout.write(${JSON.stringify(lineOf([{ jsonrpc: '2.0', method }]))})`,
          ],
        },
      },
    }).servers.f!
    const child = await spawnChild(config, log)
    const handed: JSONRPCMessage[] = []
    child.onmessage = (m) => handed.push(m)
    await child.exited
    assert.deepEqual(handed, [])
    const warned = lines.map((l) => JSON.parse(l)).filter((l) => l.meant !== undefined)
    assert.equal(warned.length, 1)
    assert.ok(warned[0].method.length <= 120, `${warned[0].method.length}`)
  })
})

const lineOf = (messages: unknown[]) => messages.map((m) => `${JSON.stringify(m)}\n`).join('')

let stack: Stack
before(async () => {
  const script = join(tmpdir(), `disguised-notifications-${process.pid}.mjs`)
  writeFileSync(script, EMITTER)
  const server = (mode: string) => ({
    command: process.execPath,
    args: [script, JSON.stringify(DISGUISES.map(([m]) => m))],
    mode,
    // Every disguise of every call is looked for in the log: none suppressed (log-window.ts).
    warnings: { linesPerWindow: 100_000 },
  })
  const rules = `
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
    resources: { "test://open": ["mcp:read"] }
`
  stack = await startStack({
    servers: { emit: server('session'), emitsh: server('shared') },
    policy: `${TEST_POLICY}  emit:${rules}  emitsh:${rules}`,
    config: { endpoints: { emitep: { servers: ['emit'] } } },
  })
})
after(() => stack?.close())

/** The messages of a whole SSE (or JSON) body. */
const messagesOf = (text: string) =>
  (sseData(text).length > 0 ? sseData(text) : [text]).map(
    (d) => JSON.parse(d) as { method?: string; id?: unknown; params?: Record<string, unknown> },
  )

/** A session-era session of `url`, initialized: the headers its requests carry. */
async function session(url: string, token: string): Promise<Record<string, string>> {
  const auth = { authorization: `Bearer ${token}` }
  const opened = await postMcp(url, initBody({}, '2025-11-25'), auth)
  assert.equal(opened.status, 200, opened.text)
  const headers = {
    ...auth,
    'mcp-session-id': opened.headers['mcp-session-id'] as string,
    'mcp-protocol-version': '2025-11-25',
  }
  const done = await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)
  assert.equal(done.status, 202)
  return headers
}

/** Every disguise was logged as dropped since line `from` of the gateway's log. */
async function allLogged(from: number): Promise<void> {
  for (const [method, meant] of DISGUISES)
    await waitFor(
      () =>
        stack.logLines
          .slice(from)
          .map((l) => JSON.parse(l) as { msg?: string; method?: string; meant?: string })
          .some(
            (l) =>
              l.msg?.includes('in disguise; dropped') && l.method === method && l.meant === meant,
          ),
      `the log line dropping ${JSON.stringify(method)}`,
    )
}

/** What reached the client: no method in disguise; the real progress (its own token) did. */
function checked(got: ReturnType<typeof messagesOf>, token: string, reply: unknown): void {
  const odd = got.filter((m) => m.method !== undefined && !MCP_METHODS.has(m.method))
  assert.deepEqual(odd, [], `relayed: ${JSON.stringify(odd.map((m) => m.method))}`)
  const progress = got.filter((m) => m.method === 'notifications/progress')
  assert.deepEqual(
    progress.map((m) => m.params),
    [{ progressToken: token, progress: 2 }],
  )
  // The update of a URI the user may not read: dropped by policy, as before.
  assert.ok(!got.some((m) => m.method === 'notifications/resources/updated'))
  assert.equal(got.at(-1)?.id, reply)
}

describe('in every process model, the client hears none of them', () => {
  for (const [model, server] of [
    ['session mode', 'emit'],
    ['shared mode', 'emitsh'],
  ] as const)
    it(`${model}: the call's stream carries the real progress and no disguise; each is logged`, async () => {
      const from = stack.logLines.length
      const url = stack.local(server)
      const headers = await session(url, await stack.token('alice', { server }))
      const res = await postMcp(
        url,
        {
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: { name: 'emit', arguments: {}, _meta: { progressToken: 'p-2' } },
        },
        headers,
      )
      assert.equal(res.status, 200, res.text)
      const got = messagesOf(res.text)
      checked(got, 'p-2', 2)
      // Session mode relays the process's log lines; shared mode relays none (replica.ts).
      const logs = got.filter((m) => m.method === 'notifications/message').map((m) => m.params)
      assert.deepEqual(logs, model === 'session mode' ? [{ level: 'error', data: 'real' }] : [])
      await allLogged(from)
    })

  it("an endpoint's session: the call's stream carries the real progress and no disguise", async () => {
    const from = stack.logLines.length
    const url = `${stack.url}/mcp/emitep`
    const headers = await session(url, await stack.token('alice', { resource: url }))
    const listed = await postMcp(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, headers)
    assert.ok(listed.text.includes('emit_emit'), listed.text)
    const res = await postMcp(
      url,
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'emit_emit', arguments: {}, _meta: { progressToken: 'p-2' } },
      },
      headers,
    )
    assert.equal(res.status, 200, res.text)
    const got = messagesOf(res.text)
    checked(got, 'p-2', 2)
    assert.deepEqual(
      got.filter((m) => m.method === 'notifications/message').map((m) => m.params),
      [{ level: 'error', data: 'real' }],
    )
    await allLogged(from)
  })

  it('sessionless 2026-07-28: the response stream carries the real progress and no disguise', async () => {
    const from = stack.logLines.length
    const res = await request(
      stack.local('emit'),
      modernToolCall(
        await stack.token('alice', { server: 'emit' }),
        'emit',
        {},
        { id: 3, meta: { progressToken: 'p-3', 'io.modelcontextprotocol/logLevel': 'debug' } },
      ),
    )
    const text = await res.body.text()
    assert.equal(res.statusCode, 200, text)
    const got = messagesOf(text)
    checked(got, 'p-3', 3)
    assert.deepEqual(
      got.filter((m) => m.method === 'notifications/message').map((m) => m.params),
      [{ level: 'error', data: 'real' }],
    )
    await allLogged(from)
  })
})
