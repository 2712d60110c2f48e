import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  RELATED_TASK_META_KEY,
  SERVER_INFO_META_KEY,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server'
import { GATEWAY_PROTOCOL_VERSIONS, type InitResult } from './handshake.js'
import type { ClientMeta, InputRequest } from './modern-call.js'
import { progressToken, rpcErrorObject, type RpcErrorObject } from './jsonrpc.js'
import { withoutTaskSupport } from './tasks.js'

/** The sessionless protocol revision the gateway serves. */
export const MODERN_PROTOCOL_VERSION = '2026-07-28'
/** Every revision the gateway serves on an MCP endpoint, newest first. */
export const SUPPORTED_PROTOCOL_VERSIONS = [MODERN_PROTOCOL_VERSION, ...GATEWAY_PROTOCOL_VERSIONS]

/**
 * Client→server requests of 2026-07-28. Anything else on the modern path is an unknown method
 * (404, -32601), including the ones it removed: initialize, ping, logging/setLevel,
 * resources/subscribe and resources/unsubscribe.
 */
export const MODERN_METHODS = new Set([
  'server/discover',
  'subscriptions/listen',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'completion/complete',
])

/** Results that carry cache hints (SEP-2549). */
const CACHEABLE = new Set([
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'server/discover',
])

/**
 * How long a client may reuse a list or read result, in ms (SEP-2549 `ttlMs`). Zero, and not a
 * setting: results are filtered by the caller's policy, which may change at any reload (a
 * longer hint would let a client keep what a reload took away), and session-era servers say
 * nothing of their own lists' lifetime.
 */
const CACHE_TTL_MS = 0

/** JSON-RPC codes of 2026-07-28 the gateway emits. */
export const MODERN_RPC = {
  methodNotFound: -32601,
  invalidParams: -32602,
  headerMismatch: -32020,
  missingCapability: -32021,
  unsupportedVersion: -32022,
  /** Session-era "resource not found", which 2026-07-28 forbids (it is -32602 there). */
  legacyResourceNotFound: -32002,
} as const

/**
 * A session-era result as 2026-07-28 has it: `resultType: "complete"`, cache hints where the
 * revision requires them (always `private`: what a caller sees depends on its policy), the
 * server's identity in `_meta`, and no task fields (an extension the gateway does not carry).
 */
export function completeResult(
  method: string,
  result: Record<string, unknown>,
  serverInfo: unknown,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...result, resultType: 'complete' }
  if (CACHEABLE.has(method)) {
    const ttl = out.ttlMs
    if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 0) out.ttlMs = CACHE_TTL_MS
    out.cacheScope = 'private'
  }
  if (method === 'tools/list' && Array.isArray(out.tools))
    out.tools = out.tools.map(withoutTaskSupport)
  if (serverInfo !== undefined) {
    const meta =
      typeof out._meta === 'object' && out._meta !== null
        ? (out._meta as Record<string, unknown>)
        : {}
    out._meta = { [SERVER_INFO_META_KEY]: serverInfo, ...meta }
  }
  return out
}

/** `server/discover`, answered from the process's initialize result. */
export function discoverResult(init: InitResult): Record<string, unknown> {
  const capabilities = { ...(init.capabilities as Record<string, unknown> | undefined) }
  delete capabilities.tasks
  const result: Record<string, unknown> = {
    supportedVersions: SUPPORTED_PROTOCOL_VERSIONS,
    capabilities,
  }
  if (typeof init.instructions === 'string') result.instructions = init.instructions
  return completeResult('server/discover', result, init.serverInfo)
}

/** The round a waiting request ends with: what the client must answer, and the handle to retry with. */
export function inputRequiredResult(
  requests: ReadonlyMap<string, InputRequest>,
  requestState: string,
): Record<string, unknown> {
  const inputRequests: Record<string, unknown> = {}
  for (const [key, r] of requests) inputRequests[key] = { method: r.method, params: r.params ?? {} }
  return { resultType: 'input_required', inputRequests, requestState }
}

/** A JSON-RPC error as the modern path answers it, and the HTTP status that goes with it. */
export interface ModernError {
  status: number
  error: RpcErrorObject
}

/**
 * A session-era server's error for a 2026-07-28 client: -32002 becomes -32602, an unknown
 * method is a 404, and a failure after the server asked for a capability the client lacks is
 * reported as that missing capability (-32021, 400).
 */
export function modernError(
  error: { code?: unknown; message?: unknown; data?: unknown },
  refused: ReadonlySet<string>,
): ModernError {
  if (refused.size > 0) return missingCapability(refused)
  let code = typeof error.code === 'number' ? error.code : -32603
  if (code === MODERN_RPC.legacyResourceNotFound) code = MODERN_RPC.invalidParams
  const message = typeof error.message === 'string' ? error.message : 'error'
  return { status: statusOf(code), error: rpcErrorObject(code, message, error.data) }
}

/** MissingRequiredClientCapabilityError for the capabilities the server asked for in vain. */
export function missingCapability(refused: ReadonlySet<string>): ModernError {
  const requiredCapabilities: Record<string, unknown> = {}
  for (const c of refused) requiredCapabilities[c] = {}
  return {
    status: 400,
    error: rpcErrorObject(
      MODERN_RPC.missingCapability,
      `the request needs client capabilities it did not declare: ${[...refused].join(', ')}`,
      { requiredCapabilities },
    ),
  }
}

/** HTTP status of a JSON-RPC error on the modern path: only these have one of their own. */
export function statusOf(code: number): number {
  if (code === MODERN_RPC.methodNotFound) return 404
  if (
    code === MODERN_RPC.missingCapability ||
    code === MODERN_RPC.headerMismatch ||
    code === MODERN_RPC.unsupportedVersion
  )
    return 400
  return 200
}

/**
 * The `_meta` keys a 2026-07-28 request's process never gets: the envelope's, the gateway's to
 * read, and a related task. 2026-07-28 has tasks only as an extension, which the gateway does
 * not offer, and the process was initialized without them (lane.ts): a process with a task
 * message queue (the SDK's) would queue the answer for a task no one asks about (tasks.ts
 * `taskless`), and the client wait until the request timed out.
 */
const NOT_PASSED_META_KEYS = [
  PROTOCOL_VERSION_META_KEY,
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
  RELATED_TASK_META_KEY,
]

/** What the request's `_meta` declares (validated by the SDK's classifier already). */
export function clientMeta(message: JSONRPCRequest): ClientMeta {
  const meta = ((message.params as Record<string, unknown> | undefined)?._meta ?? {}) as Record<
    string,
    unknown
  >
  const caps = meta[CLIENT_CAPABILITIES_META_KEY]
  const level = meta[LOG_LEVEL_META_KEY]
  return {
    capabilities:
      typeof caps === 'object' && caps !== null ? (caps as Record<string, unknown>) : {},
    logLevel: typeof level === 'string' ? level : undefined,
    progressToken: progressToken(message.params as Record<string, unknown> | undefined),
  }
}

/**
 * The request as the session-era process gets it: no envelope keys, no round fields, and no
 * `task` or related task (2026-07-28 offers no tasks here: a receiver that does not processes
 * the request normally, so the process runs a plain call whose result this request can carry).
 */
export function backendParams(params: Record<string, unknown>): Record<string, unknown> {
  const { requestState: _s, inputResponses: _i, task: _t, _meta, ...rest } = params
  if (typeof _meta !== 'object' || _meta === null) return rest
  const kept: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(_meta)) if (!NOT_PASSED_META_KEYS.includes(k)) kept[k] = v
  return Object.keys(kept).length > 0 ? { ...rest, _meta: kept } : rest
}
