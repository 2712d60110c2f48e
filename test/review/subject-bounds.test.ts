// Review (issue 10, claims 3 and 4): one subject's hold on a server's processes. Sessions and
// sessionless (2026-07-28) lanes of one (server, subject) share `maxSessionsPerSubject` —
// running lanes, lanes parked on an input_required round, every client id and credential of
// the subject alike — and lanes count in `limits.maxSessionsPerSubject` and `maxSessions` too.
// At a bound an idle lane, else an idle session, else the subject's oldest parked round makes
// room; with nothing to give up a session is refused and a lane waits for a running one.
//
// Nothing here waits for a duration: each test reaches a state it can observe (a session
// opened, a round parked, a `gate` call reporting from its process, a request counted as
// waiting for a process) and counts the processes then. Each test runs on a server of its own,
// whose fixture processes carry the server's name as their last argument.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { request } from 'undici'
import { sseData } from '../helpers/sse.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const node = process.execPath
const fixture = join(SERVERS_DIR, 'fixture.js')
const ELICITATION = { elicitation: { form: {} } }

/** A fixture server named `name` whose processes are recognizable by their last argument. */
const server = (name: string, o: Record<string, unknown> = {}) => ({
  [name]: { command: node, args: [fixture, name], maxSessionsPerSubject: 2, ...o },
})
const policyFor = (servers: Record<string, unknown>) =>
  `${TEST_POLICY}${Object.keys(servers)
    .map((s) => `  ${s}:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n`)
    .join('')}`

