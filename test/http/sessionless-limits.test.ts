// The sessionless (2026-07-28) bounds of `limits.sessionless`, set small in gateway.yaml, take
// effect: lanes per subject, waiters, wait time, idle lanes, waiting rounds and their time to
// live, listen streams and their resources. No timing is asserted: each test waits for the
// state it needs (a request running at the fixture, a waiter counted in /metrics), and a
// timeout is proved by its outcome on a request that would otherwise never end.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { request } from 'undici'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'
const SAMPLING = { sampling: {} }
const ANSWER = { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'm' }

let nextId = 1

/** A streamed response, read as it comes: its events so far, and a way to hang up. */
interface Open {
  status: number
  events: Record<string, any>[]
  /** The body has ended. */
  done: Promise<void>
  close(): void
}

/** Posts a 2026-07-28 request and reads its response as a stream of JSON-RPC messages. */
async function open(
  stack: Stack,
  token: string,
  method: string,
  params: Record<string, unknown>,
  o: { caps?: Record<string, unknown>; meta?: Record<string, unknown> } = {},
): Promise<Open> {
  const body = {
    jsonrpc: '2.0',
    id: nextId++,
    method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': V,
        'io.modelcontextprotocol/clientCapabilities': o.caps ?? {},
        ...o.meta,
      },
    },
  }
  const name = params.name ?? params.uri
  const ac = new AbortController()
  const res = await request(stack.local('fixture'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': V,
      'mcp-method': method,
      ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
    },
    body: JSON.stringify(body),
    signal: ac.signal,
  })
  const events: Record<string, any>[] = []
  const sse = String(res.headers['content-type']).startsWith('text/event-stream')
  let buffer = ''
  const done = new Promise<void>((resolve) => {
    res.body.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      if (!sse) return
      let i
      while ((i = buffer.indexOf('\n\n')) !== -1) {
        const data = buffer
          .slice(0, i)
          .split('\n')
          .find((l) => l.startsWith('data: '))
        buffer = buffer.slice(i + 2)
        if (data) events.push(JSON.parse(data.slice(6)))
      }
    })
    res.body.on('end', () => {
      if (!sse && buffer) events.push(JSON.parse(buffer))
      resolve()
    })
    res.body.on('error', () => resolve())
  })
  return { status: res.statusCode, events, done, close: () => ac.abort() }
}

/** A request's whole answer: its status and last message. */
async function call(
  stack: Stack,
  token: string,
  method: string,
  params: Record<string, unknown>,
  o: { caps?: Record<string, unknown> } = {},
) {
  const r = await open(stack, token, method, params, o)
  await r.done
  return { status: r.status, json: r.events.at(-1) as Record<string, any> }
}

/** A tools/call that runs for a minute unless its client hangs up; resolves once it runs. */
async function held(stack: Stack, token: string, name: string): Promise<Open> {
  const r = await open(
    stack,
    token,
    'tools/call',
    { name: 'slow', arguments: { ms: 60_000, every: 10 } },
    { meta: { progressToken: name } },
  )
  await waitFor(
    () => r.events.some((e) => e.method === 'notifications/progress'),
    'the held call sent its first progress',
  )
  return r
}

/** The value of a metric line of /metrics (0 when absent). */
async function metric(stack: Stack, line: RegExp): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  const m = text.match(line)
  return m ? Number(m[1]) : 0
}

