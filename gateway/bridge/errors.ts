import { GatewayError } from '../errors.js'

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
  client_gone: 499,
}

/** A bridge failure; its message is safe for the client. */
export class BridgeError extends GatewayError<BridgeErrorCode> {
  constructor(code: BridgeErrorCode, message: string, cause?: unknown, retryAfter?: number) {
    super(code, message, { status: STATUS[code], expose: true, cause, retryAfter })
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
