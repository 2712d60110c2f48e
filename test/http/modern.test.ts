// Sessionless 2026-07-28 clients in front of session-era stdio servers: a real IdP, the real
// gateway, the real fixture process, raw HTTP (every status, code and header asserted) and the
// SDK client pinned to 2026-07-28.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { request } from 'undici'
import {
  DEFAULT_LANES_PER_SUBJECT,
  DEFAULT_LISTENS_PER_SUBJECT,
  DEFAULT_WAITING_PER_SUBJECT,
} from '../../gateway/config/schema.js'
import { SERVERS_DIR, startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'
import { waitFor } from '../helpers/wait-for.js'

const V = '2026-07-28'
const ACCEPT = 'application/json, text/event-stream'

let stack: Stack
let alice: string
let bob: string
before(async () => {
  stack = await startStack({
    // Lanes of this server are reaped quickly: a listen stream's process must survive it.
    servers: {
      conformance: {
        command: process.execPath,
        args: [join(SERVERS_DIR, 'conformance.js')],
        idleTimeout: 300,
      },
    },
    policy: `${TEST_POLICY}  conformance:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n    resources: { "test://static-text": deny, "*": ["mcp:read"] }\n`,
  })
  alice = await stack.token('alice', { server: 'fixture' })
  bob = await stack.token('bob', { server: 'fixture' })
})
after(() => stack.close())

type Caps = Record<string, unknown>
let nextId = 100

/** A modern request body: the envelope in `_meta`, the rest of params as given. */
function body(
  method: string,
  params: Record<string, unknown> = {},
  o: { caps?: Caps; meta?: Record<string, unknown>; id?: number } = {},
) {
  const meta = {
    'io.modelcontextprotocol/protocolVersion': V,
    'io.modelcontextprotocol/clientCapabilities': o.caps ?? {},
    ...o.meta,
  }
  return { jsonrpc: '2.0', id: o.id ?? nextId++, method, params: { ...params, _meta: meta } }
}

/** The standard headers a conforming client sends for a body. */
function headersFor(b: {
  method: string
  params: Record<string, unknown>
}): Record<string, string> {
  const h: Record<string, string> = { 'mcp-protocol-version': V, 'mcp-method': b.method }
  const name = b.params.name ?? b.params.uri
  if (typeof name === 'string') h['mcp-name'] = name
  return h
}

async function post(
  b: unknown,
  headers: Record<string, string>,
  token = alice,
  server = 'fixture',
) {
  const res = await request(stack.local(server), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${token}`,
      ...headers,
    },
    body: JSON.stringify(b),
  })
  const text = await res.body.text()
  const events = text.startsWith('event:')
    ? text
        .split('\n\n')
        .filter((e) => e.includes('data: '))
        .map((e) => JSON.parse(e.split('data: ')[1]!))
    : []
  const json = events.length > 0 ? events[events.length - 1] : text ? JSON.parse(text) : undefined
  return { status: res.statusCode, headers: res.headers, text, events, json }
}

/** A conforming modern request. */
async function call(
  method: string,
  params: Record<string, unknown> = {},
  o: { caps?: Caps; meta?: Record<string, unknown>; token?: string; server?: string } = {},
) {
  const b = body(method, params, o)
  return post(b, headersFor(b), o.token, o.server)
}

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content.map((c) => c.text).join('')
}

function recorded(): Record<string, unknown>[] {
  const file = join(stack.dir, 'fixture-record.jsonl')
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
    : []
}

describe('2026-07-28 requests on the MCP endpoint', () => {
  it('server/discover answers from the process: versions, capabilities, serverInfo, no session', async () => {
    const res = await call('server/discover')
    assert.equal(res.status, 200, res.text)
    const r = res.json.result
    assert.equal(r.resultType, 'complete')
    assert.ok(r.supportedVersions.includes(V) && r.supportedVersions.includes('2025-11-25'))
    assert.equal(r.capabilities.tools.listChanged, true)
    assert.equal(r._meta['io.modelcontextprotocol/serverInfo'].name, 'fixture')
    assert.equal(res.headers['mcp-session-id'], undefined)
  })

  it('list results carry resultType and private cache hints, filtered by policy', async () => {
    const res = await call('tools/list')
    assert.equal(res.status, 200, res.text)
    const r = res.json.result
    assert.equal(r.resultType, 'complete')
    assert.equal(r.ttlMs, 0)
    assert.equal(r.cacheScope, 'private')
    const names = r.tools.map((t: { name: string }) => t.name)
    assert.ok(names.includes('pid'))
    assert.ok(!names.includes('crash'), 'a denied tool is not listed')
  })

  it('tools/call returns the complete result; a junk Mcp-Session-Id is ignored', async () => {
    const b = body('tools/call', { name: 'echo_args', arguments: { session: 1, i: 2 } })
    const res = await post(b, { ...headersFor(b), 'mcp-session-id': 'nope' })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.json.result.resultType, 'complete')
    assert.deepEqual(JSON.parse(textOf(res.json.result)), { session: 1, i: 2 })
    assert.equal(res.json.id, b.id)
  })

  it('a JSON answer is whole: status, content type and length, request id, CORS, exact bytes', async () => {
    // A prompt whose text is not ASCII: the length is in bytes.
    const b = body('prompts/get', { name: 'greet', arguments: { name: 'Zoë' } })
    const origin = 'http://localhost:6274'
    const res = await post(b, { ...headersFor(b), origin })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.headers['content-type'], 'application/json')
    assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.text))
    assert.match(res.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/)
    assert.equal(res.headers['access-control-allow-origin'], origin)
    assert.match(res.headers['access-control-expose-headers'] as string, /mcp-session-id/)
    assert.equal(res.headers.vary, 'origin')
    assert.equal(res.headers['transfer-encoding'], undefined, 'one body, not chunks')
    // The body is the JSON-RPC response as JSON.stringify writes it, nothing around it.
    assert.equal(res.text, JSON.stringify(res.json))
    assert.deepEqual(Object.keys(res.json), ['jsonrpc', 'id', 'result'])
    assert.equal(res.json.id, b.id)
    assert.equal(res.json.result.messages[0].content.text, 'Say hello to Zoë.')
  })

  it("one principal's requests reuse its process; another principal never shares it", async () => {
    const a1 = textOf((await call('tools/call', { name: 'pid' })).json.result)
    const a2 = textOf((await call('tools/call', { name: 'pid' })).json.result)
    const b1 = textOf((await call('tools/call', { name: 'pid' }, { token: bob })).json.result)
    assert.equal(a1, a2)
    assert.notEqual(a1, b1)
  })

  it('the process gets neither the envelope nor the round fields, and never the token', async () => {
    await call(
      'tools/call',
      { name: 'echo_args', arguments: { marker: 'env-strip' } },
      { meta: { 'io.modelcontextprotocol/logLevel': 'debug', progressToken: 'keep' } },
    )
    const seen = recorded().find((m) => JSON.stringify(m).includes('env-strip')) as {
      params: { _meta?: Record<string, unknown> }
    }
    assert.ok(seen)
    assert.deepEqual(seen.params._meta, { progressToken: 'keep' })
    assert.ok(!JSON.stringify(recorded()).includes(alice))
  })
})

describe("2026-07-28 validation, with the revision's codes", () => {
  const reject = async (
    b: unknown,
    headers: Record<string, string>,
    status: number,
    code: number,
  ) => {
    const res = await post(b, headers)
    assert.equal(res.status, status, res.text)
    assert.equal(res.json.error.code, code, res.text)
    assert.equal(res.json.id, (b as { id: number }).id, 'the error echoes the request id')
    return res
  }

  it('header names are case-insensitive; a Base64 Mcp-Name is decoded', async () => {
    const b = body('tools/call', { name: 'pid' })
    const res = await post(b, {
      'MCP-PROTOCOL-VERSION': V,
      'MCP-METHOD': 'tools/call',
      'Mcp-Name': `=?base64?${Buffer.from('pid').toString('base64')}?=`,
    })
    assert.equal(res.status, 200, res.text)
  })

  it('a missing Mcp-Method, a mismatched or case-changed one, a mismatched Mcp-Name: 400 -32020, audited deny naming the header', async () => {
    // Each refusal is one audit line: `deny`, the header in the rule (a proxy may route by it).
    const denied = async (
      b: unknown,
      headers: Record<string, string>,
      rule: string,
      name?: string,
    ) => {
      const mark = stack.audit().length
      await reject(b, headers, 400, -32020)
      const lines = await waitFor(() => {
        const l = stack.audit().slice(mark)
        return l.length > 0 && l
      }, 'the refusal was audited')
      assert.equal(lines.length, 1, JSON.stringify(lines))
      const { method } = b as { method: string }
      assert.deepEqual(
        [lines[0]!.method, lines[0]!.name, lines[0]!.decision, lines[0]!.rule, lines[0]!.outcome],
        [method, name, 'deny', rule, 'refused'],
      )
    }
    const b = body('tools/list')
    await denied(b, { 'mcp-protocol-version': V }, 'headers.Mcp-Method')
    await denied(b, { 'mcp-protocol-version': V, 'mcp-method': 'TOOLS/LIST' }, 'headers.Mcp-Method')
    const c = body('tools/call', { name: 'pid' })
    await denied(
      c,
      { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': 'other' },
      'headers.Mcp-Name',
      'pid',
    )
    await denied(
      c,
      { 'mcp-protocol-version': V, 'mcp-method': 'tools/call' },
      'headers.Mcp-Name',
      'pid',
    )
    await denied(
      c,
      { 'mcp-protocol-version': V, 'mcp-method': 'tools/call', 'mcp-name': '=?base64?***?=' },
      'headers.Mcp-Name',
      'pid',
    )
  })

  it("a header version other than the body's is -32020; an unsupported version is -32022 naming both", async () => {
    const b = body('server/discover')
    await reject(
      b,
      { 'mcp-protocol-version': 'v999.0.0', 'mcp-method': 'server/discover' },
      400,
      -32020,
    )
    const odd = body(
      'server/discover',
      {},
      { meta: { 'io.modelcontextprotocol/protocolVersion': 'v999.0.0' }, id: 301 },
    )
    const res = await reject(
      odd,
      { 'mcp-protocol-version': 'v999.0.0', 'mcp-method': 'server/discover' },
      400,
      -32022,
    )
    assert.equal(res.json.error.data.requested, 'v999.0.0')
    assert.ok(res.json.error.data.supported.includes(V))
  })

  it('an envelope without clientCapabilities is -32602 on 400; one without clientInfo is served', async () => {
    const b = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/list',
      params: { _meta: { 'io.modelcontextprotocol/protocolVersion': V } },
    }
    await reject(b, { 'mcp-protocol-version': V, 'mcp-method': 'tools/list' }, 400, -32602)
    assert.equal((await call('tools/list')).status, 200)
  })

  it('removed and unknown methods are 404 -32601; a GET with the modern header is 405', async () => {
    for (const method of [
      'ping',
      'initialize',
      'logging/setLevel',
      'resources/subscribe',
      'foo/bar',
    ]) {
      const b = body(method)
      await reject(b, headersFor(b), 404, -32601)
    }
    const res = await request(stack.local('fixture'), {
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${alice}`,
        'mcp-protocol-version': V,
      },
    })
    await res.body.text()
    assert.equal(res.statusCode, 405)
  })

  it('a batch holding a 2026-07-28 request is 400 -32600 (batches are session-era only)', async () => {
    const res = await post([body('tools/list'), body('tools/list')], { 'mcp-protocol-version': V })
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json.error.code, -32600)
  })

  it('errors of the gateway itself echo the request id too (a server that cannot start: 502)', async () => {
    const token = await stack.token('alice', { server: 'broken' })
    const b = body('tools/list', {}, { id: 4711 })
    const res = await post(b, headersFor(b), token, 'broken')
    assert.equal(res.status, 502, res.text)
    assert.equal(res.json.id, 4711)
  })

  it('a body that is not JSON is 415; a client that does not take JSON and SSE is 406', async () => {
    const b = body('tools/list')
    const res415 = await request(stack.local('fixture'), {
      method: 'POST',
      headers: {
        'content-type': 'text/plain',
        accept: ACCEPT,
        authorization: `Bearer ${alice}`,
        ...headersFor(b),
      },
      body: JSON.stringify(b),
    })
    assert.equal(res415.statusCode, 415, await res415.body.text())
    const res406 = await request(stack.local('fixture'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/html',
        authorization: `Bearer ${alice}`,
        ...headersFor(b),
      },
      body: JSON.stringify(b),
    })
    assert.equal(res406.statusCode, 406, await res406.body.text())
  })

  it('no token: 401 with the challenge, before any validation', async () => {
    const b = body('tools/list')
    const res = await request(stack.local('fixture'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, ...headersFor(b) },
      body: JSON.stringify(b),
    })
    await res.body.text()
    assert.equal(res.statusCode, 401)
    assert.match(String(res.headers['www-authenticate']), /resource_metadata=/)
  })
})