describe('limits.sessionless: bounds on counts', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      config: {
        limits: {
          sessionless: {
            lanesPerSubject: 1,
            laneWaiters: 1,
            waitingPerSubject: 1,
            listensPerSubject: 1,
            listenResources: 1,
          },
        },
      },
    })
  })
  after(() => stack.close())

  it('lanesPerSubject 1 and laneWaiters 1: the second request waits, the third is refused at once', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const first = await held(stack, token, 'lanes')
    // With one lane per subject the next request waits for it (the default 4 would start a second).
    const second = open(stack, token, 'tools/call', { name: 'pid' })
    await waitFor(
      async () => (await metric(stack, /^mcp_edge_lane_waiters\{server="fixture"\} (\d+)/m)) === 1,
      'the second request waits for the lane',
    )
    // One waiter is the most: the next is refused without waiting (the default 16 would wait).
    const third = await call(stack, token, 'tools/call', { name: 'pid' })
    assert.equal(third.status, 503, JSON.stringify(third.json))
    assert.match(third.json.error.message, /1 requests in progress on fixture/)
    // The running request ends (its client hangs up): the waiter gets the lane.
    first.close()
    const served = await second
    await served.done
    assert.equal(served.status, 200)
    assert.match(served.events.at(-1)?.result?.content?.[0]?.text ?? '', /^\d+$/)
  })

  it('waitingPerSubject 1: a second round waiting for answers cancels the first', async () => {
    const token = await stack.token('bob', { server: 'fixture' })
    const rounds: { state: string; key: string; prompt: string }[] = []
    for (const prompt of ['one', 'two']) {
      const r = await call(
        stack,
        token,
        'tools/call',
        { name: 'sample', arguments: { prompt } },
        { caps: SAMPLING },
      )
      assert.equal(r.json.result?.resultType, 'input_required', JSON.stringify(r.json))
      rounds.push({
        state: r.json.result.requestState as string,
        key: Object.keys(r.json.result.inputRequests)[0]!,
        prompt,
      })
    }
    const answer = (r: (typeof rounds)[number]) =>
      call(
        stack,
        token,
        'tools/call',
        {
          name: 'sample',
          arguments: { prompt: r.prompt },
          inputResponses: { [r.key]: ANSWER },
          requestState: r.state,
        },
        { caps: SAMPLING },
      )
    const first = await answer(rounds[0]!)
    assert.equal(first.json.error?.code, -32602, 'the first round was cancelled by the second')
    const second = await answer(rounds[1]!)
    assert.equal(second.json.result?.content?.[0]?.text, 'Paris', JSON.stringify(second.json))
  })

  it('listensPerSubject 1: a second subscriptions/listen stream is refused', async () => {
    const token = await stack.token('dev', { server: 'fixture' })
    const one = await open(stack, token, 'subscriptions/listen', {
      notifications: { toolsListChanged: true },
    })
    assert.equal(one.status, 200)
    await waitFor(() => one.events.length > 0, 'the first listen stream answered')
    const two = await call(stack, token, 'subscriptions/listen', {
      notifications: { toolsListChanged: true },
    })
    assert.equal(two.status, 429)
    assert.match(two.json.error.message, /you have 1 subscription streams open on fixture/)
    one.close()
  })

  it('listenResources 1: a stream asking for two resources is refused', async () => {
    const token = await stack.token('admin', { server: 'fixture' })
    const res = await call(stack, token, 'subscriptions/listen', {
      notifications: { resourceSubscriptions: ['fixture://hello', 'fixture://other'] },
    })
    assert.equal(res.json.error?.code, -32602)
    assert.match(res.json.error.message, /at most 1 resourceSubscriptions per stream/)
  })
})

describe('limits.sessionless: bounds on time', () => {
  let stack: Stack
  before(async () => {
    stack = await startStack({
      config: {
        limits: {
          sessionless: { lanesPerSubject: 1, laneWait: 50, laneIdle: 1000, inputTtl: 1000 },
        },
      },
      policy: TEST_POLICY,
    })
  })
  after(() => stack.close())

  it('laneWait: a request waiting for a lane that does not free up is refused once the wait is over', async () => {
    const token = await stack.token('alice', { server: 'fixture' })
    const first = await held(stack, token, 'wait')
    const second = await call(stack, token, 'tools/call', { name: 'pid' })
    assert.equal(second.status, 503, JSON.stringify(second.json))
    assert.match(second.json.error.message, /requests in progress on fixture/)
    first.close()
  })

  it("laneIdle: an unused lane ends (the server's own idleTimeout is 10 min)", async () => {
    const token = await stack.token('bob', { server: 'fixture' })
    const r = await call(stack, token, 'tools/call', { name: 'pid' })
    assert.equal(r.status, 200)
    await waitFor(
      async () => (await metric(stack, /^mcp_edge_lanes (\d+)/m)) === 0,
      'the unused lane ended',
    )
  })

  it('inputTtl: a round nobody answers is cancelled, and its requestState then refused', async () => {
    const token = await stack.token('dev', { server: 'fixture' })
    const r = await call(
      stack,
      token,
      'tools/call',
      { name: 'sample', arguments: { prompt: 'late' } },
      { caps: SAMPLING },
    )
    assert.equal(r.json.result?.resultType, 'input_required', JSON.stringify(r.json))
    await waitFor(
      async () => (await metric(stack, /^mcp_edge_waiting_rounds (\d+)/m)) === 0,
      'the unanswered round was cancelled',
    )
    const key = Object.keys(r.json.result.inputRequests)[0]!
    const late = await call(
      stack,
      token,
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'late' },
        inputResponses: { [key]: ANSWER },
        requestState: r.json.result.requestState,
      },
      { caps: SAMPLING },
    )
    assert.equal(late.json.error?.code, -32602, JSON.stringify(late.json))
  })
})
