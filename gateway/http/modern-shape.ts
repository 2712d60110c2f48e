// What is wrong with a POST body that claims 2026-07-28 (by its MCP-Protocol-Version header or
// its `_meta`) but is no JSON-RPC request or notification the revision's schema accepts: the
// SDK's classifier refuses it with a bare "not a valid JSON-RPC message", and a client is told
// the member to fix instead.
import { RELATED_TASK_META_KEY } from '@modelcontextprotocol/server'
import { isObject } from '../bridge/jsonrpc.js'
import { REQUEST_KEYS } from '../bridge/wire-check.js'

/** Longest member name quoted back to the client; a longer one is cut. */
const MAX_QUOTED = 64

/**
 * The first problem found in `body` as a 2026-07-28 request (or notification, without `id`),
 * in the order a reader checks it; undefined when none is found here (the classifier's own
 * words then stand).
 */
export function modernShapeProblem(body: unknown): string | undefined {
  if (!isObject(body)) return 'the body is not a JSON-RPC object'
  if (body.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"'
  for (const key in body) {
    if (key === 'result' || key === 'error')
      return `a request has no "${key}" member (a response cannot carry a method)`
    if (!REQUEST_KEYS.has(key)) return `unknown member ${quoted(key)}`
  }
  const id = body.id
  if (Object.hasOwn(body, 'id') && typeof id !== 'string' && !Number.isSafeInteger(id))
    return 'id must be a string or an integer'
  if (typeof body.method !== 'string') return 'method must be a string'
  const params = body.params
  if (params === undefined) return undefined
  if (!isObject(params)) return 'params must be an object'
  const meta = params._meta
  if (meta === undefined) return undefined
  if (!isObject(meta)) return 'params._meta must be an object'
  const token = meta.progressToken
  if (token !== undefined && typeof token !== 'string' && !Number.isSafeInteger(token))
    return 'params._meta.progressToken must be a string or an integer'
  const task = meta[RELATED_TASK_META_KEY]
  if (task !== undefined && !(isObject(task) && typeof task.taskId === 'string'))
    return `params._meta["${RELATED_TASK_META_KEY}"] must be an object with a string taskId`
  return undefined
}

/** A member name as JSON, cut: the client wrote it, so control characters stay escaped. */
function quoted(key: string): string {
  const cut = key.length > MAX_QUOTED ? `${key.slice(0, MAX_QUOTED)}…` : key
  return JSON.stringify(cut)
}
