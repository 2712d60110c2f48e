// Plain 2026-07-28 requests through the real gateway: one principal's requests with no
// progress token, log level or client capabilities share one process (counted by the lanes
// gauge), each reply reaches its own HTTP request, and a request with a progress token runs on
// a process of its own and streams its progress.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const SERVER = 'plain'

let stack: Stack
let token: string
before(async () => {
  stack = await startStack({
    servers: {
      [SERVER]: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'fixture.js')],
        maxSessionsPerSubject: 17,
      },
    },
    // lanesPerSubject stays at its default (4): a lane shared by plain requests counts once.
    config: { limits: { sessionless: { lanePlainConcurrency: 17 } } },
    policy: `${TEST_POLICY}  ${SERVER}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`,
  })
  token = await stack.token('alice', { server: SERVER })
})
after(() => stack.close())

/** A plain tools/call; its JSON reply. */
async function call(name: string, args: Record<string, unknown> = {}, id = 1) {
  const res = await request(stack.local(SERVER), modernToolCall(token, name, args, { id }))
  assert.equal(res.statusCode, 200)
  return (await res.body.json()) as { id: number; result: { content: { text: string }[] } }
}
const textOf = (r: { result: { content: { text: string }[] } }) => r.result.content[0]!.text

async function lanes(): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  return Number(/^mcp_edge_lanes (\d+)/m.exec(text)?.[1])
}

describe('2026-07-28 plain requests share a process', () => {
  it('16 in flight from one principal run on one process; each reply is its own', async () => {
    const names = Array.from({ length: 16 }, (_, i) => `g${i}`)
    const gates = names.map((name) => call('gate', { name }))
    // A gate passes only when opened on its own process: one process opened them all.
    for (const name of names)
      assert.equal(textOf(await call('open_gate', { name })), `opened ${name}`)
    assert.deepEqual(
      (await Promise.all(gates)).map(textOf),
      names.map((n) => `passed ${n}`),
    )
    // One JSON-RPC id for all: each HTTP request still gets its own arguments back.
    const echoes = await Promise.all(
      Array.from({ length: 16 }, (_, i) => call('echo_args', { session: 1, i }, 7)),
    )
    assert.deepEqual(
      echoes.map((r) => [r.id, JSON.parse(textOf(r)).i]),
      Array.from({ length: 16 }, (_, i) => [7, i]),
    )
    assert.equal(await lanes(), 1, 'one process served all of them')
  })

  it('a request with a progress token runs on a process of its own and streams its progress', async () => {
    const plain = ['p0', 'p1'].map((name) => call('gate', { name }))
    const gone = new AbortController()
    const res = await request(stack.local(SERVER), {
      ...modernToolCall(token, 'gate', { name: 'n0' }, { meta: { progressToken: 'n0' } }),
      signal: gone.signal,
    })
    assert.equal(res.headers['content-type'], 'text/event-stream')
    // Read, not left: leaving the stream (a `break` out of `for await`) is the client going,
    // which cancels the request and ends its process (stop 25).
    let seen = ''
    await new Promise<void>((resolve) => {
      res.body.on('data', (chunk: Buffer) => {
        seen += String(chunk)
        if (seen.includes('waiting at n0')) resolve()
      })
      res.body.on('error', () => {})
    })
    assert.match(seen, /"progressToken":"n0"/)
    // Until the plain ones hold theirs too: a state, not a duration (3 would fail the equality).
    await waitFor(async () => (await lanes()) >= 2, 'the plain ones hold a lane too')
    assert.equal(await lanes(), 2, 'the plain ones on one process, the other on its own')
    for (const name of ['p0', 'p1']) await call('open_gate', { name })
    assert.deepEqual((await Promise.all(plain)).map(textOf), ['passed p0', 'passed p1'])
    gone.abort()
  })
})