describe('2026-07-28 policy and audit', () => {
  it('a denied tool is refused by the body, whatever Mcp-Name claims, and the process never sees it', async () => {
    const b = body('tools/call', { name: 'crash' })
    const lying = await post(b, {
      'mcp-protocol-version': V,
      'mcp-method': 'tools/call',
      'mcp-name': 'pid',
    })
    assert.equal(lying.status, 400)
    assert.equal(lying.json.error.code, -32020)
    const res = await post(b, headersFor(b))
    assert.equal(res.status, 200)
    assert.equal(res.json.error.code, -32010)
    assert.ok(
      !recorded().some((m) => (m as { params?: { name?: string } }).params?.name === 'crash'),
    )
    const event = stack.audit().find((e) => e.name === 'crash' && e.decision === 'deny')
    assert.ok(event, 'the refusal is audited')
  })

  it('an allowed call is audited with its outcome', async () => {
    await call('tools/call', { name: 'echo_args', arguments: { marker: 'audited' } })
    const event = stack.audit().findLast((e) => e.name === 'echo_args' && e.decision === 'allow')
    assert.equal(event?.outcome, 'ok')
    assert.equal(event?.sub, 'alice')
  })
})

describe('2026-07-28 streams, logs, progress and cancellation', () => {
  it('progress and logs stream on SSE only as asked: the token, the logLevel', async () => {
    const res = await call(
      'tools/call',
      { name: 'notify', arguments: { count: 2 } },
      { meta: { progressToken: 'p1', 'io.modelcontextprotocol/logLevel': 'info' } },
    )
    assert.equal(res.headers['content-type'], 'text/event-stream')
    assert.equal(res.headers['x-accel-buffering'], 'no')
    const methods = res.events.map((e) => e.method ?? 'response')
    assert.deepEqual(methods, [
      'notifications/message',
      'notifications/progress',
      'notifications/message',
      'notifications/progress',
      'response',
    ])
    assert.ok(
      !res.events.some((e) => e.method !== undefined && e.id !== undefined),
      'no server→client request on a modern stream',
    )
    const quiet = await call('tools/call', { name: 'notify', arguments: { count: 2 } })
    assert.equal(
      quiet.headers['content-type'],
      'application/json',
      'no logLevel, no progress token: nothing to stream',
    )
    const errorsOnly = await call(
      'tools/call',
      { name: 'notify', arguments: { count: 2 } },
      { meta: { 'io.modelcontextprotocol/logLevel': 'error' } },
    )
    assert.equal(
      errorsOnly.headers['content-type'],
      'application/json',
      'info logs are below the requested level',
    )
  })

  it('a client that disconnects while waiting for a free process: its request never runs', async () => {
    const token = await stack.token('bob', { server: 'fixture' })
    // A declared client capability: each request needs a lane to itself (plain ones share).
    const caps = { roots: {} }
    // Busy until the test lets them go (their clients leave, the processes are told to cancel):
    // a fixed duration let a loaded machine free a lane before the next request came to wait.
    const holders = Array.from({ length: DEFAULT_LANES_PER_SUBJECT }, () => new AbortController())
    const busy = holders.map((holder) => {
      const hold = body('tools/call', { name: 'slow', arguments: { ms: 60_000 } }, { caps })
      return request(stack.local('fixture'), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          authorization: `Bearer ${token}`,
          ...headersFor(hold),
        },
        body: JSON.stringify(hold),
        signal: holder.signal,
      })
        .then((res) => res.body.text())
        .catch(() => undefined)
    })
    await waitFor(
      () =>
        recorded().filter((m) => JSON.stringify(m).includes('"ms":60000')).length ===
        DEFAULT_LANES_PER_SUBJECT,
      'every lane of the subject is busy',
    )
    const b = body(
      'tools/call',
      { name: 'echo_args', arguments: { session: 99, i: 424242 } },
      { caps },
    )
    const ac = new AbortController()
    const waiting = request(stack.local('fixture'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${token}`,
        ...headersFor(b),
      },
      body: JSON.stringify(b),
      signal: ac.signal,
    }).catch(() => undefined)
    await waitFor(
      async () => (await gauge(/^mcp_edge_lane_waiters\{server="fixture"\} (\d+)/m)) === 1,
      'the request waits for a lane',
    )
    ac.abort()
    await waiting
    // The gateway has seen the client leave (before it, a lane freed now would be its to take).
    await waitFor(
      async () => (await gauge(/^mcp_edge_lane_waiters\{server="fixture"\} (\d+)/m)) === 0,
      'the gateway drops the waiter whose client left',
    )
    for (const holder of holders) holder.abort()
    await Promise.all(busy)
    // A later request of the subject that needs a lane of its own has one and is answered: the
    // lanes freed went to whoever was still waiting before it.
    const later = await call(
      'tools/call',
      { name: 'echo_args', arguments: { session: 99, i: 1 } },
      { token, caps },
    )
    assert.equal(later.status, 200, later.text)
    assert.ok(
      !recorded().some((m) => JSON.stringify(m).includes('424242')),
      'the abandoned request reached the process',
    )
  })

  it('a request the process does not answer in time fails with -32001 and is cancelled there', async () => {
    const token = await stack.token('alice', { server: 'impatient' })
    const res = await call(
      'tools/call',
      { name: 'slow', arguments: { ms: 5000 } },
      { token, server: 'impatient' },
    )
    assert.equal(res.json.error?.code, -32001, res.text)
  })

  it('a client that disconnects cancels the request: the process gets notifications/cancelled', async () => {
    const b = body('tools/call', { name: 'slow', arguments: { ms: 20_000 } })
    const ac = new AbortController()
    const pending = request(stack.local('fixture'), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${alice}`,
        ...headersFor(b),
      },
      body: JSON.stringify(b),
      signal: ac.signal,
    }).catch(() => undefined)
    await waitFor(() => recorded().some((m) => JSON.stringify(m).includes('"ms":20000')))
    ac.abort()
    await pending
    await waitFor(() =>
      recorded().some((m) => (m as { method?: string }).method === 'notifications/cancelled'),
    )
    const event = await waitFor(() =>
      stack.audit().find((e) => e.name === 'slow' && e.outcome === 'cancelled'),
    )
    assert.ok(event)
  })
})

