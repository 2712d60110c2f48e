import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import { AuthError } from '../auth/errors.js'
import { bearerChallenge } from '../auth/challenge.js'
import { type RequestId, type RpcErrorObject, rpcError, rpcErrorObject } from '../bridge/jsonrpc.js'
import { exposedError, RPC } from '../bridge/errors.js'
import { GatewayError } from '../errors.js'
import type { Metrics } from '../observability/metrics.js'
import { messagePage, PAGE_HEADERS } from './page.js'
import { MODERN_RPC } from '../bridge/modern-wire.js'
import type { CallOutcome, CallRefusal } from '../bridge/sessionless.js'
import type { Refusal } from './decide.js'
import type { RateLimited } from './rate-limit.js'

/** JSON-RPC error code for a request refused by policy for good (implementation-defined range). */
export const RPC_POLICY_DENIED = -32010
/**
 * JSON-RPC error code in the body of a `403` step-up challenge: the caller may get a token with
 * the scopes named in `WWW-Authenticate` and retry, unlike a denial.
 */
export const RPC_INSUFFICIENT_SCOPE = -32011
/**
 * JSON-RPC error code for a call to a tool whose definition changed since an operator approved
 * it (or that none approved): tool pinning. No token helps; an operator's approval does.
 */
export const RPC_TOOL_UNAPPROVED = -32012

/**
 * JSON-RPC error code of a request a rate limit refused; `data.retryAfter` says in how many
 * seconds it would be counted again (HTTP 429 and `Retry-After` where no session exists yet).
 */
export const RPC_RATE_LIMITED = RPC.rateLimited

/** A JSON body (a JSON-RPC message, most often) as an HTTP response. */
export function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })
}

/**
 * A JSON-RPC error as an HTTP response, with no id for transport-level failures (MCP
 * transports, "error response that has no id"), or the request's when it is known.
 */
export function rpcErrorResponse(
  status: number,
  code: number,
  message: string,
  o: { id?: RequestId | null; data?: unknown; headers?: Record<string, string> } = {},
): Response {
  return jsonResponse(status, rpcError(o.id ?? null, code, message, o.data), o.headers)
}

/** A JSON-RPC error object (from the bridge, a process or a refusal) as an HTTP response. */
export function rpcErrorObjectResponse(
  status: number,
  id: RequestId | null,
  error: RpcErrorObject,
  headers: Record<string, string> = {},
): Response {
  return rpcErrorResponse(status, error.code, error.message, { id, data: error.data, headers })
}

/**
 * MCP transports §Sending Messages: a POST carries JSON and its client takes both JSON and
 * SSE answers; otherwise `406` or `415` (the SDK transport's own checks, run where the gateway
 * answers before it). `id`: the request's, when it is known.
 */
export function negotiationRefusal(
  req: Request,
  id: string | number | null = null,
): Response | undefined {
  const accept = req.headers.get('accept') ?? ''
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
    return rpcErrorResponse(
      406,
      -32000,
      'Not Acceptable: Client must accept both application/json and text/event-stream',
      { id },
    )
  }
  if (!/^application\/json\s*(;|$)/i.test(req.headers.get('content-type') ?? '')) {
    return rpcErrorResponse(
      415,
      -32000,
      'Unsupported Media Type: Content-Type must be application/json',
      { id },
    )
  }
  return undefined
}

/**
 * Who a route answers, so that a refusal made before the route runs speaks its protocol: an
 * MCP client (JSON-RPC), an OAuth client of the broker's JSON endpoints (RFC 6749 error
 * object), a person in a browser (a page), or a program on the account API (its `error`,
 * `message` object).
 */
export type Audience = 'mcp' | 'oauth' | 'browser' | 'account-api'

/** What a client or person is told while the audit log cannot be written. */
export const AUDIT_UNAVAILABLE = 'audit log unavailable; try again later'

/**
 * `log.auditOnFailure: refuse` while the audit log cannot be written: 503 with `Retry-After`,
 * in the words of whoever asked. OAuth: RFC 6749 `temporarily_unavailable` (§4.1.2.1, §5.2),
 * as the broker answers a store outage; a person: the broker's "Sign-in unavailable" page;
 * MCP: a JSON-RPC error with no id (transport-level).
 */
export function auditUnavailableResponse(audience: Audience, retryAfterS: number): Response {
  const retry = { 'retry-after': String(retryAfterS) }
  switch (audience) {
    case 'oauth':
      return jsonResponse(
        503,
        { error: 'temporarily_unavailable', error_description: AUDIT_UNAVAILABLE },
        { 'cache-control': 'no-store', ...retry },
      )
    case 'account-api':
      return jsonResponse(
        503,
        { error: 'audit_unavailable', message: AUDIT_UNAVAILABLE },
        { 'cache-control': 'no-store', ...retry },
      )
    case 'browser':
      return new Response(messagePage('Sign-in unavailable', AUDIT_UNAVAILABLE), {
        status: 503,
        headers: { ...PAGE_HEADERS, ...retry },
      })
    case 'mcp':
      return rpcErrorResponse(503, -32000, 'audit log unavailable', { headers: retry })
  }
}

