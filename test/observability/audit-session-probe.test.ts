// A request presenting a session id that exists but belongs to another subject is answered
// exactly as an unknown id (404, the same body) and audited once, as the requester's `deny`
// with rule `session.owner`: a possible hijack probe. The line names neither the session nor
// its owner; an unknown id is not audited (a protocol error); the owner's session still works.
// Every transport that takes a session id, at a server and at an endpoint: POST, GET and DELETE
// /mcp/<x>, and the legacy POST /messages/<x>?sessionId=. Real gateway, tokens signed with the
// IdP's key, real fixture processes, raw HTTP.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { SESSION_OWNER_RULE, SESSION_UNKNOWN_RULE } from '../../gateway/http/session-probe.js'
import { openSession } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const fixture = { command: process.execPath, args: [join(SERVERS_DIR, 'fixture.js')] }
const SERVERS = { probed: fixture }
const POLICY = `${TEST_POLICY}  probed:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`

let stack: Stack
before(async () => {
  stack = await startStack({
    servers: SERVERS,
    policy: POLICY,
    config: { endpoints: { duo: { servers: ['probed'] } } },
  })
})
after(() => stack.close())

const bearer = async (sub: string, server: string) => ({
  authorization: `Bearer ${await stack.forge({ sub, aud: stack.endpoint(server), realm_access: { roles: ['mcp-user'] } })}`,
})

interface Answer {
  status: number
  text: string
}

const LIST = { jsonrpc: '2.0', id: 7, method: 'tools/list' }

/** A session of `sub` at `where`, and a request of `who` naming an id on this transport. */
interface Transport {
  name: string
  /** What the audit line names the request. */
  method: string
  /** Opens `sub`'s session: its id, and how to end it. */
  open: (sub: string, where: string) => Promise<{ id: string; close: () => void }>
  /** `sub`'s request presenting session id `id` at `where`. */
  probe: (sub: string, where: string, id: string) => Promise<Answer>
  /** The owner's session still answers its owner. */
  works: (sub: string, where: string, id: string) => Promise<void>
}

const modernHeaders = async (sub: string, where: string, id: string) => ({
  ...(await bearer(sub, where)),
  'mcp-session-id': id,
  'mcp-protocol-version': '2025-11-25',
})

async function openModern(sub: string, where: string) {
  const auth = await bearer(sub, where)
  const id = await openSession(stack, where, auth.authorization.slice('Bearer '.length))
  return { id, close: () => {} }
}

async function modernWorks(sub: string, where: string, id: string): Promise<void> {
  const res = await postMcp(stack.local(where), LIST, await modernHeaders(sub, where, id))
  assert.equal(res.status, 200, res.text)
  assert.ok(Array.isArray(res.json().result.tools), res.text)
}

/** A legacy stream of `sub` at `where`: its session id (from the endpoint event). */
async function openLegacy(sub: string, where: string) {
  const res = await request(`${stack.url}/sse/${where}`, {
    headers: { accept: 'text/event-stream', ...(await bearer(sub, where)) },
  })
  assert.equal(res.statusCode, 200)
  const events = res.body[Symbol.asyncIterator]()
  let text = ''
  while (!text.includes('\n\n')) text += String((await events.next()).value ?? '')
  const id = /sessionId=([\w-]+)/.exec(text)![1]!
  return { id, close: () => res.body.destroy() }
}

