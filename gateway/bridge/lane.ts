import { randomBytes } from 'node:crypto'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Hold } from './bounds.js'
import type { Child } from './child.js'
import { NO_CLIENT, type InitResult } from './handshake.js'
import { envelope } from './jsonrpc.js'
import { refuseServerRequest } from './lifecycle.js'

/**
 * What the gateway declares to a lane's process: every capability a sessionless client may
 * bring, since each request carries its own. A server→client request for one the request's
 * client did not declare is refused by the gateway, not relayed.
 */
export const LANE_CLIENT_CAPABILITIES = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: {},
}

/** Server events a lane's process emits outside any request, for `subscriptions/listen` streams. */
export type LaneEvent = {
  server: string
  owner: string
  method: string
  params: Record<string, unknown> | undefined
}

/** Whoever is using a lane right now: it sees every message the process sends. */
export interface LaneUser {
  fromServer(message: JSONRPCMessage): void
  /** The process exited while in use. */
  lost(): void
}

/**
 * One gateway-initialized process serving sessionless (2026-07-28) requests of one principal
 * on one server, one request at a time: while a request (and its multi-round-trip rounds)
 * holds the lane, every message of the process is that request's, so progress, logs and
 * server→client requests are correlated exactly, with no guessing.
 */
export class Lane implements Hold {
  readonly id = randomBytes(9).toString('base64url')
  user: LaneUser | undefined
  /** Held by a request waiting between rounds for the client's answers (input_required). */
  parked = false
  /**
   * `subscriptions/listen` streams whose resource subscriptions live on this process: it is
   * kept while they are open (requests still use it), and each hears if it ends.
   */
  readonly pins = new Set<() => void>()
  /** Resource subscriptions placed on this process, by URI, with the streams that share each. */
  readonly subscriptions = new Map<string, number>()
  lastUsed = Date.now()
  /** Started with credentials the user has changed since: ended once released. */
  stale = false
  private seq = 0

  constructor(
    /** Which lanes are interchangeable: server, principal, and under identityEnv the identity. */
    readonly key: string,
    readonly server: string,
    readonly owner: string,
    readonly child: Child,
    readonly init: InitResult,
    private readonly emit: (event: LaneEvent) => void,
  ) {
    child.onmessage = (message) => this.fromServer(message)
  }

  /** A JSON-RPC id unique on this lane, for a request the gateway sends the process. */
  nextId(): string {
    return `mcp-edge-${this.id}-${++this.seq}`
  }

  get busy(): boolean {
    return this.user !== undefined
  }

  private fromServer(message: JSONRPCMessage): void {
    const env = envelope(message)
    if (env.kind === 'notification' && isServerEvent(env.method)) {
      this.emit({ server: this.server, owner: this.owner, method: env.method, params: env.params })
      return
    }
    if (this.user !== undefined && this.user !== HELD) return this.user.fromServer(message)
    // Nobody is waiting: a server→client request gets a refusal so the process does not hang.
    if (env.kind === 'request')
      void this.child.send(refuseServerRequest(env.id, env.method, NO_CLIENT)).catch(() => {})
  }
}

function isServerEvent(method: string): boolean {
  return (
    method === 'notifications/tools/list_changed' ||
    method === 'notifications/prompts/list_changed' ||
    method === 'notifications/resources/list_changed' ||
    method === 'notifications/resources/updated'
  )
}

/** A held lane's user until its holder sets one: the process's messages have nobody to go to. */
export const HELD: LaneUser = { fromServer: () => {}, lost: () => {} }
