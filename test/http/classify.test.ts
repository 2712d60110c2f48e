// classify.ts answers the common 2026-07-28 request shapes without the SDK's classifier. For
// every body and header pair here, wherever the fast path answers, its answer must be the
// SDK's, member for member; everywhere else classify() must give the SDK's answer itself. The
// shapes it is meant to answer are marked, so a fast path that answered nothing would fail.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CLIENT_CAPABILITIES_META_KEY as CAPS,
  CLIENT_INFO_META_KEY as INFO,
  classifyInboundRequest,
  LOG_LEVEL_META_KEY as LEVEL,
  PROTOCOL_VERSION_META_KEY as PV,
  RELATED_TASK_META_KEY as TASK,
} from '@modelcontextprotocol/server'
import { classify, modernRequest } from '../../gateway/http/classify.js'

const V = '2026-07-28'
const meta = (extra: Record<string, unknown> = {}) => ({ [PV]: V, [CAPS]: {}, ...extra })
const call = (m: unknown, top: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id: 7,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hi' }, _meta: m },
  ...top,
})

/** Bodies the fast path answers (with agreeing headers). */
const common: [string, unknown][] = [
  ['the minimal envelope', call(meta())],
  ['client info', call(meta({ [INFO]: { name: 'c', version: '1' } }))],
  [
    'client info in full',
    call(
      meta({ [INFO]: { name: 'c', version: '1', title: 't', websiteUrl: 'u', description: 'd' } }),
    ),
  ],
  ['sampling', call(meta({ [CAPS]: { sampling: {} } }))],
  ['sampling context and tools', call(meta({ [CAPS]: { sampling: { context: {}, tools: {} } } }))],
  ['elicitation {}', call(meta({ [CAPS]: { elicitation: {} } }))],
  [
    'elicitation form and url',
    call(meta({ [CAPS]: { elicitation: { form: { applyDefaults: true }, url: {} } } })),
  ],
  ['roots', call(meta({ [CAPS]: { roots: { listChanged: true } } }))],
  [
    'every plain capability',
    call(meta({ [CAPS]: { sampling: {}, elicitation: { form: {} }, roots: {} } })),
  ],
  ['a string progress token', call(meta({ progressToken: 'p' }))],
  ['an integer progress token', call(meta({ progressToken: 12 }))],
  ['a log level', call(meta({ [LEVEL]: 'warning' }))],
  ['foreign _meta members', call(meta({ traceparent: '00-x', 'x.y/z': { deep: [1, null] } }))],
  ['a string id', call(meta(), { id: 'abc' })],
  ['an empty string id', call(meta(), { id: '' })],
  ['a negative id', call(meta(), { id: -3 })],
  [
    'server/discover',
    { jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: meta() } },
  ],
  ['an unknown method', { jsonrpc: '2.0', id: 1, method: 'x/y', params: { _meta: meta() } }],
]

