// Stop 25: an outsider's review of what changed since stop 24 (probe paths and the host guard,
// request timeouts on one timer, sessionless lanes given back after the answer, the warm pool
// spawning one per turn). Each finding is a failing test first (real gateway, real processes,
// real tokens), then the fix:
// - a sessionless call that ended without the process's answer (the client went, or the
//   request timed out) gave its lane back at once, while the process, told only
//   `notifications/cancelled` (which a server may ignore), still ran it: the next request of
//   the user on that lane (another app of theirs, say) got the abandoned call's progress and
//   log notifications as its own.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const fixture = join(SERVERS_DIR, 'fixture.js')
const SERVERS = {
  lanes: { command: process.execPath, args: [fixture], pool: { min: 0 } },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
  .join('')}`
const LOG_LEVEL = 'io.modelcontextprotocol/logLevel'

describe('stop 25: a lane is not handed on while the process still runs an abandoned call', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({ servers: SERVERS, policy: POLICY })
  })
  after(() => stack.close())

  it("another app of the user does not get a call's progress and logs that its client left", async () => {
    const token = await stack.token('alice', { server: 'lanes' })
    // App A: a call deaf to cancellation, its progress and logs asked for; A leaves mid-call.
    const ac = new AbortController()
    const first = await request(stack.local('lanes'), {
      ...modernToolCall(
        token,
        'linger',
        { name: 'g' },
        { id: 1, meta: { progressToken: 'p', [LOG_LEVEL]: 'debug' } },
      ),
      signal: ac.signal,
    })
    assert.equal(first.headers['content-type'], 'text/event-stream')
    // It runs at the process (its first progress came), then the client goes.
    let seen = ''
    await new Promise<void>((resolve, reject) => {
      first.body.on('data', (chunk: Buffer) => {
        seen += chunk.toString()
        if (seen.includes('waiting at g')) resolve()
      })
      first.body.on('error', () => {})
      first.body.on('end', () => reject(new Error(`ended early: ${seen}`)))
    })
    ac.abort()
    await waitFor(() => stack.audit().find((e) => e.name === 'linger' && e.outcome === 'cancelled'))
    // App B, the same user: the same progress token (clients count from 0 or 1), logs asked.
    const res = await request(
      stack.local('lanes'),
      modernToolCall(
        token,
        'open_gate',
        { name: 'g', settle: true },
        { id: 1, meta: { progressToken: 'p', [LOG_LEVEL]: 'debug' } },
      ),
    )
    const text = await res.body.text()
    const messages = sseData(text).map((d) => JSON.parse(d) as Record<string, unknown>)
    const foreign = messages.filter((m) => JSON.stringify(m).includes('after g'))
    assert.deepEqual(foreign, [], `B's stream carried A's notifications: ${text}`)
    assert.ok(text.includes('opened g'), text)
  })
})
