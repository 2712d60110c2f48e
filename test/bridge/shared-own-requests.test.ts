// The gateway's own requests to a shared process are nobody's: when a session of a shared-mode
// server closes holding a resource subscription, the gateway sends the process its own
// `resources/unsubscribe` (the last subscriber gone); a process that exits with it in flight is
// charged to the subjects whose requests were in flight (shared-crashes.ts), never to the
// closed session's user, who sent nothing then. The real gateway and IdP, the fixture server in
// shared mode exiting on resources/unsubscribe (FIXTURE_CRASH_ON), raw HTTP; a second user's call
// waiting at a gate is in flight at the same exit, so the exit's charge is logged and read.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { initBody } from '../checklist/open-session.js'
import { unsubscribeExitStack } from '../helpers/held-stacks.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const SERVERS = {
  subby: {
    command: process.execPath,
    args: [join(SERVERS_DIR, 'fixture.js')],
    mode: 'shared',
    respawnBackoff: 10,
    env: { FIXTURE_CRASH_ON: 'resources/unsubscribe' },
  },
}
const POLICY = `${TEST_POLICY}  subby:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": allow }\n`

let stack: Stack
let laneStack: Stack
before(async () => {
  // An endpoint on a shared conformance process that exits on resources/unsubscribe; one exit
  // charged to a subject is their allowance: the next request refused if they were charged.
  laneStack = await unsubscribeExitStack()
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { limits: { sharedCrashesPerSubject: 100 } },
  })
})
after(async () => {
  await stack.close()
  await laneStack.close()
})

const ERAS = ['2025-03-26', '2025-06-18', '2025-11-25', 'legacy'] as const

/** The exits charged so far, as logged: who, and each one's share. */
const charges = () =>
  stack.logLines
    .filter((l) => l.includes('shared server process exit charged to the subjects'))
    .map((l) => JSON.parse(l) as { blamed: string[]; share: number })

/** A session of `user` on subby in `era`: its id, a POST of one message on it, and its end. */
async function openSession(user: string, era: (typeof ERAS)[number]) {
  const token = await stack.token(user, { server: 'subby' })
  const auth = { authorization: `Bearer ${token}` }
  if (era === 'legacy') {
    const res = await request(`${stack.url}/sse/subby`, {
      headers: { accept: 'text/event-stream', ...auth },
    })
    assert.equal(res.statusCode, 200)
    const events = res.body[Symbol.asyncIterator]()
    let text = ''
    const until = async (what: string) => {
      while (!text.includes(what)) text += String((await events.next()).value ?? '')
    }
    await until('\n\n')
    const endpoint = /event: endpoint\ndata: (.*)\n/.exec(text)![1]!
    const post = (body: unknown) => postMcp(`${stack.url}${endpoint}`, body, auth)
    assert.equal((await post(initBody({}, '2024-11-05'))).status, 202)
    await until('"id":1')
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
    return {
      send: async (body: { id: number } & Record<string, unknown>) => {
        assert.equal((await post(body)).status, 202)
        await until(`"id":${body.id}`)
      },
      end: async () => void res.body.destroy(),
    }
  }
  const res = await postMcp(stack.local('subby'), initBody({}, era), auth)
  assert.equal(res.status, 200, res.text)
  const headers = {
    ...auth,
    'mcp-session-id': res.headers['mcp-session-id'] as string,
    'mcp-protocol-version': era,
  }
  await postMcp(
    stack.local('subby'),
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    headers,
  )
  return {
    send: async (body: unknown) => {
      const answer = await postMcp(stack.local('subby'), body, headers)
      assert.equal(answer.status, 200, answer.text)
    },
    end: async () => {
      const del = await request(stack.local('subby'), { method: 'DELETE', headers })
      assert.equal(del.statusCode, 200)
      await del.body.dump()
    },
  }
}

describe("a closing session's own resources/unsubscribe is charged to no one", () => {
  for (const era of ERAS)
    it(`${era}: the process exits on it with bob's call in flight: bob alone is charged`, async () => {
      const before = charges().length
      // Bob's call waits at a gate: in flight on the process at its exit.
      const bob = await stack.token('bob', { server: 'subby' })
      const bobAuth = { authorization: `Bearer ${bob}` }
      const opened = await postMcp(stack.local('subby'), initBody({}, '2025-11-25'), bobAuth)
      const bobHeaders = {
        ...bobAuth,
        'mcp-session-id': opened.headers['mcp-session-id'] as string,
        'mcp-protocol-version': '2025-11-25',
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      }
      const gate = await request(stack.local('subby'), {
        method: 'POST',
        headers: bobHeaders,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 5,
          method: 'tools/call',
          params: { name: 'gate', arguments: { name: era }, _meta: { progressToken: 'p' } },
        }),
      })
      const gateIt = gate.body[Symbol.asyncIterator]()
      let gateText = ''
      while (!gateText.includes(`waiting at ${era}`))
        gateText += String((await gateIt.next()).value ?? '')

      // Alice subscribes, then ends her session: the gateway unsubscribes, the process exits.
      const alice = await openSession('alice', era)
      await alice.send({
        jsonrpc: '2.0',
        id: 2,
        method: 'resources/subscribe',
        params: { uri: `fixture://watched-${era}` },
      })
      await alice.end()
      await waitFor(() => charges().length > before, 'the exit charged')
      const [charge] = charges().slice(before)
      assert.deepEqual(charge!.blamed, ['bob'], 'alice sent nothing in flight then')
      assert.equal(charge!.share, 1)
      // Bob's call ended with the process.
      for (let next = await gateIt.next(); !next.done; next = await gateIt.next())
        gateText += String(next.value)
      assert.match(gateText, /"id":5,"error"/)
    })
})

describe("an endpoint session's subscription given back on its lane is charged to no one", () => {
  const url = () => `${laneStack.url}/mcp/shsub`
  const connect = async () => {
    const c = new Client({ name: 'own-alice', version: '0' }, { capabilities: {} })
    const transport = new StreamableHTTPClientTransport(new URL(url()), {
      requestInit: {
        headers: {
          authorization: `Bearer ${await laneStack.token('alice', { resource: url() })}`,
        },
      },
    })
    await c.connect(transport)
    return { c, transport }
  }
  it('the process exits on the unsubscribe sent as the session ends: alice is not refused after', async () => {
    const first = await connect()
    await first.c.subscribeResource({ uri: 'test://watched-resource' })
    const from = laneStack.logLines.length
    await first.transport.terminateSession()
    await first.c.close()
    await waitFor(
      () =>
        laneStack.logLines
          .slice(from)
          .some((l) =>
            l.includes('shared server process exited; its sessions end and it restarts'),
          ),
      'the process exited on the unsubscribe',
    )
    // Charged, alice would be at her allowance (1) from the process's death on: refused (429).
    const second = await connect()
    try {
      const result = (await second.c.callTool({
        name: 'shconf_test_simple_text',
        arguments: {},
      })) as {
        content: { text: string }[]
        isError?: boolean
      }
      assert.equal(result.isError, undefined, JSON.stringify(result))
      assert.match(result.content[0]!.text, /simple text/i)
    } finally {
      await second.transport.terminateSession()
      await second.c.close()
    }
  })
})