async function legacyPost(sub: string, where: string, id: string): Promise<Answer> {
  const res = await request(`${stack.url}/messages/${where}?sessionId=${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await bearer(sub, where)) },
    body: JSON.stringify(LIST),
  })
  return { status: res.statusCode, text: await res.body.text() }
}

const TRANSPORTS: Transport[] = [
  {
    name: 'POST /mcp',
    method: 'POST /mcp',
    open: openModern,
    probe: async (sub, where, id) => {
      const res = await postMcp(stack.local(where), LIST, await modernHeaders(sub, where, id))
      return { status: res.status, text: res.text }
    },
    works: modernWorks,
  },
  ...(['GET', 'DELETE'] as const).map(
    (method): Transport => ({
      name: `${method} /mcp`,
      method: `${method} /mcp`,
      open: openModern,
      probe: async (sub, where, id) => {
        const res = await request(stack.local(where), {
          method,
          headers: { ...(await modernHeaders(sub, where, id)), accept: 'text/event-stream' },
        })
        return { status: res.statusCode, text: await res.body.text() }
      },
      works: modernWorks,
    }),
  ),
  {
    name: 'legacy POST /messages',
    method: 'POST /messages',
    open: openLegacy,
    probe: legacyPost,
    works: async (sub, where, id) => {
      const res = await legacyPost(sub, where, id)
      assert.equal(res.status, 202, res.text)
    },
  },
]

describe('a session id of another subject is audited as a deny, answered as unknown', () => {
  let n = 0
  for (const where of ['probed', 'duo']) {
    for (const t of TRANSPORTS) {
      it(`${t.name} at ${where === 'duo' ? 'an endpoint' : 'a server'}`, async () => {
        n++
        const alice = `alice-${n}`
        const bob = `bob-${n}`
        const session = await t.open(alice, where)
        try {
          // An id nobody holds here, of the same shape (ended, another replica's, made up):
          // audited as bob's deny with rule session.unknown, the id nowhere in it.
          const mark0 = stack.audit().length
          const made = randomBytes(session.id.length / 2).toString('hex')
          const unknown = await t.probe(bob, where, made)
          assert.equal(unknown.status, 404, unknown.text)
          const unknownLines = stack.audit().slice(mark0)
          assert.deepEqual(
            unknownLines.map((l) => [l.sub, l.server, l.method, l.decision, l.rule, l.outcome]),
            [[bob, where, t.method, 'deny', SESSION_UNKNOWN_RULE, 'refused']],
          )
          assert.ok(!JSON.stringify(unknownLines).includes(made.slice(0, 8)), 'no part of the id')
          const mark = stack.audit().length
          const probe = await t.probe(bob, where, session.id)
          // The client learns nothing: the answer is the unknown id's.
          assert.deepEqual(probe, unknown)
          const lines = stack.audit().slice(mark)
          assert.equal(lines.length, 1, JSON.stringify(lines))
          const e = lines[0]!
          assert.deepEqual(
            {
              sub: e.sub,
              iss: e.iss,
              clientId: e.clientId,
              server: e.server,
              method: e.method,
              name: e.name,
              decision: e.decision,
              rule: e.rule,
              outcome: e.outcome,
            },
            {
              sub: bob,
              iss: stack.gateway.issuer,
              clientId: undefined,
              server: where,
              method: t.method,
              name: undefined,
              decision: 'deny',
              rule: SESSION_OWNER_RULE,
              outcome: 'refused',
            },
          )
          const text = JSON.stringify(e)
          assert.ok(!text.includes(session.id), 'the session id is not in the line')
          assert.ok(!text.includes(session.id.slice(0, 8)), 'nor its first characters')
          assert.ok(!text.includes(alice), "nor the owner's identity")
          // The owner's session is untouched (a probing DELETE ended nothing).
          await t.works(alice, where, session.id)
        } finally {
          session.close()
        }
      })
    }
  }
})

describe('unknown session ids are audited within log.unknownSessionAudit, the rest counted', () => {
  let small: Stack
  before(async () => {
    small = await startStack({
      servers: SERVERS,
      policy: POLICY,
      config: { log: { unknownSessionAudit: { linesPerWindow: 3, window: 3_600_000 } } },
    })
  })
  after(() => small?.close())

  const suppressed = async () => {
    const text = await (await request(`${small.url}/metrics`)).body.text()
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('mcp_edge_log_lines_suppressed_total{') &&
          l.includes('unknown_session_audit'),
      )
    return Number(line?.split(' ').pop() ?? 0)
  }

  it('a spray of 10 random ids (POST, GET, DELETE, legacy, hostile shapes): 3 lines, 7 counted, each a 404', async () => {
    const auth = {
      authorization: `Bearer ${await small.forge({ sub: 'sprayer', aud: small.endpoint('probed'), realm_access: { roles: ['mcp-user'] } })}`,
    }
    const ids = [
      randomBytes(16).toString('hex'),
      randomBytes(16).toString('hex').toUpperCase(),
      ` ${randomBytes(16).toString('hex')}`,
      'x'.repeat(200),
      '00000000-0000-0000-0000-000000000000',
      '%00',
      randomBytes(8).toString('base64url'),
      'a',
      randomBytes(16).toString('hex'),
      randomBytes(16).toString('hex'),
    ]
    const before = await suppressed()
    const mark = small.audit().length
    let notFound = 0
    for (const [i, id] of ids.entries()) {
      const kind = i % 3
      const res =
        kind === 0
          ? await postMcp(small.local('probed'), LIST, {
              ...auth,
              'mcp-session-id': id.trim(),
              'mcp-protocol-version': '2025-11-25',
            })
          : kind === 1
            ? await request(small.local('probed'), {
                method: 'GET',
                headers: { ...auth, 'mcp-session-id': id.trim(), accept: 'text/event-stream' },
              }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }))
            : await request(`${small.url}/messages/probed?sessionId=${encodeURIComponent(id)}`, {
                method: 'POST',
                headers: { 'content-type': 'application/json', ...auth },
                body: JSON.stringify(LIST),
              }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }))
      // A malformed id may be refused as such (400) before any lookup: no session refusal.
      assert.ok([404, 400].includes(res.status), `${id}: ${res.status} ${res.text}`)
      if (res.status === 404) notFound++
    }
    assert.ok(notFound > 3, `${notFound} unknown ids`)
    const lines = small.audit().slice(mark)
    const unknown = lines.filter((l) => l.rule === SESSION_UNKNOWN_RULE)
    assert.equal(unknown.length, 3, JSON.stringify(lines))
    assert.ok(unknown.every((l) => l.sub === 'sprayer' && l.decision === 'deny'))
    assert.equal(lines.length, 3, 'no other line')
    assert.equal((await suppressed()) - before, notFound - 3, 'the rest counted')
  })
})
