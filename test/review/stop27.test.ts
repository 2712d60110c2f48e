// Stop 27 (brief review35): an outside attacker with a low-privilege token against the
// combinations: aggregating endpoints over shared, session and per-user-credential backends,
// sessionless lanes and the legacy transport, namespaced names, subscriptions, policy reloads
// and memory under a hostile client. Real processes, a real gateway and IdP, raw HTTP or the SDK.
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { editPolicy } from '../helpers/policy-edit.js'
import { connectAs } from '../helpers/sdk-session.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const node = process.execPath
const conformance = (env: Record<string, string> = {}) => ({
  command: node,
  args: [join(SERVERS_DIR, 'conformance.js')],
  env,
})
const ALLOW_ALL = `    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n    prompts: { "*": ["mcp:read"] }\n`

/** The sum of a counter's samples whose labels include `labels` (0 when it has none yet). */
async function counter(stack: Stack, name: string, labels: string): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  let sum = 0
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.split(' ').pop())
  return sum
}

function textOf(body: string): string {
  const result = JSON.parse(body).result as {
    content?: { text: string }[]
    contents?: { text: string }[]
  }
  return [...(result.content ?? []), ...(result.contents ?? [])].map((c) => c.text).join('')
}

describe('stop27: an endpoint builds its name and URI tables once per set of lists, not per request', () => {
  // Each routed request (a call, a read, a subscribe, a completion) and each result carrying a
  // resource URI rebuilt the endpoint's whole name or URI table from the cached lists: a pass
  // over every name and URI, SHA-256 for names needing a short form, a template match for every
  // listed URI. With a backend listing 10,000 resources that is ~12 ms of the event loop per
  // table, two per read (route + publish): measured through a real gateway, a sessionless
  // resources/read cost 33 ms of CPU against 4 ms with 10 resources, and a 2025-03-26 batch of
  // 100 reads holds the event loop for seconds. Any user allowed one read could freeze every
  // other user's requests at little cost to themselves (medium: availability, low privilege).
  // Now a table is kept, found again by the very cached lists it maps, and rebuilt only when a
  // list is read again (its server said it changed) or it was pushed out of the bounded cache.
  let stack: Stack
  const url = () => `${stack.url}/mcp/big`
  before(async () => {
    stack = await startStack({
      policy: `${TEST_POLICY}  conformance:\n${ALLOW_ALL}`,
      servers: { conformance: conformance({ CONFORMANCE_RESOURCES: '200' }) },
      config: { endpoints: { big: { servers: ['conformance', 'notes', 'fixture'] } } },
    })
  })
  after(() => stack.close())

  const built = () => counter(stack, 'mcp_edge_endpoint_tables_built_total', 'endpoint="big"')

  it('many sessionless calls and reads build no table once the first ones did', async () => {
    const token = await stack.token('alice', { resource: url() })
    let id = 0
    const read = async (uri: string) => {
      const res = await request(
        url(),
        modernRequest(token, 'resources/read', { uri }, { id: ++id, name: uri }),
      )
      const body = await res.body.text()
      assert.equal(res.statusCode, 200, body)
      return textOf(body)
    }
    const call = async (name: string, args: Record<string, unknown> = {}) => {
      const res = await request(url(), modernToolCall(token, name, args, { id: ++id }))
      const body = await res.body.text()
      assert.equal(res.statusCode, 200, body)
      return textOf(body)
    }
    // The first ones build what they need (tools and URIs).
    assert.equal(await read('test://extra/0'), 'extra 0')
    assert.match(await call('notes_list_notes'), /welcome/)
    const first = await built()
    assert.ok(first >= 2, `the first requests built the tables (${first})`)
    for (let i = 1; i <= 30; i++) {
      assert.equal(await read(`test://extra/${i}`), `extra ${i}`)
      assert.match(await call('notes_read_note', { name: 'welcome' }), /Hello/)
    }
    assert.equal(await built(), first, '60 more requests, the same lists: no table built again')
  })

  it('a session-era batch of reads and a subscription build none either', async () => {
    const { client } = await connectAs(stack, 'alice', 'big')
    try {
      await client.listTools()
      await client.readResource({ uri: 'test://extra/1' })
      const before = await built()
      const reads = await Promise.all(
        Array.from({ length: 40 }, (_, i) => client.readResource({ uri: `test://extra/${i}` })),
      )
      assert.deepEqual(
        reads.map((r) => (r.contents[0] as { text: string }).text),
        Array.from({ length: 40 }, (_, i) => `extra ${i}`),
      )
      await client.subscribeResource({ uri: 'test://watched-resource' })
      await client.unsubscribeResource({ uri: 'test://watched-resource' })
      assert.equal(await built(), before)
    } finally {
      await client.close()
    }
  })

  it('a list that changed is a new table: a tool added since is routed at once', async () => {
    const { client } = await connectAs(stack, 'alice', 'big')
    try {
      const changed = new Promise<void>((resolve) =>
        client.setNotificationHandler('notifications/tools/list_changed', () => resolve()),
      )
      await client.callTool({ name: 'fixture_pid' })
      const before = await built()
      // The fixture's list_changed registers `dummy` in alice's process and announces it.
      await client.callTool({ name: 'fixture_list_changed' })
      await changed
      const result = await client.callTool({ name: 'fixture_dummy' })
      assert.equal((result.content as { text: string }[])[0]!.text, 'dummy')
      assert.ok((await built()) > before, 'built again from the list read again')
    } finally {
      await client.close()
    }
  })
})

