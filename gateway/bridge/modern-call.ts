import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Lane, LaneUser } from './lane.js'
import { RPC } from './errors.js'
import { refuseServerRequest } from './lifecycle.js'
import { envelope, isObject, rpcError, type RequestId, type RpcErrorObject } from './jsonrpc.js'
import type { Timeout } from './timeouts.js'
import { disguisedMethod, disguiseRefusal } from '../policy/method-names.js'

/**
 * After a process's first server→client request, how long to gather more before answering, in
 * ms. Not a setting: one event-loop moment so requests a server sends together make one round;
 * it bounds nothing, and longer would only delay every input_required answer.
 */
const INPUT_GATHER_MS = 5

/** MCP logging levels, least severe first (RFC 5424 order). */
const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

/** The client capability each server→client request needs. */
const CAPABILITY_OF: Record<string, string> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
}

/**
 * Methods a plain request may have: one answer from the process and nothing else it needs
 * relayed. Not `server/discover` (the gateway answers it) nor `subscriptions/listen` (a stream).
 */
const PLAIN_METHODS = new Set([
  'tools/call',
  'tools/list',
  'prompts/get',
  'prompts/list',
  'resources/read',
  'resources/list',
  'resources/templates/list',
  'completion/complete',
])

/**
 * Whether a new request is plain: nothing the process sends while it runs needs correlating
 * to it, so it may share its lane with other plain requests (lane.ts). No progress token, no
 * log level, none of the capabilities a server→client request needs (what the process asks
 * is refused anyway), no multi-round fields, and a method answered once.
 */
export function isPlain(
  method: string,
  params: Record<string, unknown>,
  meta: ClientMeta,
): boolean {
  if (!PLAIN_METHODS.has(method)) return false
  if (meta.progressToken !== undefined || meta.logLevel !== undefined) return false
  if (params.requestState !== undefined || params.inputResponses !== undefined) return false
  for (const capability of Object.values(CAPABILITY_OF))
    if (Object.hasOwn(meta.capabilities, capability)) return false
  return true
}

/**
 * The capability a server→client `tasks/*` request needs, as a path in the client's declared
 * capabilities (MCP 2025-11-25 tasks §Capability Negotiation): `tasks/list` and `tasks/cancel`
 * each their own flag; `tasks/get` and `tasks/result` `tasks.requests`, since the set there is
 * exhaustive and a client with no request type it takes as a task holds no task of the server's.
 * Session era only: the sessionless path relays no request that {@link capabilityOf} does not name.
 */
const TASK_CAPABILITY_OF: Record<string, readonly string[]> = {
  'tasks/get': ['tasks', 'requests'],
  'tasks/result': ['tasks', 'requests'],
  'tasks/list': ['tasks', 'list'],
  'tasks/cancel': ['tasks', 'cancel'],
}

/** A request augmented with a task (`params.task`) needs the client to take it as one. */
const AUGMENTED_CAPABILITY_OF: Record<string, readonly string[]> = {
  'sampling/createMessage': ['tasks', 'requests', 'sampling', 'createMessage'],
  'elicitation/create': ['tasks', 'requests', 'elicitation', 'create'],
}

/**
 * The refusal of a server→client request for a client that declared no capabilities: ping is
 * answered, a request a capability would allow is refused naming it (and, for an elicitation
 * of a client that declared the capability, the mode it asked), anything else as not
 * available through the gateway (MCP's own method names in disguise as not found).
 */
export function refuseUndeclared(
  id: RequestId,
  method: string,
  params?: unknown,
  caps?: unknown,
): JSONRPCMessage {
  const disguised = disguiseRefusal(method)
  if (disguised !== undefined) return rpcError(id, -32601, disguised)
  const missing = missingCapability(caps, method, params)
  if (missing === undefined)
    return refuseServerRequest(id, method, `method not available through the gateway: ${method}`)
  return rpcError(id, -32601, `the client did not declare the ${missing}`)
}

/**
 * The client capability a server→client request needs, if any (ping and unknown: none). Own
 * keys only: a method named like an Object.prototype member (`constructor`, `__proto__`) is
 * an unknown method, not one needing the capability "function Object() { [native code] }".
 */
