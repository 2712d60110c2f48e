import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { spawnChild, type Child } from './child.js'
import { BridgeError, RPC } from './errors.js'
import { envelope, rpcError, type RequestId } from './jsonrpc.js'
import { DEFAULT_RESPAWN_BACKOFF_MAX_MS, DEFAULT_RESPAWN_BACKOFF_MS } from './pool.js'

/** Session-era protocol versions a shared process's sessions may negotiate, newest first. */
export const SHARED_PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26']
/** How long a new session waits for a shared process that is (re)starting, in ms. */
export const DEFAULT_SHARED_READY_WAIT_MS = 10_000

type Params = Record<string, unknown> | undefined
interface InitResult { protocolVersion: string; [key: string]: unknown }
interface Pending { channel: Channel; id: RequestId; token: RequestId | undefined; backendToken?: string }

/**
 * One long-lived process (per replica) serving every session of a `shared` server. The
 * gateway initializes it once with no client capabilities, so it never asks for sampling,
 * elicitation or roots; each session's own `initialize` is answered from that result with
 * the version the session asked for when the gateway speaks it. Request ids and progress
 * tokens are rewritten so replies, progress and cancellations reach exactly their session;
 * list-changed notifications go to every session, resource updates to subscribers only.
 * When the process dies, its requests in flight fail, its sessions end (clients get 404 and
 * initialize again) and it restarts with exponential backoff.
 */
export class SharedServer {
  private readonly replicas: Replica[]

  constructor(o: { name: string; config: ServerConfig; log: Logger }) {
    this.replicas = Array.from({ length: o.config.replicas }, (_, i) => new Replica(o.config, o.log.child({ replica: i })))
  }

  /** Starts every replica (in the background; sessions wait for one to be ready). */
  start(): void {
    for (const r of this.replicas) r.start()
  }

  /** Sessions attached across replicas. */
  get sessions(): number {
    return this.replicas.reduce((n, r) => n + r.channels.size, 0)
  }

  /**
   * A session's view of the shared process, on the least-loaded ready replica.
   * @throws BridgeError `spawn_failed` when no replica becomes ready in time
   */
  async attach(log: Logger): Promise<Child> {
    const deadline = Date.now() + DEFAULT_SHARED_READY_WAIT_MS
    for (;;) {
      const ready = this.replicas.filter((r) => r.ready)
      if (ready.length > 0) {
        const replica = ready.reduce((a, b) => (b.channels.size < a.channels.size ? b : a))
        return new Channel(replica, log)
      }
      if (Date.now() > deadline) throw new BridgeError('spawn_failed', 'the MCP server is not available; retry later')
      await Promise.race(this.replicas.map((r) => r.readyOnce()))
        .then(() => undefined)
        .catch(() => undefined)
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.close()))
  }
}

class Replica {
  child: Child | undefined
  init: InitResult | undefined
  readonly channels = new Set<Channel>()
  readonly pending = new Map<string, Pending>()
  readonly progress = new Map<string, Pending>()
  readonly subscribers = new Map<string, Set<Channel>>()
  private seq = 0
  private backoff = 0
  private closed = false
  private waiters: (() => void)[] = []
  private retry: NodeJS.Timeout | undefined

  constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
  ) {}

  get ready(): boolean {
    return this.child?.alive === true && this.init !== undefined
  }

  readyOnce(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  nextId(prefix: string): string {
    return `${prefix}${(this.seq++).toString(36)}`
  }

  start(): void {
    void this.boot()
  }

  private async boot(): Promise<void> {
    try {
      const child = await spawnChild(this.config, this.log)
      this.child = child
      child.onmessage = (m) => this.fromServer(m)
      child.onexit = () => this.onExit()
      const id = this.nextId('init')
      const result = new Promise<InitResult>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no initialize result')), this.config.requestTimeout || 30_000)
        this.initWaiter = (m) => {
          clearTimeout(timer)
          const r = m as { result?: InitResult; error?: { message?: string } }
          if (r.result) resolve(r.result)
          else reject(new Error(`initialize failed: ${r.error?.message}`))
        }
        this.initId = id
      })
      await child.send({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: SHARED_PROTOCOL_VERSIONS[0], capabilities: {}, clientInfo: { name: 'mcp-edge', version: '0.1.0' } } } as JSONRPCMessage)
      this.init = await result
      await child.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage)
      this.backoff = 0
      this.log.info({ pid: child.pid, protocolVersion: this.init.protocolVersion }, 'shared server process ready')
      for (const w of this.waiters.splice(0)) w()
    } catch (err) {
      this.log.error({ err: { message: (err as Error).message } }, 'shared server process failed to start')
      await this.child?.close()
      this.child = undefined
      this.restartLater()
    }
  }

  private initId: string | undefined
  private initWaiter: ((m: JSONRPCMessage) => void) | undefined

  private fromServer(message: JSONRPCMessage): void {
    const env = envelope(message)
    if (env.kind === 'response') {
      if (env.id === this.initId) {
        this.initId = undefined
        this.initWaiter?.(message)
        return
      }
      const p = this.pending.get(String(env.id))
      if (p === undefined) return this.log.warn('shared server replied to no pending request; dropped')
      this.pending.delete(String(env.id))
      p.channel.settled(p)
      p.channel.deliver({ ...message, id: p.id } as JSONRPCMessage)
      return
    }
    if (env.kind === 'request') {
      // Server→client requests are not offered in shared mode: refuse at once, so it does not wait.
      void this.child?.send(rpcError(env.id, -32601, 'server-to-client requests are not available through a shared mcp-edge server')).catch(() => {})
      return
    }
    if (env.kind !== 'notification') return
    const params = env.params
    switch (env.method) {
      case 'notifications/progress': {
        const p = this.progress.get(String(params?.progressToken))
        if (p) p.channel.deliver({ ...message, params: { ...params, progressToken: p.token } } as JSONRPCMessage)
        return
      }
      case 'notifications/cancelled': {
        const p = this.pending.get(String(params?.requestId))
        if (p) p.channel.deliver({ ...message, params: { ...params, requestId: p.id } } as JSONRPCMessage)
        return
      }
      case 'notifications/tools/list_changed':
      case 'notifications/prompts/list_changed':
      case 'notifications/resources/list_changed':
        for (const c of this.channels) c.deliver(message)
        return
      case 'notifications/resources/updated':
        for (const c of this.subscribers.get(String(params?.uri)) ?? []) c.deliver(message)
        return
      case 'notifications/message': {
        // A log line belongs to a session only when one request is in flight; never broadcast.
        if (this.pending.size === 1) this.pending.values().next().value!.channel.deliver(message)
        return
      }
      default:
        return
    }
  }

  private onExit(): void {
    this.init = undefined
    if (this.closed) return
    this.log.warn({ pending: this.pending.size, sessions: this.channels.size }, 'shared server process exited; its sessions end and it restarts')
    for (const [, p] of this.pending) p.channel.deliver(rpcError(p.id, RPC.connectionClosed, 'the MCP server process exited'))
    this.pending.clear()
    this.progress.clear()
    this.subscribers.clear()
    for (const c of [...this.channels]) c.lost()
    this.restartLater()
  }

  private restartLater(): void {
    if (this.closed) return
    this.backoff = Math.min(this.backoff === 0 ? DEFAULT_RESPAWN_BACKOFF_MS : this.backoff * 2, DEFAULT_RESPAWN_BACKOFF_MAX_MS)
    this.log.info({ inMs: this.backoff }, 'shared server process restarting')
    this.retry = setTimeout(() => void this.boot(), this.backoff).unref()
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    await this.child?.close()
  }
}

