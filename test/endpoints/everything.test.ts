// An endpoint over unmodified published servers beside ours: the reference "everything" server
// (@modelcontextprotocol/server-everything), echo, notes and the fixture, with a policy that
// hides most of everything's tools. The SDK v2 client in both eras and the v1 client: lists,
// calls, progress, prompts and their completions, resources and templates, pagination.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const MODULES = fileURLToPath(
  new URL('../../../node_modules/@modelcontextprotocol/', import.meta.url),
)
const V = '2026-07-28'
const POLICY = `${TEST_POLICY}  everything:
    access: ["mcp:read"]
    tools:
      echo: ["mcp:read"]
      get-sum: ["mcp:read"]
      trigger-long-running-operation: ["mcp:read"]
      "*": deny
    prompts: { "*": ["mcp:read"] }
    resources: { "*": ["mcp:read"] }
`
/** What alice may see of everything's tools, under the endpoint's prefix. */
const EVERYTHING_TOOLS = [
  'everything_echo',
  'everything_get-sum',
  'everything_trigger-long-running-operation',
]

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      everything: {
        command: process.execPath,
        args: [join(MODULES, 'server-everything/dist/index.js'), 'stdio'],
      },
    },
    config: {
      endpoints: {
        all: { path: '/mcp', servers: ['echo', 'notes', 'everything', 'fixture'] },
        paged: { servers: ['everything', 'fixture'], pageSize: 3 },
      },
    },
  })
})
after(() => stack.close())

const url = (path: string) => `${stack.url}${path}`
const text = (r: unknown) =>
  ((r as { content: { type: string; text?: string }[] }).content ?? [])
    .filter((x) => x.type === 'text')
    .map((x) => x.text)
    .join('')

async function connect(era: 'session' | typeof V, path = '/mcp'): Promise<Client> {
  const c = new Client(
    { name: 'everything-endpoint', version: '0' },
    era === V ? { versionNegotiation: { mode: { pin: V } } } : {},
  )
  const token = await stack.token('alice', { resource: url(path) })
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url(path)), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  )
  return c
}

async function pages<T>(
  list: (cursor?: string) => Promise<{ items: T[]; nextCursor?: string }>,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = []
  let cursor: string | undefined
  let n = 0
  do {
    const page = await list(cursor)
    items.push(...page.items)
    cursor = page.nextCursor
    n++
  } while (cursor !== undefined && n < 100)
  return { items, pages: n }
}