describe('stop27: an endpoint session with a request in progress is not idle', () => {
  // A session-era endpoint session counted as busy only while a call ran on a backend process:
  // a request still waiting for a free process of the user (limits.sessionless.laneWait, up to
  // 10 minutes) or for the backends' lists (listTimeout × listPages) was "idle". At
  // limits.maxSessions the least recently used idle endpoint session is ended to make room, so
  // another user's initialize ended it mid-request (its client never got an answer), and the
  // idle reaper could do the same to a wait longer than the endpoint's idleTimeout. A server's
  // own session counts every request from its arrival (session.ts inflight); an endpoint
  // session now does too (low: availability of one request, at the gateway's session limit).
  let stack: Stack
  const url = () => `${stack.url}/mcp/busy`
  before(async () => {
    stack = await startStack({
      config: {
        // Alice's two endpoint sessions fill it, the one process her calls share with them
        // (bridge41: endpoint sessions count toward maxSessions; stop42: a user's endpoint
        // sessions and lanes count as the more of the two).
        limits: { maxSessions: 2, sessionless: { lanesPerSubject: 1, laneWait: 60_000 } },
        endpoints: { busy: { servers: ['fixture'] } },
      },
    })
  })
  after(() => stack.close())

  const headers = (token: string, session?: string) => ({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
    'mcp-protocol-version': '2025-11-25',
    ...(session ? { 'mcp-session-id': session } : {}),
  })
  const post = (token: string, session: string | undefined, body: unknown) =>
    request(url(), { method: 'POST', headers: headers(token, session), body: JSON.stringify(body) })
  /** A session of a client that only POSTs (no GET stream: many clients open none). */
  const open = async (token: string) => {
    const res = await post(token, undefined, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'raw', version: '0' },
      },
    })
    const body = await res.body.text()
    const session = res.headers['mcp-session-id'] as string | undefined
    if (session !== undefined)
      await (
        await post(token, session, { jsonrpc: '2.0', method: 'notifications/initialized' })
      ).body.text()
    return { status: res.statusCode, session, body }
  }
  /** Reads a stream until `until` is in what was read (or it ends). */
  const readUntil = async (it: AsyncIterator<unknown>, seen: { text: string }, until?: string) => {
    while (until === undefined || !seen.text.includes(until)) {
      const next = await it.next()
      if (next.done) return
      seen.text += String(next.value)
    }
  }
  const waiters = async () => {
    const text = await (await request(`${stack.url}/metrics`)).body.text()
    return Number(/^mcp_edge_lane_waiters\{server="fixture"\} (\d+)$/m.exec(text)?.[1] ?? 0)
  }

  it("a call waiting for a free process keeps its session: another user's initialize at maxSessions is refused, not given it", async () => {
    const alice = await stack.token('alice', { resource: url() })
    const s1 = await open(alice)
    const s2 = await open(alice)
    assert.equal(s2.status, 200, s2.body)
    // s1's call holds alice's one process at a gate.
    const held = await post(alice, s1.session, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'fixture_gate', arguments: { name: 'g' }, _meta: { progressToken: 'p' } },
    })
    const heldIt = held.body[Symbol.asyncIterator]()
    const heldText = { text: '' }
    await readUntil(heldIt, heldText, 'waiting at g')
    // s2's call waits for it.
    const waiting = await post(alice, s2.session, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'fixture_pid', arguments: {} },
    })
    const waitingIt = waiting.body[Symbol.asyncIterator]()
    const waitingText = { text: '' }
    await waitFor(async () => (await waiters()) === 1)
    const bob = await open(await stack.token('bob', { resource: url() }))
    assert.equal(bob.status, 503, `bob's initialize: ${bob.body}`)
    // s1's call cancelled, its process given up: s2's call runs and is answered.
    await (
      await post(alice, s1.session, {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 1, reason: 'test' },
      })
    ).body.text()
    await readUntil(waitingIt, waitingText)
    assert.match(waitingText.text, /"id":1,"result"/, waitingText.text)
    await readUntil(heldIt, heldText)
  })
})

