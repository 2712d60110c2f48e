import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Metrics } from '../observability/metrics.js'
import type { Bound, QueueBudget, QueueLimits } from './outbound-budget.js'
import { classify, type ChunkKind } from './sse-chunk.js'
import type { Timeout } from './timeouts.js'

/**
 * Why a stream ended: `done` (everything queued was read), `cancelled` (the client went away),
 * `slow_client` (it owed its client more than the bound), `expired` (its token ran out).
 */
export type EndReason = 'done' | 'cancelled' | 'slow_client' | 'expired'

/** The status line and headers of a response a stream is the body of, written with its first bytes. */
export interface ResponseHead {
  status: number
  headers: Record<string, string>
  /** Sent at once, before any event (a listening stream): else they leave with the first bytes. */
  flush?: boolean
}

interface Entry {
  chunk: Uint8Array
  /** Known when the producer said, else read on demand (only past a bound). */
  kind: ChunkKind | undefined
  /** Part of a replay taken whole. */
  replay?: true
}

/** Where a stream's chunks go: a web reader (`body`), or a Node response written directly. */
interface Sink {
  /** Hands one chunk over; false once the client is behind (the chunk was still taken). */
  write(chunk: Uint8Array): boolean
  /** Ends the response, `last` (if any) its final bytes. */
  end(last?: Uint8Array): void
  /** The stream ended early (`why`): the client is not owed anything more. */
  stop(why: EndReason): void
}

/**
 * One SSE body on its way to a client, with a bounded queue. The client is either a web
 * reader (`body`, read only as fast as the HTTP server drains it) or a Node response the
 * stream writes itself (`attach`), one write per chunk and only while the socket keeps up;
 * what the client has not taken yet waits here, never in the producer: a source stream is
 * drained as soon as it has anything, and the gateway's own producers `push` straight in. A
 * chunk goes to a client that keeps up untouched; otherwise it is queued while the stream and
 * its budget stay within their bounds. Past a bound, keep-alives, priming events and
 * notifications are dropped and counted; a reply or server→client request first makes older
 * notifications give way, and if it still does not fit, the stream is closed: its queue is
 * freed at once, its source cancelled, and the client is told by the end of its stream. A
 * `final` message is always queued. Nothing is parsed unless a bound is passed.
 *
 * A replay (session era, GET + Last-Event-ID) is written whole before the stream is handed
 * out: bounded chunk by chunk, the replay of more than the bound owes could never be delivered.
 * So one replay per session at a time is taken whole, whatever its size (the replay buffer
 * bounds it); what comes after it, and any other replay meanwhile, meets the bounds as usual.
 */
export class OutboundStream {
  private queue: (Entry | undefined)[] = []
  private head = 0
  private events = 0
  private bytes = 0
  private sink: Sink | undefined
  private web: ReadableStream<Uint8Array> | undefined
  /** Set while the client takes chunks as they come (a reader waiting, a socket keeping up). */
  private ready = false
  private ending = false
  private ended = false
  private source: ReadableStreamDefaultReader<Uint8Array> | undefined
  private shedding = false
  /** Replayed chunks still to come from the source, and those taken whole but not read yet. */
  private replayLeft = 0
  private replayUnread = 0
  /** Anything written since the last keep-alive tick (a busy stream needs none). */
  private quiet = true
  /** A priming event held back for a moment, to go with the reply (`release`). */
  private held = false
  /** When the hold ends at the latest (cancelled when it ends sooner). */
  private holdUntil: Timeout | undefined
  /** What the attached socket takes in one write without backpressure. */
  private highWater = 16 * 1024

  constructor(
    private readonly budget: QueueBudget,
    private readonly limits: QueueLimits,
    private readonly o: { log?: Logger; metrics?: Metrics; onEnd?: (why: EndReason) => void },
  ) {}

