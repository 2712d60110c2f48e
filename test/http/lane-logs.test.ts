// A sessionless (2026-07-28) lane's process serves many requests, one after another: what it
// writes on stderr is logged under the lane (its server and id), not under the request that
// happened to start it. It was logged with that first request's id for the lane's whole life,
// so a line written during a later request (another call, another client id) named the wrong
// request, and the lane kept the first request's context alive. Real gateway, real process.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const POLICY = `${TEST_POLICY}  fx:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: { fx: { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js'), 'fx'] } },
  })
})
after(() => stack.close())

/** The log record of the stderr line `text`, once logged. */
async function stderrRecord(text: string): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined
  await waitFor(() => {
    const line = stack.logLines.find((l) => l.includes(text))
    if (line !== undefined) found = JSON.parse(line) as Record<string, unknown>
    return found !== undefined
  }, `the stderr line ${text} logged`)
  return found!
}

describe("a sessionless lane's process logs under the lane", () => {
  it('a line written during a later request names the lane and its server, not the request that started the lane', async () => {
    const token = await stack.token('alice', { server: 'fx' })
    const call = async (text: string) => {
      const res = await request(`${stack.url}/mcp/fx`, modernToolCall(token, 'stderr', { text }))
      const body = await res.body.text()
      assert.equal(res.statusCode, 200, body)
      return res.headers['x-request-id'] as string
    }
    const firstReq = await call('lane-logs-first')
    const secondReq = await call('lane-logs-second')
    assert.notEqual(firstReq, secondReq)
    const first = await stderrRecord('lane-logs-first')
    const second = await stderrRecord('lane-logs-second')
    // Both lines came from one lane: the same process, the same lane id.
    assert.equal(typeof second.lane, 'string', JSON.stringify(second))
    assert.equal(second.server, 'fx', JSON.stringify(second))
    assert.equal(second.pid, first.pid, 'one lane served both calls')
    for (const [what, record] of [
      ['first', first],
      ['second', second],
    ] as const) {
      assert.notEqual(record.req, firstReq, `${what}: not under the request that started the lane`)
      assert.notEqual(record.req, secondReq, `${what}: not under a request id at all`)
    }
  })
})
