// Stop 23c: an outsider's review of the day's merges (seqlat, democreds, review23, startfail2).
// Each finding is a failing test first (real gateway, real IdP tokens, real stdio processes),
// then the fix:
// - a session replacing its process for changed credentials (a secret set, or now deleted)
//   waits for the requests the old process has; the client's answer to that process's own
//   request (roots/list, sampling, elicitation) waited for the replacement, which waited for
//   the request: both hung until requestTimeout, and the answer then went to the new process;
// - exchanged tokens cached per client: two apps of one user retired each other's lanes at
//   every lease (their fingerprints differed), a process start per call when they alternated;
// - a multi-line secret's one-letter line blotted that letter out of every stderr line;
// - a credential variable the default environment sets (USER, HOME…) ran users who had not
//   set theirs with the gateway's own value;
// - a deleted secret of a server that exits without it: -32603 instead of the refusal naming
//   the account page, and the old process ran on with the deleted value.
// And pins of what held, where a later change could break it.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { ConfigError } from '../../gateway/config/errors.js'
import { validateConfig } from '../../gateway/config/load.js'
import type { SecretOwner } from '../../gateway/credentials/secrets.js'
import { GATEWAY_AUDIENCE } from '../helpers/exchange-idp.js'
import { startExchangeStack, type ExchangeStack } from '../helpers/exchange-stack.js'
import { modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'
import { connectAs } from '../helpers/sdk-session.js'

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
const connect = (
  stack: Stack,
  user: string,
  server: string,
  o: Parameters<typeof connectAs>[3] = {},
) => connectAs(stack, user, server, { name: `stop23c-${user}`, ...o })

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
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

describe("stop 23c: two apps of one user, each with its own exchanged token, keep each other's processes", () => {
  let stack: ExchangeStack

  before(async () => {
    stack = await startExchangeStack('MCP_EDGE_STOP23C_EXCHANGE_SECRET', {
      VAULT_TOKEN: { secret: 'vault_token' },
    })
  })
  after(() => stack?.close())

  async function call(token: string, id: number, name = 'WAREHOUSE_TOKEN') {
    const res = await request(
      `${stack.gateway.url}/mcp/warehouse`,
      modernToolCall(token, 'credential', { name }, { id }),
    )
    const json = (await res.body.json()) as {
      result?: { content: { text: string }[]; isError?: boolean }
    }
    if (json.result?.isError) return { sha256: '', pid: 0, refused: textOf(json.result) }
    return JSON.parse(textOf(json.result ?? {})) as { sha256: string; pid: number }
  }
  const alice = () => ({ iss: stack.idp.issuer, sub: 'alice' })
  async function tokens() {
    const { idp } = stack
    const broad = await idp.subjectToken('alice')
    const now = Math.floor(Date.now() / 1000)
    // The same user through another app (its own client id, a token the IdP signed for it).
    const narrow = await idp.forge({
      iss: idp.issuer,
      sub: 'alice',
      aud: GATEWAY_AUDIENCE,
      client_id: 'narrow-app',
      scope: 'mcp:read',
      iat: now,
      exp: now + 600,
    })
    return { broad, narrow }
  }

  it("alternating calls of the two apps reuse each app's process (none is retired for the other's values)", async () => {
    const { idp } = stack
    await stack.gateway.secrets!.set(alice(), 'vault_token', 'alice-vault-1')
    const issued: string[] = []
    idp.knobs.tamper = (body) => {
      issued.push(String((body as { access_token?: unknown }).access_token))
      return body
    }
    const { broad, narrow } = await tokens()
    const a = await call(broad, 1)
    const b = await call(narrow, 2)
    assert.equal(a.sha256, sha(issued[0]!))
    assert.equal(b.sha256, sha(issued[1]!))
    assert.notEqual(a.pid, b.pid, 'each app runs on a process with its own exchanged token')
    for (let round = 0; round < 3; round++) {
      const again = await call(broad, 10 + 2 * round)
      assert.equal(again.sha256, sha(issued[0]!))
      assert.equal(again.pid, a.pid, "the first app's process was retired by the second's call")
      const other = await call(narrow, 11 + 2 * round)
      assert.equal(other.sha256, sha(issued[1]!))
      assert.equal(other.pid, b.pid, "the second app's process was retired by the first's call")
    }
    assert.equal(idp.received.length, 2)
  })

  it("held: the user's own secret deleted retires every app's process, each app's own exchange aside", async () => {
    await stack.gateway.secrets!.set(alice(), 'vault_token', 'alice-vault-2')
    const { broad, narrow } = await tokens()
    const a = await call(broad, 101, 'VAULT_TOKEN')
    const b = await call(narrow, 102, 'VAULT_TOKEN')
    assert.equal(a.sha256, sha('alice-vault-2'))
    assert.equal(b.sha256, sha('alice-vault-2'))
    await stack.gateway.secrets!.remove(alice(), 'vault_token')
    const refused = await call(broad, 103, 'VAULT_TOKEN')
    assert.match((refused as { refused?: string }).refused ?? '', /vault_token/)
    await waitFor(() => !alive(a.pid) && !alive(b.pid), "both apps' processes ended")
  })
})

describe("stop 23c: a multi-line secret's short lines are not blotted out of every stderr line", () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      servers: { vault: { command: node, args: [fixture], credentials: VAULT } },
      policy: policyFor(['vault']),
    })
  })
  after(() => stack?.close())

  it("a value's long lines are blotted, its one-character line is not a form of its own", async () => {
    // A PEM-like value whose last line is one character (a user may set any value).
    const value = 'first-line-of-the-key-0123456789\nsecond-line-of-the-key-abcdefgh\nA'
    await stack.gateway.secrets!.set(ownerOf(stack, 'alice'), 'vault_token', value)
    const { client } = await connect(stack, 'alice', 'vault')
    try {
      const marker = `stop23c-${Date.now()}`
      const text = `${marker} All Available; key second-line-of-the-key-abcdefgh`
      await client.callTool({ name: 'stderr', arguments: { text } })
      await waitFor(
        () => stack.logLines.some((l) => l.includes(marker)),
        'the stderr line reached the log',
      )
      const line = stack.logLines.find((l) => l.includes(marker))!
      assert.ok(!line.includes('second-line-of-the-key'), line)
      assert.match(line, /All Available; key \[redacted\]/, line)
    } finally {
      await client.close()
    }
  })
})

