// Every authenticated request leaves exactly one audit line: a table over the transports
// (Streamable HTTP session, 2026-07-28 sessionless, legacy /sse + /messages, an endpoint
// aggregating servers) and the ways a request ends (allowed, denied, stepped up, rate limited,
// an error, a process that cannot start, cancelled, timed out, refused for crashing a shared
// process). Real gateway and IdP, real fixture processes, raw HTTP; each case has a subject of
// its own, and its lines are counted after a later request of the same subject was audited.
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import type { Principal } from '../../gateway/auth/principal.js'
import { initBody } from '../checklist/open-session.js'
import { modernRequest } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { firstData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const dir = mkdtempSync(join(tmpdir(), 'mcp-edge-audit-once-'))
const RECORD = join(dir, 'record.jsonl')
/** Whether a process of the fixture received a message holding `text`. */
const got = (text: string) => existsSync(RECORD) && readFileSync(RECORD, 'utf8').includes(text)

const fixture = (extra: Record<string, unknown> = {}) => ({
  command: process.execPath,
  args: [join(SERVERS_DIR, 'fixture.js')],
  env: { FIXTURE_RECORD_FILE: RECORD },
  ...extra,
})
const SERVERS = {
  tbl: fixture(),
  // A request still running after 2 s is timed out by the gateway (initialize included: warm
  // processes keep a session's start well inside it). Its cases call only `gate`: the server
  // without the SDK, as its warm pool's every refill paid the SDK's imports (~0.2 s of CPU).
  quick: fixture({
    requestTimeout: 2000,
    pool: { min: 2 },
    args: [join(SERVERS_DIR, 'plain.js')],
    env: { PLAIN_RECORD_FILE: RECORD },
  }),
  shr: fixture({ mode: 'shared' }),
  // The barriers' server: one process for every subject's barrier (a process of their own cost
  // each case a spawn), apart from the servers the cases act on.
  seen: fixture({ mode: 'shared' }),
  nostart: { command: join(dir, 'no-such-command') },
}
const POLICY = `${TEST_POLICY}
  tbl:
    access: ["mcp:read"]
    tools: { crash: deny, env: ["mcp:write"], "*": ["mcp:read"] }
    prompts: { "*": allow }
  quick:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  shr:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  seen:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
  nostart:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
rateLimits:
  - name: one-open-gate
    servers: [tbl]
    tools: [open_gate]
    limit: 1
    interval: 1h
`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: {
      limits: { sharedCrashesPerSubject: 1 },
      endpoints: { agg: { servers: ['tbl', 'quick', 'shr'] }, aggx: { servers: ['nostart'] } },
    },
    // The crash window never ends: the clock stands still.
    sharedClock: () => 0,
  })
})
after(async () => {
  await stack.close()
  rmSync(dir, { recursive: true, force: true })
})

const tokenOf = (sub: string, server: string) => stack.forge({ sub, aud: stack.endpoint(server) })

/** What one request was answered: its status and its JSON-RPC message, if one came. */
interface Answer {
  status: number
  text: string
  message?: { id?: unknown; result?: unknown; error?: { code: number } }
}

/** One request at a time of one subject, the same way whatever the transport. */
interface Conn {
  /** Sends a request and reads its answer (`signal`: the client gives up on it). */
  send(message: Rpc, signal?: AbortSignal): Promise<Answer>
  /** Sends a notification. */
  notify(message: Record<string, unknown>): Promise<void>
  close(): Promise<void>
}
interface Rpc {
  jsonrpc: '2.0'
  id: number
  method: string
  params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> }
}

const parse = (text: string): Answer['message'] => {
  try {
    return JSON.parse(firstData(text) ?? text)
  } catch {
    return undefined
  }
}