export function capabilityOf(method: string): string | undefined {
  return Object.hasOwn(CAPABILITY_OF, method) ? CAPABILITY_OF[method] : undefined
}

/** `table`'s path for `method`, by own keys only (as {@link capabilityOf}). */
function ownPath(table: Record<string, readonly string[]>, method: string) {
  return Object.hasOwn(table, method) ? table[method] : undefined
}

/** The capability a request augmented with a task (`params.task` present) also needs. */
function augmentedPath(method: string, params: unknown): readonly string[] | undefined {
  if (!isObject(params) || !Object.hasOwn(params, 'task')) return undefined
  return ownPath(AUGMENTED_CAPABILITY_OF, method)
}

/** What the client declared for `capability`: an object, by an own key; else undefined. */
function declaredAs(caps: unknown, capability: string): Record<string, unknown> | undefined {
  if (!isObject(caps) || !Object.hasOwn(caps, capability)) return undefined
  const value = caps[capability]
  return isObject(value) ? value : undefined
}

/** What the client declared at `path` (each step an object, by own keys); else undefined. */
function declaredAt(caps: unknown, path: readonly string[]): Record<string, unknown> | undefined {
  let at: unknown = caps
  for (const key of path) at = declaredAs(at, key)
  return isObject(at) ? at : undefined
}

/** The mode an `elicitation/create` asks: `form` unless it names another. */
function modeOf(params: unknown): unknown {
  const mode = isObject(params) ? params.mode : undefined
  return mode === undefined ? 'form' : mode
}

/**
 * Whether the elicitation modes a client declared cover the one asked (other methods: yes).
 * MCP 2025-11-25 (elicitation §Capabilities): an `elicitation` naming neither `form` nor `url`
 * means form mode only, `{ url: {} }` url mode only, and a server must not ask a mode the
 * client did not declare.
 */
function modeCovered(caps: unknown, method: string, params: unknown): boolean {
  if (method !== 'elicitation/create') return true
  const value = declaredAs(caps, 'elicitation')
  if (value === undefined) return false
  const form = Object.hasOwn(value, 'form') || !Object.hasOwn(value, 'url')
  const mode = modeOf(params)
  if (mode === 'form') return form
  if (mode === 'url') return Object.hasOwn(value, 'url')
  return false
}

/**
 * Whether the capabilities a client declared cover a server→client request: never for MCP's
 * own method name in disguise (`Sampling/CreateMessage` would dodge the check on the exact
 * name), else when {@link missingCapability} finds nothing missing.
 */
export function covers(caps: unknown, method: string, params: unknown): boolean {
  return (
    disguisedMethod(method) === undefined && missingCapability(caps, method, params) === undefined
  )
}

/**
 * What a server→client request needs that the client did not declare, as the refusal names it
 * (`sampling capability`, `elicitation capability (url mode)`, `tasks.list capability`), or
 * undefined (nothing missing, or a request that needs no capability): the capability declared
 * as an object, for an elicitation the mode it asks, for a request augmented with a task the
 * client's capability to take it as one, for `tasks/*` the path {@link TASK_CAPABILITY_OF} names.
 */
function missingCapability(caps: unknown, method: string, params: unknown): string | undefined {
  const task = ownPath(TASK_CAPABILITY_OF, method)
  if (task !== undefined)
    return declaredAt(caps, task) === undefined ? `${task.join('.')} capability` : undefined
  const capability = capabilityOf(method)
  if (capability === undefined) return undefined
  if (declaredAs(caps, capability) === undefined) return `${capability} capability`
  if (!modeCovered(caps, method, params))
    return `${capability} capability (${String(modeOf(params))} mode)`
  const augmented = augmentedPath(method, params)
  if (augmented !== undefined && declaredAt(caps, augmented) === undefined)
    return `${augmented.join('.')} capability`
  return undefined
}

/** A request the process is waiting on the client for, as an `inputRequests` entry. */
export interface InputRequest {
  id: RequestId
  method: string
  params: Record<string, unknown> | undefined
}

