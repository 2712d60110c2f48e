import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Child } from './child.js'
import { envelope, type RequestId } from './jsonrpc.js'
import { ownRequest, refuseServerRequest } from './lifecycle.js'

/** Session-era protocol versions a gateway-initialized process's sessions may negotiate, newest first. */
export const GATEWAY_PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26']

/**
 * The initialize timeout of a server: its `initializeTimeout`, or its `requestTimeout` when
 * longer (0: none). A start is not a request (a server fetched by npx, a JVM), so a short
 * requestTimeout does not cut it.
 */
export function initializeTimeout(server: {
  requestTimeout: number
  initializeTimeout: number
}): number {
  return Math.max(server.requestTimeout, server.initializeTimeout)
}

/** A process's own initialize result, reused for every session it serves. */
export interface InitResult {
  protocolVersion: string
  [key: string]: unknown
}

/**
 * A process gave no initialize result: it `timeout`ed, answered with an `error`, or `exit`ed
 * (or its stdin broke) first. What a failed start's kind is (start-failures.ts).
 */
export class InitializeFailed extends Error {
  constructor(
    message: string,
    readonly kind: 'exit' | 'timeout' | 'error',
  ) {
    super(message)
  }
}

/**
 * The gateway's own MCP handshake with a process: initialize, by default with no client
 * capabilities (so it never asks for sampling, elicitation or roots), then
 * `notifications/initialized`.
 * Owns `child.onmessage` until the result arrives; the caller sets its own afterwards.
 * @throws InitializeFailed when the process answers with an error, exits, or says nothing within `timeoutMs`
 */
export async function initializeChild(
  child: Child,
  timeoutMs: number,
  capabilities: Record<string, unknown> = {},
): Promise<InitResult> {
  const params = {
    protocolVersion: GATEWAY_PROTOCOL_VERSIONS[0],
    capabilities,
    clientInfo: { name: 'mcp-edge', version: '0.1.0' },
  }
  const heard: { timedOut?: boolean } = {}
  const reply = (await exchange(child, 'initialize', params, timeoutMs, heard)) as
    | { result?: InitResult; error?: { message?: string } }
    | undefined
  if (reply === undefined)
    throw heard.timedOut
      ? new InitializeFailed('no initialize result in time', 'timeout')
      : new InitializeFailed('the process exited before its initialize result', 'exit')
  if (!reply.result)
    throw new InitializeFailed(`initialize failed: ${reply.error?.message}`, 'error')
  await child.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage)
  return reply.result
}

/**
 * Sends the gateway's own request to a process that belongs to no session yet and waits for
 * its reply. Owns `child.onmessage` meanwhile; server→client requests are refused at once
 * rather than left waiting (roots, say, before the handshake ends). Resolves undefined when
 * the process exits, the send fails, or nothing comes within `timeoutMs` (`heard.timedOut`).
 */
export function exchange(
  child: Child,
  method: string,
  params: Record<string, unknown> | undefined,
  timeoutMs: number,
  heard?: { timedOut?: boolean },
): Promise<JSONRPCMessage | undefined> {
  return ownRequest(
    {
      send: (m) => child.send(m),
      listen(hear, lost) {
        child.onmessage = (m) => {
          const env = envelope(m)
          if (env.kind !== 'request') return hear(m)
          void child.send(refuseServerRequest(env.id, env.method, NO_CLIENT)).catch(() => {})
        }
        void child.exited.then(lost)
        return () => {
          child.onmessage = undefined
        }
      },
    },
    { id: `mcp-edge-${method}`, method, params },
    timeoutMs,
    heard,
  )
}

/** Why a server→client request outside any client request is refused. */
export const NO_CLIENT = 'no client request is in progress to answer this'

/** MCP lifecycle: the requested version if the gateway speaks it, else the process's own. */
export function negotiate(requested: unknown, fallback: string): string {
  return typeof requested === 'string' && GATEWAY_PROTOCOL_VERSIONS.includes(requested)
    ? requested
    : fallback
}

/** A session's `initialize`, answered from the process's cached result at the session's version. */
export function initializeReply(
  id: RequestId,
  init: InitResult,
  params: Record<string, unknown> | undefined,
): JSONRPCMessage {
  return {
    jsonrpc: '2.0',
    id,
    result: { ...init, protocolVersion: negotiate(params?.protocolVersion, init.protocolVersion) },
  } as JSONRPCMessage
}

/** The answer to a server→client request from a process that was promised no client capabilities. */
export function refusal(id: RequestId, method: string): JSONRPCMessage {
  return refuseServerRequest(
    id,
    method,
    'server-to-client requests are not available: the gateway initialized this process without client capabilities',
  )
}

/**
 * Refuses a request of a process the gateway initialized itself (promised no client
 * capabilities) at once, rather than leave it waiting for an answer no one sends: its method
 * when `message` was one, else undefined.
 */
export function refuseAsk(child: Child, message: JSONRPCMessage): string | undefined {
  const env = envelope(message)
  if (env.kind !== 'request') return undefined
  void child.send(refusal(env.id, env.method)).catch(() => {})
  return env.method
}

/**
 * A warm process the gateway already initialized, handed to one session: the session's
 * `initialize` is answered from the cached result, its `notifications/initialized` is not
 * repeated, server→client requests are refused, everything else passes through.
 */
export function preinitialized(child: Child, init: InitResult): Child {
  const view: Child = {
    get pid() {
      return child.pid
    },
    get alive() {
      return child.alive
    },
    exited: child.exited,
    close: () => child.close(),
    retag: (log) => child.retag(log),
    warn: (fields, msg) => child.warn(fields, msg),
    async send(message) {
      const env = envelope(message)
      if (env.kind === 'request' && env.method === 'initialize') {
        queueMicrotask(() => view.onmessage?.(initializeReply(env.id, init, env.params)))
        return
      }
      if (env.kind === 'notification' && env.method === 'notifications/initialized') return
      return child.send(message)
    },
  }
  child.onmessage = (message) => {
    if (refuseAsk(child, message) === undefined) view.onmessage?.(message)
  }
  child.ondead = () => view.ondead?.()
  child.onexit = () => view.onexit?.()
  child.onsuppressed = (source, lines) => view.onsuppressed?.(source, lines)
  return view
}
