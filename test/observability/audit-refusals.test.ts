// Every refusal of an authenticated request leaves exactly one audit event, naming the request
// (its method, and the tool or name it asked for), the rule that refused it and its outcome, on
// every transport and era where the refusal can happen: a subject's session bound, its
// process-start budget, its endpoint sessions, access refused to a stream or a session's end,
// and a name no backend of an endpoint has for the caller. Real gateway, tokens signed with the
// IdP's key, real fixture processes, raw HTTP; each case has a subject of its own.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { scopeOf } from '../../gateway/bridge/bounds.js'
import { ownerKey } from '../../gateway/bridge/session.js'
import type { Principal } from '../../gateway/auth/principal.js'
import { initBody, openSession } from '../checklist/open-session.js'
import { modernRequest, modernToolCall } from '../helpers/modern-request.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const fixture = { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] }
const SERVERS = {
  // One process per user: a user's open legacy stream holds it (a listening session is never
  // ended to make room), so the user's next one is refused.
  solo: { ...fixture, maxSessionsPerSubject: 1 },
  budget: fixture,
}
const POLICY =
  TEST_POLICY +
  Object.keys(SERVERS)
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')
/** Process starts per subject (the window never ends: its clock stands still). */
const STARTS = 2
/** Endpoint sessions per subject (limits.maxSessionsPerSubject). */
const ENDPOINT_SESSIONS = 2

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: {
      limits: {
        processStartsPerSubject: STARTS,
        maxSessionsPerSubject: ENDPOINT_SESSIONS,
        sessionless: { listensPerSubject: 1 },
      },
      endpoints: { duo: { servers: ['solo'] } },
    },
    processStartClock: () => 0,
  })
})
after(() => stack.close())

/** A token of `sub` for `server` (or the endpoint at /mcp/<server>); `roles: []`: no access. */
const tokenOf = (sub: string, server: string, roles = ['mcp-user']) =>
  stack.forge({ sub, aud: stack.endpoint(server), realm_access: { roles } })
const bearer = async (sub: string, server: string, roles?: string[]) => ({
  authorization: `Bearer ${await tokenOf(sub, server, roles)}`,
})

/** Sessions and lanes `sub` holds now. */
const held = (sub: string) =>
  stack.gateway.registry.bounds.count(
    scopeOf({ owner: ownerKey({ iss: stack.gateway.issuer!, sub }) }),
  )

/** A legacy HTTP+SSE stream of `sub` on `server`, open once its endpoint event came. */
async function openSse(sub: string, server: string): Promise<() => void> {
  const res = await request(`${stack.url}/sse/${server}`, {
    headers: { accept: 'text/event-stream', ...(await bearer(sub, server)) },
  })
  assert.equal(res.statusCode, 200)
  const events = res.body[Symbol.asyncIterator]()
  let text = ''
  while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
  return () => res.body.destroy()
}

/** What one request was answered: its status, and its body. */
interface Answer {
  status: number
  text: string
}

/** A legacy `GET /sse/<server>` expected to be refused (an opened stream fails the case). */
async function sse(sub: string, server: string, roles?: string[]): Promise<Answer> {
  const res = await request(`${stack.url}/sse/${server}`, {
    headers: { accept: 'text/event-stream', ...(await bearer(sub, server, roles)) },
  })
  if (res.statusCode === 200) {
    res.body.destroy()
    assert.fail('a stream was opened')
  }
  return { status: res.statusCode, text: await res.body.text() }
}

async function initialize(sub: string, server: string): Promise<Answer> {
  return postMcp(stack.local(server), initBody(), await bearer(sub, server))
}

/** A 2026-07-28 request (a tools/call when `tool` is given). */
async function modern(sub: string, server: string, method: string, tool?: string): Promise<Answer> {
  const token = await tokenOf(sub, server)
  const params = method === 'subscriptions/listen' ? LISTEN : {}
  const res = await request(
    stack.local(server),
    tool === undefined ? modernRequest(token, method, params) : modernToolCall(token, tool),
  )
  return { status: res.statusCode, text: await res.body.text() }
}

/** The user's budget spent on `server` as its own starts would spend it. */
function spendStarts(sub: string, server: string): void {
  const who = { iss: stack.gateway.issuer!, sub } as Principal
  for (let i = 0; i < STARTS; i++) stack.gateway.registry.processStarts.take(server, who)
}

