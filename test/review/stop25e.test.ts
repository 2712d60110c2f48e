// Stop 25e: an outsider's review of checklist26's D27 (a server→client request for a capability
// the client did not declare is refused to the process) and early27's D28 (a session holds its
// server's requests until the client's `initialized`, bounded by the session queue limits).
// Finding (D27, medium): only the capability's name was checked, never the elicitation mode a
// request asks. MCP 2025-11-25: `elicitation: {}` is form mode only, `{ url: {} }` url mode
// only, and a server must not ask a mode the client did not declare; a session relayed a
// url-mode elicitation (a link the user is sent to) to a form-only client and a form one to a
// url-only client (the sessionless path checked url mode, never form).
// Finding (D27, low): the capability table was a plain object read by any key: a server
// request named `constructor`, `toString` or `__proto__` was refused as needing the capability
// "function Object() { [native code] }" instead of going as any other unknown method; and an
// array (`sampling: []`) passed for a declared capability.
// Finding (D28, low): the held requests' bytes were UTF-16 units, not the UTF-8 bytes the same
// `sessionQueueBytes` counts on the streams: CJK text held three times the bound.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { EarlyRequests } from '../../gateway/bridge/early-requests.js'
import { envelope } from '../../gateway/bridge/jsonrpc.js'
import * as call from '../../gateway/bridge/modern-call.js'
import { openSession } from '../checklist/open-session.js'
import { postMcp } from '../helpers/post-mcp.js'
import { Events } from '../helpers/sse-events.js'
import { startStack, TEST_POLICY, type Stack } from '../helpers/stack.js'

const ACCEPT = 'application/json, text/event-stream'

// On tools/call asks the client what its arguments say ({ method, params }) and reports how it
// was answered as the call's result: `refused: <message>` or `answered`.
const ASKER = `
import { createInterface } from 'node:readline'
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
let pending
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.method === 'initialize')
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: { tools: {} }, serverInfo: { name: 'asker', version: '0' } } })
  else if (m.method === 'tools/list')
    out({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'ask', inputSchema: { type: 'object' } }] } })
  else if (m.method === 'tools/call') {
    pending = m.id
    out({ jsonrpc: '2.0', id: 'asked-1', method: m.params.arguments.method, params: m.params.arguments.params })
  } else if (m.method === undefined && pending !== undefined) {
    out({ jsonrpc: '2.0', id: pending, result: { isError: m.error !== undefined,
      content: [{ type: 'text', text: m.error ? 'refused: ' + m.error.message : 'answered' }] } })
    pending = undefined
  } else if (m.id !== undefined && m.method !== undefined) out({ jsonrpc: '2.0', id: m.id, result: {} })
})
`

let stack: Stack
let token: string
before(async () => {
  const script = join(tmpdir(), `stop25e-asker-${process.pid}.mjs`)
  writeFileSync(script, ASKER)
  stack = await startStack({
    policy: `${TEST_POLICY}
  asker:
    access: ["mcp:read"]
    tools: { "*": ["mcp:read"] }
`,
    servers: { asker: { command: process.execPath, args: [script] } },
  })
  token = await stack.token('alice', { server: 'asker' })
})
after(() => stack.close())

/**
 * On a session declaring `capabilities`, the process asks `method` with `params`: what the
 * client saw of it (`relayed`, the request) or how the process was answered (`refused`).
 */
async function ask(
  capabilities: Record<string, unknown>,
  method: string,
  params: unknown,
): Promise<{ relayed?: Record<string, any>; refused?: string }> {
  const sid = await openSession(stack, 'asker', token, capabilities)
  const headers = {
    authorization: `Bearer ${token}`,
    'mcp-session-id': sid,
    'mcp-protocol-version': '2025-11-25',
  }
  const res = await fetch(stack.local('asker'), {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json', accept: ACCEPT },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'ask', arguments: { method, params } },
    }),
  })
  assert.equal(res.status, 200)
  const events = new Events(res)
  try {
    for (;;) {
      const e = await events.next()
      assert.ok(e, 'the stream ended without the reply')
      if (e.data === '') continue
      const m = JSON.parse(e.data) as Record<string, any>
      if (m.method !== undefined) {
        // Relayed: the client declines so the call ends.
        const answer = await postMcp(
          stack.local('asker'),
          { jsonrpc: '2.0', id: m.id, error: { code: -1, message: 'declined' } },
          headers,
        )
        assert.equal(answer.status, 202)
        return { relayed: m }
      }
      if (m.id === 2) return { refused: m.result.content[0].text as string }
    }
  } finally {
    await res.body?.cancel().catch(() => {})
  }
}

const FORM = { message: 'name?', requestedSchema: { type: 'object', properties: {} } }
const URL_MODE = { mode: 'url', message: 'go', url: 'https://evil.example/x', elicitationId: 'e1' }
const SAMPLE = { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 1 }

