// Review (issue 13): an endpoint's cache of its backends' lists must never show one user what
// another user's process holds. A session-mode server runs a process per user (its state is
// that user's: notes written, tools registered, resources created), and announces a change of
// its lists with list_changed. The endpoint cached a server's list per server, not per user,
// and refilled it after a change from whichever user listed first: bob then saw (and was
// offered to call) a tool that only alice's process had, and alice the lists of bob's.
//
// The fixture's `list_changed` tool registers a `dummy` tool in the process that runs it.
// Nothing here waits for a duration: alice's client hears the list_changed before she lists.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { startStack, type Stack } from '../helpers/stack.js'

let stack: Stack
before(async () => {
  stack = await startStack({ config: { endpoints: { own: { servers: ['fixture', 'notes'] } } } })
})
after(() => stack.close())

const url = () => `${stack.url}/mcp/own`

async function connect(client: string, onChanged?: () => void): Promise<Client> {
  const c = new Client({ name: `cache-${client}`, version: '0' }, { capabilities: {} })
  if (onChanged) c.setNotificationHandler('notifications/tools/list_changed', () => onChanged())
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url()), {
      requestInit: {
        headers: { authorization: `Bearer ${await stack.token(client, { resource: url() })}` },
      },
    }),
  )
  return c
}

const names = async (c: Client) => (await c.listTools()).tools.map((t) => t.name)

describe("review: an endpoint's list cache and per-user processes", () => {
  it("a tool one user's process registered is listed to that user only, not to another", async () => {
    let changed!: () => void
    const heard = new Promise<void>((resolve) => (changed = resolve))
    const alice = await connect('alice', () => changed())
    const bob = await connect('bob')
    try {
      // Both see the server's tools (the cache is filled, shared while the processes agree).
      assert.ok(!(await names(alice)).includes('fixture_dummy'))
      assert.ok(!(await names(bob)).includes('fixture_dummy'))
      await alice.callTool({ name: 'fixture_list_changed', arguments: {} })
      await heard
      // Alice's process has the new tool: she sees it and can call it.
      assert.ok(
        (await names(alice)).includes('fixture_dummy'),
        'alice sees the tool her process registered',
      )
      // Bob's process never had it: showing it to him shows him alice's process.
      assert.ok(
        !(await names(bob)).includes('fixture_dummy'),
        "bob is shown a tool only alice's process has",
      )
      // And the other way round: bob listing first after the change does not hide alice's tool from her.
      assert.ok((await names(alice)).includes('fixture_dummy'))
    } finally {
      await alice.close()
      await bob.close()
    }
  })
})