/** Bodies it must leave to the SDK, or answer exactly as the SDK does. */
const unusual: [string, unknown][] = [
  ['no capabilities', call({ [PV]: V })],
  ['null capabilities', call(meta({ [CAPS]: null }))],
  ['array capabilities', call(meta({ [CAPS]: [] }))],
  ['experimental capabilities', call(meta({ [CAPS]: { experimental: { a: {} } } }))],
  ['tasks capability', call(meta({ [CAPS]: { tasks: {} } }))],
  ['an unknown capability', call(meta({ [CAPS]: { unknown: 1 } }))],
  ['sampling an array', call(meta({ [CAPS]: { sampling: [] } }))],
  ['sampling context 1', call(meta({ [CAPS]: { sampling: { context: 1 } } }))],
  ['sampling context non-empty', call(meta({ [CAPS]: { sampling: { context: { a: 1 } } } }))],
  ['elicitation null', call(meta({ [CAPS]: { elicitation: null } }))],
  [
    'applyDefaults a string',
    call(meta({ [CAPS]: { elicitation: { form: { applyDefaults: 'y' } } } })),
  ],
  ['elicitation other', call(meta({ [CAPS]: { elicitation: { other: {} } } }))],
  ['roots listChanged a string', call(meta({ [CAPS]: { roots: { listChanged: 'y' } } }))],
  ['client info null', call(meta({ [INFO]: null }))],
  ['client info a string', call(meta({ [INFO]: 'c' }))],
  ['client info without version', call(meta({ [INFO]: { name: 'c' } }))],
  ['client info name a number', call(meta({ [INFO]: { name: 1, version: '1' } }))],
  ['client info icons', call(meta({ [INFO]: { name: 'c', version: '1', icons: [] } }))],
  ['client info extra', call(meta({ [INFO]: { name: 'c', version: '1', extra: 1 } }))],
  ['version 2025-11-25', call(meta({ [PV]: '2025-11-25' }))],
  ['version with a space', call(meta({ [PV]: `${V} ` }))],
  ['version a number', call(meta({ [PV]: 5 }))],
  ['a later version', call(meta({ [PV]: '2027-01-01' }))],
  ['an empty version', call(meta({ [PV]: '' }))],
  ['a fractional progress token', call(meta({ progressToken: 1.5 }))],
  ['a null progress token', call(meta({ progressToken: null }))],
  ['an object progress token', call(meta({ progressToken: {} }))],
  ['an unsafe progress token', call(meta({ progressToken: 2 ** 60 }))],
  ['an unknown log level', call(meta({ [LEVEL]: 'loud' }))],
  ['a numeric log level', call(meta({ [LEVEL]: 5 }))],
  ['a related task', call(meta({ [TASK]: { taskId: 't' } }))],
  ['a bad related task', call(meta({ [TASK]: 5 }))],
  ['a fractional id', call(meta(), { id: 1.5 })],
  ['a null id', call(meta(), { id: null })],
  ['a boolean id', call(meta(), { id: true })],
  ['an object id', call(meta(), { id: {} })],
  ['an unsafe id', call(meta(), { id: 2 ** 60 })],
  [
    'no id (a notification)',
    { jsonrpc: '2.0', method: 'notifications/x', params: { _meta: meta() } },
  ],
  ['initialize', { jsonrpc: '2.0', id: 1, method: 'initialize', params: { _meta: meta() } }],
  ['a numeric method', call(meta(), { method: 5 })],
  ['no method', { jsonrpc: '2.0', id: 1, params: { _meta: meta() } }],
  ['jsonrpc 1.0', call(meta(), { jsonrpc: '1.0' })],
  ['no jsonrpc', { id: 1, method: 'ping', params: { _meta: meta() } }],
  ['an extra member', call(meta(), { x: 1 })],
  ['a result member', call(meta(), { result: {} })],
  ['an error member', call(meta(), { error: { code: 1, message: 'm' } })],
  ['params null', { jsonrpc: '2.0', id: 1, method: 'ping', params: null }],
  ['params an array', { jsonrpc: '2.0', id: 1, method: 'ping', params: [meta()] }],
  ['_meta null', call(null)],
  ['_meta an array', call([])],
  ['no claim', call({ [CAPS]: {} })],
  ['a batch', [call(meta())]],
  ['an empty batch', []],
  ['null', null],
  ['a string', 'x'],
]