describe('2026-07-28 multi-round-trip requests for session-era servers', () => {
  const SAMPLING = { sampling: {} }
  const answer = { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'm' }

  it('a sampling request becomes input_required; the retry with the answer completes the call', async () => {
    const first = await call(
      'tools/call',
      { name: 'sample', arguments: { prompt: 'capital?' } },
      { caps: SAMPLING },
    )
    assert.equal(first.status, 200, first.text)
    const r = first.json.result
    assert.equal(r.resultType, 'input_required')
    const [key, req] = Object.entries(r.inputRequests)[0] as [
      string,
      { method: string; params: { messages: unknown[] } },
    ]
    assert.equal(req.method, 'sampling/createMessage')
    assert.equal(typeof r.requestState, 'string')
    const second = await call(
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'capital?' },
        inputResponses: { [key]: answer, extra: { ignored: true } },
        requestState: r.requestState,
      },
      { caps: SAMPLING },
    )
    assert.equal(second.json.result.resultType, 'complete', second.text)
    assert.equal(textOf(second.json.result), 'Paris')
    // The round is over: its handle continues nothing now.
    const replay = await call(
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'capital?' },
        inputResponses: { [key]: answer },
        requestState: r.requestState,
      },
      { caps: SAMPLING },
    )
    assert.equal(replay.json.error.code, -32602)
  })

  it('a retry without the answer asks again; elicitation and roots work the same way', async () => {
    const first = await call(
      'tools/call',
      { name: 'elicit', arguments: { message: 'name?' } },
      { caps: { elicitation: {} } },
    )
    const r = first.json.result
    assert.equal(r.resultType, 'input_required', first.text)
    const [key] = Object.keys(r.inputRequests)
    const again = await call(
      'tools/call',
      {
        name: 'elicit',
        arguments: { message: 'name?' },
        inputResponses: { wrong: {} },
        requestState: r.requestState,
      },
      { caps: { elicitation: {} } },
    )
    assert.equal(again.json.result.resultType, 'input_required')
    assert.deepEqual(Object.keys(again.json.result.inputRequests), [key])
    const done = await call(
      'tools/call',
      {
        name: 'elicit',
        arguments: { message: 'name?' },
        inputResponses: { [key!]: { action: 'accept', content: { answer: 'Ada' } } },
        requestState: again.json.result.requestState,
      },
      { caps: { elicitation: {} } },
    )
    assert.deepEqual(JSON.parse(textOf(done.json.result)), {
      action: 'accept',
      content: { answer: 'Ada' },
    })

    const roots = await call('tools/call', { name: 'roots' }, { caps: { roots: {} } })
    const [rk, rr] = Object.entries(roots.json.result.inputRequests)[0] as [
      string,
      { method: string },
    ]
    assert.equal(rr.method, 'roots/list')
    const listed = await call(
      'tools/call',
      {
        name: 'roots',
        inputResponses: { [rk]: { roots: [{ uri: 'file:///r', name: 'r' }] } },
        requestState: roots.json.result.requestState,
      },
      { caps: { roots: {} } },
    )
    assert.deepEqual(JSON.parse(textOf(listed.json.result)).roots, [
      { uri: 'file:///r', name: 'r' },
    ])
  })

  it("a tampered requestState, or another user's, or one for another tool is refused", async () => {
    const first = await call(
      'tools/call',
      { name: 'sample', arguments: { prompt: 'x' } },
      { caps: SAMPLING },
    )
    const { requestState, inputRequests } = first.json.result
    const [key] = Object.keys(inputRequests)
    const tampered = requestState.slice(0, -2) + (requestState.endsWith('AA') ? 'BB' : 'AA')
    for (const [state, token, name] of [
      [tampered, alice, 'sample'],
      [requestState, bob, 'sample'],
      [requestState, alice, 'elicit'],
    ] as const) {
      const res = await call(
        'tools/call',
        {
          name,
          arguments: { prompt: 'x', message: 'x' },
          inputResponses: { [key!]: answer },
          requestState: state,
        },
        { caps: SAMPLING, token },
      )
      assert.equal(res.status, 200)
      assert.equal(res.json.error?.code, -32602, res.text)
    }
    // The rightful owner can still finish it.
    const ok = await call(
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'x' },
        inputResponses: { [key!]: answer },
        requestState,
      },
      { caps: SAMPLING },
    )
    assert.equal(textOf(ok.json.result), 'Paris')
  })

  it('/metrics counts lanes and waiting rounds', async () => {
    const first = await call(
      'tools/call',
      { name: 'sample', arguments: { prompt: 'metrics' } },
      { caps: SAMPLING },
    )
    assert.equal(first.json.result.resultType, 'input_required')
    const res = await request(`${stack.url}/metrics`)
    const text = await res.body.text()
    assert.match(text, /^mcp_edge_lanes [1-9]/m)
    assert.match(text, /^mcp_edge_waiting_rounds [1-9]/m)
    assert.match(text, /^mcp_edge_listen_streams \d+/m)
  })

  it('a server request for a capability the client did not declare is -32021 naming it', async () => {
    const res = await call('tools/call', { name: 'sample', arguments: { prompt: 'x' } })
    assert.equal(res.status, 400, res.text)
    assert.equal(res.json.error.code, -32021)
    assert.deepEqual(res.json.error.data.requiredCapabilities, { sampling: {} })
  })

  it('abandoned rounds never lock a principal out: past the bound the oldest is cancelled', async () => {
    const token = await stack.token('dev', { server: 'fixture' })
    const rounds: { state: string; key: string }[] = []
    for (let i = 0; i < DEFAULT_WAITING_PER_SUBJECT + 1; i++) {
      const res = await call(
        'tools/call',
        { name: 'sample', arguments: { prompt: `abandoned ${i}` } },
        { caps: SAMPLING, token },
      )
      assert.equal(res.json.result.resultType, 'input_required', res.text)
      rounds.push({
        state: res.json.result.requestState,
        key: Object.keys(res.json.result.inputRequests)[0]!,
      })
    }
    // Rounds held the principal's processes; ordinary requests still get one at once.
    const quick = await call('tools/call', { name: 'pid' }, { token })
    assert.equal(quick.status, 200)
    const oldest = await call(
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'abandoned 0' },
        inputResponses: { [rounds[0]!.key]: answer },
        requestState: rounds[0]!.state,
      },
      { caps: SAMPLING, token },
    )
    assert.equal(oldest.json.error?.code, -32602, 'the oldest round was cancelled')
    const last = rounds.at(-1)!
    const newest = await call(
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'abandoned' },
        inputResponses: { [last.key]: answer },
        requestState: last.state,
      },
      { caps: SAMPLING, token },
    )
    assert.equal(textOf(newest.json.result), 'Paris', newest.text)
  })

  it('answers sent with the first round, before any was asked, are used when their key comes up', async () => {
    // The conformance server asks for "user_name" under that very id.
    const token = await stack.token('alice', { server: 'conformance' })
    const name = 'test_input_required_result_elicitation'
    const res = await call(
      'tools/call',
      {
        name,
        arguments: {},
        inputResponses: {
          user_name: { action: 'accept', content: { name: 'Early' } },
          unrelated: { x: 1 },
        },
      },
      { caps: { elicitation: {} }, token, server: 'conformance' },
    )
    assert.equal(res.json.result.resultType, 'complete', res.text)
    assert.match(textOf(res.json.result), /Early/)
  })

  it('a request whose server finished while it waited: the retry gets how it ended', async () => {
    const caps = { elicitation: {} }
    const gaveUp = () =>
      stack.logLines.filter(
        (l) => l.includes('"server stderr"') && l.includes('fixture: ask_briefly gave up'),
      ).length
    const before = gaveUp()
    const first = await call(
      'tools/call',
      { name: 'ask_briefly', arguments: { ms: 200 } },
      { caps },
    )
    assert.equal(first.json.result.resultType, 'input_required', first.text)
    // The server gives up on its question after 200 ms (it says so on stderr): only then is the
    // answer retried, so it cannot reach the question in time, however slow the machine.
    await waitFor(() => gaveUp() > before)
    const [key] = Object.keys(first.json.result.inputRequests)
    const retry = await call(
      'tools/call',
      {
        name: 'ask_briefly',
        arguments: { ms: 200 },
        inputResponses: { [key!]: { action: 'accept', content: {} } },
        requestState: first.json.result.requestState,
      },
      { caps },
    )
    assert.equal(retry.json.result?.resultType, 'complete', retry.text)
    assert.equal(textOf(retry.json.result), 'gave up')
  })

  it('inputResponses that are not an object are -32602', async () => {
    const first = await call(
      'tools/call',
      { name: 'sample', arguments: { prompt: 'x' } },
      { caps: SAMPLING },
    )
    const res = await call(
      'tools/call',
      {
        name: 'sample',
        arguments: { prompt: 'x' },
        inputResponses: 'garbage',
        requestState: first.json.result.requestState,
      },
      { caps: SAMPLING },
    )
    assert.equal(res.json.error.code, -32602)
  })
})

