// Where sessionless (2026-07-28) requests run: per-principal lanes over the warm pool, a
// shared process, identity env, a crash, the per-subject limit, and shutdown.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { DEFAULT_LANES_PER_SUBJECT } from '../../gateway/config/schema.js'
import { initBody } from '../checklist/open-session.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
/**
 * Where a case asks of the process only pid, crash and slow (lanes, pools, reaping): the server
 * without the SDK, whose imports cost each of their starts ~0.2 s of CPU.
 */
const plain = join(SERVERS_DIR, 'plain.js')
const SERVERS = {
  pooled: { command: node, args: [plain], pool: { min: 1, max: 8 } },
  shared: { command: node, args: [fixture], mode: 'shared' },
  identity: { command: node, args: [fixture], identityEnv: true },
  preinit: { command: node, args: [fixture], pool: { min: 1, preinitialize: true } },
  sharedidle: { command: node, args: [plain], mode: 'shared', idleTimeout: 300 },
  capped: { command: node, args: [plain], pool: { min: 0, max: 2 } },
  rooted: { command: node, args: [fixture], pool: { min: 0 }, env: { FIXTURE_ROOTS_ON_INIT: '1' } },
}
const POLICY = `${TEST_POLICY}${Object.keys(SERVERS)
  .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
  .join('')}`

let stack: Stack
let alice: (server: string) => Promise<string>
let bob: (server: string) => Promise<string>
before(async () => {
  stack = await startStack({ servers: SERVERS, policy: POLICY })
  alice = (server) => stack.token('alice', { server })
  bob = (server) => stack.token('bob', { server })
})
after(() => stack.close())

let nextId = 1
async function call(
  server: string,
  token: string,
  name: string,
  args: Record<string, unknown> = {},
  caps: Record<string, unknown> = {},
) {
  const res = await request(
    stack.local(server),
    modernToolCall(token, name, args, { id: nextId++, caps }),
  )
  const json = (await res.body.json()) as {
    result?: { content: { text: string }[]; isError?: boolean }
    error?: { code: number; message: string }
  }
  return {
    status: res.statusCode,
    json,
    text: json.result?.content.map((c) => c.text).join('') ?? '',
  }
}

describe('sessionless requests and process models', () => {
  it('a shared server serves every principal from its one process', async () => {
    const a = await call('shared', await alice('shared'), 'pid')
    const b = await call('shared', await bob('shared'), 'pid')
    assert.equal(a.status, 200)
    assert.equal(a.text, b.text)
  })

  it("identityEnv: each principal's lane has its own identity, never the token", async () => {
    const token = await alice('identity')
    const env = JSON.parse((await call('identity', token, 'env')).text).env as Record<
      string,
      string
    >
    assert.equal(env.MCP_EDGE_SUBJECT, 'alice')
    assert.ok(!JSON.stringify(env).includes(token))
    const bobs = JSON.parse((await call('identity', await bob('identity'), 'env')).text)
      .env as Record<string, string>
    assert.equal(bobs.MCP_EDGE_SUBJECT, 'bob')
  })

  it('a pre-initialized pool process serves a lane', async () => {
    const res = await call('preinit', await alice('preinit'), 'pid')
    assert.equal(res.status, 200)
    assert.match(res.text, /^\d+$/)
  })

  it('a crash fails the request in flight; the next request runs on a new process', async () => {
    const token = await alice('pooled')
    const before = (await call('pooled', token, 'pid')).text
    const crashed = await call('pooled', token, 'crash')
    assert.equal(crashed.json.error?.code, -32000, JSON.stringify(crashed.json))
    const after = await call('pooled', token, 'pid')
    assert.equal(after.status, 200)
    assert.notEqual(after.text, before)
  })

  it(`one principal runs at most ${DEFAULT_LANES_PER_SUBJECT} lanes at once per server; the next request needing one waits for a free process`, async () => {
    const token = await bob('pooled')
    const started = Date.now()
    // A declared client capability: each request needs a lane to itself (plain ones share).
    const slow = Array.from({ length: DEFAULT_LANES_PER_SUBJECT + 1 }, () =>
      call('pooled', token, 'slow', { ms: 600 }, { roots: {} }),
    )
    const results = await Promise.all(slow)
    assert.ok(results.every((r) => r.text === 'done'))
    // The extra one ran after one of the others: two slow calls back to back.
    assert.ok(Date.now() - started >= 1150, `took ${Date.now() - started} ms`)
  })
})