describe("stop27: a subscriptions/listen stream acts with the user's credentials", () => {
  // resources/subscribe acts with the user's credentials (credential-gate.ts CREDENTIAL_METHODS):
  // in a session, at an endpoint session and in a sessionless call it runs on a process started
  // with them. A 2026-07-28 subscriptions/listen stream placed its subscriptions on a process it
  // leased with none: a new process without the user's secrets (not the user's own, which has
  // them), so a server that needs the user's token to watch a resource refused or watched as
  // nobody, and the user's process-start budget paid for a process of no use to them.
  const credentials = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
  let stack: Stack
  before(async () => {
    stack = await startStack({
      policy: `${TEST_POLICY}  cwatch:\n${ALLOW_ALL}`,
      servers: {
        cwatch: {
          ...conformance({ CONFORMANCE_TRACE: '1', CONFORMANCE_TRACE_VAR: 'VAULT_TOKEN' }),
          credentials,
        },
      },
      config: { endpoints: { cw: { servers: ['cwatch'] } } },
    })
    await stack.gateway.secrets!.set({ iss: stack.idp.issuer, sub: 'alice' }, 'vault_token', 'v-1')
  })
  after(() => stack.close())

  /** What the processes said of each subscription they took (stderr, through the gateway's log). */
  const subscribed = () =>
    stack.logLines
      .map((l) => JSON.parse(l) as { stderr?: string })
      .map((l) => l.stderr ?? '')
      .filter((l) => l.includes('conformance: subscribed'))

  for (const [where, path] of [
    ['at the server', 'cwatch'],
    ['at an endpoint', 'cw'],
  ] as const) {
    it(`${where}: the process subscribed was started with the user's secret`, async () => {
      const url = `${stack.url}/mcp/${path}`
      const token = await stack.token('alice', { resource: url })
      const before = subscribed().length
      const ac = new AbortController()
      const res = await request(url, {
        ...modernRequest(token, 'subscriptions/listen', {
          notifications: { resourceSubscriptions: ['test://watched-resource'] },
        }),
        signal: ac.signal,
      })
      assert.equal(res.statusCode, 200)
      let text = ''
      for await (const chunk of res.body) {
        text += String(chunk)
        if (text.includes('acknowledged')) break
      }
      ac.abort()
      assert.match(text, /watched-resource/, `acknowledged: ${text}`)
      const lines = await waitFor(
        () => subscribed().slice(before).length > 0 && subscribed().slice(before),
      )
      assert.deepEqual(lines, ['conformance: subscribed test://watched-resource (VAULT_TOKEN set)'])
    })
  }
  it("a deleted secret ends the process holding a subscription with it (an endpoint session's)", async () => {
    // A session's process is replaced once a secret it holds is deleted ("lists, pings and
    // subscriptions would go on running with the old value", credential-gate.ts). A lane with
    // a resource subscription was only marked stale and kept while the subscription pinned it:
    // an endpoint session holding one (its GET stream open, so never idle) kept the deleted
    // value in a running process for as long as the session lived.
    const { client } = await connectAs(stack, 'alice', 'cw')
    const owner = { iss: stack.idp.issuer, sub: 'alice' }
    try {
      const before = stack.logLines.length
      await client.subscribeResource({ uri: 'test://watched-resource' })
      const pid = await waitFor(() => {
        for (const l of stack.logLines.slice(before)) {
          const e = JSON.parse(l) as { stderr?: string; pid?: number }
          if (e.stderr?.includes('subscribed test://watched-resource (VAULT_TOKEN set)'))
            return e.pid
        }
        return undefined
      })
      await stack.gateway.secrets!.remove(owner, 'vault_token')
      // The user's next request finds the secret gone.
      const refused = await client.callTool({ name: 'cwatch_test_simple_text' })
      assert.equal(refused.isError, true)
      await waitFor(() => {
        try {
          process.kill(pid, 0)
          return false
        } catch {
          return true
        }
      }, 'the process started with the deleted secret exits')
      await waitFor(() =>
        stack.logLines
          .slice(before)
          .some((l) => l.includes('the process holding a resource subscription ended')),
      )
    } finally {
      await client.close()
      await stack.gateway.secrets!.set(owner, 'vault_token', 'v-1')
    }
  })
})

