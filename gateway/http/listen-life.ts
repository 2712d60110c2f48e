// What every `subscriptions/listen` stream (2026-07-28) shares, at a server or at an endpoint:
// its filter, its slot among the subject's streams, its lifetime (the client leaving, the
// token expiring, the policy taking the server away) and its acknowledgement and final result.
import {
  SERVER_INFO_META_KEY,
  SUBSCRIPTION_ID_META_KEY,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import { BridgeError } from '../bridge/errors.js'
import { isObject } from '../bridge/jsonrpc.js'
import type { LaneEvent } from '../bridge/lane.js'
import type { LanePool } from '../bridge/lanes.js'
import { MODERN_RPC } from '../bridge/modern-wire.js'
import type { Outbound } from '../bridge/outbound-budget.js'
import { ruleOf } from '../policy/decided.js'
import type { AuditLog } from '../observability/audit.js'
import { resourceDecision } from '../policy/notice.js'
import { nonCanonicalUri } from '../policy/resource-uri.js'
import type { PolicyStore } from '../policy/store.js'
import { rpcErrorResponse } from './respond.js'
import { openEventStream, type EventStream } from './sse.js'

/** What a `subscriptions/listen` stream asked for (2026-07-28 SubscriptionFilter). */
export interface Filter {
  toolsListChanged?: true
  promptsListChanged?: true
  resourcesListChanged?: true
  resourceSubscriptions?: string[]
}

/** The request's filter, or the refusal of a malformed or oversized one. */
export function requestedFilter(message: JSONRPCRequest, lanes: LanePool): Filter | Response {
  const requested = parseFilter(
    (message.params as Record<string, unknown> | undefined)?.notifications,
  )
  if (requested === undefined)
    return invalid(
      message.id,
      "Invalid params: 'notifications' is required and must be a valid SubscriptionFilter",
    )
  if ((requested.resourceSubscriptions?.length ?? 0) > lanes.limits.listenResources) {
    return invalid(
      message.id,
      `Invalid params: at most ${lanes.limits.listenResources} resourceSubscriptions per stream`,
    )
  }
  return requested
}

/**
 * A subject at its bound of streams on `where`: thrown to the one place errors become answers
 * (429, -32000, `Retry-After`), audited with the bound as its rule (modern.ts).
 */
export function tooManyStreams(lanes: LanePool, where: string): BridgeError {
  return BridgeError.limited(
    'subject_session_limit',
    `you have ${lanes.limits.listensPerSubject} subscription streams open on ${where}, the most allowed; close one`,
    'limits.sessionless.listensPerSubject',
  )
}

/**
 * One stream's life. Made first, so whatever is set up for it (a slot, pinned processes) can
 * be undone by `end` from any path; `open` then sends the acknowledgement and keeps the stream
 * until the client leaves, the token expires, or `stillAllowed` says no (checked on every
 * `recheck` too, so a quiet stream notices a policy that took its server away).
 */
export class ListenLife {
  private ended = false
  private expiry: NodeJS.Timeout | undefined
  private recheck: NodeJS.Timeout | undefined
  private stream: EventStream | undefined
  private serverInfo: unknown
  private readonly cleanups: (() => void)[] = []

  constructor(
    private readonly o: {
      id: string | number
      outbound: Outbound
      owner: string
      principal: Principal
      signal: AbortSignal
      log: Logger
      recheckMs: number
    },
  ) {}

  get done(): boolean {
    return this.ended
  }

  /** Runs when the stream ends, whichever way. */
  onEnd(fn: () => void): void {
    // Registered after the end (a lease taken while the stream was ending): given back now.
    if (this.ended) return fn()
    this.cleanups.push(fn)
  }

  /** Params stamped with the subscription id (the request's id). */
  stamp(params: Record<string, unknown> | undefined): Record<string, unknown> {
    return {
      ...params,
      _meta: { ...(params?._meta as object | undefined), [SUBSCRIPTION_ID_META_KEY]: this.o.id },
    }
  }

  write(message: JSONRPCMessage): void {
    if (!this.ended) this.stream?.write(message)
  }

  /** Ends the subscription: gracefully (its final result) or because the client went away. */
  end(graceful: boolean): void {
    if (this.ended) return
    this.ended = true
    clearTimeout(this.expiry)
    clearInterval(this.recheck)
    for (const fn of this.cleanups) fn()
    this.stream?.end(graceful ? finalResult(this.o.id, this.serverInfo) : undefined)
  }

  open(honored: Filter, serverInfo: unknown, stillAllowed: () => boolean): Response {
    const { o } = this
    this.serverInfo = serverInfo
    this.stream = openEventStream({
      outbound: o.outbound,
      owner: o.owner,
      log: o.log,
      onCancel: () => this.end(false),
    })
    const response = this.stream.response
    // The acknowledgement is the stream's answer to the request: owed, never dropped.
    this.stream.write(
      {
        jsonrpc: '2.0',
        method: 'notifications/subscriptions/acknowledged',
        params: this.stamp({ notifications: honored }),
      } as JSONRPCMessage,
      'owed',
    )
    if (Object.keys(honored).length === 0 || o.signal.aborted || this.ended) {
      this.end(!o.signal.aborted)
      return response
    }
    // Removed however the stream ends: the request's signal outlives it (a kept-alive socket).
    const gone = () => this.end(false)
    o.signal.addEventListener('abort', gone, { once: true })
    this.cleanups.push(() => o.signal.removeEventListener('abort', gone))
    const exp = o.principal.exp
    if (exp !== undefined) {
      // A stream authorizes nothing past its token: the client listens again with a new one.
      this.expiry = setTimeout(() => this.end(true), Math.max(0, exp * 1000 - Date.now())).unref()
    }
    this.recheck = setInterval(() => {
      if (!stillAllowed()) this.end(true)
    }, o.recheckMs).unref()
    return response
  }
}

/**
 * The policy on one resource URI, which must be canonical (the form the server reads);
 * refusals are audited when `audit` is set.
 */
export function allowed(
  o: { policy: PolicyStore; audit: AuditLog; principal: Principal; server: string },
  uri: string,
  audit: boolean,
): boolean {
  const d = resourceDecision(o.policy.current, o.principal, o.server, uri)
  if (d?.effect === 'allow') return true
  if (audit) {
    const p = o.principal
    o.audit.record({
      sub: p.sub,
      iss: p.iss,
      clientId: p.clientId,
      server: o.server,
      method: 'subscriptions/listen',
      name: uri,
      decision: d?.effect ?? 'invalid',
      rule: d ? ruleOf(d) : `Invalid params: ${nonCanonicalUri(uri)}`,
      outcome: 'left out',
    })
  }
  return false
}

function invalid(id: string | number, text: string): Response {
  return rpcErrorResponse(200, MODERN_RPC.invalidParams, text, { id })
}

export function finalResult(id: string | number, serverInfo: unknown) {
  return {
    jsonrpc: '2.0',
    id,
    result: {
      resultType: 'complete',
      _meta: { [SUBSCRIPTION_ID_META_KEY]: id, [SERVER_INFO_META_KEY]: serverInfo },
    },
  }
}

export function parseFilter(value: unknown): Filter | undefined {
  if (!isObject(value)) return undefined
  const v = value
  const out: Filter = {}
  for (const key of ['toolsListChanged', 'promptsListChanged', 'resourcesListChanged'] as const) {
    if (v[key] === undefined) continue
    if (typeof v[key] !== 'boolean') return undefined
    if (v[key] === true) out[key] = true
  }
  if (v.resourceSubscriptions !== undefined) {
    if (
      !Array.isArray(v.resourceSubscriptions) ||
      !v.resourceSubscriptions.every((u) => typeof u === 'string')
    )
      return undefined
    out.resourceSubscriptions = [...new Set(v.resourceSubscriptions as string[])]
  }
  return out
}

/** What is asked for and offered by the server's capabilities. */
export function honoredSubset(
  f: Filter,
  caps: Record<string, Record<string, unknown> | undefined> | undefined,
): Filter {
  const out: Filter = {}
  if (f.toolsListChanged && caps?.tools?.listChanged === true) out.toolsListChanged = true
  if (f.promptsListChanged && caps?.prompts?.listChanged === true) out.promptsListChanged = true
  if (f.resourcesListChanged && caps?.resources?.listChanged === true)
    out.resourcesListChanged = true
  if (f.resourceSubscriptions?.length && caps?.resources?.subscribe === true)
    out.resourceSubscriptions = [...f.resourceSubscriptions]
  return out
}

export function accepts(f: Filter, e: LaneEvent): boolean {
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
