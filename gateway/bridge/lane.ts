import { randomBytes } from 'node:crypto'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Hold } from './bounds.js'
import type { Child } from './child.js'
import { NO_CLIENT, type InitResult } from './handshake.js'
import { envelope, type Envelope, type RequestId } from './jsonrpc.js'
import { refuseServerRequest } from './lifecycle.js'
import { capabilityOf, refuseUndeclared } from './modern-call.js'
import { RequestTimeouts } from './timeouts.js'

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
  /**
   * Capabilities a server→client request needed that the user's client did not declare: an
   * error the request then ends with is answered as that missing capability (-32021).
   */
  readonly refused?: Set<string>
}

/**
 * One gateway-initialized process serving sessionless (2026-07-28) requests of one principal
 * on one server: one request at a time, or several plain ones. While a request (and its
 * multi-round-trip rounds) holds the lane alone, every message of the process is that
 * request's, so progress, logs and server→client requests are correlated exactly, with no
 * guessing. Plain requests (modern-call.ts `isPlain`) need no correlation but their replies'
 * own ids: several share the lane, each reply goes to the request of its id, notifications go
 * to nobody, and a server→client request is refused (as it would be for any of them).
 */
export class Lane implements Hold {
  readonly id = randomBytes(9).toString('base64url')
  /** The request holding the lane alone, if any. */
  user: LaneUser | undefined
  /** The plain requests sharing the lane (never while `user` holds it). */
  readonly plain = new Set<LaneUser>()
  /**
   * The process asked a client something during plain use (a server→client request other than
   * ping): it serves one plain request at a time from then on, so what it asks next can only be
   * that request's, and is answered as when it ran alone.
   */
  asked = false
  /** Who hears the reply to each request sent during plain use, by the id it was sent with. */
  private readonly routes = new Map<RequestId, LaneUser>()
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
  /** Started with credentials the user has changed since: ended once released (its subscriptions with it). */
  stale = false
  /**
   * Ran a call that ended without the process's answer (its client gone, timed out): the
   * process may still be at it, and its progress, logs and questions would reach a request
   * holding the lane alone. Only plain requests (which hear nothing but their answers) may
   * still join; it ends once released by all.
   */
  abandoned = false
  private seq = 0
  /** Its requests' timeouts, on one timer (timeouts.ts); released when the lane is forgotten. */
  readonly timeouts = new RequestTimeouts()

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
    return this.user !== undefined || this.plain.size > 0
  }

  /** During plain use: the reply with `id` goes to `user`. */
  route(id: RequestId, user: LaneUser): void {
    this.routes.set(id, user)
  }

  unroute(id: RequestId): void {
    this.routes.delete(id)
  }

  /** A plain request's share ends: it hears nothing more. */
  leave(user: LaneUser): boolean {
    if (!this.plain.delete(user)) return false
    for (const [id, u] of this.routes) if (u === user) this.routes.delete(id)
    return true
  }

  /** Everyone using the lane, forgotten (the process is gone): each is to hear so. */
  takeUsers(): Set<LaneUser> {
    const users = new Set([...this.plain, ...this.routes.values()])
    if (this.user !== undefined) users.add(this.user)
    this.user = undefined
    this.plain.clear()
    this.routes.clear()
    return users
  }

  private fromServer(message: JSONRPCMessage): void {
    const env = envelope(message)
    if (env.kind === 'notification' && isServerEvent(env.method)) {
      this.emit({ server: this.server, owner: this.owner, method: env.method, params: env.params })
      return
    }
    if (this.user !== undefined) {
      if (this.user !== HELD) this.user.fromServer(message)
      return
    }
    if (this.plain.size > 0) return this.toPlain(message, env)
    // Nobody is waiting: a server→client request gets a refusal so the process does not hang.
    if (env.kind === 'request')
      void this.child.send(refuseServerRequest(env.id, env.method, NO_CLIENT)).catch(() => {})
  }

  private toPlain(message: JSONRPCMessage, env: Envelope): void {
    if (env.kind === 'response') return this.routes.get(env.id)?.fromServer(message)
    // Progress and logs nobody asked for (a plain request names no token, no level).
    if (env.kind !== 'request') return
    if (env.method !== 'ping') this.asked = true
    // One plain request running: the question is its own, refused there and remembered (so a
    // failure that follows is reported as the missing capability, as when it ran alone).
    if (this.plain.size === 1 && this.routes.size === 1) {
      const [only] = this.routes.values()
      if (this.plain.has(only!)) return only!.fromServer(message)
    }
    // Several share the process: which one asked cannot be told from stdio. None of them declared
    // the capability (or it would not be plain), so each is answered as if it had asked: one that
    // then ends in an error gets -32021, as when it ran alone; a success passes unchanged.
    const capability = capabilityOf(env.method)
    if (capability !== undefined) for (const user of this.plain) user.refused?.add(capability)
    void this.child.send(refuseUndeclared(env.id, env.method)).catch(() => {})
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