describe("stop27: an endpoint's lists of an identityEnv server are each identity's own", () => {
  // Under identityEnv a process is started with its client's identity (MCP_EDGE_CLIENT_ID,
  // MCP_EDGE_SCOPES), and the gateway keeps one catalog (initialize result, tool schemas) per
  // identity (lane-catalog.ts), since each may answer differently. The endpoint's list cache was
  // per user: a narrow client of a user (a third-party app given mcp:read) was shown the tools,
  // with their descriptions, that the server listed to the same user's broader client, which
  // its own process does not have (low: within one user, what the server itself withholds).
  const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-stop27-'))
  let stack: Stack
  const url = () => `${stack.url}/mcp/ids`
  before(async () => {
    writeFileSync(
      join(dir, 'tools-wide.json'),
      JSON.stringify([
        { name: 'purge', description: 'wide only', inputSchema: { type: 'object' } },
      ]),
    )
    writeFileSync(join(dir, 'tools-narrow.json'), '[]')
    stack = await startStack({
      policy: `${TEST_POLICY}  pinned:\n${ALLOW_ALL}`,
      servers: {
        pinned: {
          command: node,
          args: [join(SERVERS_DIR, 'pinned.js')],
          identityEnv: true,
          env: { PINNED_TOOLS: join(dir, 'tools-{client}.json') },
        },
      },
      config: { endpoints: { ids: { servers: ['pinned'] } } },
    })
  })
  after(() => stack.close())

  const names = async (client: string) => {
    const token = await stack.forge({ aud: url(), client_id: client })
    const res = await request(url(), modernRequest(token, 'tools/list', {}))
    const body = await res.body.text()
    assert.equal(res.statusCode, 200, body)
    return (JSON.parse(body).result.tools as { name: string }[]).map((t) => t.name).sort()
  }

  it("one user's narrow client is not shown what the server listed to their broad one", async () => {
    assert.deepEqual(await names('wide'), ['pinned_announce', 'pinned_purge'])
    assert.deepEqual(await names('narrow'), ['pinned_announce'])
    assert.deepEqual(await names('wide'), ['pinned_announce', 'pinned_purge'])
  })
})