  /**
   * The stream as a web body, for an HTTP server that reads it (made on first use; a stream
   * has one client: a web body or an attached response, not both).
   */
  get body(): ReadableStream<Uint8Array> {
    if (this.web !== undefined) return this.web
    let controller!: ReadableStreamDefaultController<Uint8Array>
    let waiting: (() => void) | undefined
    const wake = () => {
      const w = waiting
      waiting = undefined
      w?.()
    }
    this.sink = {
      write: (chunk) => {
        controller.enqueue(chunk)
        wake()
        return false
      },
      end: (last) => {
        if (last !== undefined) controller.enqueue(last)
        try {
          controller.close()
        } catch {
          // the reader cancelled already
        }
        wake()
      },
      stop: (why) => {
        if (why !== 'cancelled') {
          try {
            controller.close()
          } catch {
            // the reader cancelled already
          }
        }
        wake()
      },
    }
    this.web = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          controller = c
        },
        pull: () => {
          if (this.ended) return void this.sink?.stop('done')
          if (this.events > 0) return void this.next()
          if (this.ending) return void this.finish('done')
          this.ready = true
          return new Promise<void>((resolve) => (waiting = resolve))
        },
        cancel: () => this.finish('cancelled'),
      },
      // Nothing is pulled ahead of the reader: what it has not asked for is counted here.
      { highWaterMark: 0 },
    )
    return this.web
  }

  /**
   * Makes `res` the stream's client: the stream writes to it directly, one write per chunk
   * while the socket keeps up (what it does not take waits here, bounded, until `drain`),
   * `head` with the first bytes (or at once, when `flush`). A stream that ends with everything
   * already here ends the response in one write, its length known.
   */
  attach(res: ServerResponse, head: ResponseHead): this {
    let started = false
    const start = (length?: number) => {
      started = true
      const headers =
        length === undefined ? head.headers : { ...head.headers, 'content-length': String(length) }
      res.writeHead(head.status, headers)
    }
    this.sink = {
      write: (chunk) => {
        if (!started) start()
        return res.write(chunk)
      },
      end: (last) => {
        if (!started) start(last?.byteLength ?? 0)
        if (last === undefined) res.end()
        else res.end(last)
      },
      stop: (why) => {
        if (why === 'cancelled' || res.writableEnded) return
        if (!started) start()
        res.end()
      },
    }
    res.on('drain', () => this.flush())
    res.on('close', () => {
      if (!res.writableFinished) this.finish('cancelled')
    })
    this.highWater = res.writableHighWaterMark
    // Everything is here already (a reply that came before the response was sent).
    if (this.ending) return (this.endAll(), this)
    // Queued events take the headers with them; a stream with none sends them alone.
    if (head.flush && this.events === 0) {
      start()
      res.flushHeaders()
    }
    // Only a priming event so far: it waits a moment for the reply, to leave with it.
    if (!head.flush && this.events > 0 && this.onlyControl()) {
      this.held = true
      this.holdUntil = this.budget.hold(this)
      return this
    }
    this.ready = true
    this.flush()
    return this
  }

  /** @internal The hold is over: what is queued goes now. */
  release(): void {
    if (!this.held) return
    this.unhold()
    this.flush()
  }

  /**
   * Ends a stream whose every chunk is queued: in one write (the end with it, its length
   * known) unless it is more than the socket takes at once (a replay meets backpressure).
   */
  private endAll(): void {
    if (!this.ended && this.events > 1 && this.bytes > this.highWater) return this.flush()
    const chunks: Uint8Array[] = []
    for (let i = this.head; i < this.queue.length; i++) chunks.push(this.queue[i]!.chunk)
    this.drop()
    this.endSink(chunks.length <= 1 ? chunks[0] : Buffer.concat(chunks))
  }

  private onlyControl(): boolean {
    for (let i = this.head; i < this.queue.length; i++)
      if (this.queue[i]!.kind !== 'control') return false
    return true
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
    const bound = this.ready ? undefined : this.budget.over(this, chunk.byteLength)
    if (bound === undefined) {
      this.take(chunk, kind)
      return true
    }
    kind ??= classify(chunk)
    if (kind === 'notification' || kind === 'control') {
      this.dropped(kind, bound)
      return true
    }
    // The client needs this one: notifications queued before it give way, its own first, then
    // (a session bound) the session's other streams': else which stream closes would depend on
    // which one's notifications happened to fill the session first.
    let still = this.evict(bound, () => this.budget.over(this, chunk.byteLength))
    if (still === 'session_events' || still === 'session_bytes')
      still = this.budget.giveWay(this, chunk.byteLength, still)
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
   * A replay, written before anything else of the stream: taken whole if no other replay of
   * the session is unread, else chunk by chunk within the bounds.
   * @returns false if the stream ended on the way (a bounded replay that owed too much)
   */
  replay(chunks: readonly Uint8Array[]): boolean {
    if (chunks.length === 0) return !this.ending
    const whole = this.budget.holdReplay(this)
    for (const chunk of chunks) {
      if (!(whole ? this.take(chunk, undefined, true) : this.push(chunk))) return false
    }
    this.replayDone()
    return true
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

  /**
   * Ends the stream once the client has read what is queued; `last`, if given, is its final
   * chunk, `kind` what it is to the bound (`final`, always taken, unless said otherwise: an
   * `owed` one past the bound closes the stream as `push` would). A client that keeps up gets
   * it and the end in one write.
   */
  end(last?: Uint8Array, kind: ChunkKind = 'final'): void {
    if (this.ending) return
    // A held priming event leaves with the last chunk, in one write.
    const held = this.held
    this.unhold()
    if (last !== undefined) {
      if (this.ready && this.events === 0) {
        this.ending = true
        this.endSink(last)
        return
      }
      if (!this.push(last, kind)) return
    }
    this.ending = true
    if (held) return this.endAll()
    if (this.ready && this.events === 0) this.finish('done')
  }

  /** Ends the stream now: the queue is freed, the source cancelled. */
  close(why: EndReason): void {
    this.finish(why)
  }

  /** @internal A keep-alive tick: a comment on a stream nothing was written to since the last. */
  tick(): void {
    if (this.quiet) this.push(KEEPALIVE, 'control')
    this.quiet = true
  }

  /** Ends the client's response with `last` (its final bytes, if any) in one write, and the stream. */
  private endSink(last: Uint8Array | undefined): void {
    const sink = this.sink
    this.sink = undefined
    sink?.end(last)
    this.finish('done')
  }

  /** Hands a chunk to a client that keeps up (nothing is kept), else queues it. */
  private take(chunk: Uint8Array, kind: ChunkKind | undefined, replay?: true): boolean {
    if (this.ending) return false
    this.quiet = false
    if (this.ready && this.events === 0) {
      this.ready = this.sink!.write(chunk)
      return true
    }
    this.queue.push(replay ? { chunk, kind, replay } : { chunk, kind })
    if (replay) this.replayUnread++
    this.events++
    this.bytes += chunk.byteLength
    this.budget.add(chunk.byteLength, this)
    // Something besides the priming event: the hold is over.
    if (this.held && kind !== 'control') this.release()
    return true
  }

  /** Hands the oldest queued chunk to the client (there is one). */
  private next(): void {
    const e = this.queue[this.head]!
    this.queue[this.head++] = undefined
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    this.events--
    this.bytes -= e.chunk.byteLength
    this.budget.remove(1, e.chunk.byteLength)
    this.ready = this.sink!.write(e.chunk)
    if (e.replay) {
      this.replayUnread--
      this.replayDone()
    }
  }

  /** The socket drained: queued chunks go while it keeps up. */
  private flush(): void {
    this.ready = true
    while (this.ready && !this.ended) {
      if (this.events === 0) {
        if (this.ending) this.finish('done')
        return
      }
      this.next()
    }
  }

  /** Once the replay has all come and been read, the session may take another one whole. */
  private replayDone(): void {
    if (this.replayLeft === 0 && this.replayUnread === 0) this.budget.releaseReplay(this)
  }

  /**
   * Drops queued notifications, oldest first, while `over` says a bound is passed; the bound
   * still passed, if any. `others`: for another stream of the budget, whose replay taken whole
   * is kept (only its own stream's chunks may give way within it).
   */
  private evict(bound: Bound, over: () => Bound | undefined, others = false): Bound | undefined {
    let still: Bound | undefined = bound
    const kept: (Entry | undefined)[] = []
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!
      if (
        still !== undefined &&
        !(others && e.replay) &&
        droppable((e.kind ??= classify(e.chunk)))
      ) {
        this.events--
        this.bytes -= e.chunk.byteLength
        this.budget.remove(1, e.chunk.byteLength)
        if (e.replay) this.replayUnread--
        this.dropped(e.kind, still)
        still = over()
      } else kept.push(e)
    }
    this.queue = kept
    this.head = 0
    this.replayDone()
    return still
  }

  /**
   * @internal Another stream of the budget is owed a chunk past a session bound: this one's
   * queued notifications give way, oldest first, while `over` says it does not fit yet.
   * @returns the bound still passed, if any
   */
  giveWay(bound: Bound, over: () => Bound | undefined): Bound | undefined {
    if (this.ended || this.events === 0) return bound
    return this.evict(bound, over, true)
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

  /** Frees the queue and its charge to the budget. */
  private drop(): void {
    this.budget.remove(this.events, this.bytes)
    this.queue = []
    this.head = this.events = this.bytes = 0
  }

  /** The hold is over, whatever ended it. */
  private unhold(): void {
    this.held = false
    this.holdUntil?.cancel()
    this.holdUntil = undefined
  }

  private finish(why: EndReason): void {
    if (this.ended) return
    this.unhold()
    this.ended = true
    this.ending = true
    this.ready = false
    this.drop()
    if (why === 'done') this.sink?.end()
    else this.sink?.stop(why)
    if (why !== 'done') void this.source?.cancel(why).catch(() => {})
    this.replayLeft = this.replayUnread = 0
    this.budget.releaseReplay(this)
    this.budget.detach(this)
    this.o.onEnd?.(why)
  }
}

const KEEPALIVE = new TextEncoder().encode(': keepalive\n\n')

function droppable(kind: ChunkKind): boolean {
  return kind === 'notification' || kind === 'control'
}
