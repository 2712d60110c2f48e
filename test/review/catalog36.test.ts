// Brief catalog36: what one user's processes say must not change what other users get. Each
// case: a real gateway, real stdio servers under servers/, real tokens, two users (or two apps
// of one user).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const ALLOW_ALL = `    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n    prompts: { "*": ["mcp:read"] }\n`

describe("catalog36: a user's process that changed its tools decides no other user's header checks", () => {
  // A 2026-07-28 tools/call is checked against the tool's own input schema (SEP-2243
  // Mcp-Param-* headers). The schemas were kept once per server (lane-catalog.ts) for a
  // session-mode server, though each user's processes are their own: tools a process registers
  // as it runs are that process's. Alice's process declaring a header got Bob's calls refused
  // (400) for lack of it, Bob's schemas read first let Alice's calls through unchecked, and each
  // tools/list_changed of Alice's process had the gateway read the list again from Bob's (low:
  // one user changes whether another's requests are accepted, no data crosses). Now a
  // session-mode server's schemas are each user's own, forgotten with their last process of it.
  let stack: Stack
  let record: string
  const url = (server = 'regional') => `${stack.url}/mcp/${server}`
  before(async () => {
    record = join(mkdtempSync(join(tmpdir(), 'catalog36-')), 'record.jsonl')
    writeFileSync(record, '')
    stack = await startStack({
      policy: `${TEST_POLICY}  regional:\n${ALLOW_ALL}  regional2:\n${ALLOW_ALL}`,
      servers: {
        regional: {
          command: node,
          args: [fixture],
          env: { FIXTURE_HEADER_TOOL: '1', FIXTURE_RECORD_FILE: record },
        },
        regional2: { command: node, args: [fixture], env: { FIXTURE_HEADER_TOOL: '1' } },
      },
    })
  })
  after(() => stack.close())

  let id = 0
  async function call(
    user: string,
    name: string,
    args: Record<string, unknown>,
    region?: string,
    server = 'regional',
  ) {
    const token = await stack.token(user, { resource: url(server) })
    const options = modernToolCall(token, name, args, { id: ++id })
    if (region !== undefined) options.headers['mcp-param-region'] = region
    const res = await request(url(server), options)
    const body = await res.body.text()
    return { status: res.statusCode, body }
  }
  const toolLists = () =>
    readFileSync(record, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"method":"tools/list"')).length

  it("alice's process declaring a header neither refuses bob's calls nor re-reads his schemas", async () => {
    // Bob's schemas are read (his process has no header) and kept.
    assert.equal((await call('bob', 'regional', { region: 'eu' })).status, 200)
    // Alice's process declares the header: her calls need it from now on.
    assert.equal((await call('alice', 'declare_region_header', {})).status, 200)
    const without = await call('alice', 'regional', { region: 'eu' })
    assert.equal(without.status, 400, without.body)
    assert.match(without.body, /Mcp-Param-Region/)
    assert.equal((await call('alice', 'regional', { region: 'eu' }, 'eu')).status, 200)
    // Bob's process never declared it: his call without the header is his process's to answer,
    // with no tools/list read again from it.
    const lists = toolLists()
    const bob = await call('bob', 'regional', { region: 'eu' })
    assert.equal(bob.status, 200, bob.body)
    assert.match(bob.body, /region eu/)
    assert.equal(toolLists(), lists, "alice's list_changed made the gateway read bob's tools again")
  })

  it("bob's schemas, read while alice's are unknown, do not let alice's call through unchecked", async () => {
    const on2 = (user: string, name: string, args: Record<string, unknown>) =>
      call(user, name, args, undefined, 'regional2')
    // Bob's process has not declared the header (his schemas read and kept); Alice's has.
    assert.equal((await on2('bob', 'regional', { region: 'eu' })).status, 200)
    assert.equal((await on2('alice', 'declare_region_header', {})).status, 200)
    assert.equal((await on2('bob', 'regional', { region: 'us' })).status, 200)
    const alice = await on2('alice', 'regional', { region: 'eu' })
    assert.equal(alice.status, 400, alice.body)
    assert.match(alice.body, /Mcp-Param-Region/)
  })
})
