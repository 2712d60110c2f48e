// The one place errors and refusals become HTTP responses: status, headers, JSON-RPC body.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import pino from 'pino'
import { AuthError } from '../../gateway/auth/errors.js'
import { BridgeError } from '../../gateway/bridge/errors.js'
import { GatewayError } from '../../gateway/errors.js'
import type { Refusal } from '../../gateway/http/decide.js'
import {
  decisionResponse,
  errorResponse,
  jsonResponse,
  negotiationRefusal,
  RPC_INSUFFICIENT_SCOPE,
  RPC_POLICY_DENIED,
  refusalReply,
  rpcErrorObjectResponse,
  rpcErrorResponse,
} from '../../gateway/http/respond.js'

const log = pino({ level: 'silent' })
const resourceMetadata = 'https://gw.example/.well-known/oauth-protected-resource/mcp/files'

interface Want {
  status: number
  body: unknown
  headers?: Record<string, string | null>
}

async function check(res: Response, want: Want): Promise<void> {
  assert.equal(res.status, want.status)
  assert.equal(res.headers.get('content-type'), 'application/json')
  assert.deepEqual(await res.json(), want.body)
  for (const [name, value] of Object.entries(want.headers ?? {}))
    assert.equal(res.headers.get(name), value, name)
}

const err = (code: number, message: string, id: string | number | null = null, data?: unknown) => ({
  jsonrpc: '2.0',
  id,
  error: data === undefined ? { code, message } : { code, message, data },
})

describe('rpcErrorResponse and rpcErrorObjectResponse', () => {
  const table: [string, () => Response, Want][] = [
    [
      'transport-level: no id',
      () => rpcErrorResponse(404, -32601, 'not found'),
      { status: 404, body: err(-32601, 'not found') },
    ],
    [
      'id, data and headers',
      () =>
        rpcErrorResponse(400, -32001, 'bad', {
          id: 3,
          data: { d: 1 },
          headers: { allow: 'POST' },
        }),
      { status: 400, body: err(-32001, 'bad', 3, { d: 1 }), headers: { allow: 'POST' } },
    ],
    [
      'an error object, data kept',
      () => rpcErrorObjectResponse(200, 'x', { code: -32602, message: 'm', data: [1] }),
      { status: 200, body: err(-32602, 'm', 'x', [1]) },
    ],
    [
      'a JSON body',
      () => jsonResponse(200, { jsonrpc: '2.0', id: 1, result: {} }, { 'retry-after': '1' }),
      { status: 200, body: { jsonrpc: '2.0', id: 1, result: {} }, headers: { 'retry-after': '1' } },
    ],
  ]
  for (const [name, make, want] of table) test(name, () => check(make(), want))
})

describe('errorResponse: one status switch, telling the client less than the log', () => {
  const o = { resourceMetadata, log }
  const table: [string, unknown, Want][] = [
    [
      'no token: 401, challenge without error=',
      new AuthError('missing_token', 'no bearer token'),
      {
        status: 401,
        body: err(-32001, 'Unauthorized: authentication required'),
        headers: { 'www-authenticate': `Bearer resource_metadata="${resourceMetadata}"` },
      },
    ],
    [
      'IdP down, no window known (a jose failure): 503 without a made-up retry-after',
      new AuthError('idp_unavailable', 'jwks fetch failed'),
      {
        status: 503,
        body: err(-32000, 'the authorization server is unreachable; retry later'),
        headers: { 'retry-after': null, 'www-authenticate': null },
      },
    ],
    [
      'IdP down, its retry window known: 503 with what is left of it',
      new AuthError('idp_unavailable', 'jwks fetch failed', undefined, 17),
      {
        status: 503,
        body: err(-32000, 'the authorization server is unreachable; retry later'),
        headers: { 'retry-after': '17', 'www-authenticate': null },
      },
    ],
    [
      'a 503 that names no window (the session cap, a shutdown): no retry-after, not 5 s',
      new BridgeError('too_many_sessions', 'the gateway is at its session limit; retry later'),
      {
        status: 503,
        body: err(-32000, 'the gateway is at its session limit; retry later'),
        headers: { 'retry-after': null },
      },
    ],
    [
      'a 429 that names no window (a per-subject cap): no retry-after',
      new BridgeError('subject_session_limit', 'you have 2 sessions in use'),
      {
        status: 429,
        body: err(-32000, 'you have 2 sessions in use'),
        headers: { 'retry-after': null },
      },
    ],
    [
      'a plain GatewayError 503 or 429 without retryAfter: no retry-after',
      new GatewayError('busy', 'busy', { status: 503, expose: true }),
      { status: 503, body: err(-32000, 'busy'), headers: { 'retry-after': null } },
    ],
    [
      'a plain 429 without retryAfter: no retry-after',
      new GatewayError('slow', 'slow', { status: 429, expose: true }),
      { status: 429, body: err(-32000, 'slow'), headers: { 'retry-after': null } },
    ],
    [
      "a server's start window: its own seconds",
      new BridgeError(
        'server_unavailable',
        'server x could not be started; retrying in 7 s',
        undefined,
        7,
      ),
      {
        status: 503,
        body: err(-32000, 'server x could not be started; retrying in 7 s', null, {
          retryAfter: 7,
        }),
        headers: { 'retry-after': '7' },
      },
    ],
    [
      'exposed 413: connection closed',
      new GatewayError('body_too_large', 'too big', { status: 413, expose: true }),
      { status: 413, body: err(-32000, 'too big'), headers: { connection: 'close' } },
    ],
    [
      'exposed parse error keeps its JSON-RPC code',
      new GatewayError('parse_error', 'Parse error', { status: 400, expose: true }),
      { status: 400, body: err(-32700, 'Parse error') },
    ],
    [
      'exposed 404 is -32001',
      new GatewayError('session_not_found', 'session not found', { status: 404, expose: true }),
      { status: 404, body: err(-32001, 'session not found') },
    ],
    [
      'anything else: a fixed 500',
      new Error('secret detail'),
      { status: 500, body: err(-32603, 'internal error') },
    ],
  ]
  for (const [name, e, want] of table) test(name, () => check(errorResponse(e, o), want))

  test('the request id is echoed when known', () =>
    check(errorResponse(new Error('x'), { ...o, id: 9 }), {
      status: 500,
      body: err(-32603, 'internal error', 9),
    }))
})