/** A session-era session of `sub` at `path` (a server or an endpoint). */
async function session(sub: string, path: string): Promise<Conn> {
  const auth = { authorization: `Bearer ${await tokenOf(sub, path)}` }
  const init = await postMcp(stack.local(path), initBody(), auth)
  assert.equal(init.status, 200, init.text)
  assert.ok(init.json().result, init.text)
  const headers = {
    ...auth,
    'mcp-session-id': init.headers['mcp-session-id'] as string,
    'mcp-protocol-version': '2025-11-25',
  }
  const post = async (body: unknown, signal?: AbortSignal) => {
    const res = await request(stack.local(path), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: JSON.stringify(body),
      signal,
    })
    const text = await res.body.text()
    return { status: res.statusCode, text, message: parse(text) }
  }
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
  return {
    send: (m, signal) => post(m, signal),
    notify: async (m) => void (await post(m)),
    close: async () => {
      const res = await request(stack.local(path), { method: 'DELETE', headers })
      await res.body.dump()
    },
  }
}

/** 2026-07-28 requests of `sub` at `path`, each on its own. */
async function sessionless(sub: string, path: string): Promise<Conn> {
  const token = await tokenOf(sub, path)
  return {
    async send(m, signal) {
      const res = await request(stack.local(path), {
        ...modernRequest(token, m.method, m.params, { id: m.id, name: m.params.name }),
        signal,
      })
      const text = await res.body.text()
      return { status: res.statusCode, text, message: parse(text) }
    },
    notify: async () => {},
    close: async () => {},
  }
}

/** A legacy HTTP+SSE session of `sub` at `path`: answers come on its stream. */
async function legacy(sub: string, path: string): Promise<Conn> {
  const auth = { authorization: `Bearer ${await tokenOf(sub, path)}` }
  const res = await request(`${stack.url}/sse/${path}`, {
    headers: { accept: 'text/event-stream', ...auth },
  })
  assert.equal(res.statusCode, 200)
  const events = res.body[Symbol.asyncIterator]()
  let buffer = ''
  const queue: { event: string; data: string }[] = []
  const next = async (): Promise<{ event: string; data: string }> => {
    for (;;) {
      const shifted = queue.shift()
      if (shifted) return shifted
      const end = buffer.indexOf('\n\n')
      if (end !== -1) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const field = (f: string) =>
          block
            .split('\n')
            .filter((l) => l.startsWith(`${f}:`))
            .map((l) => l.slice(f.length + 1).trimStart())
            .join('\n')
        if (block.startsWith(':')) continue
        queue.push({ event: field('event') || 'message', data: field('data') })
        continue
      }
      const r = await events.next()
      if (r.done) throw new Error('the legacy stream ended')
      buffer += String(r.value)
    }
  }
  const endpoint = new URL((await next()).data, stack.url).href
  const post = async (body: unknown) => {
    const r = await request(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify(body),
    })
    return { status: r.statusCode, text: await r.body.text() }
  }
  /** The stream's answer to `id`. */
  const answer = async (id: number): Promise<Answer> => {
    for (;;) {
      const e = await next()
      if (e.event !== 'message') continue
      const message = JSON.parse(e.data)
      if (message.id === id) return { status: 200, text: e.data, message }
    }
  }
  const init = await post(initBody({}, '2024-11-05'))
  assert.ok(init.status < 300, init.text)
  await answer(1)
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' })
  return {
    async send(m) {
      const posted = await post(m)
      // Refused at the POST (a step-up, a limit): no answer comes on the stream.
      if (posted.status >= 300) return { ...posted, message: parse(posted.text) }
      return answer(m.id)
    },
    notify: async (m) => void (await post(m)),
    close: async () => void res.body.destroy(),
  }
}

type Transport = 'session' | 'sessionless' | 'legacy' | 'endpoint'
const TRANSPORTS: Transport[] = ['session', 'sessionless', 'legacy', 'endpoint']

