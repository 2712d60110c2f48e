// Stop 26: an outsider's attack on cross-user leakage where one process or one endpoint serves
// many users (shared mode's id and progress-token rewriting, endpoints' namespaced names).
// Finding (shared mode, medium): a log line (`notifications/message`) of a shared process went to
// whichever session had the one request in flight when it arrived. A log line names no request,
// so that guessed: the line of work the process still did for a session that had closed (or
// of no request at all) reached another user's session. Log lines of a shared process now go
// to no session.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const ACCEPT = 'application/json, text/event-stream'
const RECORD = join(mkdtempSync(join(tmpdir(), 'mcp-edge-stop26-')), 'record.jsonl')
const got = (text: string) => existsSync(RECORD) && readFileSync(RECORD, 'utf8').includes(text)
const SERVERS = {
  sharedfx: {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'fixture.js')],
    mode: 'shared',
    env: { FIXTURE_RECORD_FILE: RECORD },
  },
}
const POLICY = `${TEST_POLICY}  sharedfx:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
    resources: { "*": ["mcp:read"] }
`

let stack: Stack
before(async () => {
  stack = await startStack({ servers: SERVERS, policy: POLICY })
})
after(async () => {
  await stack.close()
})

type Message = any

async function rpc(server: string, token: string, body: unknown, sid?: string) {
  const res = await request(`${stack.url}/mcp/${server}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      ...(sid ? { 'mcp-session-id': sid } : {}),
    },
    body: JSON.stringify(body),
  })
  const text = await res.body.text()
  const sse = String(res.headers['content-type']).startsWith('text/event-stream')
  const messages: Message[] = sse
    ? sseData(text).map((l) => JSON.parse(l))
    : text
      ? [JSON.parse(text)]
      : []
  return { status: res.statusCode, headers: res.headers, messages, last: messages.at(-1) }
}

async function open(server: string, token: string) {
  const init = await rpc(server, token, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 't', version: '0' },
    },
  })
  assert.equal(init.status, 200)
  const sid = init.headers['mcp-session-id'] as string
  await rpc(server, token, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)
  const call = (id: number | string, name: string, args: Record<string, unknown> = {}) =>
    rpc(
      server,
      token,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } },
      sid,
    )
  const close = () =>
    request(`${stack.url}/mcp/${server}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sid },
    }).then((r) => r.body.dump())
  return { sid, call, close }
}

describe('stop 26: shared mode, one process for every user', () => {
  it("a log line of work the process still does for a closed session never reaches another user's request", async () => {
    const alice = await open('sharedfx', await stack.token('alice', { server: 'sharedfx' }))
    const bob = await open('sharedfx', await stack.token('bob', { server: 'sharedfx' }))
    // Alice's call runs on (deaf to cancellation) and logs "after alice-private" when released.
    const lingering = alice.call(1, 'linger', { name: 'alice-private' })
    await waitFor(() => got('alice-private'), "alice's call reached the process")
    await alice.close()
    await lingering
    // Bob's one request in flight releases it, and is answered only after the log line is out.
    const res = await bob.call(1, 'open_gate', { name: 'alice-private', settle: true })
    assert.equal(res.last?.result?.content?.[0]?.text, 'opened alice-private')
    const leaked = res.messages.filter((m) => JSON.stringify(m).includes('after alice-private'))
    assert.deepEqual(leaked, [], "alice's log line reached bob")
  })
})
