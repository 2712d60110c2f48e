import type { JSONRPCMessage } from '@modelcontextprotocol/server'

/** A JSON-RPC id. */
export type RequestId = string | number

/** What one JSON-RPC message is, read from its envelope once. */
export type Envelope =
  | { kind: 'request'; id: RequestId; method: string; params: Record<string, unknown> | undefined }
  | { kind: 'notification'; method: string; params: Record<string, unknown> | undefined }
  | { kind: 'response'; id: RequestId }
  | { kind: 'invalid' }

/**
 * Classifies a parsed JSON value by its envelope only (the hot path decides on method and
 * name; full validation happens once, in the SDK transport).
 */
export function envelope(value: unknown): Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'invalid' }
  const m = value as Record<string, unknown>
  if (m.jsonrpc !== '2.0') return { kind: 'invalid' }
  const params = typeof m.params === 'object' && m.params !== null ? (m.params as Record<string, unknown>) : undefined
  const hasId = typeof m.id === 'string' || typeof m.id === 'number'
  if (typeof m.method === 'string') {
    return hasId
      ? { kind: 'request', id: m.id as RequestId, method: m.method, params }
      : { kind: 'notification', method: m.method, params }
  }
  if (hasId && ('result' in m || 'error' in m)) return { kind: 'response', id: m.id as RequestId }
  return { kind: 'invalid' }
}

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A JSON-RPC error response. */
export function rpcError(id: RequestId | null, code: number, message: string, data?: unknown): JSONRPCMessage {
  const error: Record<string, unknown> = { code, message }
  if (data !== undefined) error.data = data
  return { jsonrpc: '2.0', id, error } as unknown as JSONRPCMessage
}

/** The `_meta.progressToken` of a request's params, if any. */
export function progressToken(params: Record<string, unknown> | undefined): RequestId | undefined {
  const meta = params?._meta
  if (typeof meta !== 'object' || meta === null) return undefined
  const token = (meta as Record<string, unknown>).progressToken
  return typeof token === 'string' || typeof token === 'number' ? token : undefined
}
