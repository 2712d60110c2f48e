import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { ServerConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import type { Channel } from './channel.js'
import { blotted, spawnChild, type Child } from './child.js'
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

/** Messages the gateway sends a process on its own, no user's request (`asOwn`). */
const own = new WeakSet<object>()

/**
 * Marks `message` as the gateway's own (a subscription given back as its last holder went): on a
 * shared process it is in flight for no subject, and never refused for one (shared-crashes.ts).
 */
export function asOwn<M extends object>(message: M): M {
  own.add(message)
  return message
}

/** Whether `message` is the gateway's own (`asOwn`). */
export function isOwn(message: object): boolean {
  return own.has(message)
}

/** A session's request on its way through the shared process. */
export interface Pending {
  channel: Channel
  id: RequestId
  token: RequestId | undefined
  backendToken?: string
  /** A `tools/list`: its tools lose `taskSupport` (tasks are not offered in shared mode). */
  tools?: true
  /** Written to the process (its write done): in flight from then on, for `blamed`. */
  sent?: true
  /**
   * The gateway's own request (a closing session's `resources/unsubscribe`, `asOwn`): in flight
   * for no subject, so its session's user is never charged for an exit it is in flight at.
   */
  own?: true
  /**
   * Cancelled (or left by a closed session) before its write was done: remembered as cancelled
   * (`Replica.cancel`) once the write is done, never if it fails (the process never got it).
   */
  dropped?: true
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
  /**
   * Requests cancelled lately, by backend id: who sent them, to which process, when (oldest
   * first).
   */
  readonly cancelled = new Map<
    string,
    { principal: Principal; child: Child | undefined; at: number }
  >()
  /**
   * The processes that were ready and have not ended yet, with when each died (it exited, or its
   * stdin broke), if it did: a dead one is read to the end while its replacement starts.
   */
  private readonly runs = new Map<Child, { diedAt?: number }>()
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

  /**
   * A request `channel`'s process may still be running though nobody waits for it any more:
   * one it received (its write done), never one still waiting to be written (Channel).
   */
  cancel(id: string, channel: Channel): void {
    const now = this.now()
    const timeout = this.config.requestTimeout
    // Those past requestTimeout no longer count (onExit): forgotten, oldest first.
    for (const [key, c] of this.cancelled) {
      if (timeout <= 0 || now - c.at <= timeout) break
      this.cancelled.delete(key)
    }
    this.cancelled.set(id, { principal: channel.principal, child: channel.backend, at: now })
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
    let started: Child | undefined
    try {
      const child = await spawnChild(this.config, this.log)
      started = child
      this.child = child
      child.onsuppressed = (source, lines) =>
        this.o.metrics?.logLinesSuppressed.inc({ server: this.o.server, source }, lines)
      // Closed while it was starting: nothing may outlive the gateway.
      if (this.closed) return void (await child.close())
      child.ondead = () => this.onDead(child)
      child.onexit = () => this.onExit(child)
      this.init = await initializeChild(child, initializeTimeout(this.config))
      if (this.closed) return void (await child.close())
      // Its initialize result came, then it exited (or its stdin broke): not ready, started again.
      if (!child.alive) throw new Error('the process exited after its initialize result')
      child.onmessage = (m) => this.fromServer(child, m)
      this.runs.set(child, {})
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
      // Its own error text may quote what it inherited (inheritEnv): blotted like its stderr.
      const message = (err as Error).message
      this.log.error(
        { err: { message: started ? blotted(started, message) : message } },
        'shared server process failed to start',
      )
      await started?.close()
      if (this.child === started) {
        this.child = undefined
        this.init = undefined
      }
      this.restartLater()
    }
  }

  /** A message of `child`, the replica's process or one that died and is read to the end. */
  private fromServer(child: Child, message: JSONRPCMessage): void {
    const env = envelope(message)
    // Its own requests only: ids are the replica's, so a dead process's stdout (read to the
    // end while its replacement serves) could name a request on the replacement.
    const own = (p: Pending | undefined) => (p?.channel.backend === child ? p : undefined)
    if (env.kind === 'response') {
      const p = own(this.pending.get(String(env.id)))
      if (p === undefined) {
        // A cancelled request the process finished anyway: dropped, and still counted in
        // onExit (the cancel it answered after may be what makes it exit).
        if (this.cancelled.has(String(env.id))) return
        return child.warn({}, 'shared server replied to no pending request; dropped')
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
      void child.send(refusal(env.id, env.method)).catch(() => {})
      return
    }
    if (env.kind !== 'notification') return
    const params = env.params
    switch (env.method) {
      case 'notifications/progress': {
        const p = own(this.progress.get(String(params?.progressToken)))
        if (p)
          p.channel.deliver({
            ...message,
            params: { ...params, progressToken: p.token },
          } as JSONRPCMessage)
        return
      }
      case 'notifications/cancelled': {
        const p = own(this.pending.get(String(params?.requestId)))
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
        for (const c of this.channels) if (c.backend === child) c.deliver(message)
        return
      case 'notifications/resources/updated':
        for (const c of this.subscribers.get(String(params?.uri)) ?? [])
          if (c.backend === child) c.deliver(message)
        return
      // A log line (`notifications/message`) names no request: the one request in flight when it
      // arrives need not be the one it is about (work the process goes on with for a closed
      // session, a line of no request at all), so it goes to no session, never to a guessed one.
      default:
        return
    }
  }

  /**
   * The ready process died (exited, or its stdin broke): handed out no more from now (`ready`),
   * and its replacement starts after the backoff. Its sessions end, and its exit is charged,
   * once its stdout is read to the end (onExit): a reply it wrote before it exited still reaches
   * its caller, and a request it answered is not in flight at its exit.
   */
  private onDead(child: Child): void {
    const run = this.runs.get(child)
    // Not ready yet: boot() hears of it from initialize, and starts it again.
    if (run === undefined || run.diedAt !== undefined) return
    run.diedAt = this.now()
    if (child === this.child) this.init = undefined
    if (this.closed) return
    const ran = run.diedAt - (this.readyAt ?? run.diedAt)
    this.readyAt = undefined
    this.log.warn(
      { pid: child.pid, sessions: this.channels.size, ranMs: Math.round(ran) },
      'shared server process exited; its sessions end and it restarts',
    )
    this.backoff.ran(ran)
    // Counted against its culprit from now: its replacement may start before this exit is
    // charged (once its stdout is read, up to stopGrace later).
    this.o.crashes?.dying(child, this.o.server, [...this.blamed(child, run.diedAt, false).values()])
    this.restartLater()
  }

  /**
   * The subjects with requests running on `child` (shared-crashes.ts says why each is charged a
   * share), cancelled ones counted until requestTimeout after `diedAt`; `forget`: its cancelled
   * ones are forgotten too (its exit is charged now).
   */
  private blamed(child: Child, diedAt: number, forget: boolean): Map<string, Principal> {
    const blamed = new Map<string, Principal>()
    // Requests written: one whose write was still waiting when the process went never reached it.
    for (const p of this.pending.values())
      if (p.sent && !p.own && p.channel.backend === child)
        blamed.set(ownerKey(p.channel.principal), p.channel.principal)
    // A cancelled request counts for requestTimeout after its cancel (as long as the gateway
    // lets any request run), answered or not: an SDK server never answers one (MCP: it SHOULD
    // NOT), so without a bound whoever cancelled a call (or timed out, or closed a session) once
    // was charged for any exit of the process, however much later; and a process may answer
    // it just as the cancel comes, then exit handling the cancel. Measured to its death.
    const timeout = this.config.requestTimeout
    for (const [id, c] of this.cancelled) {
      if (c.child !== child) continue
      if (timeout <= 0 || diedAt - c.at <= timeout) blamed.set(ownerKey(c.principal), c.principal)
      if (forget) this.cancelled.delete(id)
    }
    return blamed
  }

  /** A process that was ready is gone, its stdout read to the end: its sessions end, its exit is charged. */
  private onExit(child: Child): void {
    const run = this.runs.get(child)
    if (run === undefined) return
    this.runs.delete(child)
    this.o.crashes?.settled(child)
    if (this.closed) return
    const mine = (p: Pending) => p.channel.backend === child
    const blamed = this.blamed(child, run.diedAt ?? this.now(), true)
    // Once per process: this is its one end.
    this.o.crashes?.crashed(this.o.server, [...blamed.values()])
    for (const [id, p] of this.pending) {
      if (!mine(p)) continue
      this.pending.delete(id)
      p.channel.deliver(rpcError(p.id, RPC.connectionClosed, 'the MCP server process exited'))
    }
    for (const [token, p] of this.progress) if (mine(p)) this.progress.delete(token)
    for (const [uri, subs] of this.subscribers) {
      for (const c of subs) if (c.backend === child) subs.delete(c)
      if (subs.size === 0) this.subscribers.delete(uri)
    }
    for (const c of [...this.channels]) if (c.backend === child) c.lost()
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
    // Dead ones still read to the end too: their stdout is let go within stopGrace.
    for (const c of this.runs.keys()) this.o.crashes?.settled(c)
    const children = new Set([...this.runs.keys(), ...(this.child ? [this.child] : [])])
    await Promise.all([...children].map((c) => c.close()))
    for (const w of this.waiters.splice(0)) w()
  }
}
