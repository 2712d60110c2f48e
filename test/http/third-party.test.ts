// Unmodified third-party stdio servers from the registry behind the gateway, reached with the
// SDK client: the reference "everything" server and the filesystem server.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const MODULES = fileURLToPath(
  new URL('../../../node_modules/@modelcontextprotocol/', import.meta.url),
)
const shared = mkdtempSync(join(tmpdir(), 'mcp-edge-fs-'))
writeFileSync(join(shared, 'hello.txt'), 'hello from disk\n')

const POLICY = `${TEST_POLICY}  everything:
    access: ["mcp:read"]
    tools:
      echo: ["mcp:read"]
      get-sum: ["mcp:read"]
      "*": deny
    prompts: { "*": ["mcp:read"] }
    resources: { "*": ["mcp:read"] }
  files:
    access: ["mcp:read"]
    tools:
      read_text_file: ["mcp:read"]
      list_allowed_directories: ["mcp:read"]
      list_directory: ["mcp:read"]
      "write_*": ["mcp:write"]
      "*": deny
`

let stack: Stack
before(async () => {
  stack = await startStack({
    policy: POLICY,
    servers: {
      everything: {
        command: process.execPath,
        args: [join(MODULES, 'server-everything/dist/index.js'), 'stdio'],
      },
      files: {
        command: process.execPath,
        args: [join(MODULES, 'server-filesystem/dist/index.js'), shared],
      },
    },
  })
})
after(() => stack.close())

/** Both protocol eras: a session (initialize) and sessionless 2026-07-28 requests. */
const ERAS = ['session', '2026-07-28'] as const
type Era = (typeof ERAS)[number]

async function connect(server: string, client: string, era: Era) {
  const c = new Client(
    { name: 'third-party', version: '0' },
    era === 'session' ? {} : { versionNegotiation: { mode: { pin: era } } },
  )
  await c.connect(
    new StreamableHTTPClientTransport(new URL(stack.local(server)), {
      requestInit: {
        headers: { authorization: `Bearer ${await stack.token(client, { server })}` },
      },
    }),
  )
  return c
}
const text = (r: unknown) =>
  (r as { content: { type: string; text?: string }[] }).content.find((x) => x.type === 'text')
    ?.text ?? ''

for (const era of ERAS)
  describe(`@modelcontextprotocol/server-everything (${era})`, () => {
    it('tools listed through the policy, an allowed call works, the rest are refused', async () => {
      const c = await connect('everything', 'alice', era)
      try {
        assert.equal(c.getNegotiatedProtocolVersion() === '2026-07-28', era !== 'session')
        const { tools } = await c.listTools()
        assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'get-sum'])
        assert.match(
          text(await c.callTool({ name: 'echo', arguments: { message: 'via the gateway' } })),
          /via the gateway/,
        )
        assert.match(text(await c.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } })), /5/)
        await assert.rejects(
          c.callTool({ name: 'toggle-simulated-logging', arguments: {} }),
          /denied by policy/,
        )
        const { prompts } = await c.listPrompts()
        assert.ok(prompts.length > 0)
        const { resources } = await c.listResources()
        assert.ok(resources.length > 0)
        const first = resources[0]!
        const read = await c.readResource({ uri: first.uri })
        assert.equal(read.contents[0]!.uri, first.uri)
      } finally {
        await c.close()
      }
    })
  })

for (const era of ERAS)
  describe(`@modelcontextprotocol/server-filesystem (${era})`, () => {
    it('reads through the gateway; writing needs mcp:write', async () => {
      const reader = await connect('files', 'alice', era)
      try {
        assert.equal(
          text(
            await reader.callTool({
              name: 'read_text_file',
              arguments: { path: join(shared, 'hello.txt') },
            }),
          ),
          'hello from disk\n',
        )
        await assert.rejects(
          reader.callTool({
            name: 'write_file',
            arguments: { path: join(shared, 'x.txt'), content: 'no' },
          }),
        )
      } finally {
        await reader.close()
      }
      const writer = await connect('files', 'dev', era)
      try {
        await writer.callTool({
          name: 'write_file',
          arguments: { path: join(shared, 'written.txt'), content: `by dora (${era})` },
        })
        assert.equal(readFileSync(join(shared, 'written.txt'), 'utf8'), `by dora (${era})`)
        const { tools } = await writer.listTools()
        assert.ok(!tools.some((t) => t.name === 'move_file'), 'unlisted tools are filtered out')
      } finally {
        await writer.close()
      }
    })
  })