/** Holds the user's one process of `solo` with an open legacy stream. */
async function holdSolo(sub: string): Promise<Arranged> {
  const close = await openSse(sub, 'solo')
  await waitFor(() => held(sub) === 1, 'the stream holds its session')
  return {
    undo: async () => {
      close()
      await waitFor(() => held(sub) === 0, 'the legacy session ended')
    },
  }
}

/** Holds the user's endpoint sessions, each with an open legacy stream. */
async function holdEndpoint(sub: string): Promise<Arranged> {
  const closes: (() => void)[] = []
  for (let i = 0; i < ENDPOINT_SESSIONS; i++) closes.push(await openSse(sub, 'duo'))
  return {
    undo: async () => {
      for (const close of closes) close()
    },
  }
}

const LISTEN = { notifications: { toolsListChanged: true } }

/** The user's one `subscriptions/listen` stream at `server` (or an endpoint), open. */
async function listening(sub: string, server: string): Promise<Arranged> {
  const res = await request(
    stack.local(server),
    modernRequest(await tokenOf(sub, server), 'subscriptions/listen', LISTEN),
  )
  assert.equal(res.statusCode, 200)
  const events = res.body[Symbol.asyncIterator]()
  let text = ''
  while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
  return { undo: async () => void res.body.destroy() }
}

