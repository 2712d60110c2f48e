// An endpoint's session era (2025-11-25 session at /mcp/<endpoint>): a routed call refused by the
// user's own bounds (maxSessionsPerSubject, maxSessions) is answered with the code and text every
// other transport gives (-32000, the bound named), audited once with that bound as its rule, and not
// logged as a gateway failure (it was a -32603 "internal error"). Real gateway, real fixture
// processes, raw HTTP.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const fixture = join(SERVERS_DIR, 'fixture.js')
const SERVERS = {
  // One process per user at most: a busy session of the user's holds it.
  single: { command: process.execPath, args: [fixture], maxSessionsPerSubject: 1 },
}
const POLICY = `${TEST_POLICY}  single:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { endpoints: { solo: { servers: ['single'] } } },
  })
})
after(() => stack.close())

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 't', version: '0' },
  },
}

/** A session-era session at `url`: the headers its requests carry. */
async function session(url: string, token: string): Promise<Record<string, string>> {
  const auth = { authorization: `Bearer ${token}` }
  const opened = await postMcp(url, INITIALIZE, auth)
  assert.equal(opened.status, 200, opened.text)
  const headers = {
    ...auth,
    'mcp-session-id': opened.headers['mcp-session-id'] as string,
    'mcp-protocol-version': '2025-11-25',
  }
  await postMcp(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)
  return headers
}

describe('endpoint session: a call past the user’s session bound', () => {
  it('gets -32000 naming the bound, as on the direct path; audited; not logged as an error', async () => {
    const forge = (at: string) =>
      stack.forge({ sub: 'holder', scope: 'mcp:read', aud: stack.endpoint(at) })
    const url = `${stack.url}/mcp/solo`
    // The endpoint session learns its tools (a process of the user's, idle after).
    const headers = await session(url, await forge('solo'))
    const listed = await postMcp(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, headers)
    assert.ok(listed.text.includes('single_pid'), listed.text)
    // A direct session takes the user's one process of `single` (the idle one makes room), and
    // keeps it busy: nothing can make room for the endpoint's call now.
    const token = await forge('single')
    const direct = stack.local('single')
    const held = await session(direct, token)
    const abort = new AbortController()
    const gate = await request(direct, {
      method: 'POST',
      headers: {
        ...held,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'gate', arguments: { name: 'held' }, _meta: { progressToken: 'p' } },
      }),
      signal: abort.signal,
    })
    // Running in its process: its progress came.
    let seen = ''
    for await (const chunk of gate.body) {
      seen += String(chunk)
      if (seen.includes('waiting at held')) break
    }
    // The direct path's answer to one more session of the user: 429 -32000, the bound named.
    const refusedDirect = await postMcp(direct, INITIALIZE, { authorization: `Bearer ${token}` })
    assert.equal(refusedDirect.status, 429, refusedDirect.text)
    const want = refusedDirect.json().error
    assert.equal(want.code, -32000)
    assert.match(want.message, /sessions in use on single/)

    const logged = stack.logLines.length
    const audited = stack.audit().length
    const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'single_pid' } }
    const answer = await postMcp(url, call, headers)
    assert.equal(answer.status, 200, answer.text)
    assert.deepEqual(answer.json(), { jsonrpc: '2.0', id: 7, error: want })

    const lines = stack.logLines.slice(logged).map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepEqual(
      lines.filter((l) => l.msg === 'endpoint request failed'),
      [],
      'a refusal is not a failure',
    )
    const audit = stack.audit().slice(audited)
    const mine = audit.filter((e) => e.sub === 'holder' && e.method === 'tools/call')
    assert.equal(mine.length, 1, JSON.stringify(audit))
    // The bound that refused it is the rule (the call's backend and own tool name).
    assert.equal(mine[0]!.server, 'single')
    assert.equal(mine[0]!.decision, 'rate_limited')
    assert.equal(mine[0]!.rule, 'servers.single.maxSessionsPerSubject')
    assert.equal(mine[0]!.outcome, 'refused')
    abort.abort()
    await gate.body.dump().catch(() => {})
  })
})
