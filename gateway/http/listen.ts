import { SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY, type JSONRPCRequest } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import { DEFAULT_LISTENS_PER_SUBJECT, type LaneEvent, type LanePool } from '../bridge/lanes.js'
import { MODERN_RPC } from '../bridge/modern-wire.js'
import { openEventStream } from './sse.js'

/** What a `subscriptions/listen` stream asked for (2026-07-28 SubscriptionFilter). */
interface Filter {
  toolsListChanged?: true
  promptsListChanged?: true
  resourcesListChanged?: true
  resourceSubscriptions?: string[]
}

/** How long subscribing a process to a resource may take, in ms. */
const SUBSCRIBE_TIMEOUT_MS = 10_000

/**
 * `subscriptions/listen` (2026-07-28): an SSE stream that opens with
 * `notifications/subscriptions/acknowledged` naming what will be delivered (what was asked,
 * narrowed to what the server's capabilities offer), then carries the server's list-changed
 * and resource-updated notifications from the caller's own processes, each stamped with the
 * subscription id (the request's id), and nothing the caller did not ask for. Resource
 * subscriptions are placed on one of the caller's processes with `resources/subscribe`.
 */
export async function listenStream(o: {
  lanes: LanePool
  message: JSONRPCRequest
  server: string
  owner: string
  principal: Principal
  signal: AbortSignal
  log: Logger
}): Promise<Response> {
  const { message } = o
  const requested = parseFilter((message.params as Record<string, unknown> | undefined)?.notifications)
  if (requested === undefined) {
    return Response.json({ jsonrpc: '2.0', id: message.id, error: { code: MODERN_RPC.invalidParams, message: "Invalid params: 'notifications' is required and must be a valid SubscriptionFilter" } })
  }
  let init = o.lanes.initOf(o.server)
  const wantsResources = (requested.resourceSubscriptions?.length ?? 0) > 0
  if (init === undefined || wantsResources) {
    const lane = await o.lanes.acquire(o.server, o.principal, o.log)
    try {
      init = lane.init
      if (wantsResources && subscribable(init.capabilities)) {
        for (const uri of requested.resourceSubscriptions!) await o.lanes.request(lane, 'resources/subscribe', { uri }, SUBSCRIBE_TIMEOUT_MS)
      }
    } finally {
      o.lanes.release(lane)
    }
  }
  const honored = honoredSubset(requested, init.capabilities as Record<string, Record<string, unknown> | undefined> | undefined)
  const subscriptionId = message.id
  const stamp = (params: Record<string, unknown> | undefined) => ({ ...params, _meta: { ...(params?._meta as object | undefined), [SUBSCRIPTION_ID_META_KEY]: subscriptionId } })

  let unsubscribe: () => void = () => {}
  // Held before the stream opens: a principal's streams are bounded like its processes.
  const onEvent = (e: LaneEvent) => {
    if (e.server !== o.server || e.owner !== o.owner || !accepts(honored, e)) return
    stream.write({ jsonrpc: '2.0', method: e.method, params: stamp(e.params) })
  }
  // Shutdown: the subscription ends gracefully, with its result.
  const onClose = () => {
    unsubscribe()
    stream.end(finalResult(subscriptionId, init.serverInfo))
  }
  const held = o.lanes.listen(o.server, o.principal, onEvent, onClose)
  if (held === undefined) {
    return Response.json(
      { jsonrpc: '2.0', id: message.id, error: { code: -32000, message: `you have ${DEFAULT_LISTENS_PER_SUBJECT} subscription streams open on ${o.server}, the most allowed; close one` } },
      { status: 429, headers: { 'retry-after': '5' } },
    )
  }
  unsubscribe = held
  const stream = openEventStream(() => unsubscribe())
  stream.write({ jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: stamp({ notifications: honored }) })
  if (Object.keys(honored).length === 0) {
    unsubscribe()
    stream.end(finalResult(subscriptionId, init.serverInfo))
    return stream.response
  }
  o.signal.addEventListener('abort', () => unsubscribe(), { once: true })
  return stream.response
}

function finalResult(id: string | number, serverInfo: unknown) {
  return { jsonrpc: '2.0', id, result: { resultType: 'complete', _meta: { [SUBSCRIPTION_ID_META_KEY]: id, [SERVER_INFO_META_KEY]: serverInfo } } }
}

function parseFilter(value: unknown): Filter | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const v = value as Record<string, unknown>
  const out: Filter = {}
  for (const key of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) {
    if (v[key] === undefined) continue
    if (typeof v[key] !== 'boolean') return undefined
    if (v[key] === true) out[key] = true
  }
  if (v.resourceSubscriptions !== undefined) {
    if (!Array.isArray(v.resourceSubscriptions) || !v.resourceSubscriptions.every((u) => typeof u === 'string')) return undefined
    out.resourceSubscriptions = v.resourceSubscriptions as string[]
  }
  return out
}

function subscribable(capabilities: unknown): boolean {
  const resources = (capabilities as { resources?: { subscribe?: unknown } } | undefined)?.resources
  return resources?.subscribe === true
}

/** What is asked for and offered by the server's capabilities. */
function honoredSubset(f: Filter, caps: Record<string, Record<string, unknown> | undefined> | undefined): Filter {
  const out: Filter = {}
  if (f.toolsListChanged && caps?.tools?.listChanged === true) out.toolsListChanged = true
  if (f.promptsListChanged && caps?.prompts?.listChanged === true) out.promptsListChanged = true
  if (f.resourcesListChanged && caps?.resources?.listChanged === true) out.resourcesListChanged = true
  if (f.resourceSubscriptions?.length && caps?.resources?.subscribe === true) out.resourceSubscriptions = [...f.resourceSubscriptions]
  return out
}

function accepts(f: Filter, e: LaneEvent): boolean {
  switch (e.method) {
    case 'notifications/tools/list_changed':
      return f.toolsListChanged === true
    case 'notifications/prompts/list_changed':
      return f.promptsListChanged === true
    case 'notifications/resources/list_changed':
      return f.resourcesListChanged === true
    case 'notifications/resources/updated':
      return f.resourceSubscriptions?.includes(String(e.params?.uri)) === true
  }
  return false
}