/** Bodies as the parser gives them: JSON text the round trip above cannot make. */
const raw: [string, string][] = [
  [
    'an infinite id',
    `{"jsonrpc":"2.0","id":1e999,"method":"ping","params":{"_meta":${JSON.stringify(meta())}}}`,
  ],
  [
    'a __proto__ member',
    `{"jsonrpc":"2.0","id":1,"method":"ping","__proto__":{},"params":{"_meta":${JSON.stringify(meta())}}}`,
  ],
  [
    'a __proto__ capability',
    `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"${PV}":"${V}","${CAPS}":{"__proto__":{}}}}}`,
  ],
  [
    'a __proto__ in client info',
    `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"${PV}":"${V}","${CAPS}":{},"${INFO}":{"name":"c","version":"1","__proto__":"x"}}}}`,
  ],
  [
    'a unicode-escaped method',
    `{"jsonrpc":"2.0","id":1,"method":"tools\\u002fcall","params":{"name":"echo","_meta":${JSON.stringify(meta())}}}`,
  ],
  [
    'two methods, the last one tools/call',
    `{"jsonrpc":"2.0","id":1,"method":"initialize","method":"tools/call","params":{"name":"echo","_meta":${JSON.stringify(meta())}}}`,
  ],
  [
    'two ids, the last one null',
    `{"jsonrpc":"2.0","id":1,"id":null,"method":"tools/call","params":{"name":"echo","_meta":${JSON.stringify(meta())}}}`,
  ],
  [
    'a duplicate claim',
    `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"${PV}":"x","${PV}":"${V}","${CAPS}":{}}}}`,
  ],
]

const bodies = [
  ...[...common, ...unusual].map(([n, b]) => [n, JSON.parse(JSON.stringify(b))] as const),
  ...raw.map(([n, t]) => [n, JSON.parse(t)] as const),
]
const fastNames = new Set([
  ...common.map(([n]) => n),
  // Parsed, these are plain well-formed requests (the escape decoded, the last member kept).
  'a unicode-escaped method',
  'two methods, the last one tools/call',
])
// Header values as a proxy may pass them on: repeated (joined by a comma), with optional
// whitespace around them (trimmed by Headers before the classifier reads them).
const versions = [
  undefined,
  V,
  '2025-11-25',
  '2026-07-29',
  `${V}, ${V}`,
  `${V},2025-11-25`,
  ` ${V}\t`,
]

function sdk(body: unknown, version?: string, method?: string) {
  return classifyInboundRequest({
    httpMethod: 'POST',
    protocolVersionHeader: version,
    mcpMethodHeader: method,
    body,
  })
}

function post(headers: Record<string, string | undefined>): Request {
  const h = new Headers()
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) h.set(k, v)
  return new Request('http://127.0.0.1/mcp/x', { method: 'POST', headers: h })
}

describe('classify: the fast path answers as the SDK does, or leaves it to the SDK', () => {
  for (const [name, body] of bodies) {
    const bodyMethod = (body as { method?: unknown } | null)?.method
    const same = typeof bodyMethod === 'string' ? bodyMethod : 'ping'
    const methods = [undefined, same, 'other/x', `${same}, ${same}`]
    test(name, () => {
      for (const version of versions) {
        for (const method of methods) {
          const expected = sdk(body, version, method)
          const fast = modernRequest(body, version, method)
          const where = `version ${version}, method ${method}`
          if (fast !== undefined) assert.deepStrictEqual(fast, expected, where)
          const agreeing =
            (version === undefined || version === V) &&
            method !== 'other/x' &&
            !method?.includes(',')
          if (fastNames.has(name) && agreeing) assert.ok(fast, `fast path expected: ${where}`)
          if (!fastNames.has(name) && name !== 'a duplicate claim')
            assert.equal(fast, undefined, `left to the SDK: ${where}`)
          // The whole of classify(), headers read from a request: the SDK's answer, or the
          // session-era shortcut (era-shortcut.test.ts) where no 2026-07-28 sign is present.
          const got = classify(
            post({ 'mcp-protocol-version': version, 'mcp-method': method }),
            body,
          )
          if (got.kind === 'legacy' && got.reason === 'no-claim' && expected.kind !== 'modern')
            continue
          // A body of the wrong shape is refused as the SDK refuses it, in words that name
          // the member to fix (modern-shape.ts).
          if (expected.kind === 'reject' && expected.cell === 'invalid-json-rpc-body') {
            assert.ok(got.kind === 'reject', where)
            assert.match(got.message, /^Bad Request: not a valid 2026-07-28 JSON-RPC request: /)
            assert.deepStrictEqual({ ...got, message: expected.message }, expected, where)
            continue
          }
          assert.deepStrictEqual(got, expected, where)
        }
      }
    })
  }
})