describe('stop25e: D27 elicitation modes (session era)', () => {
  const refusedCases: [string, Record<string, unknown>, unknown][] = [
    ['url-only client, form (no mode)', { elicitation: { url: {} } }, FORM],
    ['url-only client, mode form', { elicitation: { url: {} } }, { ...FORM, mode: 'form' }],
    ['form-only client ({}), url mode', { elicitation: {} }, URL_MODE],
    ['form-only client ({ form }), url mode', { elicitation: { form: {} } }, URL_MODE],
    [
      'both declared, unknown mode URL',
      { elicitation: { form: {}, url: {} } },
      { ...URL_MODE, mode: 'URL' },
    ],
    ['both declared, mode null', { elicitation: { form: {}, url: {} } }, { ...FORM, mode: null }],
  ]
  for (const [name, caps, params] of refusedCases)
    it(`refused, never relayed: ${name}`, async () => {
      const r = await ask(caps, 'elicitation/create', params)
      assert.equal(r.relayed, undefined, `relayed: ${JSON.stringify(r.relayed)}`)
      assert.match(r.refused!, /^refused: the client did not declare the elicitation capability/)
    })

  const relayedCases: [string, Record<string, unknown>, unknown][] = [
    ['form-only ({}), form', { elicitation: {} }, FORM],
    ['form-only ({ form }), form', { elicitation: { form: {} } }, { ...FORM, mode: 'form' }],
    ['url-only, url', { elicitation: { url: {} } }, URL_MODE],
    ['both, url', { elicitation: { form: {}, url: {} } }, URL_MODE],
    ['both, form', { elicitation: { form: {}, url: {} } }, FORM],
  ]
  for (const [name, caps, params] of relayedCases)
    it(`control, relayed: ${name}`, async () => {
      const r = await ask(caps, 'elicitation/create', params)
      assert.equal(r.relayed?.method, 'elicitation/create', JSON.stringify(r))
    })
})

describe('stop25e: D27 capability lookup by own keys and object values', () => {
  for (const method of ['constructor', 'toString', '__proto__', 'hasOwnProperty'])
    it(`a server request named ${method} goes as any unknown method`, async () => {
      const r = await ask({ sampling: {} }, method, {})
      assert.doesNotMatch(r.refused ?? '', /native code|\[object Object\]/)
      assert.equal(r.relayed?.method, method, JSON.stringify(r))
    })

  it('control: an unknown method is relayed', async () => {
    const r = await ask({}, 'x/custom', {})
    assert.equal(r.relayed?.method, 'x/custom', JSON.stringify(r))
  })

  for (const value of [true, null, 1, 'yes', [], [{}]])
    it(`sampling declared as ${JSON.stringify(value)} is no declaration`, async () => {
      const r = await ask({ sampling: value }, 'sampling/createMessage', SAMPLE)
      assert.equal(r.relayed, undefined, `relayed: ${JSON.stringify(r.relayed)}`)
      assert.match(r.refused!, /^refused: the client did not declare the sampling capability$/)
    })

  it('covers/capabilityOf (shared with the sessionless path): modes, prototype keys, values', () => {
    assert.equal(call.capabilityOf('constructor'), undefined)
    assert.equal(call.capabilityOf('__proto__'), undefined)
    assert.equal(call.capabilityOf('sampling/createMessage'), 'sampling')
    assert.equal(call.covers({ elicitation: { url: {} } }, 'elicitation/create', FORM), false)
    assert.equal(call.covers({ elicitation: {} }, 'elicitation/create', URL_MODE), false)
    assert.equal(call.covers({ elicitation: {} }, 'elicitation/create', FORM), true)
    assert.equal(call.covers({ elicitation: { url: {} } }, 'elicitation/create', URL_MODE), true)
    assert.equal(call.covers({ sampling: true }, 'sampling/createMessage', SAMPLE), false)
    assert.equal(call.covers({ sampling: [] }, 'sampling/createMessage', SAMPLE), false)
    assert.equal(
      call.covers(JSON.parse('{"__proto__":{"sampling":{}}}'), 'sampling/createMessage', SAMPLE),
      false,
    )
    assert.equal(call.covers({}, 'constructor', {}), true)
    const refusal = call.refuseUndeclared(1, 'elicitation/create', URL_MODE, {
      elicitation: {},
    }) as {
      error: { message: string }
    }
    assert.match(refusal.error.message, /elicitation capability \(url mode\)/)
  })
})

describe('stop25e: D28 held bytes are UTF-8 bytes', () => {
  const request = (id: string, text: string) =>
    ({
      jsonrpc: '2.0',
      id,
      method: 'sampling/createMessage',
      params: { text },
    }) as unknown as JSONRPCMessage
  const wait = (early: EarlyRequests, m: JSONRPCMessage) => early.wait(m, envelope(m))

  for (const [name, char] of [
    ['CJK (3 bytes)', '\u4e2d'],
    ['euro (3 bytes)', '\u20ac'],
    ['emoji (4 bytes, 2 units)', '\u{1F600}'],
  ] as const)
    it(`${name}: the second request past the bound in bytes is refused`, () => {
      const early = new EarlyRequests({ events: 100, bytes: 2048 })
      // ~1200+ bytes each, ~400-800 UTF-16 units: two pass the bound in bytes only.
      const text = char.repeat(char.length === 2 ? 300 : 400)
      assert.deepEqual(wait(early, request('a', text)), { held: true })
      const r = wait(early, request('b', text))
      assert.ok(r !== undefined && 'refused' in r, 'held past sessionQueueBytes')
      assert.equal(early.release().length, 1)
    })

  it('control: ASCII of the same length in units is held', () => {
    const early = new EarlyRequests({ events: 100, bytes: 2048 })
    assert.deepEqual(wait(early, request('a', 'x'.repeat(400))), { held: true })
    assert.deepEqual(wait(early, request('b', 'x'.repeat(400))), { held: true })
  })
})