describe('stop 23c: a credential variable the process gets from the default environment is refused', () => {
  function problems(credentials: Record<string, unknown>): string[] {
    try {
      validateConfig(
        { servers: { vault: { command: 'node', credentials } } },
        { file: 'test.yaml', baseDir: '/tmp' },
      )
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err))
      return err.problems.map((p) => `${p.path ?? ''}: ${p.message}`)
    }
    return []
  }

  it("HOME, LOGNAME, PATH, SHELL, TERM, USER: the gateway's own value stood in for a user's", () => {
    for (const variable of ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'TERM', 'USER']) {
      const got = problems({ [variable]: { secret: 'their-value' } })
      assert.equal(got.length, 1, `${variable}: ${JSON.stringify(got)}`)
      assert.match(got[0]!, new RegExp(`^servers\\.vault\\.credentials\\.${variable}: `))
      assert.match(got[0]!, new RegExp(`${variable} is also set by the default environment`))
    }
  })

  it('held: a name that is not in it (DB_USER) is fine', () => {
    assert.deepEqual(problems({ DB_USER: { secret: 'db-user' } }), [])
  })
})

/**
 * A stdio MCP server that, like most API servers, exits at start when its key is not set
 * (newline-delimited JSON-RPC, no SDK); with it, `whoami` answers its pid.
 */
const NEEDS_KEY = `
const readline = require('node:readline')
if (!process.env.VAULT_TOKEN) { process.stderr.write('VAULT_TOKEN is not set\\n'); process.exit(1) }
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m
  try { m = JSON.parse(line) } catch { return }
  if (m.id === undefined || m.method === undefined) return
  const result = (r) => send({ jsonrpc: '2.0', id: m.id, result: r })
  if (m.method === 'initialize')
    return result({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'needs-key', version: '1' } })
  if (m.method === 'tools/list') return result({ tools: [{ name: 'whoami', inputSchema: { type: 'object' } }] })
  if (m.method === 'tools/call') return result({ content: [{ type: 'text', text: String(process.pid) }] })
  if (m.method === 'ping') return result({})
  send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no such method' } })
})
`

describe('stop 23c: a deleted secret of a server that cannot start without it', () => {
  let stack: Stack
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stop23c-'))
    writeFileSync(join(dir, 'needs-key.cjs'), NEEDS_KEY)
    stack = await startStack({
      servers: { vault: { command: node, args: [join(dir, 'needs-key.cjs')], credentials: VAULT } },
      policy: policyFor(['vault']),
      config: { credentials: { pollInterval: 20, elicitationTimeout: 60_000 } },
    })
  })
  after(() => stack?.close())

  it('the call is refused naming the account page, and the process holding the value ends', async () => {
    await stack.gateway.secrets!.set(ownerOf(stack, 'alice'), 'vault_token', 'needed-then-deleted')
    const { client } = await connect(stack, 'alice', 'vault')
    try {
      const pid = Number(textOf(await client.callTool({ name: 'whoami', arguments: {} })))
      assert.ok(alive(pid))
      await stack.gateway.secrets!.remove(ownerOf(stack, 'alice'), 'vault_token')
      const refused = await client.callTool({ name: 'whoami', arguments: {} }).catch((e) => e)
      assert.equal((refused as { isError?: boolean }).isError, true, String(refused))
      assert.match(textOf(refused), /account\?server=vault&secret=vault_token/)
      await waitFor(() => !alive(pid), 'the process holding the deleted value ended')
    } finally {
      await client.close().catch(() => {})
    }
  })
})
