import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { rpcError, type RequestId } from './jsonrpc.js'

/*
 * The lifecycle pieces every owner of processes uses (the session registry, the warm pools,
 * the shared replicas, the sessionless lanes), written once: an idle reaper, a drain with a
 * deadline, a restart backoff, the gateway's own request and its reply, and the answer to a
 * server→client request nobody will relay.
 */

/**
 * How often an idle sweep runs at most, in ms. Not a setting: the operator's bounds are the
 * idle timeouts; this only caps how late past one a holder ends.
 */
export const REAP_INTERVAL_MS = 10_000
/** The fastest an idle sweep runs, in ms, whatever the idle timeouts (a pace, not a bound). */
const REAP_FLOOR_MS = 50
/** How often a drain looks whether work is still in flight, in ms (a pace: the grace is the bound). */
export const DRAIN_POLL_MS = 25

/** An idle sweep that runs while there is something to sweep. */
export interface Reaper {
  /** A holder was added: sweeps run from now on, until one finds nothing left to watch. */
  watch(): void
  /** Ends the sweeps for good (shutdown). */
  stop(): void
}

/**
 * Runs `sweep` every half of the shortest idle timeout in `idles` (0: none), at most every
 * `REAP_INTERVAL_MS`, so nothing idle outlives its timeout by more than half of it. Sweeps run
 * only while there are holders: from the first `watch()` until a sweep returns false (it held
 * nothing more to watch), and again from the next `watch()`; an idle gateway ticks for nothing.
 * The timer never holds the process open.
 */
export function startReaper(idles: readonly number[], sweep: () => boolean): Reaper {
  return tickWhile(reapEvery(idles), sweep)
}

/**
 * Runs `tick` every `every` ms from a `watch()` on, for as long as it returns true; the next
 * `watch()` starts it again. One timer at most, which never holds the process open; `stop`
 * ends it for good. What an idle sweep and the idle collector (idle-gc.ts) tick on.
 */
export function tickWhile(every: number, tick: () => boolean): Reaper {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const arm = () => {
    timer = setTimeout(run, every).unref()
  }
  const run = () => {
    timer = undefined
    if (tick() && !stopped && timer === undefined) arm()
  }
  return {
    watch: () => {
      if (timer === undefined && !stopped) arm()
    },
    stop: () => {
      stopped = true
      clearTimeout(timer)
      timer = undefined
    },
  }
}

/** How often the sweeps of holders with idle timeouts `idles` (0: none) run, in ms. */
export function reapEvery(idles: readonly number[]): number {
  return Math.max(
    REAP_FLOOR_MS,
    Math.min(REAP_INTERVAL_MS, ...idles.filter((t) => t > 0).map((t) => t / 2)),
  )
}

/**
 * Waits while `busy()` holds, for at most `graceMs`: what is in flight at shutdown may finish
 * within the grace, never past it. Resolves true when nothing was busy any more.
 */
export async function drain(busy: () => boolean, graceMs: number): Promise<boolean> {
  const deadline = Date.now() + graceMs
  while (busy()) {
    if (Date.now() >= deadline) return false
    await new Promise((r) => setTimeout(r, DRAIN_POLL_MS))
  }
  return true
}

/**
 * Exponential restart delays: `first` ms, doubled after each failure, at most `max`; `reset`
 * once a start succeeded, or, for a process that may be made to exit once started (a shared
 * one, by any of its users), `ran` once it served `stableAfter`. A command that keeps
 * crashing cannot spin, nor can a client that crashes it as soon as it is back.
 */
export class Backoff {
  private current = 0

  constructor(private readonly o: { first: number; max: number; stableAfter?: number }) {}

  /**
   * A started process ended after serving `ms`: at least `stableAfter`, the next delay is
   * `first` again; sooner, it goes on doubling.
   */
  ran(ms: number): void {
    if (ms >= (this.o.stableAfter ?? 0)) this.reset()
  }

  /** The delay before the next attempt (and the one after it is longer). */
  next(): number {
    this.current = Math.min(this.current === 0 ? this.o.first : this.current * 2, this.o.max)
    return this.current
  }

  /** A start succeeded: the next failure waits `first` again. */
  reset(): void {
    this.current = 0
  }
}

/**
 * Where the gateway's own request goes, and how it hears the answer: `listen` routes the
 * peer's messages to `hear` (and `lost` when it goes away) until the returned function is
 * called.
 */
export interface OwnPeer {
  send(message: JSONRPCMessage): Promise<void>
  listen(hear: (message: JSONRPCMessage) => void, lost: () => void): () => void
}

/**
 * Sends the gateway's own request (`id` its own, never a client's) and waits for the reply.
 * Resolves undefined when the peer goes away, the send fails, or nothing comes within
 * `timeoutMs` (then `heard.timedOut` is set); whatever happens, the listener is removed and
 * the timer cleared.
 */
export function ownRequest(
  peer: OwnPeer,
  request: { id: RequestId; method: string; params?: Record<string, unknown> },
  timeoutMs: number,
  heard?: { timedOut?: boolean },
): Promise<JSONRPCMessage | undefined> {
  return new Promise((resolve) => {
    let settled = false
    let stop: (() => void) | undefined
    const done = (reply?: JSONRPCMessage) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      stop?.()
      resolve(reply)
    }
    const timer = setTimeout(() => {
      if (!settled && heard) heard.timedOut = true
      done()
    }, timeoutMs)
    stop = peer.listen(
      (m) => void ((m as { id?: unknown }).id === request.id && done(m)),
      () => done(),
    )
    if (settled) stop()
    const { id, method, params } = request
    peer
      .send({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) } as JSONRPCMessage)
      .catch(() => done())
  })
}

/**
 * The answer to a server→client request nobody will relay (no client request in progress, or
 * a process promised no client capabilities): `ping` is answered, as MCP asks of every
 * receiver; anything else is refused with -32601 and `reason`, so the process does not hang.
 */
export function refuseServerRequest(id: RequestId, method: string, reason: string): JSONRPCMessage {
  if (method === 'ping') return { jsonrpc: '2.0', id, result: {} } as JSONRPCMessage
  return rpcError(id, -32601, reason)
}