describe('2026-07-28 subscriptions/listen', () => {
  it('acknowledges first, then delivers only the asked-for list changes, stamped with the subscription id', async () => {
    const { status, events, close } = await listen(
      { toolsListChanged: true, promptsListChanged: true },
      { id: 4242 },
    )
    assert.equal(status, 200)
    await waitFor(() => events.length >= 1)
    assert.equal(events[0]!.method, 'notifications/subscriptions/acknowledged')
    assert.deepEqual(events[0]!.params.notifications, {
      toolsListChanged: true,
      promptsListChanged: true,
    })
    assert.equal(events[0]!.params._meta['io.modelcontextprotocol/subscriptionId'], 4242)
    await call('tools/call', { name: 'list_changed' })
    await waitFor(() => events.length >= 2)
    assert.equal(events[1]!.method, 'notifications/tools/list_changed')
    assert.equal(events[1]!.params._meta['io.modelcontextprotocol/subscriptionId'], 4242)
    // Another principal's changes are not this stream's: delivered to that principal's stream
    // (sent with the same notification), never to this one.
    const bobs = await listen({ toolsListChanged: true }, { token: bob })
    await waitFor(() => bobs.events.length >= 1, "bob's stream is acknowledged")
    await call('tools/call', { name: 'list_changed' }, { token: bob })
    await waitFor(() => bobs.events.length >= 2, "bob's stream heard bob's change")
    assert.equal(events.length, 2)
    bobs.close()
    close()
  })
})

