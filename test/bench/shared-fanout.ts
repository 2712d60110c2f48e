// Bench-only scratch (not a test, not in `npm run bench`): what one notification of a shared
// process costs the gateway with N users, each holding a sessionless lane (a view) of the shared
// server and a session at an endpoint over it (a listener to their own events). The gateway runs
// in this process, otherwise idle: the CPU of one tools/list_changed (the fixture's toggle) is
// this process's, median of 15. `node dist/test/bench/shared-fanout.js 3000`
// Measured (brief catalog36, 2 shared cores): 1,000 users 42 ms, 3,000 users 316 ms before
// listeners were told only their own principal's events; 14 ms and 30 ms after.
import { join } from 'node:path'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY } from '../helpers/stack.js'

const users = Number(process.argv[2] ?? 1000)
const ALLOW = '    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n'
const stack = await startStack({
  policy: `${TEST_POLICY}  sh:\n${ALLOW}`,
  servers: {
    sh: { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')], mode: 'shared' },
  },
  config: { endpoints: { ep: { servers: ['sh'] } }, limits: { maxSessions: 100_000 } },
})
stack.log.level = 'silent'
const token = (i: number, server: string) =>
  stack.forge({ sub: `u${i}`, aud: stack.endpoint(server) })
let id = 0

async function lane(i: number): Promise<void> {
  const res = await request(
    `${stack.url}/mcp/sh`,
    modernToolCall(await token(i, 'sh'), 'pid', {}, { id: ++id }),
  )
  await res.body.text()
  if (res.statusCode !== 200) throw new Error(`lane: ${res.statusCode}`)
}

async function session(i: number): Promise<void> {
  const res = await request(`${stack.url}/mcp/ep`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${await token(i, 'ep')}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'fanout', version: '0' },
      },
    }),
  })
  await res.body.text()
  if (res.statusCode !== 200) throw new Error(`session: ${res.statusCode}`)
}

try {
  for (let i = 0; i < users; i += 50)
    await Promise.all(
      Array.from({ length: Math.min(50, users - i) }, (_, k) =>
        Promise.all([lane(i + k), session(i + k)]),
      ),
    )
  const first = await token(0, 'sh')
  const cpu: number[] = []
  for (let round = 0; round < 15; round++) {
    const before = process.cpuUsage()
    const res = await request(
      `${stack.url}/mcp/sh`,
      modernToolCall(first, 'list_changed', {}, { id: ++id }),
    )
    await res.body.text()
    await new Promise((resolve) => setImmediate(resolve))
    const used = process.cpuUsage(before)
    cpu.push((used.user + used.system) / 1000)
  }
  cpu.sort((a, b) => a - b)
  console.log(
    `${users} users: one shared list_changed costs ${cpu[7]!.toFixed(1)} ms CPU (median of 15, max ${cpu[14]!.toFixed(0)} ms)`,
  )
} finally {
  await stack.close()
}
