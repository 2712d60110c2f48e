// Brief catalog36: what one user's processes say must not change what other users get. Each
// case: a real gateway, real stdio servers under servers/, real tokens, two users (or two apps
// of one user).
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js'
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js'
import { ResourceListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { request } from 'undici'
import { GATEWAY_AUDIENCE } from '../helpers/exchange-idp.js'
import { startExchangeStack, type ExchangeStack } from '../helpers/exchange-stack.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { editPolicy } from '../helpers/policy-edit.js'
import { connectAs } from '../helpers/sdk-session.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

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

describe("catalog36: an app of a user never sees what a process with another app's exchanged token said", () => {
  // A server that trades the token an MCP client presented (RFC 8693, `subjectToken: bearer`)
  // runs each app of a user with that app's own exchanged token (resolve.ts: "what the IdP
  // exchanged for one client is never handed to another client of the same user"). But what
  // those processes say was kept per user: the initialize result (lane-catalog.ts), so the
  // narrower app's `server/discover` told it what the broader app's process said, and an
  // endpoint's lists (aggregate.ts), so its tools/list was the one read with the broader app's
  // token (low: the same user's data, across the apps they allowed, for a server whose answers
  // depend on the token). Now both are kept per app where the server trades the presented token.
  let stack: ExchangeStack
  const issued: string[] = []
  before(async () => {
    stack = await startExchangeStack(
      'MCP_EDGE_CATALOG36_EXCHANGE_SECRET',
      {},
      {
        server: { env: { FIXTURE_SIGNED_IN: 'WAREHOUSE_TOKEN' } },
        config: { endpoints: { wh: { servers: ['warehouse'] } } },
      },
    )
    stack.idp.knobs.tamper = (body) => {
      issued.push(String((body as { access_token?: unknown }).access_token))
      return body
    }
  })
  after(() => stack?.close())

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
  let id = 0
  async function ask(token: string, path: string, method: string) {
    const res = await request(
      `${stack.gateway.url}${path}`,
      modernRequest(token, method, {}, { id: ++id }),
    )
    const body = await res.body.text()
    assert.equal(res.statusCode, 200, body)
    return JSON.parse(body).result as {
      instructions?: string
      tools?: { name: string; description?: string }[]
    }
  }
  const signedIn = (tools: { name: string; description?: string }[] | undefined) =>
    tools?.find((t) => t.name.endsWith('signed_in'))?.description

  it('server/discover tells each app what its own process said', async () => {
    const { broad, narrow } = await tokens()
    const a = await ask(broad, '/mcp/warehouse', 'server/discover')
    assert.equal(a.instructions, `signed in with ${issued[0]}`)
    const b = await ask(narrow, '/mcp/warehouse', 'server/discover')
    assert.equal(issued.length, 2, 'each app had its own token exchanged')
    assert.equal(b.instructions, `signed in with ${issued[1]}`)
  })

  it("an endpoint's tools/list for one app is read from that app's process", async () => {
    const { broad, narrow } = await tokens()
    const a = await ask(broad, '/mcp/wh', 'tools/list')
    assert.equal(signedIn(a.tools), `signed in with ${issued[0]}`)
    const b = await ask(narrow, '/mcp/wh', 'tools/list')
    assert.equal(signedIn(b.tools), `signed in with ${issued[1]}`)
  })

  it("each app's lists go with the user's last process of the server", async () => {
    const userLists = async () => {
      const text = await (await request(`${stack.gateway.url}/metrics`)).body.text()
      return Number(/^mcp_edge_endpoint_user_lists (\d+)$/m.exec(text)![1])
    }
    assert.ok((await userLists()) >= 2, "each app's tools list is kept")
    // Both apps' processes end (the fixture's crash tool): nothing of theirs stays.
    const { broad, narrow } = await tokens()
    for (const token of [broad, narrow])
      await request(
        `${stack.gateway.url}/mcp/warehouse`,
        modernToolCall(token, 'crash', {}, { id: ++id }),
      ).then((r) => r.body.text())
    let n = -1
    await waitFor(
      async () => (n = await userLists()) === 0,
      () => `the endpoint still keeps ${n} lists of a user with no process`,
    )
  })
})

describe('catalog36: an endpoint session can always give back a subscription it holds', () => {
  // An endpoint's resources/unsubscribe was routed like a read: the public URI looked up in the
  // caller's URI table, built from the backends' lists as they are now. Once the backend's list
  // no longer had the URI (its process took it out, a list that failed to read, a new
  // collision), the subscription could not be removed (-32602, no resource on this endpoint):
  // the session kept it, and with it the backend process pinned (never reaped or reclaimed,
  // counted against the user's bounds) until the session ended (low: the user's own process,
  // held against every idle bound). Now an unsubscribe of a URI the session holds goes by what
  // the session holds: the backend and the backend's own URI it was subscribed under.
  let stack: Stack
  const WATCHED = 'test://watched-resource'
  before(async () => {
    stack = await startStack({
      policy: `${TEST_POLICY}  conformance:\n${ALLOW_ALL}`,
      servers: {
        conformance: {
          command: node,
          args: [join(SERVERS_DIR, 'conformance.js')],
          env: { CONFORMANCE_TRACE: '1', CONFORMANCE_UNLIST: '1' },
          // One process of each user: the one holding the subscription takes it out of its list.
          maxSessionsPerSubject: 1,
        },
      },
      config: {
        endpoints: {
          subs: { servers: ['conformance'] },
          both: { servers: ['conformance', 'notes'] },
        },
      },
    })
  })
  after(() => stack.close())

  const traced = (what: string, uri = WATCHED) =>
    stack.logLines
      .map((l) => (JSON.parse(l) as { stderr?: string }).stderr ?? '')
      .filter((l) => l === `conformance: ${what} ${uri}`).length

  /** A session-era client of the endpoint `subs` as `user`, over Streamable HTTP or HTTP+SSE. */
  async function open(user: string, legacy: boolean, onListChanged: () => void) {
    if (!legacy) {
      const { client } = await connectAs(stack, user, 'subs', {
        setup: (c) =>
          c.setNotificationHandler('notifications/resources/list_changed', onListChanged),
      })
      return client
    }
    const token = await stack.token(user, { resource: `${stack.url}/mcp/subs` })
    const client = new LegacyClient({ name: 'legacy', version: '0' })
    client.setNotificationHandler(ResourceListChangedNotificationSchema, onListChanged)
    await client.connect(
      new SSEClientTransport(new URL(`${stack.url}/sse/subs`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    )
    return client
  }

  for (const [transport, user] of [
    ['Streamable HTTP', 'alice'],
    ['HTTP+SSE', 'admin'],
  ] as const)
    it(`${transport}: an unsubscribe after the backend's list dropped the URI reaches the process holding it`, async () => {
      let changed!: () => void
      const heard = new Promise<void>((resolve) => (changed = resolve))
      const client = await open(user, transport === 'HTTP+SSE', () => changed())
      const [subscribed, unsubscribed] = [traced('subscribed'), traced('unsubscribed')]
      try {
        await client.subscribeResource({ uri: WATCHED })
        await waitFor(() => traced('subscribed') === subscribed + 1, 'the process took it')
        await client.callTool({ name: 'conformance_test_unlist_watched', arguments: {} })
        await heard
        // Not on the endpoint any more: a read is refused as an unknown resource.
        await assert.rejects(client.readResource({ uri: WATCHED }), /no resource/)
        await client.unsubscribeResource({ uri: WATCHED })
        await waitFor(
          () => traced('unsubscribed') === unsubscribed + 1,
          'the process was told to unsubscribe',
        )
        // Given back: a second unsubscribe is routed as any URI the session does not hold.
        await assert.rejects(client.unsubscribeResource({ uri: WATCHED }), /no resource/)
        assert.equal(traced('unsubscribed'), unsubscribed + 1)
      } finally {
        await client.close()
      }
    })

  it('a reload that denies the backend (not the endpoint) gives its subscriptions back', async () => {
    // Refused now like any request to that backend, the client's own unsubscribe could not.
    const { client } = await connectAs(stack, 'dev', 'both')
    const policy = editPolicy(stack)
    const uri = 'test://template/denied/data'
    try {
      await client.subscribeResource({ uri })
      await waitFor(() => traced('subscribed', uri) === 1, 'the process took it')
      policy.replace(`  conformance:\n${ALLOW_ALL}`, '')
      await waitFor(
        () => traced('unsubscribed', uri) === 1,
        'the process holding it was told to unsubscribe',
      )
      // The session goes on with the backend left (notes).
      assert.ok((await client.listTools()).tools.some((t) => t.name === 'notes_list_notes'))
    } finally {
      policy.restore()
      await client.close()
    }
  })

  it('an unsubscribe of a URI the session does not hold is refused as before', async () => {
    const { client } = await connectAs(stack, 'bob', 'subs')
    try {
      await assert.rejects(
        client.unsubscribeResource({ uri: 'test://nothing-here' }),
        /no resource "test:\/\/nothing-here"/,
      )
    } finally {
      await client.close()
    }
  })
})

describe("catalog36: one user's process changing its lists leaves other users' endpoint lists alone", () => {
  // An endpoint keeps a backend's lists once for everyone (per user where processes differ).
  // A session-mode process announcing a change made its user's lists their own (right), but
  // also dropped every entry of that server: the one everyone shares and every other user's
  // own, so any user calling a tool that changes their own process's tools had every other
  // user's next list read again from their processes, and the endpoint's name and URI tables
  // built again (low: cost only, at will). Now the change drops that user's lists only (the
  // shared entry was read before their change: a list read after it comes after the change's
  // notification on the process's stdout, and is kept as their own).
  let stack: Stack
  let record: string
  const url = () => `${stack.url}/mcp/fxep`
  before(async () => {
    record = join(mkdtempSync(join(tmpdir(), 'catalog36-')), 'record.jsonl')
    writeFileSync(record, '')
    stack = await startStack({
      policy: `${TEST_POLICY}  fx:\n${ALLOW_ALL}`,
      servers: { fx: { command: node, args: [fixture], env: { FIXTURE_RECORD_FILE: record } } },
      config: { endpoints: { fxep: { servers: ['fx', 'notes'] } } },
    })
  })
  after(() => stack.close())

  let id = 0
  async function send(user: string, method: string, params: Record<string, unknown>) {
    const token = await stack.token(user, { resource: url() })
    const options =
      method === 'tools/call'
        ? modernToolCall(token, String(params.name), {}, { id: ++id })
        : modernRequest(token, method, params, { id: ++id })
    const res = await request(url(), options)
    const body = await res.body.text()
    assert.equal(res.statusCode, 200, body)
    return JSON.parse(body).result as { tools?: { name: string }[] }
  }
  const toolLists = () =>
    readFileSync(record, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"method":"tools/list"')).length
  const names = (r: { tools?: { name: string }[] }) => (r.tools ?? []).map((t) => t.name)

  it("alice's list_changed re-reads her list, not bob's", async () => {
    assert.ok(!names(await send('bob', 'tools/list', {})).includes('fx_dummy'))
    await send('alice', 'tools/call', { name: 'fx_list_changed' })
    assert.ok(names(await send('alice', 'tools/list', {})).includes('fx_dummy'))
    const lists = toolLists()
    assert.ok(!names(await send('bob', 'tools/list', {})).includes('fx_dummy'))
    assert.equal(toolLists(), lists, "bob's list was read again for alice's change")
  })
})
