import type { Logger } from 'pino'
import type { Metrics } from '../observability/metrics.js'
import type { Bound, QueueBudget, QueueLimits } from './outbound-budget.js'
import { classify, type ChunkKind } from './sse-chunk.js'

/**
 * Why a stream ended: `done` (everything queued was read), `cancelled` (the client went away),
 * `slow_client` (it owed its client more than the bound), `expired` (its token ran out).
 */
export type EndReason = 'done' | 'cancelled' | 'slow_client' | 'expired'

interface Entry {
  chunk: Uint8Array
  /** Known when the producer said, else read on demand (only past a bound). */
  kind: ChunkKind | undefined
  /** Part of a replay taken whole. */
  replay?: true
}

/**
 * One SSE body on its way to a client, with a bounded queue. The body is what the HTTP server
 * reads, and it reads only as fast as the socket drains; what it has not read yet waits here,
 * never in the producer: a source stream (the SDK transport's) is drained as soon as it has
 * anything, and the gateway's own producers `push` straight in. A chunk goes to a waiting
 * reader untouched; otherwise it is queued while the stream and its budget stay within their
 * bounds. Past a bound, keep-alives, priming events and notifications are dropped and counted;
 * a reply or server→client request first makes older notifications give way, and if it still
 * does not fit, the stream is closed: its queue is freed at once, its source cancelled (the
 * SDK transport then keeps the stream's later events for resumption only), and the client is
 * told by the end of its stream. A `final` message is always queued. Nothing is parsed unless
 * a bound is passed.
 *
 * A replay (session era, GET + Last-Event-ID) is written whole before the stream is handed
 * out: bounded chunk by chunk, the replay of more than the bound owes could never be delivered.
 * So one replay per session at a time is taken whole, whatever its size (the replay buffer
 * bounds it); what comes after it, and any other replay meanwhile, meets the bounds as usual.
 */
export class OutboundStream {
  readonly body: ReadableStream<Uint8Array>
  private queue: (Entry | undefined)[] = []
  private head = 0
  private events = 0
  private bytes = 0
  private controller!: ReadableStreamDefaultController<Uint8Array>
  /** Set while the reader waits on an empty queue. */
  private waiting: (() => void) | undefined
  private ending = false
  private ended = false
  private source: ReadableStreamDefaultReader<Uint8Array> | undefined
  private shedding = false
  /** Replayed chunks still to come from the source, and those taken whole but not read yet. */
  private replayLeft = 0
  private replayUnread = 0