/** How a round of a sessionless request ended. */
export type Outcome =
  /** The process answered the request (a result or a JSON-RPC error), raw. */
  | { kind: 'response'; message: JSONRPCMessage }
  /** The process is waiting for the client: these requests, by key. */
  | { kind: 'input'; requests: Map<string, InputRequest> }
  /** The process went away or did not answer in time. */
  | { kind: 'failed'; code: number; message: string }

/** What a sessionless request declared in its `_meta`. */
export interface ClientMeta {
  capabilities: Record<string, unknown>
  logLevel: string | undefined
  progressToken: RequestId | undefined
}

/**
 * One sessionless (2026-07-28) request running on a lane, across its multi-round-trip rounds.
 * The process is a session-era server: what it asks of the client mid-request (elicitation,
 * sampling, roots) becomes an `input_required` round, keyed by the process's own request id,
 * and the client's `inputResponses` on retry become the JSON-RPC responses it waits for.
 * Requests for a capability the client did not declare are refused to the process at once and
 * remembered, so a failure that follows can be reported as the missing capability.
 */
export class BackendCall implements LaneUser {
  readonly backendId: string
  /** Capabilities the process asked for and the client had not declared. */
  readonly refused = new Set<string>()
  private readonly pending = new Map<string, InputRequest>()
  private settle: ((o: Outcome) => void) | undefined
  private notify: ((m: JSONRPCMessage) => void) | undefined
  private gather: NodeJS.Timeout | undefined
  private timer: Timeout | undefined
  private ended = false
  /** Sent to the process: a cancel from now on leaves it maybe still running there. */
  private begun = false
  /** How the request ended while no round was waiting (between rounds). */
  private final: Outcome | undefined

  constructor(
    readonly lane: Lane,
    private readonly request: { method: string; params: Record<string, unknown> | undefined },
    private meta: ClientMeta,
    private readonly timeoutMs: number,
    /**
     * Answers the client sent with the first round, before any was asked (2026-07-28 lets a
     * client that knows the keys skip a round): a server request with such a key is answered
     * from them at once.
     */
    private readonly presupplied: Record<string, unknown> = {},
  ) {
    this.backendId = lane.nextId()
  }

  get done(): boolean {
    return this.ended
  }

  /** Sends the request to the process; resolves with how its first round ended. */
  begin(notify: (m: JSONRPCMessage) => void): Promise<Outcome> {
    const waiting = this.wait(notify)
    this.begun = true
    const message = {
      jsonrpc: '2.0',
      id: this.backendId,
      method: this.request.method,
      ...(this.request.params ? { params: this.request.params } : {}),
    }
    this.lane.child.send(message as JSONRPCMessage).catch(() =>
      this.finish({
        kind: 'failed',
        code: RPC.connectionClosed,
        message: 'the MCP server process is not running',
      }),
    )
    return waiting
  }

  /**
   * The client's answers to the last round, from its retry (whose own `_meta` now applies).
   * Keys the process is not waiting on are ignored; a value that is not an object counts as
   * no answer. Resolves with the next round's end: `input` again for anything unanswered.
   */
  resume(
    responses: Record<string, unknown>,
    meta: ClientMeta,
    notify: (m: JSONRPCMessage) => void,
  ): Promise<Outcome> {
    this.meta = meta
    if (this.final !== undefined) return Promise.resolve(this.final)
    for (const [key, req] of [...this.pending]) {
      const answer = responses[key]
      if (!isObject(answer)) continue
      this.pending.delete(key)
      void this.lane.child
        .send({ jsonrpc: '2.0', id: req.id, result: answer } as JSONRPCMessage)
        .catch(() => {})
    }
    if (this.pending.size > 0)
      return Promise.resolve({ kind: 'input', requests: new Map(this.pending) })
    return this.wait(notify)
  }

  /**
   * The client refused one of the last round's requests (a session's client answering with a
   * JSON-RPC error): the process gets that error for it. Other keys are left waiting.
   */
  refuse(key: string, error: RpcErrorObject): void {
    const req = this.pending.get(key)
    if (req === undefined) return
    this.pending.delete(key)
    void this.lane.child.send(rpcError(req.id, error.code, error.message)).catch(() => {})
  }