/** A connection of `sub` to `server`'s tools on `transport` (an endpoint: through `agg`). */
function connect(transport: Transport, sub: string, server: string): Promise<Conn> {
  switch (transport) {
    case 'session':
      return session(sub, server)
    case 'sessionless':
      return sessionless(sub, server)
    case 'legacy':
      return legacy(sub, server)
    case 'endpoint':
      return session(sub, 'agg')
  }
}

/** The name a tool or prompt of `server` has on `transport`. */
const nameOf = (transport: Transport, server: string, name: string) =>
  transport === 'endpoint' ? `${server}_${name}` : name

let ids = 10
const call = (transport: Transport, server: string, name: string, args = {}): Rpc => ({
  jsonrpc: '2.0',
  id: ids++,
  method: 'tools/call',
  params: { name: nameOf(transport, server, name), arguments: args },
})

interface Case {
  outcome: string
  server: string
  /** Methods whose lines are counted (a start failure's first request is `initialize`). */
  method?: string
  /** Before the audited request (its lines are not counted). */
  arrange?: (c: Conn, t: Transport, sub: string) => Promise<void>
  act: (c: Conn, t: Transport, sub: string) => Promise<unknown>
  /** The decision of the one line (on an endpoint, when it differs). */
  decision: string
  endpointDecision?: string
  /** More fields of the one line. */
  line?: Record<string, string>
}

const CASES: Case[] = [
  {
    outcome: 'allow',
    server: 'tbl',
    act: (c, t) => c.send(call(t, 'tbl', 'pid')),
    decision: 'allow',
  },
  {
    outcome: 'deny',
    server: 'tbl',
    act: (c, t) => c.send(call(t, 'tbl', 'crash')),
    decision: 'deny',
  },
  {
    outcome: 'step-up',
    server: 'tbl',
    act: (c, t) => c.send(call(t, 'tbl', 'env')),
    decision: 'challenge',
  },
  {
    outcome: 'rate_limited (policy rateLimits)',
    server: 'tbl',
    arrange: async (c, t, sub) => void (await c.send(call(t, 'tbl', 'open_gate', { name: sub }))),
    act: (c, t, sub) => c.send(call(t, 'tbl', 'open_gate', { name: sub })),
    decision: 'rate_limited',
  },
  {
    outcome: 'error (the server’s)',
    server: 'tbl',
    method: 'prompts/get',
    act: (c, t) =>
      c.send({
        jsonrpc: '2.0',
        id: ids++,
        method: 'prompts/get',
        params: { name: nameOf(t, 'tbl', 'no_such_prompt') },
      }),
    decision: 'allow',
    // A name no backend has is refused by the endpoint's routing, before any backend.
    endpointDecision: 'invalid',
  },
  {
    outcome: 'cancelled',
    server: 'tbl',
    act: async (c, t, sub) => {
      const m = call(t, 'tbl', 'gate', { name: `cancel-${sub}` })
      const abort = new AbortController()
      const answered = c.send(m, abort.signal).catch(() => undefined)
      await waitFor(() => got(`cancel-${sub}`), 'the call runs at the process')
      if (t === 'sessionless') abort.abort()
      else
        await c.notify({
          jsonrpc: '2.0',
          method: 'notifications/cancelled',
          params: { requestId: m.id, reason: 'test' },
        })
      // A legacy or session-era answer never comes for a cancelled request: not waited for.
      if (t === 'sessionless') await answered
    },
    decision: 'allow',
  },
  {
    outcome: 'timeout',
    server: 'quick',
    act: (c, t, sub) => c.send(call(t, 'quick', 'gate', { name: `timeout-${sub}` })),
    decision: 'allow',
  },
  {
    outcome: 'rate_limited (shared process crashed too often)',
    server: 'shr',
    arrange: async (c, t, sub) => {
      // The session (or lane) is on the process already; then the subject is charged an exit.
      await c.send(call(t, 'shr', 'pid'))
      const who = { iss: stack.gateway.issuer!, sub } as Principal
      stack.gateway.registry.sharedCrashes.crashed('shr', [who])
    },
    act: (c, t) => c.send(call(t, 'shr', 'pid')),
    decision: 'rate_limited',
    line: { rule: 'limits.sharedCrashesPerSubject', name: 'pid', outcome: 'refused' },
  },
]

