// A session-era session on an aggregating endpoint, with the SDK v2 client: logs relayed as a
// server's own session relays them, and resource subscriptions held on the process that took
// them. The backend is the conformance server, which tells on stderr (logged by the gateway
// with its pid) which process got each subscribe and unsubscribe; the tests wait for those
// lines and for process exits, never for a duration.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const WATCHED = 'test://watched-resource'
const POLICY = `${TEST_POLICY}  watched:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      // A short idle time: a lane nothing holds is ended soon, so a test can wait for it.
      watched: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'conformance.js'), 'watched'],
        env: { CONFORMANCE_TRACE: '1' },
        idleTimeout: 400,
      },
    },
    config: { endpoints: { subs: { servers: ['watched'] } } },
  })
})
after(() => stack.close())

const url = () => `${stack.url}/mcp/subs`

async function connect(
  client: string,
  o: { capabilities?: Record<string, unknown>; setup?: (c: Client) => void } = {},
) {
  const c = new Client(
    { name: `session-${client}`, version: '0' },
    { capabilities: o.capabilities ?? {} },
  )
  o.setup?.(c)
  const transport = new StreamableHTTPClientTransport(new URL(url()), {
    requestInit: {
      headers: { authorization: `Bearer ${await stack.token(client, { resource: url() })}` },
    },
  })
  await c.connect(transport)
  return { c, transport }
}

/** Pids of the processes that wrote `conformance: <what>` to stderr, among the log lines from `from` on. */
function traced(what: string, from = 0): number[] {
  return stack.logLines
    .slice(from)
    .map((l) => JSON.parse(l) as { stderr?: string; pid?: number })
    .filter((l) => l.stderr === `conformance: ${what}`)
    .map((l) => l.pid!)
}

/** Pids of the live backend processes of the `watched` server. */
function watchedPids(): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
  return out
    .split('\n')
    .filter((l) => l.trim().endsWith(' watched'))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
}

describe('logs on an endpoint session', () => {
  it('a client that never set a level hears every log of a call; after logging/setLevel, those at or above it', async () => {
    const logs: string[] = []
    const { c } = await connect('alice', {
      setup: (x) =>
        x.setNotificationHandler(
          'notifications/message',
          (n) => void logs.push(`${n.params.level}: ${String(n.params.data)}`),
        ),
    })
    try {
      // Logs of a call travel on its stream, ahead of its reply.
      await c.callTool({ name: 'watched_test_logging_tool', arguments: {} })
      assert.deepEqual(logs, [
        'debug: test_logging_tool: debug detail',
        'info: test_logging_tool: done',
      ])
      logs.length = 0
      await c.setLoggingLevel('info')
      await c.callTool({ name: 'watched_test_logging_tool', arguments: {} })
      assert.deepEqual(logs, ['info: test_logging_tool: done'])
    } finally {
      await c.close()
    }
  })
})

describe('resource subscriptions on an endpoint session', () => {
  it('updates reach the client; unsubscribe goes to the subscribed process even while a call of the user runs on it', async () => {
    const updates: string[] = []
    let asked!: () => void
    const asking = new Promise<void>((r) => (asked = r))
    let release!: () => void
    const released = new Promise<void>((r) => (release = r))
    const { c, transport } = await connect('alice', {
      capabilities: { elicitation: {} },
      setup: (x) => {
        x.setNotificationHandler(
          'notifications/resources/updated',
          (n) => void updates.push(n.params.uri),
        )
        x.setRequestHandler('elicitation/create', async () => {
          asked()
          await released
          return { action: 'accept', content: { username: 'u', email: 'u@example.com' } }
        })
      },
    })
    try {
      const from = stack.logLines.length
      await c.subscribeResource({ uri: WATCHED })
      const [subscriber] = await waitFor(
        () =>
          traced(`subscribed ${WATCHED}`, from).length > 0 && traced(`subscribed ${WATCHED}`, from),
        'the subscribe at a process',
      )
      await c.callTool({ name: 'watched_test_update_watched_resource', arguments: {} })
      await waitFor(() => updates.length > 0, 'the update')
      assert.deepEqual(updates, [WATCHED], 'by its public URI')

      // The user's only free process is the subscribed one: this call holds it while the client unsubscribes.
      const holding = c.callTool({
        name: 'watched_test_elicitation',
        arguments: { message: 'hold' },
      })
      await asking
      await c.unsubscribeResource({ uri: WATCHED })
      const [unsubscriber] = await waitFor(
        () =>
          traced(`unsubscribed ${WATCHED}`, from).length > 0 &&
          traced(`unsubscribed ${WATCHED}`, from),
        'the unsubscribe at a process',
      )
      assert.equal(unsubscriber, subscriber, 'the process that took the subscription gave it up')
      release()
      assert.match(JSON.stringify((await holding).content), /action=accept/)
    } finally {
      release()
      await transport.terminateSession()
      await c.close()
    }
  })

  it("the subscribed process outlives the idle reaper while another user's idle one is ended; unsubscribed, it is ended too", async () => {
    const updates: string[] = []
    const alice = await connect('alice', {
      setup: (x) =>
        x.setNotificationHandler(
          'notifications/resources/updated',
          (n) => void updates.push(n.params.uri),
        ),
    })
    const bob = await connect('bob')
    try {
      const from = stack.logLines.length
      await alice.c.subscribeResource({ uri: WATCHED })
      const [subscriber] = await waitFor(
        () =>
          traced(`subscribed ${WATCHED}`, from).length > 0 && traced(`subscribed ${WATCHED}`, from),
        'the subscribe at a process',
      )
      // Bob's process is used after Alice's was last: the reaper ends Alice's first unless it is held.
      const before = new Set(watchedPids())
      await bob.c.callTool({ name: 'watched_test_simple_text', arguments: {} })
      const bobs = watchedPids().filter((p) => !before.has(p))
      assert.equal(bobs.length, 1, "bob's call started one process")
      await waitFor(() => !watchedPids().includes(bobs[0]!), "bob's idle process to be ended")
      assert.ok(watchedPids().includes(subscriber!), 'the subscribed process is still there')
      await alice.c.callTool({ name: 'watched_test_update_watched_resource', arguments: {} })
      await waitFor(() => updates.length > 0, 'the update from the held process')
      assert.deepEqual(updates, [WATCHED])

      await alice.c.unsubscribeResource({ uri: WATCHED })
      await waitFor(() => !watchedPids().includes(subscriber!), 'the released process to be ended')
    } finally {
      for (const s of [alice, bob]) {
        await s.transport.terminateSession()
        await s.c.close()
      }
    }
  })

  it('ending the session gives its subscriptions back: the process is unsubscribed', async () => {
    const { c, transport } = await connect('alice')
    const from = stack.logLines.length
    await c.subscribeResource({ uri: WATCHED })
    const [subscriber] = await waitFor(
      () =>
        traced(`subscribed ${WATCHED}`, from).length > 0 && traced(`subscribed ${WATCHED}`, from),
      'the subscribe at a process',
    )
    await transport.terminateSession()
    await c.close()
    const [unsubscriber] = await waitFor(
      () =>
        traced(`unsubscribed ${WATCHED}`, from).length > 0 &&
        traced(`unsubscribed ${WATCHED}`, from),
      'the unsubscribe at a process',
    )
    assert.equal(unsubscriber, subscriber)
  })
})
