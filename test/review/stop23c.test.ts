// Stop 23c: an outsider's review of the day's merges (seqlat, democreds, review23, startfail2).
// Each finding is a failing test first (real gateway, real IdP tokens, real stdio processes),
// then the fix:
// - a session replacing its process for changed credentials (a secret set, or now deleted)
//   waits for the requests the old process has; the client's answer to that process's own
//   request (roots/list, sampling, elicitation) waited for the replacement, which waited for
//   the request: both hung until requestTimeout, and the answer then went to the new process.
// And pins of what held, where a later change could break it.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import type { SecretOwner } from '../../gateway/credentials/secrets.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const VAULT = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
const policyFor = (servers: string[]) =>
  `${TEST_POLICY}${servers
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')}`
const sha = (v: string) => createHash('sha256').update(v).digest('hex')
const textOf = (result: unknown) =>
  ((result as { content?: { text: string }[] }).content ?? []).map((c) => c.text).join('')
const ownerOf = (stack: Stack, sub: string): SecretOwner => ({ iss: stack.idp.issuer, sub })

/** A 2025-11-25 session of `user` on `server`. */
async function connect(
  stack: Stack,
  user: string,
  server: string,
  o: { capabilities?: Record<string, unknown>; setup?: (c: Client) => void } = {},
) {
  const client = new Client(
    { name: `stop23c-${user}`, version: '0' },
    { capabilities: o.capabilities ?? {} },
  )
  o.setup?.(client)
  const token = await stack.token(user, { server })
  const transport = new StreamableHTTPClientTransport(new URL(stack.local(server)), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  })
  await client.connect(transport)
  return { client, transport }
}

/** Waits for a condition the gateway makes true, looking every 10 ms, up to 10 s. */
async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(cond(), what)
}

/** A live session of `sub` is replacing its process (the sessions' private state, read). */
const swapping = (stack: Stack, sub: string) =>
  [
    ...(
      stack.gateway.registry as unknown as {
        sessions: Map<
          string,
          { swapping?: Promise<void>; closed: boolean; principal?: { sub: string } }
        >
      }
    ).sessions.values(),
  ].some((s) => s.principal?.sub === sub && !s.closed && s.swapping !== undefined)

describe("stop 23c: a process replacement never holds back the client's answers to the old process", () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      // A hang ends at requestTimeout with an error: the calls below would fail, not pass late.
      servers: {
        vault: { command: node, args: [fixture], credentials: VAULT, requestTimeout: 8_000 },
      },
      policy: policyFor(['vault']),
      config: { credentials: { pollInterval: 20, elicitationTimeout: 60_000 } },
    })
  })
  after(() => stack?.close())

  for (const change of ['deleted', 'rotated'] as const) {
    it(`a secret ${change} while a call waits for the client's roots/list answer`, async () => {
      const sub = change === 'deleted' ? 'alice' : 'bob'
      await stack.gateway.secrets!.set(ownerOf(stack, sub), 'vault_token', `${change}-old`)
      let asked!: () => void
      const askedNow = new Promise<void>((r) => (asked = r))
      let answer!: () => void
      const answerNow = new Promise<void>((r) => (answer = r))
      const { client } = await connect(stack, sub, 'vault', {
        capabilities: { roots: {} },
        setup: (c) =>
          c.setRequestHandler('roots/list', async () => {
            asked()
            await answerNow
            return { roots: [{ uri: 'file:///tmp/project', name: 'project' }] }
          }),
      })
      try {
        const first = JSON.parse(
          textOf(await client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })),
        ) as { pid: number; sha256: string }
        assert.equal(first.sha256, sha(`${change}-old`))
        // A call on the old process that asks the client something, and waits for its answer.
        const roots = client.callTool({ name: 'roots', arguments: {} })
        await askedNow
        if (change === 'deleted')
          await stack.gateway.secrets!.remove(ownerOf(stack, sub), 'vault_token')
        else await stack.gateway.secrets!.set(ownerOf(stack, sub), 'vault_token', `${change}-new`)
        // The next credentialed call replaces the process once the old one is idle.
        const next = client.callTool({ name: 'credential', arguments: { name: 'VAULT_TOKEN' } })
        // The replacement is under way (it waits for the roots call) before the client answers.
        await waitFor(() => swapping(stack, sub), 'the session began replacing its process')
        answer()
        const got = await roots
        assert.notEqual((got as { isError?: boolean }).isError, true, textOf(got))
        assert.match(textOf(got), /file:\/\/\/tmp\/project/)
        const after = await next
        if (change === 'deleted') {
          assert.equal((after as { isError?: boolean }).isError, true)
          assert.match(textOf(after), /account\?server=vault&secret=vault_token/)
        } else {
          const now = JSON.parse(textOf(after)) as { pid: number; sha256: string }
          assert.equal(now.sha256, sha(`${change}-new`))
          assert.notEqual(now.pid, first.pid)
        }
      } finally {
        answer()
        await client.close()
      }
    })
  }
})