  constructor(
    private readonly budget: QueueBudget,
    private readonly limits: QueueLimits,
    private readonly o: { log?: Logger; metrics?: Metrics; onEnd?: (why: EndReason) => void },
  ) {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c
        },
        pull: () => this.pull(),
        cancel: () => this.finish('cancelled'),
      },
      // Nothing is pulled ahead of the reader: what it has not asked for is counted here.
      { highWaterMark: 0 },
    )
  }

  /** Bytes queued, not yet read by the client. */
  get queuedBytes(): number {
    return this.bytes
  }

  /** Chunks queued, not yet read by the client. */
  get queuedEvents(): number {
    return this.events
  }

  /** True once the stream has ended, for whatever reason. */
  get closed(): boolean {
    return this.ended
  }

  /**
   * Sends one chunk (one SSE event or comment) after those already queued. `kind` is what the
   * producer knows of it; left out, the chunk is read only if it passes a bound.
   * @returns false once the stream is ending or has ended (the chunk was not taken)
   */
  push(chunk: Uint8Array, kind?: ChunkKind): boolean {
    if (this.ending) return false
    const bound = this.waiting === undefined ? this.budget.over(this, chunk.byteLength) : undefined
    if (bound === undefined) {
      this.take(chunk, kind)
      return true
    }
    kind ??= classify(chunk)
    if (kind === 'notification' || kind === 'control') {
      this.dropped(kind, bound)
      return true
    }
    // The client needs this one: notifications queued before it give way.
    const still = this.evict(chunk.byteLength, bound)
    if (still === undefined || kind === 'final') {
      this.take(chunk, kind)
      return true
    }
    this.o.metrics?.streamsClosed.inc({ reason: 'slow_client' })
    this.o.log?.warn(
      { bound: still, queuedBytes: this.bytes, queuedEvents: this.events, limits: this.limits },
      'client is not reading its stream and is owed more than the bound: stream closed',
    )
    this.finish('slow_client')
    return false
  }

  /**
   * Drains `source` into this stream as fast as it fills; its end ends this stream. Its first
   * `replayed` chunks are a replay, taken whole if no other replay of the session is unread.
   */
  drain(source: ReadableStream<Uint8Array>, replayed = 0): this {
    const reader = source.getReader()
    this.source = reader
    this.replayLeft = replayed
    const whole = replayed > 0 && this.budget.holdReplay(this)
    const fail = () => this.end()
    const next = (r: ReadableStreamReadResult<Uint8Array>): void => {
      if (r.done) return this.end()
      let taken: boolean
      if (this.replayLeft > 0) {
        this.replayLeft--
        taken = whole ? this.take(r.value, undefined, true) : this.push(r.value)
        this.replayDone()
      } else taken = this.push(r.value)
      if (taken) void reader.read().then(next, fail)
    }
    void reader.read().then(next, fail)
    return this
  }

  /** Ends the stream once the client has read what is queued. */
  end(): void {
    if (this.ending) return
    this.ending = true
    if (this.waiting !== undefined) this.finish('done')
  }

  /** Ends the stream now: the queue is freed, the source cancelled. */
  close(why: EndReason): void {
    this.finish(why)
  }

  /** Hands a chunk to a waiting reader (nothing is kept), else queues it. */
  private take(chunk: Uint8Array, kind: ChunkKind | undefined, replay?: true): boolean {
    if (this.ending) return false
    const waiting = this.waiting
    if (waiting !== undefined) {
      this.waiting = undefined
      this.controller.enqueue(chunk)
      waiting()
      return true
    }
    this.queue.push(replay ? { chunk, kind, replay } : { chunk, kind })
    if (replay) this.replayUnread++
    this.events++
    this.bytes += chunk.byteLength
    this.budget.add(chunk.byteLength, this)
    return true
  }

  /** Once the replay has all come and been read, the session may take another one whole. */
  private replayDone(): void {
    if (this.replayLeft === 0 && this.replayUnread === 0) this.budget.releaseReplay(this)
  }

  private pull(): Promise<void> | undefined {
    if (this.events > 0) {
      const e = this.queue[this.head]!
      this.queue[this.head++] = undefined
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head)
        this.head = 0
      }
      this.events--
      this.bytes -= e.chunk.byteLength
      this.budget.remove(1, e.chunk.byteLength)
      this.controller.enqueue(e.chunk)
      if (e.replay) {
        this.replayUnread--
        this.replayDone()
      }
      return undefined
    }
    if (this.ending) {
      this.finish('done')
      return undefined
    }
    return new Promise<void>((resolve) => (this.waiting = resolve))
  }

  /** Drops queued notifications, oldest first, until `size` more bytes fit; the bound still passed, if any. */
  private evict(size: number, bound: Bound): Bound | undefined {
    let over: Bound | undefined = bound
    const kept: (Entry | undefined)[] = []
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!
      if (over !== undefined && droppable((e.kind ??= classify(e.chunk)))) {
        this.events--
        this.bytes -= e.chunk.byteLength
        this.budget.remove(1, e.chunk.byteLength)
        if (e.replay) this.replayUnread--
        this.dropped(e.kind, over)
        over = this.budget.over(this, size)
      } else kept.push(e)
    }
    this.queue = kept
    this.head = 0
    this.replayDone()
    return over
  }

  private dropped(kind: ChunkKind, bound: Bound): void {
    this.o.metrics?.streamEventsDropped.inc({ reason: bound, kind })
    if (this.shedding) return
    this.shedding = true
    this.o.log?.info(
      { bound, queuedBytes: this.bytes, queuedEvents: this.events },
      'client is not reading its stream: notifications past the bound are dropped',
    )
  }

  private finish(why: EndReason): void {
    if (this.ended) return
    this.ended = true
    this.ending = true
    this.budget.remove(this.events, this.bytes)
    this.queue = []
    this.head = this.events = this.bytes = 0
    const waiting = this.waiting
    this.waiting = undefined
    if (why !== 'cancelled') {
      try {
        this.controller.close()
      } catch {
        // the reader cancelled already
      }
    }
    waiting?.()
    if (why !== 'done') void this.source?.cancel(why).catch(() => {})
    this.replayLeft = this.replayUnread = 0
    this.budget.releaseReplay(this)
    this.budget.detach()
    this.o.onEnd?.(why)
  }
}

function droppable(kind: ChunkKind): boolean {
  return kind === 'notification' || kind === 'control'
}