for (const era of ['session', V] as const) {
  describe(`an endpoint over server-everything, echo, notes and the fixture (${era})`, () => {
    it('lists what the policy allows of each, under prefixes, and calls them', async () => {
      const c = await connect(era)
      try {
        const names = (await c.listTools()).tools.map((t) => t.name)
        assert.deepEqual(names.filter((n) => n.startsWith('everything_')).sort(), EVERYTHING_TOOLS)
        for (const n of ['echo_echo', 'notes_read_note', 'fixture_pid'])
          assert.ok(names.includes(n), n)
        assert.match(
          text(await c.callTool({ name: 'everything_get-sum', arguments: { a: 2, b: 3 } })),
          /5/,
        )
        assert.match(
          text(
            await c.callTool({
              name: 'everything_echo',
              arguments: { message: 'through one URL' },
            }),
          ),
          /through one URL/,
        )
        assert.equal(
          text(await c.callTool({ name: 'echo_echo', arguments: { text: 'and ours' } })),
          'and ours',
        )
        await assert.rejects(
          c.callTool({ name: 'everything_get-env', arguments: {} }),
          /denied by policy/,
        )
      } finally {
        await c.close()
      }
    })

    it('progress of a long-running call reaches the client', async () => {
      const c = await connect(era)
      try {
        const seen: number[] = []
        const r = await c.callTool(
          {
            name: 'everything_trigger-long-running-operation',
            arguments: { duration: 0.2, steps: 2 },
          },
          { onprogress: (p) => void seen.push(p.progress) },
        )
        assert.match(text(r), /completed/i)
        assert.deepEqual(seen, [1, 2])
      } finally {
        await c.close()
      }
    })

    it('prompts, with completions of their arguments routed to the server', async () => {
      const c = await connect(era)
      try {
        const prompts = (await c.listPrompts()).prompts.map((p) => p.name)
        for (const p of [
          'everything_simple-prompt',
          'everything_args-prompt',
          'everything_completable-prompt',
          'fixture_greet',
        ])
          assert.ok(prompts.includes(p), p)
        const got = await c.getPrompt({
          name: 'everything_args-prompt',
          arguments: { city: 'Lisbon', state: 'LX' },
        })
        assert.match(JSON.stringify(got.messages), /Lisbon/)
        const done = await c.complete({
          ref: { type: 'ref/prompt', name: 'everything_completable-prompt' },
          argument: { name: 'department', value: 'E' },
        })
        assert.ok(done.completion.values.includes('Engineering'), done.completion.values.join(' '))
        await assert.rejects(
          c.complete({
            ref: { type: 'ref/prompt', name: 'completable-prompt' },
            argument: { name: 'department', value: 'E' },
          }),
          /no prompt named/,
        )
      } finally {
        await c.close()
      }
    })

    it('resources keep their own URIs, read from the server that lists them; templates route URIs built from them', async () => {
      const c = await connect(era)
      try {
        const uris = (
          await pages(async (cursor) => {
            const r = await c.listResources(cursor ? { cursor } : {})
            return { items: r.resources.map((x) => x.uri), nextCursor: r.nextCursor }
          })
        ).items
        assert.ok(uris.includes('demo://resource/static/document/architecture.md'))
        assert.ok(uris.includes('fixture://hello'))
        const doc = await c.readResource({ uri: 'demo://resource/static/document/architecture.md' })
        assert.equal(doc.contents[0]!.uri, 'demo://resource/static/document/architecture.md')
        const templates = (await c.listResourceTemplates()).resourceTemplates.map(
          (t) => t.uriTemplate,
        )
        assert.ok(
          templates.includes('demo://resource/dynamic/text/{resourceId}'),
          templates.join(' '),
        )
        const built = await c.readResource({ uri: 'demo://resource/dynamic/text/7' })
        assert.equal(built.contents[0]!.uri, 'demo://resource/dynamic/text/7')
        await assert.rejects(c.readResource({ uri: 'demo://resource/nowhere' }))
      } finally {
        await c.close()
      }
    })

    it('pages of an endpoint span its servers: every item once, in pages of pageSize', async () => {
      const c = await connect(era, '/mcp/paged')
      const direct = await connect(era)
      try {
        const paged = await pages(async (cursor) => {
          const r = await c.listResources(cursor ? { cursor } : {})
          return { items: r.resources.map((x) => x.uri), nextCursor: r.nextCursor }
        })
        const all = (await direct.listResources()).resources
          .map((x) => x.uri)
          .filter((u) => u.startsWith('demo://') || u.startsWith('fixture://'))
        assert.deepEqual([...paged.items].sort(), [...all].sort())
        // The v2 client walks every page itself (listResources without a cursor); pages are counted with v1 below.
        assert.equal(new Set(paged.items).size, paged.items.length, 'no item twice')
      } finally {
        await c.close()
        await direct.close()
      }
    })
  })
}

describe('the SDK v1 client at an endpoint over server-everything', () => {
  it('pages through resources of two servers, pageSize at a time, each item once', async () => {
    const { Client: V1 } = await import('@modelcontextprotocol/sdk/client/index.js')
    const { StreamableHTTPClientTransport: V1Transport } = await import(
      '@modelcontextprotocol/sdk/client/streamableHttp.js'
    )
    const c = new V1({ name: 'v1', version: '0' })
    const token = await stack.token('alice', { resource: url('/mcp/paged') })
    await c.connect(
      new V1Transport(new URL(url('/mcp/paged')), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      const paged = await pages(async (cursor) => {
        const r = await c.listResources(cursor ? { cursor } : {})
        return { items: r.resources.map((x) => x.uri), nextCursor: r.nextCursor }
      })
      assert.ok(
        paged.items.some((u) => u.startsWith('demo://')) &&
          paged.items.some((u) => u.startsWith('fixture://')),
        'both servers',
      )
      assert.equal(new Set(paged.items).size, paged.items.length, 'no item twice')
      assert.ok(paged.items.length > 3)
      assert.equal(paged.pages, Math.ceil(paged.items.length / 3))
    } finally {
      await c.close()
    }
  })

  it('lists, calls, and reads', async () => {
    const { Client: V1 } = await import('@modelcontextprotocol/sdk/client/index.js')
    const { StreamableHTTPClientTransport: V1Transport } = await import(
      '@modelcontextprotocol/sdk/client/streamableHttp.js'
    )
    const c = new V1({ name: 'v1', version: '0' })
    const token = await stack.token('alice', { resource: url('/mcp') })
    await c.connect(
      new V1Transport(new URL(url('/mcp')), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    try {
      const names = (await c.listTools()).tools.map((t) => t.name)
      assert.deepEqual(names.filter((n) => n.startsWith('everything_')).sort(), EVERYTHING_TOOLS)
      assert.match(
        text(await c.callTool({ name: 'everything_get-sum', arguments: { a: 20, b: 22 } })),
        /42/,
      )
      const doc = await c.readResource({ uri: 'demo://resource/static/document/features.md' })
      assert.equal(doc.contents[0]!.uri, 'demo://resource/static/document/features.md')
    } finally {
      await c.close()
    }
  })
})
