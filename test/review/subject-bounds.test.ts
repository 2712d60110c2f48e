// Review (issue 10, claim 3): one subject's hold on a server's processes. The session registry
// bounds a subject's *sessions* (maxSessionsPerSubject per server, limits.maxSessionsPerSubject
// in all), but the sessionless (2026-07-28) lanes take processes from the same pool and are
// bounded apart: DEFAULT_LANES_PER_SUBJECT per (server, principal, identity) for running
// requests, plus every lane parked on an input_required round, which does not count at all.
// These tests assert what the operator's bound promises, "one user's processes" (lanes.ts
// laneCap), and fail today.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const V = '2026-07-28'
const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const SERVERS = {
  bounded: { command: node, args: [fixture, 'bounded'], maxSessionsPerSubject: 2 },
  ident: { command: node, args: [fixture, 'ident'], identityEnv: true, maxSessionsPerSubject: 2 },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS).map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`).join('')}`

let stack: Stack
before(async () => {
  stack = await startStack({ servers: SERVERS, policy: POLICY })
})
after(() => stack.close())

/** Live processes of `server` (its fixture runs with the server's name as an argument). */
function processesOf(server: string): number {
  const out = execFileSync('ps', ['-o', 'args=', '--ppid', String(process.pid)], { encoding: 'utf8' })
  return out.split('\n').filter((l) => l.includes('fixture.js') && l.trim().endsWith(` ${server}`)).length
}

let nextId = 1
async function modern(server: string, token: string, name: string, args: Record<string, unknown>, caps: Record<string, unknown> = {}) {
  const body = { jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: args, _meta: { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': caps } } }
  const res = await request(stack.local(server), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`, 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': name },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const data = sseData(text)
  return { status: res.statusCode, json: JSON.parse(data.length > 0 ? data.at(-1)! : text) as Record<string, any> }
}

async function session(server: string, token: string): Promise<string> {
  const res = await request(stack.local(server), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'review', version: '0' } } }),
  })
  await res.body.text()
  assert.equal(res.statusCode, 200)
  return res.headers['mcp-session-id'] as string
}

async function until(what: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
}

describe('review: one subject, one server, maxSessionsPerSubject: 2', () => {
  it('sessions + parked input_required lanes + running lanes stay within the subject\'s bound of 2 processes', async () => {
    const token = await stack.token('alice', { server: 'bounded' })
    // Two sessions: the bound, reached.
    await session('bounded', token)
    await session('bounded', token)
    // Four requests parked on an elicitation: each keeps its own process, none counts.
    for (let i = 0; i < 4; i++) {
      const r = await modern('bounded', token, 'elicit', { message: `q${i}` }, { elicitation: { form: {} } })
      assert.equal(r.json.result?.resultType, 'input_required', JSON.stringify(r.json))
    }
    // Two more requests running at once (laneCap = min(4, maxSessionsPerSubject)).
    const running = [modern('bounded', token, 'slow', { ms: 3000 }), modern('bounded', token, 'slow', { ms: 3000 })]
    await until(() => processesOf('bounded') >= 8, 2500)
    const held = processesOf('bounded')
    const results = await Promise.all(running)
    assert.ok(results.every((r) => r.json.result?.content?.[0]?.text === 'done'), JSON.stringify(results.map((r) => r.json)))
    assert.ok(held <= 2, `alice held ${held} processes of a server whose maxSessionsPerSubject is 2`)
  })
})

describe('review: identityEnv multiplies the lane bound by the number of client ids', () => {
  it('one subject through five client ids runs no more processes than its bound', async () => {
    const tokens = await Promise.all(['c1', 'c2', 'c3', 'c4', 'c5'].map((azp) => stack.forge({ sub: 'mallory', azp, scope: 'mcp:read', aud: stack.endpoint('ident') })))
    const running = tokens.flatMap((t) => [modern('ident', t, 'slow', { ms: 5000 }), modern('ident', t, 'slow', { ms: 5000 })])
    await until(() => processesOf('ident') >= 10, 4500)
    const held = processesOf('ident')
    const results = await Promise.all(running)
    assert.ok(results.every((r) => r.json.result?.content?.[0]?.text === 'done'), JSON.stringify(results.map((r) => r.json)))
    assert.ok(held <= 2, `mallory held ${held} processes of a server whose maxSessionsPerSubject is 2`)
  })
})