/** A session-era session of `sub` at `server` (a server or an endpoint): its headers. */
async function session(sub: string, server: string): Promise<Arranged> {
  const auth = await bearer(sub, server)
  const sid = await openSession(stack, server, auth.authorization.slice('Bearer '.length))
  return {
    session: { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
  }
}

/** What a case's arrangement leaves: its undoing, the session its request goes to. */
interface Arranged {
  undo?: () => Promise<void>
  session?: Record<string, string>
}

interface Case {
  name: string
  /** Brings `sub` to where the request is refused (its audit lines are not the case's). */
  arrange?: (sub: string) => Promise<Arranged>
  act: (sub: string, arranged: Arranged) => Promise<Answer>
  status: number
  /** The audit event's fields (sub, iss and clientId are checked for every case). */
  event: {
    server: string
    method: string
    name?: string
    decision: string
    rule: string | RegExp
    outcome: string
  }
}

const bound = (server: string) => ({
  decision: 'rate_limited',
  rule: `servers.${server}.maxSessionsPerSubject`,
  outcome: 'refused',
})
const budget = {
  decision: 'rate_limited',
  rule: 'limits.processStartsPerSubject',
  outcome: 'refused',
}
const endpointBound = {
  decision: 'rate_limited',
  rule: 'limits.maxSessionsPerSubject',
  outcome: 'refused',
}
/** A tool no backend of the endpoint has (for the caller): refused before any backend decides. */
const unrouted = {
  server: 'duo',
  method: 'tools/call',
  name: 'solo_nope',
  decision: 'invalid',
  rule: 'Invalid params: no tool named "solo_nope" on this endpoint',
  outcome: 'refused',
}
/** The policy's refusal of access to a server, for a token without its scope. */
const noAccess = { decision: 'challenge', rule: /access/, outcome: 'refused' }
const spent = async (sub: string): Promise<Arranged> => {
  spendStarts(sub, 'budget')
  return {}
}

const CASES: Case[] = [
  // A limit on what the user holds or starts, in every era: the user's bound on one server
  // (servers.solo.maxSessionsPerSubject), and its process-start budget, whose line names the
  // request that needed the process, not `initialize`.
  ...[
    { limit: 'session bound', server: 'solo', arrange: holdSolo, ...bound('solo') },
    { limit: 'process-start budget', server: 'budget', arrange: spent, ...budget },
  ].flatMap(({ limit, server, arrange, ...refused }): Case[] =>
    [
      { era: 'session era', method: 'initialize', act: (sub: string) => initialize(sub, server) },
      {
        era: 'sessionless',
        method: 'tools/call',
        name: 'pid',
        act: (sub: string) => modern(sub, server, 'tools/call', 'pid'),
      },
      {
        era: 'sessionless',
        method: 'server/discover',
        act: (sub: string) => modern(sub, server, 'server/discover'),
      },
      { era: 'legacy', method: 'GET /sse', act: (sub: string) => sse(sub, server) },
    ].map(({ era, method, name, act }) => ({
      name: `${era}: ${method} past the ${limit}`,
      arrange,
      act,
      status: 429,
      event: { server, method, ...(name ? { name } : {}), ...refused },
    })),
  ),
  // The user's listen streams (limits.sessionless.listensPerSubject), at a server and an endpoint.
  ...['fixture', 'duo'].map(
    (server): Case => ({
      name: `sessionless: subscriptions/listen at ${server} past the user’s streams`,
      arrange: (sub) => listening(sub, server),
      act: (sub) => modern(sub, server, 'subscriptions/listen'),
      status: 429,
      event: {
        server,
        method: 'subscriptions/listen',
        decision: 'rate_limited',
        rule: 'limits.sessionless.listensPerSubject',
        outcome: 'refused',
      },
    }),
  ),
  // An endpoint's sessions (limits.maxSessionsPerSubject).
  {
    name: 'endpoint, session era: initialize past the user’s endpoint sessions',
    arrange: holdEndpoint,
    act: (sub) => initialize(sub, 'duo'),
    status: 429,
    event: { server: 'duo', method: 'initialize', ...endpointBound },
  },
  {
    name: 'endpoint, legacy: GET /sse past the user’s endpoint sessions',
    arrange: holdEndpoint,
    act: (sub) => sse(sub, 'duo'),
    status: 429,
    event: { server: 'duo', method: 'GET /sse', ...endpointBound },
  },
  // Access refused where no JSON-RPC message is decided: a stream, a session's end.
  {
    name: 'legacy: GET /sse without access',
    act: (sub) => sse(sub, 'fixture', []),
    status: 403,
    event: { server: 'fixture', method: 'GET /sse', ...noAccess },
  },
  ...(['GET', 'DELETE'] as const).map(
    (method): Case => ({
      name: `session era: ${method} on the user’s session without access`,
      arrange: (sub) => session(sub, 'fixture'),
      act: async (sub, { session }) => {
        const res = await request(stack.local('fixture'), {
          method,
          headers: {
            ...session,
            accept: 'text/event-stream',
            // The same user, its token no longer granting access.
            ...(await bearer(sub, 'fixture', [])),
          },
        })
        return { status: res.statusCode, text: await res.body.text() }
      },
      status: 403,
      event: { server: 'fixture', method: `${method} /mcp`, ...noAccess },
    }),
  ),
  // A name no backend of the endpoint has for the caller: refused before any backend decides.
  {
    name: 'endpoint, session era: tools/call of a name no backend has',
    arrange: (sub) => session(sub, 'duo'),
    act: (_, { session }) => {
      const call = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'solo_nope' } }
      return postMcp(stack.local('duo'), call, session)
    },
    status: 200,
    event: unrouted,
  },
  {
    name: 'endpoint, sessionless: tools/call of a name no backend has',
    act: (sub) => modern(sub, 'duo', 'tools/call', 'solo_nope'),
    status: 200,
    event: unrouted,
  },
  {
    name: 'endpoint: a body whose two requests share an id',
    act: async (sub) =>
      postMcp(
        stack.local('duo'),
        [
          { jsonrpc: '2.0', id: 1, method: 'tools/list' },
          { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        ],
        await bearer(sub, 'duo'),
      ),
    status: 400,
    event: {
      server: 'duo',
      method: 'tools/list',
      decision: 'invalid',
      rule: 'Invalid Request: two requests of the body have the id 1',
      outcome: 'refused',
    },
  },
]

describe('every refusal is one audit event naming the request, its rule and its outcome', () => {
  CASES.forEach((c, i) => {
    it(c.name, async () => {
      const sub = `refused-${i}`
      const arranged = (await c.arrange?.(sub)) ?? {}
      try {
        const mark = stack.audit().length
        const answer = await c.act(sub, arranged)
        assert.equal(answer.status, c.status, answer.text)
        // Every line of the user's since: one request, one event.
        const events = stack
          .audit()
          .slice(mark)
          .filter((e) => e.sub === sub)
        assert.equal(events.length, 1, JSON.stringify(events))
        const { rule, ...fields } = c.event
        const e = events[0]!
        assert.deepEqual(
          {
            sub: e.sub,
            iss: e.iss,
            clientId: e.clientId,
            server: e.server,
            method: e.method,
            name: e.name,
            decision: e.decision,
            outcome: e.outcome,
          },
          { sub, iss: stack.gateway.issuer, clientId: undefined, name: undefined, ...fields },
        )
        if (typeof rule === 'string') assert.equal(e.rule, rule)
        else assert.match(String(e.rule), rule)
      } finally {
        await arranged.undo?.()
      }
    })
  })
})
