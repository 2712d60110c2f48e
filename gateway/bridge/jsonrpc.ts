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
 * name; full validation happens once, in the SDK transport). The one classification every
 * transport uses: a message is a notification only when it has no `id` member at all
 * (JSON-RPC 2.0 §4.1); an `id` that is not a string or a number (null, an object, a boolean,
 * an array) makes the message invalid, never a notification.
 */
export function envelope(value: unknown): Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return INVALID
  const m = value as Record<string, unknown>
  if (m.jsonrpc !== '2.0') return INVALID
  const params =
    typeof m.params === 'object' && m.params !== null
      ? (m.params as Record<string, unknown>)
      : undefined
  const id = m.id
  const hasId = typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))
  if (!hasId && id !== undefined) return INVALID
  if (typeof m.method === 'string') {
    return hasId
      ? { kind: 'request', id: id as RequestId, method: m.method, params }
      : { kind: 'notification', method: m.method, params }
  }
  if (hasId && ('result' in m || 'error' in m)) return { kind: 'response', id: id as RequestId }
  return INVALID
}

const INVALID: Envelope = { kind: 'invalid' }

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A JSON-RPC error response. */
export function rpcError(
  id: RequestId | null,
  code: number,
  message: string,
  data?: unknown,
): JSONRPCMessage {
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
