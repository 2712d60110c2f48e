import { GatewayError } from '../errors.js'
import { type RpcErrorObject, rpcErrorObject } from './jsonrpc.js'

/** Why the bridge refused or lost a request. */
export type BridgeErrorCode =
  | 'unknown_server' // 404
  | 'session_required' // 400: no Mcp-Session-Id on a non-initialize request
  | 'session_not_found' // 404: unknown, ended, or another subject's session
  | 'too_many_sessions' // 503
  | 'subject_session_limit' // 429
  | 'spawn_failed' // 502: the server process could not start
  | 'server_unavailable' // 503: its last start failed; no process is tried before retryAfter
  | 'process_start_limit' // 429: the subject started the most processes allowed in the window
  | 'shared_crash_limit' // 429: a shared process exited too often with the subject's requests in flight
  | 'client_gone' // 499: the client disconnected before its request could run

const STATUS: Record<BridgeErrorCode, number> = {
  unknown_server: 404,
  session_required: 400,
  session_not_found: 404,
  too_many_sessions: 503,
  subject_session_limit: 429,
  spawn_failed: 502,
  server_unavailable: 503,
  process_start_limit: 429,
  shared_crash_limit: 429,
  client_gone: 499,
}

/** A bridge failure; its message is safe for the client. */
export class BridgeError extends GatewayError<BridgeErrorCode> {
  /**
   * For a refusal by a configured limit: its key (`limits.maxSessionsPerSubject`,
   * `servers.notes.maxSessions`), the rule the refused request's audit line names (refused.ts).
   */
  readonly limit: string | undefined

  constructor(
    code: BridgeErrorCode,
    message: string,
    cause?: unknown,
    retryAfter?: number,
    limit?: string,
  ) {
    super(code, message, { status: STATUS[code], expose: true, cause, retryAfter })
    this.limit = limit
  }

  /** A refusal by the configured limit `limit` (its key, as the audit line's rule). */
  static limited(
    code: BridgeErrorCode,
    message: string,
    limit: string,
    retryAfter?: number,
  ): BridgeError {
    return new BridgeError(code, message, undefined, retryAfter, limit)
  }
}

/**
 * JSON-RPC error codes the bridge answers with, aligned with the SDK's: -32000 is its
 * ConnectionClosed, -32001 its RequestTimeout.
 */
export const RPC = {
  connectionClosed: -32000,
  requestTimeout: -32001,
  /** A request refused by a limit the caller can wait out (http/respond.ts: RPC_RATE_LIMITED). */
  rateLimited: -32029,
} as const

/** JSON-RPC codes for gateway error codes that have a standard (or the gateway's own) one. */
const RPC_CODE: Record<string, number> = {
  parse_error: -32700,
  invalid_message: -32600,
  // A budget the subject can wait out, like a policy rate limit: the same code.
  process_start_limit: RPC.rateLimited,
  shared_crash_limit: RPC.rateLimited,
}

/**
 * What a client is told of an exposed gateway error (a bound, a budget, a server that cannot
 * start), the same on every transport and era: a known code's own JSON-RPC code, else -32001
 * for a 404 and -32000; its message; `data.retryAfter` when it can be waited out. The HTTP
 * answer (http/respond.ts) and an answer inside a session are both built from it.
 */
export function exposedError(err: GatewayError): RpcErrorObject {
  return rpcErrorObject(
    RPC_CODE[err.code] ?? (err.status === 404 ? -32001 : -32000),
    err.message,
    err.retryAfter === undefined ? undefined : { retryAfter: err.retryAfter },
  )
}