/** The lines of `sub` written since `mark`. */
const linesOf = (sub: string, mark: number) =>
  stack
    .audit()
    .slice(mark)
    .filter((e) => e.sub === sub)

/** A later request of `sub` whose line is written: every line of the case's is in by then. */
async function barrier(sub: string): Promise<void> {
  const c = await sessionless(sub, 'seen')
  const m = call('sessionless', 'seen', 'echo_args', { barrier: true })
  await c.send(m)
  await waitFor(
    () => stack.audit().some((e) => e.sub === sub && e.name === 'echo_args'),
    'the barrier request was audited',
  )
}

describe('every request leaves exactly one audit line', () => {
  let n = 0
  for (const t of TRANSPORTS)
    for (const k of CASES)
      it(`${t}: ${k.outcome}`, async () => {
        const sub = `once-${n++}`
        const c = await connect(t, sub, k.server)
        try {
          await k.arrange?.(c, t, sub)
          const mark = stack.audit().length
          await k.act(c, t, sub)
          const method = k.method ?? 'tools/call'
          await waitFor(
            () => linesOf(sub, mark).some((e) => e.method === method),
            () => `a ${method} line of ${sub}`,
          )
          await barrier(sub)
          const lines = linesOf(sub, mark).filter((e) => e.name !== 'echo_args')
          assert.equal(lines.length, 1, JSON.stringify(lines))
          const decision = t === 'endpoint' ? (k.endpointDecision ?? k.decision) : k.decision
          assert.equal(lines[0]!.decision, decision, JSON.stringify(lines))
          for (const [field, value] of Object.entries(k.line ?? {}))
            assert.equal(lines[0]![field], value, JSON.stringify(lines))
        } finally {
          await c.close()
        }
      })

  // A process that cannot start: the request that needed it has the one line.
  const starts: { t: Transport; method: string; act: (sub: string) => Promise<unknown> }[] = [
    {
      t: 'session',
      method: 'initialize',
      act: async (sub) =>
        postMcp(stack.local('nostart'), initBody(), {
          authorization: `Bearer ${await tokenOf(sub, 'nostart')}`,
        }),
    },
    {
      t: 'sessionless',
      method: 'tools/call',
      act: async (sub) => (await sessionless(sub, 'nostart')).send(call('sessionless', '', 'pid')),
    },
    {
      // The stream opens the session and starts its process: it is the attempt's one request.
      t: 'legacy',
      method: 'GET /sse',
      act: async (sub) => {
        const res = await request(`${stack.url}/sse/nostart`, {
          headers: {
            accept: 'text/event-stream',
            authorization: `Bearer ${await tokenOf(sub, 'nostart')}`,
          },
        })
        await res.body.dump()
        assert.ok(res.statusCode >= 500, String(res.statusCode))
      },
    },
    {
      t: 'endpoint',
      method: 'tools/call',
      act: async (sub) => (await session(sub, 'aggx')).send(call('endpoint', 'nostart', 'pid')),
    },
  ]
  for (const s of starts)
    it(`${s.t}: a process that cannot start`, async () => {
      const sub = `once-${n++}`
      const mark = stack.audit().length
      await s.act(sub)
      await waitFor(
        () => linesOf(sub, mark).some((e) => e.method === s.method),
        () => `a ${s.method} line of ${sub}: ${JSON.stringify(linesOf(sub, mark))}`,
      )
      await barrier(sub)
      const lines = linesOf(sub, mark).filter(
        (e) => e.name !== 'echo_args' && e.method === s.method,
      )
      assert.equal(lines.length, 1, JSON.stringify(lines))
    })
})
