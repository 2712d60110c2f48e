import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Principal } from '../auth/principal.js'
import type { Child } from './child.js'
import { BridgeError, exposedError } from './errors.js'
import { envelope, rpcError, type RequestId } from './jsonrpc.js'
import { initializeReply } from './handshake.js'
import { markRefused } from './refused.js'
import { isOwn, type Pending, type Replica } from './replica.js'
import { noTasks, TASK_METHODS, taskless, withoutTasksCapability } from './tasks.js'

type Params = Record<string, unknown> | undefined

/**
 * One session's share of a replica, shaped like its own process. Task ids are the process's,
 * not a session's: tasks are not offered here (tasks.ts), so no session reaches another's.
 */
export class Channel implements Child {
  readonly pid: number
  readonly exited: Promise<void>
  onmessage?: (message: JSONRPCMessage) => void
  onexit?: () => void
  private readonly ids = new Map<RequestId, string>()
  private readonly subscriptions = new Set<string>()
  private markExited!: () => void
  private open = true
  /**
   * The process this session is on: the replica's when it attached. Once that one died, the
   * replica's next one is not the session's (it ends with its process).
   */
  readonly backend: Child | undefined

  constructor(
    private readonly replica: Replica,
    /** Whose session (or sessionless lane) this is: what the process's exits are charged to. */
    readonly principal: Principal,
  ) {
    this.backend = replica.child
    this.pid = this.backend?.pid ?? 0
    this.exited = new Promise((resolve) => (this.markExited = resolve))
    replica.channels.add(this)
  }

  get alive(): boolean {
    return this.open && this.backend?.alive === true
  }

  /** The shared process's own lines belong to no single session: they stay under its logger. */
  retag(): void {}

  /** Under the shared process's logger and budget: what it writes is the process's, not a session's. */
  warn(fields: object, msg: string): void {
    this.backend?.warn(fields, msg)
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (!this.alive) throw new Error('the shared server process is not running')
    const env = envelope(message)
    const r = this.replica
    if (env.kind === 'request') {
      const params = env.params
      // Its user crashed the process too often (shared-crashes.ts): refused here too, for a
      // session another replica still serves (a new one is refused before it attaches). What
      // is answered here without the process (the handshake a lane's start sends) is not. The
      // answer is marked: whoever relays it audits the refusal, once (refused.ts). The gateway's
      // own (`asOwn`) is nobody's request: never refused for a user.
      if (env.method !== 'initialize' && env.method !== 'logging/setLevel' && !isOwn(message))
        try {
          r.o.crashes?.check(r.o.server, this.principal, env.method)
        } catch (err) {
          if (err instanceof BridgeError) return this.refuse(env.id, exposedError(err), err)
          throw err
        }
      switch (env.method) {
        case 'initialize': {
          const init = { ...r.init!, capabilities: withoutTasksCapability(r.init!.capabilities) }
          queueMicrotask(() => this.deliver(initializeReply(env.id, init, params)))
          return
        }
        case 'logging/setLevel':
          // The level of a shared process is everyone's: it is not the session's to change.
          return this.answer(env.id, {})
        case 'resources/subscribe': {
          const uri = String(params?.uri)
          // Held here and in the one process for every user: a session holds a bounded number.
          const max = r.config.maxSubscriptions
          if (!this.subscriptions.has(uri) && this.subscriptions.size >= max)
            return this.refuse(env.id, {
              code: -32000,
              message: `this session holds ${max} resource subscriptions, the most allowed; unsubscribe from one first`,
            })
          this.subscribe(uri, true)
          break
        }
        case 'resources/unsubscribe':
          this.subscribe(String(params?.uri), false)
          if (r.subscribers.has(String(params?.uri))) return this.answer(env.id, {})
          break
      }
      if (TASK_METHODS.has(env.method)) return this.refuse(env.id, noTasks(env.method))
      const id = r.nextId('s')
      const meta = params?._meta as Record<string, unknown> | undefined
      const token = meta?.progressToken as RequestId | undefined
      const p: Pending = { channel: this, id: env.id, token }
      if (isOwn(message)) p.own = true
      if (env.method === 'tools/list') p.tools = true
      r.pending.set(id, p)
      this.ids.set(env.id, id)
      // Asked for as a task, run as a plain call; a related task not passed on (tasks.ts).
      let outParams: Params = params && taskless(params)
      if (token !== undefined) {
        p.backendToken = r.nextId('p')
        r.progress.set(p.backendToken, p)
        const kept = outParams?._meta as Record<string, unknown>
        outParams = { ...outParams, _meta: { ...kept, progressToken: p.backendToken } }
      }
      // In flight once written (its bytes in the pipe), not before: one never written (its
      // stdin broke, or closed as it exited, with the write still waiting) is not charged for
      // the exit (shared-crashes.ts), nor counted as charged while it dies; the sender answers
      // the client.
      return this.backend!.send({ ...message, id, params: outParams } as JSONRPCMessage).then(
        () => {
          p.sent = true
          // Cancelled while its write waited: the process got it all the same, and may run it.
          if (p.dropped) r.cancel(id, this)
        },
        (err) => {
          if (r.pending.get(id) === p) {
            r.pending.delete(id)
            this.settled(p)
          }
          throw err
        },
      )
    }
    if (env.kind === 'notification') {
      if (env.method !== 'notifications/cancelled') return // initialized, roots changes: the gateway's business
      const id = this.ids.get(env.params?.requestId as RequestId)
      if (id === undefined) return
      // The process does not answer a cancelled request (MCP: it SHOULD NOT): forgotten now, or
      // it would be held (and cancelled again at the session's end) for as long as the session.
      const p = r.pending.get(id)
      r.pending.delete(id)
      if (p) this.drop(id, p)
      return this.backend!.send({
        ...message,
        params: { ...env.params, requestId: id },
      } as JSONRPCMessage)
    }
    // A response would answer a server→client request, which shared mode never relays.
  }

