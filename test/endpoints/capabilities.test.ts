// What an endpoint's initialize offers: every relayed feature while a backend the caller may use
// has not started (learning it would start it), then the backends' own features merged; never
// more than is relayed. Both eras (initialize, server/discover); a pure table for the merge.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { mergedCapabilities } from '../../gateway/bridge/aggregate.js'
import { startStack, type Stack } from '../helpers/stack.js'

const V = '2026-07-28'
const EVERY = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  logging: {},
  completions: {},
}

describe('mergedCapabilities', () => {
  const cases: { name: string; in: unknown[]; out: Record<string, unknown> }[] = [
    { name: 'tools only', in: [{ tools: {} }], out: { tools: { listChanged: true }, logging: {} } },
    {
      name: 'a union, listChanged whatever a backend says',
      in: [{ tools: { listChanged: false } }, { prompts: {}, completions: {} }],
      out: {
        tools: { listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
    },
    {
      name: 'subscribe when one backend has it',
      in: [{ resources: {} }, { resources: { subscribe: true } }],
      out: { resources: { subscribe: true, listChanged: true }, logging: {} },
    },
    {
      name: 'no subscribe when none has it, or only as a non-true value',
      in: [{ resources: { subscribe: 'yes' } }],
      out: { resources: { listChanged: true }, logging: {} },
    },
    {
      name: 'experimental and extensions are not relayed, so not offered',
      in: [{ tools: {}, experimental: { x: {} }, extensions: { y: {} }, tasks: {} }],
      out: { tools: { listChanged: true }, logging: {} },
    },
    {
      name: 'hostile shapes count as nothing',
      in: [null, 'tools', ['tools'], 7, { resources: null }],
      out: { resources: { listChanged: true }, logging: {} },
    },
  ]
  for (const c of cases) it(c.name, () => assert.deepEqual(mergedCapabilities(c.in), c.out))
})

let stack: Stack
before(async () => {
  stack = await startStack({
    config: { endpoints: { tooling: { servers: ['echo', 'echojson'] } } },
  })
})
after(() => stack.close())

async function capabilities(era: 'session' | typeof V): Promise<Record<string, unknown>> {
  const c = new Client(
    { name: 'caps', version: '0' },
    era === V ? { versionNegotiation: { mode: { pin: V } } } : {},
  )
  const token = await stack.token('alice', { resource: `${stack.url}/mcp/tooling` })
  await c.connect(
    new StreamableHTTPClientTransport(new URL(`${stack.url}/mcp/tooling`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  try {
    const caps = { ...c.getServerCapabilities() } as Record<string, unknown>
    await c.listTools()
    return caps
  } finally {
    await c.close()
  }
}

describe("an endpoint's initialize", () => {
  it('offers every relayed feature before its backends started, then theirs, merged (both eras)', async () => {
    assert.deepEqual(
      await capabilities('session'),
      EVERY,
      'nothing started yet: the list that follows starts them',
    )
    // echo and echojson offer tools only (and the gateway's own logging).
    assert.deepEqual(await capabilities('session'), { tools: { listChanged: true }, logging: {} })
    assert.deepEqual(await capabilities(V), { tools: { listChanged: true }, logging: {} })
  })
})
