// The sessionless engine (bridge/sessionless.ts) on its own, without HTTP: leases, rounds, id
// rewriting and the release of every lease on every path, against real stdio processes of
// servers/fixture.js. After each case no lane is leased, no round waits, nobody waits for a
// lane; the audit line of the request says how it ended.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import type { JSONRPCMessage, JSONRPCRequest } from '@modelcontextprotocol/server'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { backendParams } from '../../gateway/bridge/modern-wire.js'
import type { ArgumentMismatch, CallOutcome } from '../../gateway/bridge/sessionless.js'
import { configSchema } from '../../gateway/config/schema.js'
import type { AuditEvent } from '../../gateway/observability/audit.js'
import { assertNoLaneHeld, outcomeText, startLaneEngine } from '../helpers/lane-engine.js'
import { SERVERS_DIR } from '../helpers/stack.js'

const FIXTURE = join(SERVERS_DIR, 'fixture.js')
/** Everything a sessionless client may declare (each request carries its own). */
const ALL_CAPS = { sampling: {}, elicitation: { form: {} }, roots: {} }

type Harness = Awaited<ReturnType<typeof harness>>
const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()))
})

/** An engine over real processes of the fixture server, wired as the gateway wires it. */
async function harness(server: Record<string, unknown> = {}, o: { filter?: boolean } = {}) {
  const config = configSchema.parse({
    servers: { fixture: { command: process.execPath, args: [FIXTURE], ...server } },
  })
  const events: AuditEvent[] = []
  /** The answers and audit lines, in the order they were given. */
  const order: string[] = []
  const e = startLaneEngine(config, {
    audit: {
      record: (e) => {
        order.push(`audit ${e.outcome}`)
        events.push(e)
      },
      flush() {},
    },
    // With `filter`: a list result keeps its first entry only (a policy that narrows it).
    filter: (_s, method, result) => {
      const r = result as { tools?: unknown[] }
      return o.filter && method === 'tools/list' && r.tools
        ? { ...r, tools: r.tools.slice(0, 1) }
        : result
    },
  })
  const { lanes, rounds } = e
  const h = {
    config,
    lanes,
    rounds,
    engine: e.engine,
    caller: e.caller,
    events,
    order,
    /** Runs one request for Alice; `notify` hears its progress and logs. */
    call(
      method: string,
      params: Record<string, unknown>,
      c: {
        signal?: AbortSignal
        notify?: (m: JSONRPCMessage) => void
        check?: (schemas: Map<string, unknown>) => ArgumentMismatch | undefined
        id?: number
      } = {},
    ): Promise<CallOutcome> {
      const message = { jsonrpc: '2.0', id: c.id ?? 1, method, params } as JSONRPCRequest
      const answer = (o: CallOutcome) => void order.push(`answer ${o.kind}`)
      return e.call('fixture', message, { answer, ...c })
    },
    /** Nothing leased, nothing waiting: what every path must leave behind. */
    assertReleased(why: string) {
      assertNoLaneHeld(lanes, why)
      assert.equal(rounds.size, 0, `${why}: no round waits for input`)
    },
    close: () => e.close(),
  }
  open.push(h)
  return h
}

const tool = (
  name: string,
  args: Record<string, unknown> = {},
  meta?: Record<string, unknown>,
) => ({
  name,
  arguments: args,
  ...(meta ? { _meta: meta } : {}),
})
const capsMeta = { 'io.modelcontextprotocol/clientCapabilities': ALL_CAPS }
const textOf = outcomeText

