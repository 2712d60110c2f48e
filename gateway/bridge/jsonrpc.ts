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

/** A JSON-RPC error object (JSON-RPC 2.0 §5.1). */
export interface RpcErrorObject {
  code: number
  message: string
  data?: unknown
}

/**
 * The one builder of JSON-RPC error objects: `data` is a member only when there is some
 * (JSON-RPC 2.0 §5.1: it "may be omitted").
 */
export function rpcErrorObject(code: number, message: string, data?: unknown): RpcErrorObject {
  return data === undefined ? { code, message } : { code, message, data }
}

/**
 * The one builder of JSON-RPC error responses; `id` is null when the request's id is not
 * known (JSON-RPC 2.0 §5: "it MUST be Null"). `http/respond.ts` turns one into an HTTP
 * response; the bridge sends it to a client stream or a process as it is.
 */
export function rpcError(
  id: RequestId | null,
  code: number,
  message: string,
  data?: unknown,
): JSONRPCMessage {
  return {
    jsonrpc: '2.0',
    id,
    error: rpcErrorObject(code, message, data),
  } as unknown as JSONRPCMessage
}

/** The `_meta.progressToken` of a request's params, if any. */
export function progressToken(params: Record<string, unknown> | undefined): RequestId | undefined {
  const meta = params?._meta
  if (typeof meta !== 'object' || meta === null) return undefined
  const token = (meta as Record<string, unknown>).progressToken
  return typeof token === 'string' || typeof token === 'number' ? token : undefined
}
