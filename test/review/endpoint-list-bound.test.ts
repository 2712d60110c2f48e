// Review (issue 13), follow-up: what an endpoint keeps per user (lists of a user whose own
// process changed them, and that it did) must not grow with every user ever seen. It goes when
// the user's last process of that server ends; /metrics shows how much is kept.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

let stack: Stack
before(async () => {
  // The fixture's crash tool allowed here: it ends the caller's process.
  stack = await startStack({
    policy: TEST_POLICY.replace('crash: deny', 'crash: ["mcp:read"]'),
    config: { endpoints: { own: { servers: ['fixture', 'notes'] } } },
  })
})
after(() => stack.close())

const url = () => `${stack.url}/mcp/own`

async function userLists(): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  return Number(/^mcp_edge_endpoint_user_lists (\d+)$/m.exec(text)![1])
}

/** Reads the gauge until it says `want` (it changes when a process's exit is seen). */
async function until(want: number): Promise<number> {
  let n = -1
  await waitFor(
    async () => (n = await userLists()) === want,
    () => `the gauge still says ${n}, not ${want}`,
  )
  return n
}

describe('review: per-user endpoint lists are bounded by live processes', () => {
  it('a user whose process changed its lists has lists of their own until that process ends', async () => {
    let changed!: () => void
    const heard = new Promise<void>((resolve) => (changed = resolve))
    const c = new Client({ name: 'bound', version: '0' }, { capabilities: {} })
    c.setNotificationHandler('notifications/tools/list_changed', () => changed())
    await c.connect(
      new StreamableHTTPClientTransport(new URL(url()), {
        requestInit: {
          headers: { authorization: `Bearer ${await stack.token('alice', { resource: url() })}` },
        },
      }),
    )
    try {
      assert.equal(await userLists(), 0)
      await c.listTools()
      await c.callTool({ name: 'fixture_list_changed', arguments: {} })
      await heard
      assert.ok((await c.listTools()).tools.some((t) => t.name === 'fixture_dummy'))
      assert.ok((await userLists()) >= 2, 'her own tools list, and that her process diverged')
      await c.callTool({ name: 'fixture_crash', arguments: {} }).catch(() => {})
      assert.equal(await until(0), 0, 'gone with her process')
      // Her next process is like everyone's: the shared list, without the tool her old one had.
      assert.ok(!(await c.listTools()).tools.some((t) => t.name === 'fixture_dummy'))
      assert.equal(await userLists(), 0)
    } finally {
      await c.close()
    }
  })
})
