// The shortcut mcp.ts takes past the SDK's dual-era classifier: a single message with no
// 2026-07-28 header and no envelope claim is sent to the session path without the classifier.
// For every case here, where the shortcut applies, the classifier itself must send the body
// to the session path too (legacy, or a JSON-RPC shape refusal that mcp.ts leaves to the
// session transport); where it does not apply, the classifier decides as before.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { classifyInboundRequest, PROTOCOL_VERSION_META_KEY } from '@modelcontextprotocol/server'
import { mayBeModern } from '../../gateway/http/classify.js'

const claim = { [PROTOCOL_VERSION_META_KEY]: '2026-07-28' }
const bodies: [string, unknown][] = [
  ['a request', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }],
  [
    'initialize',
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25' } },
  ],
  ['a notification', { jsonrpc: '2.0', method: 'notifications/initialized' }],
  ['a response', { jsonrpc: '2.0', id: 'a', result: {} }],
  ['an error response', { jsonrpc: '2.0', id: 'a', error: { code: 1, message: 'm' } }],
  [
    'a request with a progress token',
    { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { progressToken: 3 } } },
  ],
  ['a fractional id', { jsonrpc: '2.0', id: 1.5, method: 'ping' }],
  ['an extra member', { jsonrpc: '2.0', id: 1, method: 'ping', x: 1 }],
  ['params that are an array', { jsonrpc: '2.0', id: 1, method: 'ping', params: [1] }],
  ['a _meta that is an array', { jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: [] } }],
  ['no jsonrpc member', { id: 1, method: 'ping' }],
  ['null', null],
  ['a number', 5],
  ['a string', 'x'],
  ['an envelope claim', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { _meta: claim } }],
  [
    'a notification with a claim',
    { jsonrpc: '2.0', method: 'notifications/x', params: { _meta: claim } },
  ],
  [
    'a claim that is not a string',
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'ping',
      params: { _meta: { [PROTOCOL_VERSION_META_KEY]: 5 } },
    },
  ],
]
const headers = [undefined, '2025-11-25', ' 2025-06-18 ', '2026-07-28', '2026-07-28 ', 'garbage']

describe('era shortcut: the session path exactly where the classifier would choose it', () => {
  for (const [name, body] of bodies) {
    for (const header of headers) {
      test(`${name}, MCP-Protocol-Version ${JSON.stringify(header)}`, () => {
        const route = classifyInboundRequest({
          httpMethod: 'POST',
          protocolVersionHeader: header,
          body,
        })
        const sessionPath =
          route.kind === 'legacy' ||
          (route.kind === 'reject' &&
            route.rung === 'jsonrpc-shape' &&
            route.cell !== 'batch-with-modern-element')
        if (!mayBeModern(header, body)) assert.ok(sessionPath, JSON.stringify(route))
        const claimed = (JSON.stringify(body) ?? '').includes(PROTOCOL_VERSION_META_KEY)
        if (claimed || header?.trim() === '2026-07-28')
          assert.equal(
            mayBeModern(header, body),
            true,
            'a 2026-07-28 header or claim: the classifier decides',
          )
        else if (header === undefined || header.trim().startsWith('2025'))
          assert.equal(
            mayBeModern(header, body),
            false,
            'a session-era message: the shortcut is taken',
          )
      })
    }
  }
})
