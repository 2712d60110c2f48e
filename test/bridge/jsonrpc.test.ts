// The one builder of JSON-RPC error objects and error responses (JSON-RPC 2.0 §5, §5.1).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { rpcError, rpcErrorObject, type RequestId } from '../../gateway/bridge/jsonrpc.js'

describe('rpcErrorObject: code, message, and data only when there is some', () => {
  const table: [string, [number, string, unknown?], Record<string, unknown>][] = [
    ['no data', [-32601, 'Method not found: x'], { code: -32601, message: 'Method not found: x' }],
    [
      'data undefined is no member',
      [-32602, 'Invalid params', undefined],
      { code: -32602, message: 'Invalid params' },
    ],
    ['data null is kept', [-32000, 'm', null], { code: -32000, message: 'm', data: null }],
    ['data 0 is kept', [-32000, 'm', 0], { code: -32000, message: 'm', data: 0 }],
    [
      'object data',
      [-32042, 'URL elicitation required', { elicitations: [] }],
      { code: -32042, message: 'URL elicitation required', data: { elicitations: [] } },
    ],
  ]
  for (const [name, args, want] of table) {
    test(name, () => {
      const got = rpcErrorObject(...args)
      assert.deepEqual(got, want)
      assert.equal('data' in got, 'data' in want)
    })
  }
})

describe('rpcError: a JSON-RPC error response echoing the id, or null when unknown', () => {
  const table: [string, RequestId | null, unknown, string][] = [
    ['numeric id', 7, undefined, '{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"m"}}'],
    [
      'string id',
      'a',
      undefined,
      '{"jsonrpc":"2.0","id":"a","error":{"code":-32600,"message":"m"}}',
    ],
    [
      'no id known',
      null,
      undefined,
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"m"}}',
    ],
    [
      'with data',
      1,
      { supported: ['x'] },
      '{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"m","data":{"supported":["x"]}}}',
    ],
  ]
  for (const [name, id, data, want] of table) {
    test(name, () => assert.equal(JSON.stringify(rpcError(id, -32600, 'm', data)), want))
  }
})