describe('2026-07-28 subscriptions/listen and resources', () => {
  it('resource subscriptions are decided per URI, survive idle reaping, and deliver updates', async () => {
    const token = await stack.token('alice', { server: 'conformance' })
    const { events, close } = await listen(
      { resourceSubscriptions: ['test://watched-resource', 'test://static-text'] },
      { token, server: 'conformance', id: 77 },
    )
    try {
      await waitFor(() => events.length >= 1)
      assert.deepEqual(
        events[0]!.params.notifications,
        { resourceSubscriptions: ['test://watched-resource'] },
        'the denied URI is left out',
      )
      const refusal = stack
        .audit()
        .find((e) => e.method === 'subscriptions/listen' && e.name === 'test://static-text')
      assert.equal(refusal?.decision, 'deny')
      // Past idleTimeout: another principal's lane, used after the stream's, is reaped (a sweep
      // that found the stream's process idle for longer); that process is kept, and requests
      // still run on it.
      const lanes = () => gauge(/^mcp_edge_lanes (\d+)/m)
      const without = await lanes()
      const other = await call(
        'tools/call',
        { name: 'test_simple_text', arguments: {} },
        { token: await stack.token('bob', { server: 'conformance' }), server: 'conformance' },
      )
      assert.equal(other.status, 200, other.text)
      await waitFor(async () => (await lanes()) <= without, "bob's idle lane was reaped")
      await call(
        'tools/call',
        { name: 'test_update_watched_resource', arguments: {} },
        { token, server: 'conformance' },
      )
      await waitFor(() => events.some((e) => e.method === 'notifications/resources/updated'))
      const update = events.find((e) => e.method === 'notifications/resources/updated')!
      assert.equal(update.params.uri, 'test://watched-resource')
      assert.equal(update.params._meta['io.modelcontextprotocol/subscriptionId'], 77)
    } finally {
      close()
    }
  })
})