/** One session's share of a replica, shaped like its own process. */
class Channel implements Child {
  readonly pid: number
  readonly exited: Promise<void>
  onmessage?: (message: JSONRPCMessage) => void
  onexit?: () => void
  private readonly ids = new Map<RequestId, string>()
  private readonly subscriptions = new Set<string>()
  private markExited!: () => void
  private open = true

  constructor(
    private readonly replica: Replica,
    private log: Logger,
  ) {
    this.pid = replica.child?.pid ?? 0
    this.exited = new Promise((resolve) => (this.markExited = resolve))
    replica.channels.add(this)
  }

  get alive(): boolean {
    return this.open && this.replica.child?.alive === true
  }

  retag(log: Logger): void {
    this.log = log
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (!this.alive) throw new Error('the shared server process is not running')
    const env = envelope(message)
    const r = this.replica
    if (env.kind === 'request') {
      const params = env.params
      switch (env.method) {
        case 'initialize':
          return this.answer(env.id, { ...r.init!, protocolVersion: negotiate(params?.protocolVersion, r.init!.protocolVersion) })
        case 'logging/setLevel':
          // The level of a shared process is everyone's: it is not the session's to change.
          return this.answer(env.id, {})
        case 'resources/subscribe':
          this.subscribe(String(params?.uri), true)
          break
        case 'resources/unsubscribe':
          this.subscribe(String(params?.uri), false)
          if (r.subscribers.has(String(params?.uri))) return this.answer(env.id, {})
          break
      }
      const id = r.nextId('s')
      const meta = params?._meta as Record<string, unknown> | undefined
      const token = meta?.progressToken as RequestId | undefined
      const p: Pending = { channel: this, id: env.id, token }
      r.pending.set(id, p)
      this.ids.set(env.id, id)
      let outParams: Params = params
      if (token !== undefined) {
        p.backendToken = r.nextId('p')
        r.progress.set(p.backendToken, p)
        outParams = { ...params, _meta: { ...meta, progressToken: p.backendToken } }
      }
      return r.child!.send({ ...message, id, params: outParams } as JSONRPCMessage)
    }
    if (env.kind === 'notification') {
      if (env.method !== 'notifications/cancelled') return // initialized, roots changes: the gateway's business
      const id = this.ids.get(env.params?.requestId as RequestId)
      if (id === undefined) return
      return r.child!.send({ ...message, params: { ...env.params, requestId: id } } as JSONRPCMessage)
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
    for (const uri of [...this.subscriptions]) this.subscribe(uri, false)
    // Requests still in flight are of no use to anyone now: cancel them at the process.
    for (const id of [...this.ids.values()]) {
      const p = r.pending.get(id)
      r.pending.delete(id)
      if (p) this.settled(p)
      void r.child?.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'session closed' } } as JSONRPCMessage).catch(() => {})
    }
    this.ids.clear()
    this.markExited()
  }

  private answer(id: RequestId, result: unknown): Promise<void> {
    queueMicrotask(() => this.deliver({ jsonrpc: '2.0', id, result } as JSONRPCMessage))
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

/** MCP lifecycle: the requested version if spoken, else the newest one (the process's). */
function negotiate(requested: unknown, fallback: string): string {
  return typeof requested === 'string' && SHARED_PROTOCOL_VERSIONS.includes(requested) ? requested : fallback
}