describe('sessionless engine: every path releases its lease', () => {
  const cases: {
    name: string
    server?: Record<string, unknown>
    method?: string
    params: Record<string, unknown>
    kind: CallOutcome['kind']
    code?: number
    status?: number
    audit: string
    /** Processes alive afterwards. */
    lanes: number
  }[] = [
    {
      name: 'a reply',
      params: tool('pid'),
      kind: 'result',
      audit: 'ok',
      lanes: 1,
    },
    {
      name: "the server's JSON-RPC error (-32002 becomes 2026-07-28's -32602)",
      method: 'resources/read',
      params: { uri: 'fixture://nothing-here' },
      kind: 'error',
      code: -32602,
      status: 200,
      audit: 'error -32602',
      lanes: 1,
    },
    {
      name: 'the server does not answer in time (requestTimeout)',
      server: { requestTimeout: 300 },
      params: tool('slow', { ms: 30_000 }),
      kind: 'error',
      code: -32001,
      status: 200,
      audit: 'error -32001',
      // The call was abandoned at the process (stop 25): its lane ends once free.
      lanes: 0,
    },
    {
      name: 'the process exits mid-request',
      params: tool('crash', { code: 3 }),
      kind: 'error',
      code: -32000,
      status: 200,
      audit: 'error -32000',
      lanes: 0,
    },
    {
      name: 'the server asks for a capability the client did not declare',
      params: tool('elicit', { message: 'name?' }),
      kind: 'error',
      code: -32021,
      status: 400,
      audit: 'error -32021',
      lanes: 1,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const h = await harness(c.server)
      const o = await h.call(c.method ?? 'tools/call', c.params)
      assert.equal(o.kind, c.kind, JSON.stringify(o))
      if (o.kind === 'error') {
        assert.equal(o.error.code, c.code)
        assert.equal(o.status, c.status)
      }
      assert.equal(h.events.length, 1)
      assert.equal(h.events[0]!.outcome, c.audit)
      assert.equal(h.events[0]!.decision, 'allow')
      // The answer is on its way before the audit line is made (not on the client's path).
      assert.deepEqual(h.order, [`answer ${c.kind}`, `audit ${c.audit}`])
      h.assertReleased(c.name)
      // A lost process is forgotten when its exit is seen: wait for that, never for a duration.
      while (h.lanes.size !== c.lanes) await new Promise((r) => setImmediate(r))
    })
  }

  it('the client goes away mid-request: cancelled at the process, lane given back', async () => {
    const h = await harness()
    const gone = new AbortController()
    const o = await h.call('tools/call', tool('gate', { name: 'never' }, { progressToken: 'p' }), {
      signal: gone.signal,
      // The progress says the request runs in the process: the client leaves then.
      notify: () => gone.abort(),
    })
    assert.deepEqual(o, { kind: 'cancelled' })
    assert.equal(h.events[0]!.outcome, 'cancelled')
    h.assertReleased('client gone')
    // The lane is free for the next request, on the same process.
    assert.match(textOf(await h.call('tools/call', tool('pid'))), /^\d+$/)
    assert.equal(h.lanes.size, 1)
  })

  it('one lane, requests waiting, its holder leaves: the one who left is skipped, the rest share one new process', async () => {
    const h = await harness({ maxSessionsPerSubject: 1 })
    const holder = new AbortController()
    let running!: () => void
    const started = new Promise<void>((resolve) => (running = resolve))
    const first = h.call('tools/call', tool('gate', { name: 'never' }, { progressToken: 'p' }), {
      signal: holder.signal,
      notify: () => running(),
    })
    await started
    const order: number[] = []
    const leaves = new AbortController()
    const waiting = [1, 2, 3].map((n) =>
      h
        .call('tools/call', tool('pid'), {
          id: n + 1,
          ...(n === 2 ? { signal: leaves.signal } : {}),
        })
        .then((o) => {
          order.push(n)
          return textOf(o)
        }),
    )
    // Counted as waiting: the state the release meets, not a duration.
    const waiters = (n: number) => h.lanes.waiters().get('fixture') === n
    while (!waiters(3)) await new Promise((r) => setImmediate(r))
    // The second leaves while it waits: it must not be handed the lane.
    leaves.abort()
    await assert.rejects(
      waiting[1]!,
      (err: unknown) => err instanceof BridgeError && err.code === 'client_gone',
    )
    assert.ok(waiters(2))
    holder.abort()
    assert.deepEqual(await first, { kind: 'cancelled' })
    const one = await waiting[0]!
    const three = await waiting[2]!
    // The holder's process may still be at the call its client left (stop 25): that lane ends,
    // and the two still waiting start and join one new process, in whichever order they look.
    assert.deepEqual([...order].sort(), [1, 3], 'both served, the one who left skipped')
    assert.match(one!, /^\d+$/)
    assert.equal(three, one, 'on the one process')
    while (h.lanes.size !== 1) await new Promise((r) => setImmediate(r))
    h.assertReleased('handed on')
  })

  it('a client gone before its lane is leased: refused, nothing runs, nothing stays leased', async () => {
    const h = await harness()
    const gone = new AbortController()
    gone.abort()
    await assert.rejects(
      h.call('tools/call', tool('pid'), { signal: gone.signal }),
      (err: unknown) => err instanceof BridgeError && err.code === 'client_gone',
    )
    assert.equal(h.events.length, 0, 'nothing ran: nothing to audit')
    h.assertReleased('gone before the lease')
  })

  /** A mismatch of `header` as param-headers.ts makes it. */
  const mismatchOf = (header: string) => ({
    header,
    message: `${header} does not match`,
    data: { mismatch: { header, body: 'x' } },
  })
  /** The one audit line of a request refused for a header: `deny`, the header its rule. */
  const assertDenied = (events: readonly AuditEvent[], rule: string) => {
    assert.equal(events.length, 1, JSON.stringify(events))
    assert.equal(events[0]!.decision, 'deny')
    assert.equal(events[0]!.rule, rule)
    assert.equal(events[0]!.outcome, 'refused')
    assert.equal(events[0]!.name, 'echo_args')
  }

  it('a header refusal after the lease (schemas read on the leased lane) gives the lane back', async () => {
    const h = await harness()
    let seen: Map<string, unknown> | undefined
    const o = await h.call('tools/call', tool('echo_args', { session: 1, i: 2 }), {
      check: (schemas) => {
        seen = schemas
        return mismatchOf('Mcp-Param-I')
      },
    })
    assert.deepEqual(o, {
      kind: 'refused',
      refusal: { code: 'header_mismatch', mismatch: mismatchOf('Mcp-Param-I') },
    })
    assert.ok(seen?.has('echo_args'), 'checked against the schemas the process listed')
    // One line: a header that disagrees with the body is denied, the header named.
    assertDenied(h.events, 'headers.Mcp-Param-I')
    h.assertReleased('header refusal after the lease')
    assert.equal(h.lanes.size, 1)
  })

  it('a header refusal with known schemas comes before any lease', async () => {
    const h = await harness()
    // The first call reads the schemas on its lane; they are known from then on.
    await h.call('tools/call', tool('pid'), { check: () => undefined })
    const gone = new AbortController()
    gone.abort()
    // Adversarial: a client already gone would make any lease throw client_gone.
    const o = await h.call('tools/call', tool('echo_args', { session: 1, i: 2 }), {
      signal: gone.signal,
      check: () => mismatchOf('Mcp-Param-Region'),
    })
    assert.equal(o.kind, 'refused')
    assertDenied(h.events.slice(1), 'headers.Mcp-Param-Region')
    h.assertReleased('early header refusal')
  })

  it('shutdown while a request runs: it ends with an error, every lane ends', async () => {
    const h = await harness({ shutdownGrace: 0 })
    let running!: () => void
    const started = new Promise<void>((r) => (running = r))
    const call = h.call('tools/call', tool('gate', { name: 'never' }, { progressToken: 'p' }), {
      notify: () => running(),
    })
    await started
    await h.close()
    const o = await call
    assert.equal(o.kind, 'error')
    assert.equal((o as { error: { code: number } }).error.code, -32000)
    h.assertReleased('shutdown')
    assert.equal(h.lanes.size, 0)
  })
})

