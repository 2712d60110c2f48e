// A session's reply goes to its client before its audit line is made: the line is bookkeeping,
// not on the client's path. An SSE reply is written as the process's answer is read; a JSON
// reply (`responses: json`) is written by its HTTP request's own continuation, which ran after
// the session had built and written the audit line (and ended the request's span).
import assert from 'node:assert/strict'
import { ServerResponse } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { initBody } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { startStack, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const INIT = initBody()

let stack: Stack
before(async () => {
  stack = await startStack()
})
after(() => stack.close())

/** The audit lines of tools/call on `server` so far. */
const calls = (server: string) =>
  stack.audit().filter((e) => e.method === 'tools/call' && e.server === server).length

/**
 * Calls the echo tool on `server` and returns how many of its tools/call audit lines existed
 * when the response to the call was ended (Node's `end`, which hands the last bytes to the
 * socket), and how many there are once the call is done.
 */
async function callAndCount(server: string): Promise<{ atEnd: number[]; before: number }> {
  const token = await stack.token('alice', { server })
  const auth = { authorization: `Bearer ${token}` }
  const init = await postMcp(stack.local(server), INIT, auth)
  assert.equal(init.status, 200, init.text)
  const session = { ...auth, 'mcp-session-id': init.headers['mcp-session-id'] as string }
  await postMcp(
    stack.local(server),
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    session,
  )
  const before = calls(server)
  const atEnd: number[] = []
  const end = ServerResponse.prototype.end
  // Only the call's own response: it carries this header.
  ServerResponse.prototype.end = function (this: ServerResponse, ...args: unknown[]) {
    if (this.req?.headers['x-order-case'] === server) atEnd.push(calls(server))
    return (end as (...a: unknown[]) => ServerResponse).apply(this, args)
  } as typeof end
  try {
    const res = await postMcp(
      stack.local(server),
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'order' } },
      },
      { ...session, 'x-order-case': server },
    )
    assert.equal(res.status, 200, res.text)
    assert.equal(res.json().result.content[0].text, 'order')
  } finally {
    ServerResponse.prototype.end = end
  }
  return { atEnd, before }
}

describe('a reply and its audit line', () => {
  for (const [server, kind] of [
    ['echo', 'SSE'],
    ['echojson', 'JSON'],
  ] as const) {
    it(`${kind} (${server}): the reply is ended before its audit line is made, and the line is made`, async () => {
      const { atEnd, before } = await callAndCount(server)
      // Ended once, when no line of this call existed yet.
      assert.deepEqual(atEnd, [before])
      await waitFor(() => calls(server) === before + 1, `the audit line of the ${kind} call`)
      const line = stack.audit().filter((e) => e.method === 'tools/call' && e.server === server)[
        before
      ]!
      assert.equal(line.outcome, 'ok')
      assert.equal(line.decision, 'allow')
      assert.equal(typeof line.durationMs, 'number')
    })
  }
})