describe('stop27 (held): a shared backend at an endpoint, its subscriptions across users and reloads', () => {
  // One shared process serves every user; each user's endpoint requests run on their own view
  // of it (a lane of the shared process). What was tried: a user who may not read a URI
  // subscribing (refused, nothing placed), hearing another user's updates (no: the process's
  // update goes to the views that subscribed, then by policy), unsubscribing another's
  // subscription (no: the process keeps it while a view holds it), and a reload withdrawing
  // the URI from a subscriber (its next update is dropped; restored, relayed again).
  let stack: Stack
  const RULES = `    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "test://watched-resource": ["mcp:write"], "*": ["mcp:read"] }\n`
  before(async () => {
    stack = await startStack({
      policy: `${TEST_POLICY}  sconf:\n${RULES}`,
      servers: { sconf: { ...conformance(), mode: 'shared' } },
      config: { endpoints: { sh: { servers: ['sconf', 'notes'] } } },
    })
  })
  after(() => stack.close())

  const WATCHED = 'test://watched-resource'
  const session = async (user: string) => {
    const updates: string[] = []
    const { client } = await connectAs(stack, user, 'sh', {
      setup: (c) =>
        c.setNotificationHandler(
          'notifications/resources/updated',
          (n) => void updates.push(String(n.params.uri)),
        ),
    })
    return { client, updates }
  }
  const touch = (c: Awaited<ReturnType<typeof session>>['client']) =>
    c.callTool({ name: 'sconf_test_update_watched_resource' })

  it('only the subscriber who may read the URI hears its updates; a reader without the scope is refused', async () => {
    const dora = await session('dev')
    const alice = await session('alice')
    try {
      await dora.client.subscribeResource({ uri: WATCHED })
      await assert.rejects(alice.client.subscribeResource({ uri: WATCHED }), /403|insufficient/i)
      await touch(alice.client)
      await waitFor(() => dora.updates.length === 1, "dora hears alice's change")
      await alice.client.ping()
      await dora.client.ping()
      assert.deepEqual(dora.updates, [WATCHED])
      assert.deepEqual(alice.updates, [], 'alice subscribed to nothing: she hears nothing')
    } finally {
      await dora.client.close()
      await alice.client.close()
    }
  })

  it("another user's unsubscribe leaves a subscriber's subscription at the shared process", async () => {
    const dora = await session('dev')
    const ada = await session('admin')
    try {
      await dora.client.subscribeResource({ uri: WATCHED })
      await ada.client.subscribeResource({ uri: WATCHED })
      await ada.client.unsubscribeResource({ uri: WATCHED })
      await touch(ada.client)
      await waitFor(() => dora.updates.length === 1, 'dora still hears the change')
      await ada.client.ping()
      assert.deepEqual(ada.updates, [])
    } finally {
      await dora.client.close()
      await ada.client.close()
    }
  })

  it('a reload withdrawing the URI from a subscriber drops its next update; restored, the next is relayed', async () => {
    const policy = editPolicy(stack)
    const dora = await session('dev')
    try {
      await dora.client.subscribeResource({ uri: WATCHED })
      policy.replace('"test://watched-resource": ["mcp:write"]', '"test://watched-resource": deny')
      // The process notifies before it answers: the update was decided when the call returns.
      await touch(dora.client)
      policy.restore()
      await touch(dora.client)
      await waitFor(() => dora.updates.length >= 1, 'the update after the restore is relayed')
      await dora.client.ping()
      assert.deepEqual(dora.updates, [WATCHED], 'the one under the withdrawing policy was dropped')
    } finally {
      policy.restore()
      await dora.client.close()
    }
  })
})

