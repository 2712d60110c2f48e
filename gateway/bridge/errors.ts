import { GatewayError } from '../errors.js'

/** Why the bridge refused or lost a request. */
export type BridgeErrorCode =
  | 'unknown_server' // 404
  | 'session_required' // 400: no Mcp-Session-Id on a non-initialize request
  | 'session_not_found' // 404: unknown, ended, or another subject's session
  | 'too_many_sessions' // 503
  | 'spawn_failed' // 502: the server process could not start

const STATUS: Record<BridgeErrorCode, number> = {
  unknown_server: 404,
  session_required: 400,
  session_not_found: 404,
  too_many_sessions: 503,
  spawn_failed: 502,
}

/** A bridge failure; its message is safe for the client. */
export class BridgeError extends GatewayError<BridgeErrorCode> {
  constructor(code: BridgeErrorCode, message: string, cause?: unknown) {
    super(code, message, { status: STATUS[code], expose: true, cause })
  }
}

/** JSON-RPC error codes the bridge answers with (-32000…-32099 is implementation-defined). */
export const RPC = {
  parseError: -32700,
  invalidRequest: -32600,
  internalError: -32603,
  serverError: -32000,
  sessionNotFound: -32001,
  processExited: -32003,
  requestTimeout: -32004,
} as const