describe('2026-07-28 subscriptions/listen sharing a process', () => {
  it('two streams on one URI share its subscription: closing one leaves the other its updates', async () => {
    const token = await stack.token('dev', { server: 'conformance' })
    const open = async (id: number) => {
      const stream = await listen(
        { resourceSubscriptions: ['test://watched-resource'] },
        { token, server: 'conformance', id },
      )
      await waitFor(() => stream.events.length >= 1)
      return stream
    }
    const one = await open(1)
    const two = await open(2)
    const updates = (e: Record<string, any>[]) =>
      e.filter((m) => m.method === 'notifications/resources/updated').length
    const change = () =>
      call(
        'tools/call',
        { name: 'test_update_watched_resource', arguments: {} },
        { token, server: 'conformance' },
      )
    await change()
    await waitFor(() => updates(one.events) === 1 && updates(two.events) === 1)
    const streams = await gauge(/^mcp_edge_listen_streams (\d+)/m)
    one.close()
    await waitFor(
      async () => (await gauge(/^mcp_edge_listen_streams (\d+)/m)) === streams - 1,
      'the gateway saw the first stream close',
    )
    await change()
    await waitFor(() => updates(two.events) === 2)
    two.close()
  })
})

describe('2026-07-28 subscriptions/listen limits', () => {
  it(`a principal holds at most ${DEFAULT_LISTENS_PER_SUBJECT} streams per server; closing one frees its place`, async () => {
    const token = await stack.token('admin', { server: 'fixture' })
    const open = () => listen({ toolsListChanged: true }, { token })
    const streams = []
    for (let i = 0; i < DEFAULT_LISTENS_PER_SUBJECT; i++) streams.push(await open())
    assert.ok(streams.every((s) => s.status === 200))
    const refused = await open()
    assert.equal(refused.status, 429)
    // Another principal is not affected.
    const other = await listen({ toolsListChanged: true }, { token: bob })
    assert.equal(other.status, 200)
    other.close()
    const live = await gauge(/^mcp_edge_listen_streams (\d+)/m)
    streams.pop()!.close()
    // The gateway sees the disconnect a moment later.
    await waitFor(
      async () => (await gauge(/^mcp_edge_listen_streams (\d+)/m)) === live - 1,
      'the gateway saw the stream close',
    )
    const reopened = await open()
    assert.equal(reopened.status, 200)
    for (const s of [...streams, reopened]) s.close()
  })
})