  /** A reply or notification for this session. */
  deliver(message: JSONRPCMessage): void {
    if (this.open) this.onmessage?.(message)
  }

  /** Forgets a request the process answered. */
  settled(p: Pending): void {
    this.ids.delete(p.id)
    if (p.backendToken !== undefined) this.replica.progress.delete(p.backendToken)
  }

  /**
   * Forgets request `id` (`p`), cancelled or left by its closing session: nobody waits for its
   * answer. The process may still run it: remembered for its exit (shared-crashes.ts) if it got
   * it, or once it does (its write still waiting now); one whose write fails never reached it,
   * and is not charged for the process's exit.
   */
  private drop(id: string, p: Pending): void {
    this.settled(p)
    // The gateway's own (`asOwn`) is nobody's, cancelled or not.
    if (p.own) return
    if (p.sent) this.replica.cancel(id, this)
    else p.dropped = true
  }

  /** The process died: this session ends. */
  lost(): void {
    if (!this.open) return
    this.open = false
    this.replica.channels.delete(this)
    this.markExited()
    this.onexit?.()
  }

  async close(): Promise<void> {
    if (!this.open) return
    this.open = false
    const r = this.replica
    r.channels.delete(this)
    for (const uri of [...this.subscriptions]) {
      this.subscribe(uri, false)
      // The last subscriber is gone: the process may stop watching (its reply goes nowhere).
      if (!r.subscribers.has(uri)) this.forward('resources/unsubscribe', { uri })
    }
    // Requests still in flight are of no use to anyone now: cancel them at the process.
    for (const id of [...this.ids.values()]) {
      const p = r.pending.get(id)
      r.pending.delete(id)
      if (p) this.drop(id, p)
      void this.backend
        ?.send({
          jsonrpc: '2.0',
          method: 'notifications/cancelled',
          params: { requestId: id, reason: 'session closed' },
        } as JSONRPCMessage)
        .catch(() => {})
    }
    this.ids.clear()
    this.markExited()
  }

  /** A request of the gateway's own on behalf of this (closing) session; its reply is dropped. */
  private forward(method: string, params: Params): void {
    const r = this.replica
    const id = r.nextId('s')
    const p: Pending = { channel: this, id, token: undefined, own: true }
    r.pending.set(id, p)
    void this.backend?.send({ jsonrpc: '2.0', id, method, params } as JSONRPCMessage).then(
      () => {
        p.sent = true
      },
      () => r.pending.delete(id),
    )
  }

  private answer(id: RequestId, result: unknown): Promise<void> {
    queueMicrotask(() => this.deliver({ jsonrpc: '2.0', id, result } as JSONRPCMessage))
    return Promise.resolve()
  }

  /** Answers `id` with `error` in the process's place; `limit`: the limit that refused it. */
  private refuse(
    id: RequestId,
    error: { code: number; message: string; data?: unknown },
    limit?: BridgeError,
  ): Promise<void> {
    const reply = rpcError(id, error.code, error.message, error.data)
    if (limit !== undefined) markRefused(reply, limit)
    queueMicrotask(() => this.deliver(reply))
    return Promise.resolve()
  }

  private subscribe(uri: string, on: boolean): void {
    const subs = this.replica.subscribers
    if (on) {
      this.subscriptions.add(uri)
      subs.set(uri, (subs.get(uri) ?? new Set()).add(this))
    } else {
      this.subscriptions.delete(uri)
      subs.get(uri)?.delete(this)
      if (subs.get(uri)?.size === 0) subs.delete(uri)
    }
  }
}