  /**
   * The client went away (a disconnect cancels a 2026-07-28 request) or the gateway gave up:
   * the process is told (`notifications/cancelled`), its questions are refused, and nothing
   * more is relayed.
   */
  cancel(reason: string, code: number = RPC.connectionClosed): void {
    if (this.ended) return
    // A server may go on with a cancelled request (MCP lets it ignore the notification): its
    // progress, logs and questions would reach whoever takes the lane next, another app of the
    // user say. The lane takes no request that would hold it alone and ends once free (lane.ts).
    if (this.begun) this.lane.abandoned = true
    this.refuseAll(reason)
    void this.lane.child
      .send({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: this.backendId, reason },
      } as JSONRPCMessage)
      .catch(() => {})
    this.finish({ kind: 'failed', code, message: reason })
  }

  fromServer(message: JSONRPCMessage): void {
    if (this.ended) return
    const env = envelope(message)
    if (env.kind === 'response') {
      if (env.id === this.backendId) this.finish({ kind: 'response', message })
      return
    }
    if (env.kind === 'request') return this.serverRequest(env.id, env.method, env.params)
    if (env.kind !== 'notification') return
    if (env.method === 'notifications/progress') {
      const token = env.params?.progressToken
      if (this.meta.progressToken !== undefined && token === this.meta.progressToken)
        this.notify?.(message)
      return
    }
    if (env.method === 'notifications/message' && this.meta.logLevel !== undefined) {
      // 2026-07-28: no log notifications unless the request asked for them, at its level.
      const level = LOG_LEVELS.indexOf(String(env.params?.level))
      if (level >= LOG_LEVELS.indexOf(this.meta.logLevel)) this.notify?.(message)
    }
  }

  lost(): void {
    this.finish({
      kind: 'failed',
      code: RPC.connectionClosed,
      message: 'the MCP server process exited',
    })
  }

  private serverRequest(
    id: RequestId,
    method: string,
    params: Record<string, unknown> | undefined,
  ): void {
    const send = (m: JSONRPCMessage) => void this.lane.child.send(m).catch(() => {})
    const capability = capabilityOf(method)
    // ping is answered; anything else without a client capability behind it is refused.
    if (capability === undefined || !covers(this.meta.capabilities, method, params)) {
      if (capability !== undefined) this.refused.add(capability)
      return send(refuseUndeclared(id, method, params, this.meta.capabilities))
    }
    const key = String(id)
    const given = Object.hasOwn(this.presupplied, key) ? this.presupplied[key] : undefined
    if (isObject(given)) {
      delete this.presupplied[key]
      return send({ jsonrpc: '2.0', id, result: given } as JSONRPCMessage)
    }
    this.pending.set(key, { id, method, params })
    // Servers often ask several things at once: one round for all of them.
    this.gather ??= setTimeout(() => {
      this.gather = undefined
      if (this.pending.size > 0) this.pause({ kind: 'input', requests: new Map(this.pending) })
    }, INPUT_GATHER_MS)
  }

  private wait(notify: (m: JSONRPCMessage) => void): Promise<Outcome> {
    this.notify = notify
    if (this.timeoutMs > 0) {
      this.timer = this.lane.timeouts.add(this.timeoutMs, () =>
        this.cancel('the MCP server did not answer in time', RPC.requestTimeout),
      )
    }
    return new Promise((resolve) => (this.settle = resolve))
  }

  /** Ends a round but not the request: the process waits for the client's answers. */
  private pause(o: Outcome): void {
    this.timer?.cancel()
    this.notify = undefined
    const settle = this.settle
    this.settle = undefined
    settle?.(o)
  }

  private finish(o: Outcome): void {
    if (this.ended) return
    this.ended = true
    clearTimeout(this.gather)
    if (this.settle === undefined) this.final = o
    this.pause(o)
  }

  private refuseAll(reason: string): void {
    for (const req of this.pending.values()) {
      void this.lane.child.send(rpcError(req.id, -32000, reason)).catch(() => {})
    }
    this.pending.clear()
  }
}