/** Live processes of `server`, children of this test process (the gateway runs in it). */
function processesOf(...servers: string[]): number {
  const out = execFileSync('ps', ['-o', 'args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  })
  return out
    .split('\n')
    .filter((l) => l.includes('fixture.js') && servers.some((s) => l.trim().endsWith(` ${s}`)))
    .length
}

/** Requests, sessions and metrics against one stack. */
function client(stack: () => Stack) {
  let nextId = 1
  /** Gate calls not ended yet, ended after each test whatever its outcome. */
  const gates = new Set<{ abort: () => Promise<void> }>()
  const headers = (token: string, name: string) => ({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
    'mcp-protocol-version': V,
    'mcp-method': 'tools/call',
    'mcp-name': name,
  })
  const body = (
    name: string,
    args: Record<string, unknown>,
    caps: Record<string, unknown>,
    extra: Record<string, unknown> = {},
    meta: Record<string, unknown> = {},
  ) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        ...extra,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': V,
          'io.modelcontextprotocol/clientCapabilities': caps,
          ...meta,
        },
      },
    })

  const c = {
    /** A token of `sub` for `server`, through client `azp`. */
    token: (sub: string, srv: string, azp = 'app') =>
      stack().forge({ sub, azp, scope: 'mcp:read', aud: stack().endpoint(srv) }),

    /** A sessionless tools/call, answered. */
    async call(
      srv: string,
      token: string,
      name: string,
      args: Record<string, unknown>,
      caps: Record<string, unknown> = {},
      extra: Record<string, unknown> = {},
    ) {
      const res = await request(stack().local(srv), {
        method: 'POST',
        headers: headers(token, name),
        body: body(name, args, caps, extra),
      })
      const text = await res.body.text()
      const data = sseData(text)
      return {
        status: res.statusCode,
        json: JSON.parse(data.length > 0 ? data.at(-1)! : text) as Record<string, any>,
      }
    },

    /** An `elicit` call left waiting for its answer (input_required): its handle and key. */
    async park(srv: string, token: string) {
      const res = await c.call(srv, token, 'elicit', { message: 'answer?' }, ELICITATION)
      assert.equal(res.json.result?.resultType, 'input_required', JSON.stringify(res.json))
      return {
        token,
        state: res.json.result.requestState as string,
        key: Object.keys(res.json.result.inputRequests)[0]!,
      }
    },

    /** Answers a parked round: its result, or the error of a round that no longer waits. */
    async answer(srv: string, round: { token: string; state: string; key: string }) {
      const inputResponses = { [round.key]: { action: 'accept', content: { answer: 'yes' } } }
      return (
        await c.call(srv, round.token, 'elicit', { message: 'answer?' }, ELICITATION, {
          requestState: round.state,
          inputResponses,
        })
      ).json
    },

    /**
     * A `gate` call that blocks in its process until aborted: `running` once its process
     * reported it (progress), `ended` once answered (a refusal, say).
     */
    gate(srv: string, token: string) {
      const ac = new AbortController()
      const state = { running: false, ended: false, status: 0, reply: '' }
      const done = request(stack().local(srv), {
        method: 'POST',
        headers: headers(token, 'gate'),
        body: body('gate', { name: 'never' }, {}, {}, { progressToken: 'p' }),
        signal: ac.signal,
      })
        .then(async (res) => {
          state.status = res.statusCode
          for await (const chunk of res.body) {
            state.reply += String(chunk)
            if (state.reply.includes('notifications/progress')) state.running = true
          }
          state.ended = true
        })
        .catch(() => {})
      const gate = Object.assign(state, { abort: () => (ac.abort(), gates.delete(gate), done) })
      gates.add(gate)
      return gate
    },

    /** Ends every gate call still open (after each test). */
    async abortAll(): Promise<void> {
      await Promise.all([...gates].map((g) => g.abort()))
    },

    /** Opens a session-era session: its status, id and reply. */
    async session(srv: string, token: string) {
      const res = await request(stack().local(srv), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${token}`,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'review', version: '0' },
          },
        }),
      })
      const text = await res.body.text()
      const sid = res.headers['mcp-session-id'] as string | undefined
      if (sid !== undefined)
        await c.rpc(srv, token, sid, { jsonrpc: '2.0', method: 'notifications/initialized' })
      const data = sseData(text)
      return {
        status: res.statusCode,
        sid: sid ?? '',
        json: JSON.parse(data.length > 0 ? data.at(-1)! : text) as Record<string, any>,
      }
    },

    /** One message on a session: the HTTP status. */
    async rpc(srv: string, token: string, sid: string, message: unknown): Promise<number> {
      const res = await request(stack().local(srv), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${token}`,
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify(message),
      })
      await res.body.text()
      return res.statusCode
    },

    /** Requests waiting in the gateway for a process of `srv`. */
    async waiters(srv: string): Promise<number> {
      const text = await (await request(`${stack().url}/metrics`)).body.text()
      return Number(
        new RegExp(`^mcp_edge_lane_waiters\\{server="${srv}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0,
      )
    },

    /**
     * Waits until every gate call on `srv` is running in a process, waiting in the gateway for
     * one, or answered: nothing is starting, so the processes counted now are all there will be.
     */
    async settled(srv: string, gates: { running: boolean; ended: boolean }[]): Promise<void> {
      await waitFor(
        async () =>
          gates.filter((g) => g.running || g.ended).length + (await c.waiters(srv)) ===
          gates.length,
        `every gate call on ${srv} runs, waits or ended`,
      )
    },
  }
  return c
}

describe('one subject, one server: sessions and lanes share maxSessionsPerSubject (2)', () => {
  const SERVERS = {
    ...server('mixed'),
    ...server('parked'),
    ...server('running'),
    ...server('busy'),
    ...server('others'),
  }
  let stack: Stack
  const c = client(() => stack)
  before(async () => {
    stack = await startStack({ servers: SERVERS, policy: policyFor(SERVERS) })
  })
  afterEach(() => c.abortAll())
  after(() => stack.close())

  it("a parked round takes an idle session's place (least recently used first), and a session the oldest parked round's", async () => {
    const alice = await c.token('alice', 'mixed')
    const s1 = await c.session('mixed', alice)
    const s2 = await c.session('mixed', alice)
    assert.deepEqual([s1.status, s2.status, processesOf('mixed')], [200, 200, 2])
    const rounds = []
    for (let i = 0; i < 3; i++) {
      rounds.push(await c.park('mixed', alice))
      assert.equal(
        processesOf('mixed'),
        2,
        `alice holds ${processesOf('mixed')} processes after parking round ${i + 1}`,
      )
    }
    // Both sessions gave way, the older first; then the oldest round.
    assert.equal(
      await c.rpc('mixed', alice, s1.sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      404,
    )
    assert.equal(
      await c.rpc('mixed', alice, s2.sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      404,
    )
    const s3 = await c.session('mixed', alice)
    assert.equal(s3.status, 200, JSON.stringify(s3.json))
    assert.equal(processesOf('mixed'), 2)
    // The two oldest rounds were ended: their handles answer as expired; the newest still waits.
    for (const old of rounds.slice(0, 2))
      assert.equal((await c.answer('mixed', old)).error?.code, -32602)
    const last = await c.answer('mixed', rounds[2]!)
    assert.equal(last.result?.resultType, 'complete', JSON.stringify(last))
    assert.equal(
      await c.rpc('mixed', alice, s3.sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      200,
    )
  })

  it('rounds parked past the bound end the oldest (its requestState answers as expired); no process is added', async () => {
    const alice = await c.token('alice', 'parked')
    const rounds = []
    for (let i = 0; i < 4; i++) {
      rounds.push(await c.park('parked', alice))
      assert.ok(
        processesOf('parked') <= 2,
        `alice holds ${processesOf('parked')} processes after parking round ${i + 1}`,
      )
    }
    const answers = []
    for (const r of rounds) answers.push(await c.answer('parked', r))
    assert.deepEqual(
      answers.map((a) => a.error?.code ?? a.result?.resultType),
      [-32602, -32602, 'complete', 'complete'],
    )
  })

  it('running requests past the bound wait for a process; parked rounds make way for them, none adds a process', async () => {
    const alice = await c.token('alice', 'running')
    const rounds = [await c.park('running', alice), await c.park('running', alice)]
    const gates = [c.gate('running', alice), c.gate('running', alice), c.gate('running', alice)]
    await c.settled('running', gates)
    const held = processesOf('running')
    assert.ok(
      held <= 2,
      `alice holds ${held} processes of a server whose maxSessionsPerSubject is 2`,
    )
    assert.deepEqual(
      gates.map((g) => g.running).sort(),
      [false, true, true],
      'two run, the third waits',
    )
    await Promise.all(gates.map((g) => g.abort()))
    for (const r of rounds)
      assert.equal(
        (await c.answer('running', r)).error?.code,
        -32602,
        'the rounds ended to make way',
      )
  })

  it('with every process of the subject busy, a session is refused at once (429) and nothing is ended for it', async () => {
    const alice = await c.token('alice', 'busy')
    const gates = [c.gate('busy', alice), c.gate('busy', alice)]
    await c.settled('busy', gates)
    const refused = await c.session('busy', alice)
    assert.equal(refused.status, 429, JSON.stringify(refused.json))
    assert.match(refused.json.error?.message, /sessions in use on busy/)
    assert.equal(processesOf('busy'), 2)
    assert.ok(
      gates.every((g) => g.running && !g.ended),
      'the running requests go on',
    )
    await Promise.all(gates.map((g) => g.abort()))
  })

  it('another subject is neither held back nor robbed by one at its bound', async () => {
    const [alice, bob] = [await c.token('alice', 'others'), await c.token('bob', 'others')]
    const bobs = await c.park('others', bob)
    await c.park('others', alice)
    await c.park('others', alice)
    const alices = [c.gate('others', alice), c.gate('others', alice), c.gate('others', alice)]
    await c.settled('others', alices)
    // Bob's second process starts while Alice is at her bound, and his round still waits.
    const bobsGate = c.gate('others', bob)
    await c.settled('others', [...alices, bobsGate])
    assert.ok(bobsGate.running, "bob waits for nothing of alice's")
    assert.equal(processesOf('others'), 4, 'alice 2, bob 2')
    await Promise.all([...alices, bobsGate].map((g) => g.abort()))
    assert.equal((await c.answer('others', bobs)).result?.resultType, 'complete')
  })
})

describe('one subject through many client ids (identityEnv): one bound across identities', () => {
  const SERVERS = {
    ...server('clients', { identityEnv: true }),
    ...server('clientrounds', { identityEnv: true }),
  }
  let stack: Stack
  const c = client(() => stack)
  before(async () => {
    stack = await startStack({ servers: SERVERS, policy: policyFor(SERVERS) })
  })
  afterEach(() => c.abortAll())
  after(() => stack.close())

  it('two requests each through five client ids: no more processes than the bound', async () => {
    const tokens = await Promise.all(
      ['c1', 'c2', 'c3', 'c4', 'c5'].map((azp) => c.token('mallory', 'clients', azp)),
    )
    const gates = tokens.flatMap((t) => [c.gate('clients', t), c.gate('clients', t)])
    await c.settled('clients', gates)
    const held = processesOf('clients')
    assert.ok(
      held <= 2,
      `mallory held ${held} processes of a server whose maxSessionsPerSubject is 2`,
    )
    assert.equal(gates.filter((g) => g.running).length, 2)
    await Promise.all(gates.map((g) => g.abort()))
  })

  it('rounds parked through five client ids: each new one ends the oldest, whatever its client', async () => {
    const rounds = []
    for (const azp of ['c1', 'c2', 'c3', 'c4', 'c5']) {
      rounds.push(await c.park('clientrounds', await c.token('mallory', 'clientrounds', azp)))
      assert.ok(
        processesOf('clientrounds') <= 2,
        `mallory holds ${processesOf('clientrounds')} processes after parking through ${azp}`,
      )
    }
    const answers = []
    for (const r of rounds) answers.push(await c.answer('clientrounds', r))
    assert.deepEqual(
      answers.map((a) => a.error?.code ?? a.result?.resultType),
      [-32602, -32602, -32602, 'complete', 'complete'],
    )
  })
})

describe('one subject through many credential values (per-user credentials): one bound across them', () => {
  const SERVERS = server('creds', {
    credentials: { VAULT_TOKEN: { secret: 'vault_token', describe: 'Your vault token' } },
  })
  let stack: Stack
  const c = client(() => stack)
  before(async () => {
    stack = await startStack({ servers: SERVERS, policy: policyFor(SERVERS) })
  })
  afterEach(() => c.abortAll())
  after(() => stack.close())

  it('rounds parked before and after the secret changes: the old ones end to make room, their processes gone first', async () => {
    const alice = await c.token('alice', 'creds')
    const owner = { iss: stack.idp.issuer, sub: 'alice' }
    const rounds = []
    for (const value of ['v1', 'v1', 'v2', 'v3']) {
      await stack.gateway.secrets!.set(owner, 'vault_token', value)
      rounds.push(await c.park('creds', alice))
      assert.ok(
        processesOf('creds') <= 2,
        `alice holds ${processesOf('creds')} processes after parking with ${value}`,
      )
    }
    const answers = []
    for (const r of rounds) answers.push(await c.answer('creds', r))
    assert.deepEqual(
      answers.map((a) => a.error?.code ?? a.result?.resultType),
      [-32602, -32602, 'complete', 'complete'],
    )
  })
})

describe('gateway-wide limits count lanes: limits.maxSessionsPerSubject 3', () => {
  const SERVERS = {
    ...server('wide1', { maxSessionsPerSubject: 8 }),
    ...server('wide2', { maxSessionsPerSubject: 8 }),
  }
  let stack: Stack
  const c = client(() => stack)
  before(async () => {
    stack = await startStack({
      servers: SERVERS,
      policy: policyFor(SERVERS),
      config: { limits: { maxSessionsPerSubject: 3 } },
    })
  })
  afterEach(() => c.abortAll())
  after(() => stack.close())

  it("one subject's sessions and lanes on every server together stay within it", async () => {
    const [on1, on2] = [await c.token('alice', 'wide1'), await c.token('alice', 'wide2')]
    const session = await c.session('wide1', on1)
    const rounds = [await c.park('wide1', on1), await c.park('wide2', on2)]
    assert.equal(processesOf('wide1', 'wide2'), 3)
    // Past it: the idle session gives way, then the oldest round, on whichever server.
    rounds.push(await c.park('wide2', on2))
    assert.equal(processesOf('wide1', 'wide2'), 3)
    assert.equal(
      await c.rpc('wide1', on1, session.sid, { jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      404,
    )
    rounds.push(await c.park('wide2', on2))
    assert.equal(processesOf('wide1', 'wide2'), 3)
    const answers = []
    for (const [i, r] of rounds.entries())
      answers.push(await c.answer(i === 0 ? 'wide1' : 'wide2', r))
    assert.deepEqual(
      answers.map((a) => a.error?.code ?? a.result?.resultType),
      [-32602, 'complete', 'complete', 'complete'],
    )
  })
})

describe('gateway-wide limits count lanes: limits.maxSessions 3', () => {
  const SERVERS = server('total', { maxSessionsPerSubject: 8 })
  let stack: Stack
  const c = client(() => stack)
  before(async () => {
    stack = await startStack({
      servers: SERVERS,
      policy: policyFor(SERVERS),
      config: { limits: { maxSessions: 3 } },
    })
  })
  afterEach(() => c.abortAll())
  after(() => stack.close())

  it("every subject's sessions and lanes together; one with nothing to give up is refused, never ending another's round", async () => {
    const [alice, bob, carol] = [
      await c.token('alice', 'total'),
      await c.token('bob', 'total'),
      await c.token('carol', 'total'),
    ]
    const alices = [await c.park('total', alice), await c.park('total', alice)]
    const bobs = await c.park('total', bob)
    assert.equal(processesOf('total'), 3)
    const lane = await c.call('total', carol, 'pid', {})
    assert.equal(lane.status, 503, JSON.stringify(lane.json))
    const session = await c.session('total', carol)
    assert.equal(session.status, 503, JSON.stringify(session.json))
    assert.equal(processesOf('total'), 3)
    // Bob may give up his own round for a new one: the oldest of his, never Alice's.
    const bobs2 = await c.park('total', bob)
    assert.equal(processesOf('total'), 3)
    assert.equal((await c.answer('total', bobs)).error?.code, -32602)
    // An answered round leaves an idle process: anyone's next request may take its place.
    assert.equal((await c.answer('total', alices[0]!)).result?.resultType, 'complete')
    assert.equal((await c.call('total', carol, 'pid', {})).status, 200)
    assert.equal(processesOf('total'), 3)
    for (const r of [alices[1]!, bobs2])
      assert.equal((await c.answer('total', r)).result?.resultType, 'complete')
  })
})