/**
 * RFC 9110 §10.2.3 `Retry-After` of a refusal: the figure of the limit or window that refused,
 * or no header where none knows when a retry would succeed (a session cap frees when some
 * session ends; a made-up figure would have clients retry in step, or wait for nothing).
 */
export function retryAfterHeader(seconds: number | undefined): Record<string, string> {
  return seconds === undefined ? {} : { 'retry-after': String(seconds) }
}

/** What a client is told while the IdP cannot be reached (503, with the key source's window). */
export const IDP_UNAVAILABLE = 'the authorization server is unreachable; retry later'

/**
 * The one place an error becomes a response. Exposed errors keep their message; anything
 * else is a 500 with a fixed text, its detail going to the log only.
 */
export function errorResponse(
  err: unknown,
  o: {
    resourceMetadata: string
    scope?: string[]
    log: Logger
    metrics?: Metrics
    id?: string | number | null
  },
): Response {
  const id = o.id ?? null
  if (err instanceof AuthError) {
    o.metrics?.authFailures.inc({ code: err.code })
    o.log.info(
      { auth: err.code, reason: err.message, cause: causeOf(err) },
      'authentication failed',
    )
    if (err.code === 'idp_unavailable')
      return rpcErrorResponse(503, -32000, IDP_UNAVAILABLE, {
        id,
        headers: retryAfterHeader(err.retryAfter),
      })
    // RFC 6750 §3.1: no error code when the request carried no credentials.
    const error =
      err.code === 'missing_token'
        ? undefined
        : err.code === 'invalid_request'
          ? 'invalid_request'
          : 'invalid_token'
    // MCP authorization: the challenge SHOULD name the scopes basic use needs.
    const challenge = bearerChallenge({
      resourceMetadata: o.resourceMetadata,
      error,
      description: err.message,
      scope: o.scope,
    })
    // "Unauthorized" in the text: some clients (MCP Inspector 0.17) start their OAuth flow
    // only when the error they surface says so.
    const reason = err.code === 'missing_token' ? 'authentication required' : err.message
    const message = err.status === 401 ? `Unauthorized: ${reason}` : reason
    return rpcErrorResponse(err.status, -32001, message, {
      id,
      headers: { 'www-authenticate': challenge },
    })
  }
  if (err instanceof GatewayError && err.expose) {
    o.log.info({ code: err.code, reason: err.message }, 'request refused')
    // When to come back, for the limits and windows a client can wait out; nothing made up.
    const headers = retryAfterHeader(err.retryAfter)
    // The rest of an oversized or stalled body is never read: the connection cannot be reused.
    if (err.status === 413 || err.status === 408) headers.connection = 'close'
    return rpcErrorObjectResponse(err.status, id, exposedError(err), headers)
  }
  o.log.error({ err }, 'unexpected error')
  return rpcErrorResponse(500, -32603, 'internal error', { id })
}

/**
 * A refusal as a response. A missing scope is a `403` step-up challenge (MCP 2025-11-25
 * §Runtime Insufficient Scope Errors) with its own code, so a client can tell it from a denial;
 * an outright denial is a JSON-RPC error on `200` when the request has an id to answer, naming
 * no rule or file; a malformed message is `-32600` (HTTP 400) or `-32602` (on 200, with its id).
 */
export function decisionResponse(
  d: Refusal,
  o: { resourceMetadata: string; id: string | number | null },
): Response {
  if (d.effect === 'challenge') {
    const description = `this operation needs scope ${d.missing.join(' ')}`
    const challenge = bearerChallenge({
      resourceMetadata: o.resourceMetadata,
      error: 'insufficient_scope',
      scope: [...d.required],
      description,
    })
    return rpcErrorResponse(403, RPC_INSUFFICIENT_SCOPE, `Insufficient scope: ${description}`, {
      id: o.id,
      headers: { 'www-authenticate': challenge },
    })
  }
  if (d.effect === 'limited') return limitedResponse(d, o.id)
  const status =
    d.effect === 'invalid' && d.code === -32600
      ? 400
      : o.id === null
        ? d.effect === 'invalid'
          ? 400
          : 403
        : 200
  return rpcErrorObjectResponse(status, o.id, refusalError(d))
}