describe("stop27: what a process with one user's credentials says of itself is not told to another", () => {
  // The lanes' catalog kept one initialize result (instructions, serverInfo, capabilities) and
  // one set of tool schemas per server, from the first process started, unless identityEnv.
  // A server that takes per-user credentials runs a process per user with their values, and
  // what it says at initialize may depend on them (whom the token signs it in as). Bob's
  // `server/discover` at the server, and his initialize at an endpoint over it, were answered
  // with what alice's process said: here her secret itself, in real servers her login or
  // account (medium: another user's data, any user, needs a server whose initialize depends on
  // the credential). Now such a server's catalog is each user's own, forgotten with their
  // last process of it.
  const credentials = { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } }
  let stack: Stack
  before(async () => {
    stack = await startStack({
      policy: `${TEST_POLICY}  signed:\n${ALLOW_ALL}`,
      servers: {
        signed: {
          command: node,
          args: [join(SERVERS_DIR, 'fixture.js')],
          credentials,
          env: { FIXTURE_SIGNED_IN: 'VAULT_TOKEN' },
        },
      },
      config: { endpoints: { signedep: { servers: ['signed'] } } },
    })
    for (const [sub, value] of [
      ['alice', 'alice-login'],
      ['bob', 'bob-login'],
    ])
      await stack.gateway.secrets!.set({ iss: stack.idp.issuer, sub: sub! }, 'vault_token', value!)
  })
  after(() => stack.close())

  const discover = async (user: string) => {
    const url = `${stack.url}/mcp/signed`
    const res = await request(
      url,
      modernRequest(await stack.token(user, { resource: url }), 'server/discover', {}),
    )
    const body = await res.body.text()
    assert.equal(res.statusCode, 200, body)
    return JSON.parse(body).result.instructions as string | undefined
  }

  it('server/discover tells each user what their own process said', async () => {
    assert.equal(await discover('alice'), 'signed in with alice-login')
    assert.equal(await discover('bob'), 'signed in with bob-login')
    assert.equal(await discover('alice'), 'signed in with alice-login')
  })

  it("an endpoint's initialize tells a user only their own processes' instructions", async () => {
    const { client } = await connectAs(stack, 'dev', 'signedep')
    try {
      assert.doesNotMatch(client.getInstructions() ?? '', /alice-login|bob-login/)
    } finally {
      await client.close()
    }
  })
})

describe('stop27 (held): a paginated endpoint listing across a policy reload', () => {
  // A cursor is a position in the caller's own list, filtered by the policy in force at each
  // page: a tool the reload denies between two pages never shows on the next one, a cursor
  // issued before the reload still pages on, and one of another endpoint or list is refused.
  let stack: Stack
  before(async () => {
    stack = await startStack({
      config: {
        endpoints: {
          paged: { servers: ['notes', 'echo'], pageSize: 2 },
          other: { servers: ['notes', 'echo'], pageSize: 2 },
        },
      },
    })
  })
  after(() => stack.close())

  const list = async (endpoint: string, method: string, cursor?: string) => {
    const url = `${stack.url}/mcp/${endpoint}`
    const token = await stack.token('alice', { resource: url })
    const res = await request(url, modernRequest(token, method, cursor ? { cursor } : {}))
    return JSON.parse(await res.body.text())
  }

  it('the next page is decided by the policy in force; a cursor of another endpoint or list is refused', async () => {
    const policy = editPolicy(stack)
    try {
      const first = await list('paged', 'tools/list')
      assert.deepEqual(
        first.result.tools.map((t: { name: string }) => t.name),
        ['notes_list_notes', 'notes_read_note'],
      )
      const cursor = first.result.nextCursor as string
      assert.ok(cursor)
      policy.replace('tools: { echo: ["mcp:read"] }', 'tools: { echo: deny }')
      const second = await list('paged', 'tools/list', cursor)
      assert.deepEqual(second.result.tools, [], 'echo, denied since page one, is not listed')
      assert.equal(second.result.nextCursor, undefined)
      for (const [endpoint, method] of [
        ['other', 'tools/list'],
        ['paged', 'prompts/list'],
        ['paged', 'resources/list'],
      ] as const) {
        const refused = await list(endpoint, method, cursor)
        assert.equal(
          refused.error?.code,
          -32602,
          `${endpoint} ${method}: ${JSON.stringify(refused)}`,
        )
      }
    } finally {
      policy.restore()
    }
  })
})