describe('decisionResponse: challenge, denial, malformed', () => {
  const deny: Refusal = { effect: 'deny', reason: 'rule 3', source: undefined }
  const challenge: Refusal = {
    effect: 'challenge',
    reason: 'missing',
    source: undefined,
    required: ['mcp:read', 'mcp:write'],
    missing: ['mcp:write'],
  }
  const invalidParams: Refusal = {
    effect: 'invalid',
    code: -32602,
    reason: 'Invalid params: x',
    source: undefined,
  }
  const invalidRequest: Refusal = { ...invalidParams, code: -32600, reason: 'Invalid Request' }
  const table: [string, Refusal, string | number | null, Want][] = [
    [
      'missing scope: 403 step-up',
      challenge,
      1,
      {
        status: 403,
        body: err(
          RPC_INSUFFICIENT_SCOPE,
          'Insufficient scope: this operation needs scope mcp:write',
          1,
        ),
        headers: {
          'www-authenticate': `Bearer error="insufficient_scope", error_description="this operation needs scope mcp:write", scope="mcp:read mcp:write", resource_metadata="${resourceMetadata}"`,
        },
      },
    ],
    [
      'denied with an id: 200',
      deny,
      1,
      { status: 200, body: err(RPC_POLICY_DENIED, 'denied by policy', 1) },
    ],
    [
      'denied, no id: 403',
      deny,
      null,
      { status: 403, body: err(RPC_POLICY_DENIED, 'denied by policy') },
    ],
    [
      'invalid params with an id: 200',
      invalidParams,
      'a',
      { status: 200, body: err(-32602, 'Invalid params: x', 'a') },
    ],
    [
      'invalid params, no id: 400',
      invalidParams,
      null,
      { status: 400, body: err(-32602, 'Invalid params: x') },
    ],
    [
      'invalid request: 400 even with an id',
      invalidRequest,
      2,
      { status: 400, body: err(-32600, 'Invalid Request', 2) },
    ],
  ]
  for (const [name, d, id, want] of table)
    test(name, () => check(decisionResponse(d, { resourceMetadata, id }), want))

  test('refusalReply: the same error as a message on an event stream', () => {
    assert.deepEqual(
      refusalReply(deny as Exclude<Refusal, { effect: 'challenge' }>, 4),
      err(RPC_POLICY_DENIED, 'denied by policy', 4),
    )
  })
})

describe('negotiationRefusal: MCP transports §Sending Messages', () => {
  const req = (accept: string, type: string) =>
    new Request('http://x/mcp', { method: 'POST', headers: { accept, 'content-type': type } })
  const both = 'application/json, text/event-stream'
  const table: [string, Request, Want | undefined][] = [
    ['both accepted, JSON sent', req(both, 'application/json; charset=utf-8'), undefined],
    [
      'no SSE accepted: 406',
      req('application/json', 'application/json'),
      {
        status: 406,
        body: err(
          -32000,
          'Not Acceptable: Client must accept both application/json and text/event-stream',
          5,
        ),
      },
    ],
    [
      'not JSON: 415',
      req(both, 'text/plain'),
      {
        status: 415,
        body: err(-32000, 'Unsupported Media Type: Content-Type must be application/json', 5),
      },
    ],
  ]
  for (const [name, r, want] of table) {
    test(name, async () => {
      const res = negotiationRefusal(r, 5)
      if (want === undefined) return assert.equal(res, undefined)
      assert.ok(res)
      await check(res, want)
    })
  }
})