/** The JSON-RPC error object of a refusal that is not a challenge (also sent on event streams). */
export function refusalError(d: Exclude<Refusal, { effect: 'challenge' }>): RpcErrorObject {
  if (d.effect === 'limited')
    return rpcErrorObject(RPC_RATE_LIMITED, limitedText(d), {
      retryAfter: d.retryAfter,
      rule: d.rule.id,
    })
  if (d.effect === 'invalid') return rpcErrorObject(d.code, d.reason)
  if (d.effect === 'unapproved') {
    const { kind, tool } = d.pin
    const what =
      kind === 'changed'
        ? `the definition of tool ${JSON.stringify(tool)} changed since it was approved`
        : `tool ${JSON.stringify(tool)} has not been approved`
    return rpcErrorObject(
      RPC_TOOL_UNAPPROVED,
      `${what}; an operator must approve it before it can be called`,
      { reason: kind === 'changed' ? 'tool_changed' : 'tool_unapproved', tool },
    )
  }
  return rpcErrorObject(RPC_POLICY_DENIED, 'denied by policy')
}

/** A refusal that is not a challenge as the answer to `id` on an event stream. */
export function refusalReply(
  d: Exclude<Refusal, { effect: 'challenge' }>,
  id: RequestId,
): JSONRPCMessage {
  if (d.effect === 'limited' && d.asToolResult)
    return { jsonrpc: '2.0', id, result: limitedToolResult(d) } as JSONRPCMessage
  const e = refusalError(d)
  return rpcError(id, e.code, e.message, e.data)
}

/**
 * A rate-limited request: before a session exists (its `initialize`), or when the answer cannot
 * name one request (a batch), HTTP 429; inside a session a JSON-RPC error on a 200 (or, for a
 * rule with `refuseAs: toolResult`, a tool error result the model reads), each with
 * `Retry-After`.
 */
function limitedResponse(d: RateLimited, id: RequestId | null): Response {
  const headers = { 'retry-after': String(d.retryAfter) }
  if (id !== null && !d.opensSession && d.asToolResult)
    return jsonResponse(200, { jsonrpc: '2.0', id, result: limitedToolResult(d) }, headers)
  const status = id === null || d.opensSession ? 429 : 200
  return rpcErrorObjectResponse(status, id, refusalError(d), headers)
}

/** What a rate-limited caller reads: which limit, and when to try again. */
function limitedText(d: RateLimited): string {
  return d.why === 'limit'
    ? `Rate limit reached (${d.rule.id}: ${d.rule.limit} per ${d.rule.intervalSec} s); retry in ${d.retryAfter} s`
    : `Rate limits cannot be counted right now; retry in ${d.retryAfter} s`
}

function limitedToolResult(d: RateLimited): Record<string, unknown> {
  return { content: [{ type: 'text', text: limitedText(d) }], isError: true }
}

function causeOf(err: Error): string | undefined {
  const cause = err.cause
  return cause instanceof Error ? `${cause.name}: ${cause.message}`.slice(0, 300) : undefined
}

/**
 * How a sessionless (2026-07-28) request ended, as the HTTP status and JSON-RPC body that
 * answer it (the body also ends an event stream). The one switch over the engine's outcomes.
 */
export function callOutcomeBody(
  o: CallOutcome,
  id: RequestId,
): { status: number; body: JSONRPCMessage } {
  switch (o.kind) {
    case 'result':
    case 'input_required':
      return { status: 200, body: { jsonrpc: '2.0', id, result: o.result } as JSONRPCMessage }
    case 'error':
      return { status: o.status, body: rpcError(id, o.error.code, o.error.message, o.error.data) }
    case 'cancelled':
      // Nobody reads it: the status says why the request ended, in access logs.
      return { status: 499, body: rpcError(id, -32000, 'the client disconnected') }
    case 'refused':
      return callRefusalBody(o.refusal, id)
  }
}

/** The gateway's refusal of a sessionless request: each code with its status and JSON-RPC code. */
function callRefusalBody(r: CallRefusal, id: RequestId): { status: number; body: JSONRPCMessage } {
  switch (r.code) {
    case 'request_state_type':
      return {
        status: 200,
        body: rpcError(id, MODERN_RPC.invalidParams, 'requestState must be a string'),
      }
    case 'request_state':
      return {
        status: 200,
        body: rpcError(
          id,
          MODERN_RPC.invalidParams,
          r.refusal === 'invalid'
            ? 'requestState failed verification'
            : 'requestState names no request waiting for input (it expired, was already answered, or its server process ended); send the request again without it',
        ),
      }
    case 'input_responses':
      return {
        status: 200,
        body: rpcError(
          id,
          MODERN_RPC.invalidParams,
          'inputResponses must be an object keyed by the inputRequests keys',
        ),
      }
    case 'header_mismatch':
      return {
        status: 400,
        body: rpcError(id, MODERN_RPC.headerMismatch, r.mismatch.message, r.mismatch.data),
      }
    case 'credential':
      return { status: 200, body: rpcError(id, r.error.code, r.error.message, r.error.data) }
  }
}