describe('stop27: an endpoint refuses a caller the policy denies every backend of', () => {
  // A server refuses a caller its policy denies (-32010 on a 200; no session, no process). An
  // endpoint opened a session for a caller denied every one of its backends, on Streamable
  // HTTP and on the legacy transport, and served their sessionless requests (empty lists,
  // every capability offered): a user the policy shuts out held session slots (counted toward
  // limits.maxSessions, where other users' idle endpoint sessions are ended to make room) and
  // learned the endpoint's description (low). A reload that denies them everything already
  // closed their sessions; now none opens. A backend they only lack a scope for is not denied.
  let stack: Stack
  before(async () => {
    stack = await startStack({
      // `closed` has no policy at all: nobody may use it.
      servers: { closed: { command: node, args: [join(SERVERS_DIR, 'fixture.js')] } },
      config: {
        endpoints: {
          shut: { servers: ['closed'], description: 'the shut endpoint' },
          half: { servers: ['closed', 'notes'] },
        },
      },
    })
  })
  after(() => stack.close())

  const INIT = {
    jsonrpc: '2.0',
    id: 7,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'x', version: '0' },
    },
  }
  const post = async (path: string, body: unknown, extra: Record<string, string> = {}) => {
    const url = `${stack.url}/mcp/${path}`
    const token = await stack.token('alice', { resource: url })
    const res = await request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2025-11-25',
        ...extra,
      },
      body: JSON.stringify(body),
    })
    const text = await res.body.text()
    return { status: res.statusCode, session: res.headers['mcp-session-id'], text }
  }

  it('initialize: refused as the server refuses it, no session; an endpoint with one usable backend opens', async () => {
    const direct = await post('closed', INIT)
    const shut = await post('shut', INIT)
    assert.equal(direct.session, undefined)
    assert.equal(shut.session, undefined, `no session: ${shut.text}`)
    assert.equal(shut.status, direct.status)
    assert.equal(JSON.parse(shut.text).error.code, -32010)
    assert.equal(JSON.parse(shut.text).id, 7)
    assert.doesNotMatch(shut.text, /shut endpoint/)
    const half = await post('half', INIT)
    assert.equal(half.status, 200)
    assert.ok(half.session, 'notes is usable: the endpoint opens')
    assert.ok(
      stack
        .audit()
        .some((e) => e.server === 'shut' && e.decision === 'deny' && e.method === 'initialize'),
      'the refusal is audited',
    )
  })

  it('the legacy transport: GET /sse/<endpoint> is refused as /sse/<server> is', async () => {
    const get = async (path: string) => {
      const token = await stack.token('alice', { resource: `${stack.url}/sse/${path}` })
      const res = await request(`${stack.url}/sse/${path}`, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
      })
      // An event stream (a session opened) never ends by itself: its first event is enough.
      if (String(res.headers['content-type']).includes('text/event-stream')) {
        const first = String((await res.body[Symbol.asyncIterator]().next()).value)
        res.body.destroy()
        return { status: res.statusCode, text: first }
      }
      return { status: res.statusCode, text: await res.body.text() }
    }
    const direct = await get('closed')
    const shut = await get('shut')
    assert.equal(shut.status, direct.status, shut.text)
    assert.equal(JSON.parse(shut.text).error.code, JSON.parse(direct.text).error.code)
    assert.doesNotMatch(shut.text, /endpoint/)
  })

  it('sessionless requests: refused -32010 like the server, lists and discover alike', async () => {
    const url = `${stack.url}/mcp/shut`
    const token = await stack.token('alice', { resource: url })
    for (const method of ['tools/list', 'server/discover', 'resources/list']) {
      const res = await request(url, modernRequest(token, method, {}))
      const body = JSON.parse(await res.body.text())
      assert.equal(body.error?.code, -32010, `${method}: ${JSON.stringify(body)}`)
    }
  })
})
