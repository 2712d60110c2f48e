// An endpoint's own limits, set small in gateway.yaml, take effect: a backend that never
// answers its list is left out once `listTimeout` has passed, only `listPages` pages of a
// backend are read, a session holds `maxSubscriptions` at most, and an idle session-era
// session ends after `idleTimeout`. Outcomes are asserted, never durations; each test waits
// for the state it needs, and idle time is what the test moves the sessions' clock by.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import { IdleClock } from '../helpers/idle-clock.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'
// A server that initializes and answers ping, and never answers anything else (a list included).
const SILENT_SERVER =
  "require('readline').createInterface({ input: process.stdin }).on('line', (l) => { const m = JSON.parse(l); " +
  "const result = m.method === 'initialize' ? { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'silent', version: '0' } } : m.method === 'ping' ? {} : undefined; " +
  "if (result && m.id !== undefined) process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }) + '\\n') })"
// A server whose tools/list has a next page forever: tool-0 on the first page, tool-1 on the next, ...
const ENDLESS_SERVER =
  "require('readline').createInterface({ input: process.stdin }).on('line', (l) => { const m = JSON.parse(l); if (m.id === undefined || m.method === undefined) return; " +
  'const page = Number((m.params && m.params.cursor) || 0); ' +
  "const result = m.method === 'initialize' ? { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'endless', version: '0' } } : m.method === 'tools/list' ? { tools: [{ name: 'tool-' + page, inputSchema: { type: 'object' } }], nextCursor: String(page + 1) } : m.method === 'ping' ? {} : undefined; " +
  "process.stdout.write(JSON.stringify(result ? { jsonrpc: '2.0', id: m.id, result } : { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } }) + '\\n') })"
const POLICY =
  `${TEST_POLICY}${['silent', 'endless'].map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`).join('')}` +
  '  conformance:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "*": ["mcp:read"] }\n'

const idleClock = new IdleClock()
let stack: Stack
before(async () => {
  stack = await startStack({
    sessionClock: idleClock.now,
    policy: POLICY,
    servers: {
      silent: { command: process.execPath, args: ['-e', SILENT_SERVER] },
      endless: { command: process.execPath, args: ['-e', ENDLESS_SERVER] },
      conformance: { command: process.execPath, args: [join(SERVERS_DIR, 'conformance.js')] },
    },
    config: {
      endpoints: {
        quiet: { servers: ['echo', 'silent'], listTimeout: 200 },
        paged: { servers: ['endless'], listPages: 3 },
        brief: { servers: ['echo'], idleTimeout: 1000 },
        subs: { servers: ['conformance'], maxSubscriptions: 2 },
      },
    },
  })
})
after(() => stack.close())

const url = (path: string) => `${stack.url}${path}`
let nextId = 1

/** A 2026-07-28 request to an endpoint: its status and JSON answer. */
async function modern(path: string, method: string, params: Record<string, unknown> = {}) {
  const token = await stack.token('alice', { resource: url(path) })
  const res = await request(url(path), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': V,
      'mcp-method': method,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  })
  return {
    status: res.statusCode,
    json: (await res.body.json()) as { result?: { tools: { name: string }[] }; error?: unknown },
  }
}

describe('endpoints.<name> limits', () => {
  // The test's own timeout is below the default listTimeout (10 s): a list held to the default
  // could not end in time, one held to the configured 200 ms ends in a fraction of it.
  it('listTimeout: a backend that never answers its list is left out, the others listed', {
    timeout: 9_000,
  }, async () => {
    // silent never answers: it is left out of every list, however fast the machine. echo must
    // answer within 200 ms too to be listed; on a busy machine it may not, and is left out of
    // that list without being remembered: ask again until it made it.
    let names: string[] = []
    await waitFor(async () => {
      const res = await modern('/mcp/quiet', 'tools/list')
      assert.equal(res.status, 200, JSON.stringify(res.json))
      names = res.json.result!.tools.map((t) => t.name)
      assert.ok(!names.some((n) => n.startsWith('silent_')), names.join())
      return names.includes('echo_echo')
    }, 'echo answered a list within 200 ms')
    const metrics = await (await request(url('/metrics'))).body.text()
    assert.match(
      metrics,
      /mcp_edge_endpoint_backends_skipped_total\{endpoint="quiet",server="silent"\} [1-9]/,
    )
  })

  it('listPages: only that many pages of a backend are read', async () => {
    const res = await modern('/mcp/paged', 'tools/list')
    assert.equal(res.status, 200, JSON.stringify(res.json))
    assert.deepEqual(
      res.json.result!.tools.map((t) => t.name),
      ['endless_tool-0', 'endless_tool-1', 'endless_tool-2'],
    )
  })

  it('maxSubscriptions: a session holding that many refuses a subscribe to one more URI', async () => {
    const c = new Client({ name: 'subs', version: '0' }, { capabilities: {} })
    await c.connect(
      new StreamableHTTPClientTransport(new URL(url('/mcp/subs')), {
        requestInit: {
          headers: {
            authorization: `Bearer ${await stack.token('alice', { resource: url('/mcp/subs') })}`,
          },
        },
      }),
    )
    try {
      const uri = (i: number) => `test://template/${i}/data`
      await c.subscribeResource({ uri: uri(0) })
      await c.subscribeResource({ uri: uri(1) })
      await assert.rejects(
        c.subscribeResource({ uri: uri(2) }),
        /this session holds 2 resource subscriptions/,
      )
    } finally {
      await c.close()
    }
  })

  it('idleTimeout: a session-era session nobody uses ends, and its id then answers 404', async () => {
    const token = await stack.token('alice', { resource: url('/mcp/brief') })
    const headers = {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
    }
    // The sessions' clock stands still but where moved: a slow request cannot make one idle.
    idleClock.hold()
    try {
      const init = await request(url('/mcp/brief'), {
        method: 'POST',
        headers,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'idle', version: '0' },
          },
        }),
      })
      await init.body.text()
      const session = init.headers['mcp-session-id'] as string
      assert.ok(session, 'a session was opened')
      const ping = async () => {
        const res = await request(url('/mcp/brief'), {
          method: 'POST',
          headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
          body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
        })
        await res.body.text()
        return res.statusCode
      }
      assert.equal(await ping(), 202, 'the session is live at first')
      // Idle exactly the timeout, not past it: a sweep leaves the session (the ping is activity).
      idleClock.advance(1000)
      await idleClock.sweeps()
      assert.equal(await ping(), 202, 'idle no longer than idleTimeout')
      idleClock.advance(1001)
      await idleClock.sweeps()
      assert.equal(await ping(), 404, 'idle past idleTimeout: the session ended')
    } finally {
      idleClock.release()
    }
  })
})