describe('the SDK client pinned to 2026-07-28', () => {
  it('discovers, lists and calls through the gateway without initialize', async () => {
    const client = new Client(
      { name: 'pinned', version: '0' },
      { versionNegotiation: { mode: { pin: V } } },
    )
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('fixture')), {
        requestInit: { headers: { authorization: `Bearer ${alice}` } },
      }),
    )
    try {
      assert.equal(client.getNegotiatedProtocolVersion(), V)
      const tools = await client.listTools()
      assert.ok(tools.tools.some((t) => t.name === 'pid'))
      const result = await client.callTool({ name: 'echo_args', arguments: { session: 7, i: 1 } })
      assert.deepEqual(JSON.parse(textOf(result)), { session: 7, i: 1 })
      assert.ok(
        !recorded().some(
          (m) =>
            (m as { params?: { clientInfo?: { name?: string } } }).params?.clientInfo?.name ===
            'pinned',
        ),
        'the client never initialized a process',
      )
    } finally {
      await client.close()
    }
  })

  it('answers a sampling request through the multi-round-trip flow', async () => {
    const client = new Client(
      { name: 'pinned', version: '0' },
      { versionNegotiation: { mode: { pin: V } }, capabilities: { sampling: {} } },
    )
    client.setRequestHandler('sampling/createMessage', async () => ({
      role: 'assistant',
      model: 'm',
      content: { type: 'text', text: 'via mrtr' },
    }))
    await client.connect(
      new StreamableHTTPClientTransport(new URL(stack.local('fixture')), {
        requestInit: { headers: { authorization: `Bearer ${alice}` } },
      }),
    )
    try {
      assert.equal(
        textOf(await client.callTool({ name: 'sample', arguments: { prompt: 'q' } })),
        'via mrtr',
      )
    } finally {
      await client.close()
    }
  })
})

/** The JSON-RPC messages of an SSE body as they arrive. */
function collect(
  stream: NodeJS.ReadableStream & { on: (e: string, f: (x: any) => void) => unknown },
): Record<string, any>[] {
  const events: Record<string, any>[] = []
  let buffer = ''
  stream.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
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
  stream.on('error', () => {})
  return events
}

/** Opens a subscriptions/listen stream; its messages are collected as they arrive. */
async function listen(
  notifications: Record<string, unknown>,
  o: { token?: string; server?: string; id?: number } = {},
) {
  const b = body('subscriptions/listen', { notifications }, { id: o.id })
  const ac = new AbortController()
  const res = await request(stack.local(o.server ?? 'fixture'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      authorization: `Bearer ${o.token ?? alice}`,
      ...headersFor(b),
    },
    body: JSON.stringify(b),
    signal: ac.signal,
  })
  return { status: res.statusCode, events: collect(res.body), close: () => ac.abort() }
}

/** The value of a gauge of /metrics (0 when absent). */
async function gauge(line: RegExp): Promise<number> {
  const text = await (await request(`${stack.url}/metrics`)).body.text()
  return Number(line.exec(text)?.[1] ?? 0)
}