describe('sessionless lanes: reaping, identity, capacity', () => {
  const metric = async (name: string) => {
    const text = await (await request(`${stack.url}/metrics`)).body.text()
    return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1])
  }

  it('idle lanes on a shared server are forgotten when reaped; their principal is served again at once', async () => {
    const token = await alice('sharedidle')
    // Every other server's lanes idle for minutes: only these calls' lanes are reaped below.
    const before = await metric('mcp_edge_lanes')
    await Promise.all(
      Array.from({ length: DEFAULT_LANES_PER_SUBJECT }, () =>
        call('sharedidle', token, 'slow', { ms: 200 }),
      ),
    )
    // Until the reaper (idleTimeout 300 ms) has ended the idle lanes; were it late, the call
    // below would take a live lane and pass all the same: only a lockout can fail it.
    await waitFor(
      async () => (await metric('mcp_edge_lanes')) <= before,
      'the idle sharedidle lanes were reaped',
    )
    // A principal whose forgotten lanes still counted would wait for them and get 503.
    const res = await call('sharedidle', token, 'pid')
    assert.equal(res.status, 200, JSON.stringify(res.json))
  })

  it('a server asking for roots as soon as the gateway initializes it is refused at once, not left waiting', async () => {
    const res = await call('rooted', await alice('rooted'), 'pid')
    assert.equal(res.status, 200)
    const said = await waitFor(
      () => stack.logLines.find((l) => l.includes('fixture: roots')),
      'the fixture said how its roots request ended',
    )
    assert.match(said, /roots refused/)
  })

  it("identityEnv: two clients of one user never share a lane; each process has its client's identity", async () => {
    const env = async (clientId: string, scope: string) => {
      const token = await stack.forge({
        sub: 'alice',
        azp: clientId,
        scope,
        aud: stack.endpoint('identity'),
      })
      return JSON.parse((await call('identity', token, 'env')).text).env as Record<string, string>
    }
    const broad = await env('admin-console', 'mcp:read billing:write')
    const narrow = await env('third-party-app', 'mcp:read')
    assert.equal(broad.MCP_EDGE_CLIENT_ID, 'admin-console')
    assert.equal(narrow.MCP_EDGE_CLIENT_ID, 'third-party-app')
    assert.ok(!narrow.MCP_EDGE_SCOPES!.includes('billing:write'), narrow.MCP_EDGE_SCOPES)
  })

  it("server/discover answers from the caller's own process under identityEnv", async () => {
    const discover = async (token: string) => {
      const res = await request(
        stack.local('identity'),
        modernRequest(token, 'server/discover', {}),
      )
      return ((await res.body.json()) as { result: { instructions?: string } }).result.instructions
    }
    assert.equal(await discover(await alice('identity')), 'acting for alice')
    assert.equal(await discover(await bob('identity')), 'acting for bob')
  })

  it('at pool.max, an idle lane of another principal makes room for a new session or lane', async () => {
    const a = await alice('capped')
    await Promise.all([
      call('capped', a, 'slow', { ms: 100 }),
      call('capped', a, 'slow', { ms: 100 }),
    ])
    const b = await bob('capped')
    const res = await call('capped', b, 'pid')
    assert.equal(res.status, 200, JSON.stringify(res.json))
    const init = await request(stack.local('capped'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${a}`,
      },
      body: JSON.stringify(initBody()),
    })
    await init.body.text()
    assert.equal(init.statusCode, 200, 'a session too')
    assert.ok((await metric('mcp_edge_lanes')) >= 1)
  })
})

// Each gateway here has only the server its test shuts down with: the others' warm and shared
// processes (four at start) were spawned for nothing.
describe('shutdown with sessionless requests', () => {
  it('lets a request on a shared process finish within the grace', async (t) => {
    // The shared process records what it receives: the test shuts down once the call is there.
    const record = join(mkdtempSync(join(tmpdir(), 'mcp-edge-grace-')), 'shared.jsonl')
    const own = await startStack({
      servers: { shared: { ...SERVERS.shared, env: { FIXTURE_RECORD_FILE: record } } },
      policy: POLICY,
    })
    let closed = false
    t.after(() => (closed ? undefined : own.close()))
    const token = await own.token('alice', { server: 'shared' })
    const pending = request(own.local('shared'), modernToolCall(token, 'slow', { ms: 800 })).then(
      async (r) => ({
        status: r.statusCode,
        json: (await r.body.json()) as { result?: { content: { text: string }[] } },
      }),
    )
    // Shut down once the process is serving the request (start-up spawns can delay its arrival).
    await waitFor(
      () => existsSync(record) && readFileSync(record, 'utf8').includes('"tools/call"'),
      'the shared process received the call',
    )
    closed = true
    const closing = own.close()
    const res = await pending
    await closing
    assert.equal(res.status, 200)
    assert.equal(res.json.result?.content[0]?.text, 'done')
  })

  it('leaves no lane process behind', async (t) => {
    const own = await startStack({ servers: { pooled: SERVERS.pooled }, policy: POLICY })
    let closed = false
    t.after(() => (closed ? undefined : own.close()))
    const token = await own.token('alice', { server: 'pooled' })
    const res = await request(own.local('pooled'), modernToolCall(token, 'pid'))
    const pid = Number(
      ((await res.body.json()) as { result: { content: { text: string }[] } }).result.content[0]!
        .text,
    )
    assert.ok(alive(pid))
    closed = true
    await own.close()
    assert.ok(!alive(pid), `process ${pid} outlived the gateway`)
  })
})

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
