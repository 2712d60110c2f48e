import type { Logger } from 'pino'
import type { GatewayConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { OutboundStream, type EndReason } from './outbound.js'
import { type Timeout, Timeouts } from './timeouts.js'

/**
 * How long a POST stream's priming event may wait for the reply, in ms, so that a quick reply
 * and its priming event leave in one write. A pace, not a bound: the event still comes first,
 * and anything else written to the stream (progress, a server request) ends the wait.
 */
export const PRIMING_HOLD_MS = 50

/** How much SSE one stream, and one session's streams together, may queue for their client. */
export interface QueueLimits {
  streamBytes: number
  streamEvents: number
  sessionBytes: number
  sessionEvents: number
}

/** Where a stream logs, and what runs once when it ends, however it ends. */
export interface StreamOptions {
  log?: Logger
  onEnd?: (why: EndReason) => void
  /** A comment on the stream whenever it was quiet for `keepAliveMs`, so proxies keep it open. */
  keepAlive?: boolean
}

/** The bound a chunk would pass: what `mcp_edge_stream_events_dropped_total{reason}` says. */
export type Bound = 'stream_events' | 'stream_bytes' | 'session_events' | 'session_bytes'

/** The largest queues seen, per stream and per budget (tests prove the bounds with them). */
export interface QueuePeaks {
  streamBytes: number
  streamEvents: number
  sessionBytes: number
  sessionEvents: number
}

/** The queue limits of a configuration (`limits.streamQueue*`, `limits.sessionQueue*`). */
export function queueLimits(config: GatewayConfig): QueueLimits {
  const l = config.limits
  return {
    streamBytes: l.streamQueueBytes,
    streamEvents: l.streamQueueEvents,
    sessionBytes: l.sessionQueueBytes,
    sessionEvents: l.sessionQueueEvents,
  }
}

/**
 * Every SSE body the gateway returns is an `OutboundStream` charged to a `QueueBudget`: one per
 * session, shared by all its streams, and one per principal for its sessionless (2026-07-28)
 * streams, forgotten when the last of them ends. This is the gateway-wide side: the limits,
 * the metrics, what is queued now (for /metrics) and the largest queues seen.
 */
export class Outbound {
  /** Bytes and events queued now, over every stream. */
  bytes = 0
  events = 0
  private peaks: QueuePeaks = { streamBytes: 0, streamEvents: 0, sessionBytes: 0, sessionEvents: 0 }
  private readonly principals = new Map<string, QueueBudget>()
  /** Streams that get keep-alives, and the one timer that ticks them all (while there are some). */
  private readonly kept = new Set<OutboundStream>()
  private ticker: NodeJS.Timeout | undefined
  /** Held priming events, each released PRIMING_HOLD_MS after its own hold began, on one timer. */
  private readonly holds: Timeouts

  constructor(
    readonly limits: QueueLimits,
    readonly metrics?: Metrics,
    /** The keep-alive interval of idle SSE streams (`limits.sseKeepAlive`), in ms; 0: none. */
    readonly keepAliveMs = 0,
    /** The clock holds are timed by (a test's own). */
    now?: () => number,
  ) {
    this.holds = new Timeouts(PRIMING_HOLD_MS, now)
  }

  /** A new budget, for one session's streams. */
  session(): QueueBudget {
    return new QueueBudget(this)
  }

  /**
   * A stream charged to the budget that one principal's sessionless streams share (`key`: its
   * owner key); the budget is forgotten when the last of them ends.
   */
  principalStream(key: string, o: StreamOptions = {}): OutboundStream {
    let budget = this.principals.get(key)
    if (budget === undefined) {
      budget = new QueueBudget(this, () => this.principals.delete(key))
      this.principals.set(key, budget)
    }
    return budget.stream(o)
  }

  /** The largest queues seen since the last call, per stream and per budget; then starts over. */
  takePeaks(): QueuePeaks {
    const peaks = this.peaks
    this.peaks = { streamBytes: 0, streamEvents: 0, sessionBytes: 0, sessionEvents: 0 }
    return peaks
  }

  /**
   * @internal A stream whose priming event waits for its reply, PRIMING_HOLD_MS at most from
   * now (one timer for every stream held meanwhile, not one each); the stream cancels the
   * returned timeout when its hold ends sooner. Each hold runs its own time: one that began a
   * moment ago is not cut short because an older one's time is up (under load, that split a
   * third of the replies into two writes).
   */
  hold(stream: OutboundStream): Timeout {
    return this.holds.add(() => stream.release())
  }

  /** @internal A stream that gets keep-alives, until it ends (one timer for every stream, not one each). */
  keepAlive(stream: OutboundStream): void {
    if (this.keepAliveMs <= 0) return
    this.kept.add(stream)
    this.ticker ??= setInterval(() => {
      for (const s of this.kept) s.tick()
    }, this.keepAliveMs).unref()
  }

  /** @internal A stream ended. */
  forget(stream: OutboundStream): void {
    if (!this.kept.delete(stream) || this.kept.size > 0) return
    clearInterval(this.ticker)
    this.ticker = undefined
  }

  /** @internal A chunk was queued: totals and high-water marks. */
  added(size: number, stream: OutboundStream, budget: QueueBudget): void {
    this.bytes += size
    this.events++
    const p = this.peaks
    if (stream.queuedBytes > p.streamBytes) p.streamBytes = stream.queuedBytes
    if (stream.queuedEvents > p.streamEvents) p.streamEvents = stream.queuedEvents
    if (budget.bytes > p.sessionBytes) p.sessionBytes = budget.bytes
    if (budget.events > p.sessionEvents) p.sessionEvents = budget.events
  }
}

/**
 * What the streams of one session (or one principal's sessionless streams) have queued
 * together, against `sessionBytes`/`sessionEvents`.
 */
export class QueueBudget {
  bytes = 0
  events = 0
  /** Its streams not ended yet. */
  private readonly streams = new Set<OutboundStream>()
  /** The stream holding a replay taken whole, not yet read. */
  private replaying: OutboundStream | undefined

  constructor(
    private readonly outbound: Outbound,
    private readonly onIdle?: () => void,
  ) {}

  /** The limits its streams are held to. */
  get limits(): QueueLimits {
    return this.outbound.limits
  }

  /** A new stream charged to this budget. */
  stream(o: StreamOptions = {}): OutboundStream {
    const stream = new OutboundStream(this, this.outbound.limits, {
      log: o.log,
      onEnd: o.onEnd,
      metrics: this.outbound.metrics,
    })
    this.streams.add(stream)
    if (o.keepAlive) this.outbound.keepAlive(stream)
    return stream
  }

  /**
   * The bound a chunk of `size` bytes would pass on `stream`, if any. An empty stream (or
   * budget) takes any one chunk: a single message, however large, is never refused for its
   * size alone (the child's own message cap bounds it).
   */
  over(stream: { queuedBytes: number; queuedEvents: number }, size: number): Bound | undefined {
    const l = this.outbound.limits
    if (stream.queuedEvents > 0) {
      if (stream.queuedEvents >= l.streamEvents) return 'stream_events'
      if (stream.queuedBytes + size > l.streamBytes) return 'stream_bytes'
    }
    if (this.events > 0) {
      if (this.events >= l.sessionEvents) return 'session_events'
      if (this.bytes + size > l.sessionBytes) return 'session_bytes'
    }
    return undefined
  }

  /**
   * @internal `stream` is owed a chunk of `size` bytes past a session bound `bound` and its own
   * notifications did not make room: the other streams' notifications give way, the largest
   * queue first, so only a session full of owed messages closes a stream (the one that went
   * over, never another).
   * @returns the bound still passed, if any
   */
  giveWay(stream: OutboundStream, size: number, bound: Bound): Bound | undefined {
    const others = [...this.streams].filter((s) => s !== stream)
    others.sort((a, b) => b.queuedBytes - a.queuedBytes)
    let still: Bound | undefined = bound
    for (const other of others) {
      still = other.giveWay(still, () => this.over(stream, size))
      if (still === undefined) break
    }
    return still
  }

  /** @internal A stream whose priming event waits for its reply (Outbound.hold). */
  hold(stream: OutboundStream): Timeout {
    return this.outbound.hold(stream)
  }

  /** @internal Whether `stream` may take a replay whole: no other stream of the budget holds one. */
  holdReplay(stream: OutboundStream): boolean {
    this.replaying ??= stream
    return this.replaying === stream
  }

  /** @internal */
  releaseReplay(stream: OutboundStream): void {
    if (this.replaying === stream) this.replaying = undefined
  }

  /** @internal */
  add(size: number, stream: OutboundStream): void {
    this.bytes += size
    this.events++
    this.outbound.added(size, stream, this)
  }

  /** @internal */
  remove(events: number, bytes: number): void {
    this.bytes -= bytes
    this.events -= events
    this.outbound.bytes -= bytes
    this.outbound.events -= events
  }

  /** @internal A stream of this budget ended. */
  detach(stream: OutboundStream): void {
    this.outbound.forget(stream)
    this.streams.delete(stream)
    if (this.streams.size === 0) this.onIdle?.()
  }
}
