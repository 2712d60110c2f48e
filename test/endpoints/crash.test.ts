// A backend that crashes in the middle of answering a list: the endpoint's list leaves it out
// (log line, metric, and a logging notification in the session era) instead of failing, a call
// to another backend works, and the next list asks the crashed one again.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const V = '2026-07-28'
const POLICY = `${TEST_POLICY}  crashy:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n  crashres:\n    access: ["mcp:read"]\n    resources: { "*": allow }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      // The server without the SDK: each of its ~10 starts here ends at its first list, and the
      // fixture's imports cost ~0.2 s of CPU a start.
      crashy: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'plain.js'), 'crashy'],
        env: { PLAIN_CRASH_ON: 'tools/list' },
      },
      crashres: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'fixture.js'), 'crashres'],
        env: { FIXTURE_CRASH_ON: 'resources/list' },
      },
    },
    config: {
      endpoints: {
        both: { servers: ['echo', 'crashy'] },
        res: { servers: ['fixture', 'crashres'] },
      },
    },
  })
})
after(() => stack.close())

async function connect(
  era: 'session' | typeof V,
  logs: string[],
  endpoint = 'both',
): Promise<Client> {
  const c = new Client(
    { name: 'crash', version: '0' },
    era === V ? { versionNegotiation: { mode: { pin: V } } } : {},
  )
  c.setNotificationHandler('notifications/message', (n) => void logs.push(JSON.stringify(n.params)))
  const token = await stack.token('alice', { resource: `${stack.url}/mcp/${endpoint}` })
  await c.connect(
    new StreamableHTTPClientTransport(new URL(`${stack.url}/mcp/${endpoint}`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return c
}

async function skippedCount(): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  const m =
    /mcp_edge_endpoint_backends_skipped_total\{endpoint="both",server="crashy"\} (\d+)/.exec(text)
  return m ? Number(m[1]) : 0
}

for (const era of ['session', V] as const) {
  describe(`a backend that crashes mid-list (${era})`, () => {
    it('is left out of the list, counted and logged; the other backend lists and calls; the next list asks again', async () => {
      const logs: string[] = []
      const c = await connect(era, logs)
      try {
        const before = await skippedCount()
        const first = (await c.listTools()).tools.map((t) => t.name)
        assert.deepEqual(first, ['echo_echo'])
        const afterFirst = await skippedCount()
        assert.equal(afterFirst, before + 1)
        assert.ok(
          stack.logLines.some(
            (l) => l.includes('a backend could not list') && l.includes('"server":"crashy"'),
          ),
        )
        if (era === 'session')
          assert.ok(
            logs.some((l) => /left out of this list.*crashy/.test(l)),
            logs.join('\n'),
          )
        assert.deepEqual(
          (await c.callTool({ name: 'echo_echo', arguments: { text: 'still here' } })).content,
          [{ type: 'text', text: 'still here' }],
        )
        await assert.rejects(
          c.callTool({ name: 'crashy_pid', arguments: {} }),
          /no tool named "crashy_pid" on this endpoint; left out, could not list: crashy: not answering/,
        )
        // A failure is not cached as an empty list: the crashed backend is asked (and crashes)
        // again, by the next list and by every name lookup until it answers.
        assert.deepEqual(
          (await c.listTools()).tools.map((t) => t.name),
          ['echo_echo'],
        )
        assert.ok((await skippedCount()) > afterFirst)
      } finally {
        await c.close()
      }
    })
  })
}

for (const era of ['session', V] as const) {
  describe(`a resource URI no listing has, while a backend could not list (${era})`, () => {
    it('says which backend was left out and why, as a name of a refused backend does; none left out, none said', async () => {
      const uri = 'crashres://nowhere'
      const c = await connect(era, [], 'res')
      try {
        const left = /; left out, could not list: crashres: not answering$/
        // resources/subscribe is the session era's (2026-07-28 has subscriptions/listen).
        const asks: (() => Promise<unknown>)[] = [() => c.readResource({ uri })]
        if (era === 'session') asks.push(() => c.subscribeResource({ uri }))
        for (const ask of asks)
          await assert.rejects(ask(), (err: Error) => {
            assert.match(err.message, /no resource "crashres:\/\/nowhere" on this endpoint/)
            assert.match(err.message, left)
            return true
          })
      } finally {
        await c.close()
      }
      // Every backend of `both` lists its resources: the answer is the bare one.
      const d = await connect(era, [])
      try {
        await assert.rejects(d.readResource({ uri }), (err: Error) => {
          assert.match(err.message, /no resource "crashres:\/\/nowhere" on this endpoint/)
          assert.doesNotMatch(err.message, /left out/)
          return true
        })
      } finally {
        await d.close()
      }
    })
  })
}