describe('sessionless engine: input rounds', () => {
  const elicit = () => tool('elicit', { message: 'your name?' }, capsMeta)
  /** Starts a call that waits for input; its requestState and the key the answer goes to. */
  async function waiting(h: Harness) {
    const o = await h.call('tools/call', elicit())
    assert.equal(o.kind, 'input_required', JSON.stringify(o))
    const result = (o as { result: Record<string, unknown> }).result
    const key = Object.keys(result.inputRequests as object)[0]!
    assert.equal(h.rounds.size, 1)
    assert.equal(h.lanes.busy, true, 'the waiting round keeps its lane')
    assert.equal(h.events.at(-1)!.outcome, `input_required ${key}`)
    return { state: result.requestState as string, key }
  }
  const answer = { action: 'accept', content: { answer: 'Alice' } }

  const cases: {
    name: string
    retry: (w: { state: string; key: string }) => Record<string, unknown>
    kind: CallOutcome['kind']
    audit: string | undefined
    /** Then the same requestState once more. */
    again?: 'gone'
    /** Refused as malformed: its one line is `invalid`, with this rule. */
    invalid?: string
  }[] = [
    {
      name: 'answered: the process gets the answer, the result comes back',
      retry: (w) => ({ ...elicit(), requestState: w.state, inputResponses: { [w.key]: answer } }),
      kind: 'result',
      audit: 'ok',
      again: 'gone',
    },
    {
      name: 'a requestState that fails verification',
      retry: (w) => ({ ...elicit(), requestState: `${w.state}x`, inputResponses: {} }),
      kind: 'refused',
      audit: 'refused requestState (invalid)',
    },
    {
      name: 'a requestState that is not a string',
      retry: () => ({ ...elicit(), requestState: 7 }),
      kind: 'refused',
      audit: 'refused',
      invalid: 'requestState is not a string',
    },
    {
      name: 'inputResponses that are not an object: the waiting call ends',
      retry: (w) => ({ ...elicit(), requestState: w.state, inputResponses: 'yes' }),
      kind: 'refused',
      audit: 'refused',
      invalid: 'inputResponses is not an object',
      again: 'gone',
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const h = await harness()
      const w = await waiting(h)
      const before = h.events.length
      const o = await h.call('tools/call', c.retry(w))
      assert.equal(o.kind, c.kind, JSON.stringify(o))
      if (c.kind === 'result') assert.match(textOf(o), /Alice/)
      assert.equal(h.events.at(-1)!.outcome, c.audit ?? h.events[before - 1]!.outcome)
      if (c.audit === undefined) assert.equal(h.events.length, before, 'not audited')
      if (c.invalid !== undefined) {
        assert.equal(h.events.length, before + 1, 'one line')
        assert.equal(h.events.at(-1)!.decision, 'invalid')
        assert.equal(h.events.at(-1)!.rule, c.invalid)
      }
      if (c.again) {
        h.assertReleased(c.name)
        const o2 = await h.call('tools/call', c.retry(w))
        assert.deepEqual(o2, {
          kind: 'refused',
          refusal: { code: 'request_state', refusal: 'gone' },
        })
        assert.equal(h.events.at(-1)!.outcome, 'refused requestState (gone)')
      }
      // The lane is free (again): the next request runs on the same process.
      if (c.kind !== 'refused' || c.again) h.assertReleased(c.name)
    })
  }

  it('a round nobody answers ends at shutdown (or its TTL): its lane is given back', async () => {
    const h = await harness()
    const w = await waiting(h)
    h.rounds.close()
    h.assertReleased('round ended')
    const o = await h.call('tools/call', {
      ...elicit(),
      requestState: w.state,
      inputResponses: { [w.key]: answer },
    })
    assert.deepEqual(o, { kind: 'refused', refusal: { code: 'request_state', refusal: 'gone' } })
  })

  it('a retry of another principal, method or tool is refused (bound requestState)', async () => {
    const h = await harness()
    const w = await waiting(h)
    const o = await h.call('tools/call', {
      ...tool('sample', { prompt: 'x' }, capsMeta),
      requestState: w.state,
      inputResponses: { [w.key]: answer },
    })
    assert.deepEqual(o, { kind: 'refused', refusal: { code: 'request_state', refusal: 'invalid' } })
    assert.equal(h.rounds.size, 1, 'the waiting call is untouched')
  })
})

