import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { ServerConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import type { Channel } from './channel.js'
import { spawnChild, type Child } from './child.js'
import { RPC } from './errors.js'
import { initializeChild, initializeTimeout, refusal, type InitResult } from './handshake.js'
import { envelope, rpcError, type RequestId } from './jsonrpc.js'
import { Backoff } from './lifecycle.js'
import type { SharedCrashes } from './shared-crashes.js'
import { ownerKey } from './session.js'
import { toolsWithoutTasks } from './tasks.js'

/**
 * Requests cancelled at the process (or left by a closed session) within requestTimeout,
 * remembered at most per process: they may still be running when it exits (the oldest is
 * forgotten first). Not a setting: a bound on memory, far above the requests one process runs.
 */
const CANCELLED_REMEMBERED = 1024

/** A session's request on its way through the shared process. */
export interface Pending {
  channel: Channel
  id: RequestId
  token: RequestId | undefined
  backendToken?: string
  /** A `tools/list`: its tools lose `taskSupport` (tasks are not offered in shared mode). */
  tools?: true
}

/**
 * One shared process: started and initialized by the gateway, restarted with backoff when it
 * dies. Routes what the process sends to the sessions (channels) it belongs to.
 */
export class Replica {
  child: Child | undefined
  init: InitResult | undefined
  readonly channels = new Set<Channel>()
  readonly pending = new Map<string, Pending>()
  readonly progress = new Map<string, Pending>()
  readonly subscribers = new Map<string, Set<Channel>>()
  /** Requests cancelled at this process lately, by backend id: who sent them, when (oldest first). */
  readonly cancelled = new Map<string, { principal: Principal; at: number }>()
  private seq = 0
  /** When the running process became ready (the injected clock), to tell a stable run. */
  private readyAt: number | undefined
  private readonly now: () => number
  private readonly backoff: Backoff
  private closed = false
  private waiters: (() => void)[] = []
  private retry: NodeJS.Timeout | undefined

  constructor(
    readonly config: ServerConfig,
    readonly log: Logger,
    readonly o: {
      /** The server's name (what its exits are charged to subjects under). */
      server: string
      /** Charges each exit to the subjects in flight, and refuses those past their allowance. */
      crashes?: SharedCrashes
      /** The clock a run is measured with against respawnStableAfter (ms); default: monotonic. */
      now?: () => number
      /** Counts the process's log lines a rate limit suppressed. */
      metrics?: Metrics
    },
  ) {
    this.backoff = new Backoff({
      first: config.respawnBackoff,
      max: config.respawnBackoffMax,
      stableAfter: config.respawnStableAfter,
    })
    this.now = o.now ?? (() => performance.now())
  }

  /** A request the process may still be running though nobody waits for it any more. */
  cancel(id: string, principal: Principal): void {
    const now = this.now()
    const timeout = this.config.requestTimeout
    // Those past requestTimeout no longer count (onExit): forgotten, oldest first.
    for (const [key, c] of this.cancelled) {
      if (timeout <= 0 || now - c.at <= timeout) break
      this.cancelled.delete(key)
    }
    this.cancelled.set(id, { principal, at: now })
    if (this.cancelled.size > CANCELLED_REMEMBERED)
      this.cancelled.delete(this.cancelled.keys().next().value!)
  }

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
      child.onsuppressed = (source, lines) =>
        this.o.metrics?.logLinesSuppressed.inc({ server: this.o.server, source }, lines)
      // Closed while it was starting: nothing may outlive the gateway.
      if (this.closed) return void (await child.close())
      child.onexit = () => this.onExit()
      this.init = await initializeChild(child, initializeTimeout(this.config))
      if (this.closed) return void (await child.close())
      child.onmessage = (m) => this.fromServer(m)
      // Not a reset of the backoff yet: that waits until this process has served
      // respawnStableAfter (onExit), or a client crashing it at once would restart it every
      // respawnBackoff and end everyone's sessions each time.
      this.readyAt = this.now()
      this.log.info(
        { pid: child.pid, protocolVersion: this.init.protocolVersion },
        'shared server process ready',
      )
      for (const w of this.waiters.splice(0)) w()
    } catch (err) {
      this.log.error(
        { err: { message: (err as Error).message } },
        'shared server process failed to start',
      )
      await this.child?.close()
      this.child = undefined
      this.restartLater()
    }
  }

  private fromServer(message: JSONRPCMessage): void {
    const env = envelope(message)
    if (env.kind === 'response') {
      const p = this.pending.get(String(env.id))
      if (p === undefined) {
        // A cancelled request the process finished anyway: dropped, and still counted in
        // onExit (the cancel it answered after may be what makes it exit).
        if (this.cancelled.has(String(env.id))) return
        return this.child?.warn({}, 'shared server replied to no pending request; dropped')
      }
      this.pending.delete(String(env.id))
      p.channel.settled(p)
      const result = (message as { result?: unknown }).result
      const out = p.tools && result !== undefined ? { result: toolsWithoutTasks(result) } : {}
      p.channel.deliver({ ...message, id: p.id, ...out } as JSONRPCMessage)
      return
    }
    if (env.kind === 'request') {
      // Server→client requests are not offered in shared mode: refuse at once, so it does not wait.
      void this.child?.send(refusal(env.id, env.method)).catch(() => {})
      return
    }
    if (env.kind !== 'notification') return
    const params = env.params
    switch (env.method) {
      case 'notifications/progress': {
        const p = this.progress.get(String(params?.progressToken))
        if (p)
          p.channel.deliver({
            ...message,
            params: { ...params, progressToken: p.token },
          } as JSONRPCMessage)
        return
      }
      case 'notifications/cancelled': {
        const p = this.pending.get(String(params?.requestId))
        if (p)
          p.channel.deliver({
            ...message,
            params: { ...params, requestId: p.id },
          } as JSONRPCMessage)
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
      // A log line (`notifications/message`) names no request: the one request in flight when it
      // arrives need not be the one it is about (work the process goes on with for a closed
      // session, a line of no request at all), so it goes to no session, never to a guessed one.
      default:
        return
    }
  }

  private onExit(): void {
    this.init = undefined
    if (this.closed) return
    // Exited before it was ready: boot() hears it from initialize and restarts it (once).
    if (this.readyAt === undefined) return
    const ran = this.now() - this.readyAt
    this.readyAt = undefined
    this.log.warn(
      { pending: this.pending.size, sessions: this.channels.size, ranMs: Math.round(ran) },
      'shared server process exited; its sessions end and it restarts',
    )
    // Who had requests running on it (shared-crashes.ts says why each is charged a share).
    const blamed = new Map<string, Principal>()
    for (const p of this.pending.values())
      blamed.set(ownerKey(p.channel.principal), p.channel.principal)
    // A cancelled request counts for requestTimeout after its cancel (as long as the gateway
    // lets any request run), answered or not: an SDK server never answers one (MCP: it SHOULD
    // NOT), so without a bound whoever cancelled a call (or timed out, or closed a session) once
    // was charged for any exit of the process, however much later; and a process may answer
    // it just as the cancel comes, then exit handling the cancel.
    const timeout = this.config.requestTimeout
    const now = this.now()
    for (const { principal, at } of this.cancelled.values())
      if (timeout <= 0 || now - at <= timeout) blamed.set(ownerKey(principal), principal)
    this.cancelled.clear()
    this.o.crashes?.crashed(this.o.server, [...blamed.values()])
    this.backoff.ran(ran)
    for (const [, p] of this.pending)
      p.channel.deliver(rpcError(p.id, RPC.connectionClosed, 'the MCP server process exited'))
    this.pending.clear()
    this.progress.clear()
    this.subscribers.clear()
    for (const c of [...this.channels]) c.lost()
    this.restartLater()
  }

  private restartLater(): void {
    if (this.closed) return
    const delay = this.backoff.next()
    this.log.info({ inMs: delay }, 'shared server process restarting')
    this.retry = setTimeout(() => void this.boot(), delay).unref()
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retry)
    // Requests still in flight after the grace get an answer, not a cut connection.
    for (const [, p] of this.pending)
      p.channel.deliver(rpcError(p.id, RPC.connectionClosed, 'the gateway is shutting down'))
    this.pending.clear()
    this.cancelled.clear()
    await this.child?.close()
    for (const w of this.waiters.splice(0)) w()
  }
}
