import type { EventId, EventStore, JSONRPCMessage, StreamId } from '@modelcontextprotocol/server'

/** How much of its SSE history one session keeps for resumption. */
export interface ReplayBounds {
  /** Events kept at most (priming events count). */
  maxEvents: number
  /** Serialized size of the kept messages at most, in characters of JSON. */
  maxBytes: number
  /** An event older than this is dropped, in ms. */
  maxAge: number
}

interface Entry {
  seq: number
  stream: Stream
  /** The message as JSON; undefined for a priming event, which has nothing to replay. */
  data: string | undefined
  at: number
  /** The next entry of the session, then the next of the same stream (two linked lists). */
  next: Entry | undefined
  nextInStream: Entry | undefined
}

interface Stream {
  id: StreamId
  first: Entry | undefined
  last: Entry | undefined
  /** Highest seq of this stream that may have been dropped: resuming before it would skip events. */
  dropped: number
}

/**
 * One session's replay buffer (stream-transport.ts; it fits the SDK's `EventStore` too). Event ids are
 * `<stream id>.<seq>`: unique across the session's streams (one counter) and naming their
 * stream (MCP Streamable HTTP §Resumability: ids "SHOULD encode sufficient information to
 * identify the originating stream"), so a `Last-Event-ID` replays only that stream's later
 * events. Appends and drops are O(1): the session's events and each stream's events are
 * linked lists in arrival order, and the oldest event goes first when a bound is passed.
 * A resumption that would miss a dropped event is refused (the transport answers 400) rather than
 * replayed with a hole in it. The store belongs to one session, and sessions are found only
 * by their owner, so replay never crosses principals.
 */
export class SessionEventStore implements EventStore {
  private readonly streams = new Map<StreamId, Stream>()
  private first: Entry | undefined
  private last: Entry | undefined
  private seq = 0
  /** Highest seq dropped so far, session-wide. */
  private dropped = 0
  private count = 0
  private chars = 0

  constructor(
    private readonly bounds: ReplayBounds,
    private readonly now: () => number = Date.now,
  ) {}

  /** Events kept. */
  get size(): number {
    return this.count
  }

  /** Characters of JSON kept. */
  get bytes(): number {
    return this.chars
  }

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    // The SDK's EventStore callers prime a stream with `{}`: nothing to replay later.
    const data =
      (message as { jsonrpc?: unknown }).jsonrpc === undefined ? undefined : JSON.stringify(message)
    return this.append(streamId, data)
  }

  /**
   * Keeps one event of `streamId`: `data` is its message as JSON, already serialized for the
   * wire (undefined for a priming event, which has nothing to replay). Returns its id.
   */
  append(streamId: StreamId, data: string | undefined): EventId {
    const at = this.now()
    let stream = this.streams.get(streamId)
    if (stream === undefined) {
      // A stream seen again after all its events were dropped may have lost any of them.
      stream = { id: streamId, first: undefined, last: undefined, dropped: this.dropped }
      this.streams.set(streamId, stream)
    }
    const entry: Entry = {
      seq: ++this.seq,
      stream,
      data,
      at,
      next: undefined,
      nextInStream: undefined,
    }
    if (this.last === undefined) this.first = entry
    else this.last.next = entry
    this.last = entry
    if (stream.last === undefined) stream.first = entry
    else stream.last.nextInStream = entry
    stream.last = entry
    this.count++
    this.chars += data?.length ?? 0
    this.trim(at)
    return eventId(streamId, entry.seq)
  }

  async getStreamIdForEventId(lastEventId: EventId): Promise<StreamId | undefined> {
    return this.streamOf(lastEventId)
  }

  /** The stream a `Last-Event-ID` names, if everything after it is still kept. */
  streamOf(lastEventId: EventId): StreamId | undefined {
    this.trim(this.now())
    return this.resumable(lastEventId)?.stream.id
  }

  /**
   * The events of `lastEventId`'s stream that came after it, in order, as `[id, JSON]`; undefined
   * when the id is unknown or an event after it was dropped.
   */
  after(lastEventId: EventId): [EventId, string][] | undefined {
    const from = this.resumable(lastEventId)
    if (from === undefined) return undefined
    const due: [EventId, string][] = []
    for (let e = from.stream.first; e !== undefined; e = e.nextInStream) {
      if (e.seq > from.seq && e.data !== undefined)
        due.push([eventId(from.stream.id, e.seq), e.data])
    }
    return due
  }

  /**
   * Sends the events of `lastEventId`'s stream that came after it, in order.
   * @throws Error when the id is unknown or an event after it was dropped
   * (`getStreamIdForEventId` refuses such ids first)
   */
  async replayEventsAfter(
    lastEventId: EventId,
    { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> },
  ): Promise<StreamId> {
    const stream = this.streamOf(lastEventId)
    const due = this.after(lastEventId)
    if (stream === undefined || due === undefined)
      throw new Error('the events after this id are no longer kept')
    for (const [id, data] of due) await send(id, JSON.parse(data) as JSONRPCMessage)
    return stream
  }

  /** The stream and position a `Last-Event-ID` names, if everything after it is still kept. */
  private resumable(lastEventId: string): { stream: Stream; seq: number } | undefined {
    const dot = lastEventId.lastIndexOf('.')
    if (dot <= 0 || lastEventId.length - dot > 12) return undefined
    const digits = lastEventId.slice(dot + 1)
    if (!/^[0-9a-z]+$/.test(digits)) return undefined
    const seq = parseInt(digits, 36)
    const stream = this.streams.get(lastEventId.slice(0, dot))
    if (stream === undefined || seq < stream.dropped || seq > this.seq) return undefined
    return { stream, seq }
  }

  /** Drops the oldest events while any bound is passed. */
  private trim(now: number): void {
    const { maxEvents, maxBytes, maxAge } = this.bounds
    const stale = now - maxAge
    let e = this.first
    while (e !== undefined && (this.count > maxEvents || this.chars > maxBytes || e.at < stale)) {
      const stream = e.stream
      // Arrival order is the same in both lists, so the oldest event heads its stream too.
      stream.first = e.nextInStream
      if (stream.first === undefined) {
        stream.last = undefined
        this.streams.delete(stream.id)
      }
      stream.dropped = e.seq
      this.dropped = e.seq
      this.count--
      this.chars -= e.data?.length ?? 0
      e = e.next
    }
    this.first = e
    if (e === undefined) this.last = undefined
  }
}

function eventId(stream: StreamId, seq: number): EventId {
  return `${stream}.${seq.toString(36)}`
}
