// The conformance server's side of a newline-delimited JSON-RPC stdio connection: reads the
// client's messages, writes replies, and sends server→client requests under ids it chooses.
import { createInterface } from 'node:readline'
import type { LoggingLevel } from '@modelcontextprotocol/server'

export type RequestId = string | number
type Params = Record<string, unknown>

/** A JSON-RPC error the server answers with (or received from the client). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
  }
}

/** The client answered a server→client request with an error. */
export class ClientError extends RpcError {}

/** JSON-RPC 2.0 §5.1 and MCP error codes the server uses. */
export const CODE = {
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  /** MissingRequiredClientCapabilityError (SEP-2575); the gateway maps it to HTTP 400. */
  missingCapability: -32021,
} as const

/** Severity order of MCP log levels (RFC 5424). */
export const LEVELS: readonly LoggingLevel[] = [
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
]

/** What a handler gets besides its params: the way back to the client. */
export interface Call {
  params: Params
  /** `_meta.progressToken` of the request, if any. */
  progressToken: RequestId | undefined
  /** Aborted when the client cancels the request (notifications/cancelled). */
  signal: AbortSignal
  peer: Peer
}

export type Handler = (call: Call) => unknown

/**
 * One stdio connection. Outgoing requests use the ids their callers pass, because the gateway
 * turns an outstanding backend request into a 2026-07-28 `inputRequests` entry keyed by that
 * id: a tool asking for `user_name` must send the request with id "user_name".
 */
export class Peer {
  /** Minimum level of log notifications sent; undefined until logging/setLevel. */
  level: LoggingLevel | undefined
  private readonly outstanding = new Map<
    RequestId,
    { resolve: (r: unknown) => void; reject: (e: Error) => void }
  >()
  private readonly running = new Map<RequestId, AbortController>()

  constructor(private readonly handlers: Readonly<Record<string, Handler>>) {}

  /** Serves stdin until it closes, then exits. */
  listen(): void {
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
    lines.on('line', (line) => {
      if (line.trim() === '') return
      let message: unknown
      try {
        message = JSON.parse(line)
      } catch {
        return this.write({
          jsonrpc: '2.0',
          id: null,
          error: { code: -32700, message: 'Parse error' },
        })
      }
      for (const m of Array.isArray(message) ? message : [message]) this.receive(m)
    })
    lines.on('close', () => process.exit(0))
  }

  /**
   * Sends a server→client request with the given id and waits for the answer. Ids must be
   * unique among requests still outstanding (JSON-RPC §4): a fixed key reused while its first
   * request waits fails fast. Reuse after the first one is answered is allowed, since ids
   * need only be unique while outstanding.
   * @throws ClientError the client's error response
   * @throws RpcError `internal` for an id already outstanding, or when the call was cancelled
   */
  request(id: RequestId, method: string, params: Params, signal?: AbortSignal): Promise<unknown> {
    if (this.outstanding.has(id)) {
      return Promise.reject(
        new RpcError(
          CODE.internal,
          `a request with id ${JSON.stringify(id)} is already outstanding`,
        ),
      )
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        this.outstanding.delete(id)
        signal?.removeEventListener('abort', abort)
      }
      const abort = () => {
        done()
        // MCP cancellation: tell the client we no longer wait for this answer.
        this.notify('notifications/cancelled', {
          requestId: id,
          reason: 'the tool call was cancelled',
        })
        reject(new RpcError(CODE.internal, 'cancelled'))
      }
      if (signal?.aborted) return reject(new RpcError(CODE.internal, 'cancelled'))
      signal?.addEventListener('abort', abort, { once: true })
      this.outstanding.set(id, {
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
      })
      this.write({ jsonrpc: '2.0', id, method, params })
    })
  }

  notify(method: string, params: Params): void {
    this.write({ jsonrpc: '2.0', method, params })
  }

  /** A notifications/message, unless logging/setLevel asked for a more severe minimum. */
  log(level: LoggingLevel, data: unknown, logger = 'conformance'): void {
    if (this.level !== undefined && LEVELS.indexOf(level) < LEVELS.indexOf(this.level)) return
    this.notify('notifications/message', { level, logger, data })
  }

  private receive(m: unknown): void {
    if (typeof m !== 'object' || m === null) return
    const { id, method, params, result, error } = m as {
      id?: RequestId
      method?: unknown
      params?: Params
      result?: unknown
      error?: { code?: number; message?: string; data?: unknown }
    }
    if (typeof method === 'string') {
      if (id === undefined) return this.notification(method, params ?? {})
      return void this.dispatch(id, method, params ?? {})
    }
    if (id === undefined) return
    const waiting = this.outstanding.get(id)
    if (waiting === undefined)
      return void process.stderr.write(
        `conformance: a reply to no outstanding request (id ${JSON.stringify(id)}) was dropped\n`,
      )
    if (error !== undefined)
      waiting.reject(
        new ClientError(error.code ?? CODE.internal, error.message ?? 'error', error.data),
      )
    else waiting.resolve(result)
  }

  private notification(method: string, params: Params): void {
    if (method === 'notifications/cancelled') {
      const id = params.requestId
      if (typeof id === 'string' || typeof id === 'number') this.running.get(id)?.abort()
    }
    // notifications/initialized and notifications/roots/list_changed need nothing from us.
  }

  private async dispatch(id: RequestId, method: string, params: Params): Promise<void> {
    const handler = this.handlers[method]
    if (handler === undefined)
      return this.write({
        jsonrpc: '2.0',
        id,
        error: { code: CODE.methodNotFound, message: `Method not found: ${method}` },
      })
    const controller = new AbortController()
    this.running.set(id, controller)
    const meta = params._meta as { progressToken?: RequestId } | undefined
    try {
      const result = await handler({
        params,
        progressToken: meta?.progressToken,
        signal: controller.signal,
        peer: this,
      })
      // MCP cancellation: a cancelled request gets no response.
      if (!controller.signal.aborted) this.write({ jsonrpc: '2.0', id, result })
    } catch (err) {
      if (controller.signal.aborted) return
      const e =
        err instanceof RpcError
          ? err
          : new RpcError(CODE.internal, err instanceof Error ? err.message : String(err))
      this.write({
        jsonrpc: '2.0',
        id,
        error: {
          code: e.code,
          message: e.message,
          ...(e.data === undefined ? {} : { data: e.data }),
        },
      })
    } finally {
      this.running.delete(id)
    }
  }

  private write(message: object): void {
    process.stdout.write(`${JSON.stringify(message)}\n`)
  }
}
