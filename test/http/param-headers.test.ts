// Mcp-Param-* (SEP-2243) and Mcp-Name header checks, as pure functions.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeHeaderValue, headerMismatch } from '../../gateway/http/modern-headers.js'
import { paramHeaderMismatch, paramHeadersOf } from '../../gateway/http/param-headers.js'

const schema = {
  type: 'object',
  properties: {
    region: { type: 'string', 'x-mcp-header': 'Region' },
    count: { type: 'integer', 'x-mcp-header': 'Count' },
    nested: { type: 'object', properties: { flag: { type: 'boolean', 'x-mcp-header': 'Flag' } } },
    list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Ignored' } },
    obj: { type: 'object', 'x-mcp-header': 'NotPrimitive' },
  },
}
const b64 = (s: string) => `=?base64?${Buffer.from(s).toString('base64')}?=`

describe('Mcp-Param-* headers', () => {
  const decls = paramHeadersOf(schema)

  it('finds declarations on primitive properties reached through properties only', () => {
    assert.deepEqual(
      decls.map((d) => [d.name, d.path.join('.')]),
      [
        ['Region', 'region'],
        ['Count', 'count'],
        ['Flag', 'nested.flag'],
      ],
    )
  })

  it('accepts matching headers, plain or Base64, and numbers compared as numbers', () => {
    const h = new Headers({
      'mcp-param-region': 'us-west1',
      'Mcp-Param-Count': '3.0',
      'mcp-param-flag': b64('true'),
    })
    assert.equal(
      paramHeaderMismatch(decls, { region: 'us-west1', count: 3, nested: { flag: true } }, h),
      undefined,
    )
  })

  it('refuses a missing header for a value in the body, a different value, and broken Base64', () => {
    assert.match(
      paramHeaderMismatch(decls, { region: 'us-west1' }, new Headers())!.message,
      /Mcp-Param-Region header is absent/,
    )
    assert.match(
      paramHeaderMismatch(
        decls,
        { region: 'us-west1' },
        new Headers({ 'mcp-param-region': 'us-east1' }),
      )!.message,
      /says "us-east1"/,
    )
    assert.match(
      paramHeaderMismatch(
        decls,
        { region: 'x' },
        new Headers({ 'mcp-param-region': '=?base64?%%%?=' }),
      )!.message,
      /invalid Base64/,
    )
  })

  it('expects no header for an absent or null argument, and ignores one sent anyway', () => {
    assert.equal(
      paramHeaderMismatch(decls, { region: null }, new Headers({ 'mcp-param-region': 'anything' })),
      undefined,
    )
    assert.equal(paramHeaderMismatch(decls, {}, new Headers()), undefined)
  })

  it('treats a value without the Base64 wrapper as literal', () => {
    assert.equal(decodeHeaderValue('=?base64?'), '=?base64?')
    assert.equal(decodeHeaderValue(b64('ünïcödé')), 'ünïcödé')
    assert.equal(
      decodeHeaderValue('=?base64?YQ?='),
      undefined,
      'no padding is not canonical Base64',
    )
  })
})

describe('standard headers against the body', () => {
  const req = (method: string, params: Record<string, unknown> = {}) => ({
    jsonrpc: '2.0' as const,
    id: 1,
    method,
    params,
  })
  const h = (method?: string, name?: string) => ({ protocolVersion: '2026-07-28', method, name })

  it('needs the version and method headers on every request, and Mcp-Name where the body names a target', () => {
    assert.match(
      headerMismatch(
        { protocolVersion: undefined, method: 'tools/list', name: undefined },
        req('tools/list'),
      )!.message,
      /MCP-Protocol-Version/,
    )
    assert.match(
      headerMismatch(h(undefined), req('tools/list'))!.message,
      /Mcp-Method header is absent/,
    )
    assert.match(
      headerMismatch(h('tools/call'), req('tools/call', { name: 'x' }))!.message,
      /Mcp-Name header is absent/,
    )
    assert.equal(headerMismatch(h('tools/list'), req('tools/list')), undefined)
    assert.equal(
      headerMismatch(h('resources/read', 'file:///a'), req('resources/read', { uri: 'file:///a' })),
      undefined,
    )
  })

  it('compares values case-sensitively', () => {
    assert.ok(headerMismatch(h('Tools/List'), req('tools/list')))
    assert.ok(headerMismatch(h('tools/call', 'X'), req('tools/call', { name: 'x' })))
  })
})