describe('sessionless engine: what the process sees, what the client gets', () => {
  it('ids are the gateway own: two requests with one client id each get their own reply', async () => {
    const h = await harness()
    // With a progress token each: requests that are not plain never share a process
    // (plain ones do: sessionless-plain.test.ts).
    const [a, b] = await Promise.all([
      h.call('tools/call', tool('echo_args', { session: 1, i: 1 }, { progressToken: 1 }), {
        id: 7,
      }),
      h.call('tools/call', tool('echo_args', { session: 1, i: 2 }, { progressToken: 1 }), {
        id: 7,
      }),
    ])
    assert.deepEqual(
      [JSON.parse(textOf(a)).i, JSON.parse(textOf(b)).i],
      [1, 2],
      'each reply went to its own request',
    )
    assert.equal(h.lanes.size, 2, 'two requests at once: two lanes')
    h.assertReleased('two at once')
  })

  it("progress carries the client's own token; logs come only at the level asked", async () => {
    const cases = [
      { meta: { progressToken: 'tok' }, progress: 2, logs: 0 },
      { meta: { 'io.modelcontextprotocol/logLevel': 'info' }, progress: 0, logs: 2 },
      { meta: { 'io.modelcontextprotocol/logLevel': 'error' }, progress: 0, logs: 0 },
      { meta: {}, progress: 0, logs: 0 },
    ]
    const h = await harness()
    for (const c of cases) {
      const heard: JSONRPCMessage[] = []
      await h.call('tools/call', tool('notify', { count: 2 }, c.meta), {
        notify: (m) => void heard.push(m),
      })
      const progress = heard.filter((m) => 'method' in m && m.method === 'notifications/progress')
      const logs = heard.filter((m) => 'method' in m && m.method === 'notifications/message')
      assert.equal(progress.length, c.progress, JSON.stringify(c.meta))
      assert.equal(logs.length, c.logs, JSON.stringify(c.meta))
      for (const p of progress)
        assert.equal(
          (p as unknown as { params: { progressToken: unknown } }).params.progressToken,
          'tok',
        )
    }
    h.assertReleased('notifications')
  })

  it('a list the policy narrows is audited as filter, kept N of M', async () => {
    const h = await harness({}, { filter: true })
    const o = await h.call('tools/list', {})
    assert.equal(o.kind, 'result')
    const result = (o as { result: Record<string, unknown> }).result
    assert.equal((result.tools as unknown[]).length, 1)
    assert.equal(h.events[0]!.decision, 'filter')
    assert.match(h.events[0]!.outcome, /^kept 1 of \d+$/)
    assert.equal(result.resultType, 'complete')
  })

  it('discover starts a process for the caller and keeps it, unleased', async () => {
    const h = await harness()
    const init = await h.engine.discover('fixture', {
      ...h.caller(),
      signal: new AbortController().signal,
      bearer: undefined,
    })
    assert.equal((init.serverInfo as { name: string }).name, 'fixture')
    assert.equal(h.lanes.size, 1)
    h.assertReleased('discover')
  })

  const params = [
    {
      name: 'envelope keys are the gateway own',
      in: {
        name: 't',
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': { name: 'c', version: '1' },
          'io.modelcontextprotocol/logLevel': 'info',
        },
      },
      out: { name: 't' },
    },
    {
      name: 'other _meta (a progress token) passes',
      in: { name: 't', _meta: { progressToken: 3, 'io.modelcontextprotocol/logLevel': 'info' } },
      out: { name: 't', _meta: { progressToken: 3 } },
    },
    {
      name: 'round fields are the gateway own',
      in: { name: 't', requestState: 's', inputResponses: {}, arguments: { a: 1 } },
      out: { name: 't', arguments: { a: 1 } },
    },
    {
      name: 'task is dropped: no tasks offered, the process runs a plain call',
      in: { name: 't', task: { ttl: 60_000 }, arguments: { a: 1 } },
      out: { name: 't', arguments: { a: 1 } },
    },
  ]
  for (const c of params) {
    it(`backend params: ${c.name}`, () => {
      assert.deepEqual(backendParams(c.in), c.out)
    })
  }
})
