/**
 * The stdio transport's framing, both ways, done once per message: a child's stdout split into
 * newline-delimited JSON-RPC messages (parsed once, classified by their envelope, never
 * re-validated), and messages to its stdin written as they come, a burst of them joined (each
 * write to a pipe is a system call; a burst of requests costs two).
 */
import type { Writable } from 'node:stream'
import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { DEFAULT_CHILD_MAX_JSON_DEPTH } from '../config/schema.js'
import { deeperThan } from './json-depth.js'
import { envelope, type RequestId } from './jsonrpc.js'
import { oversizeReplyId } from './oversize-id.js'

const NEWLINE = 0x0a

/**
 * What the reader makes of one line: a message, a line that is not one (skipped), or a line
 * longer than `maxMessageBytes` (dropped unread; `reply`: the request it answers, when its two
 * ends show it is a response, oversize-id.ts).
 */
export type Frame =
  | { message: JSONRPCMessage }
  | { skipped: 'not JSON' | 'not JSON-RPC' | 'nested too deep' }
  | { skipped: 'too large'; bytes: number; reply?: RequestId }

/** Bytes kept of each end of a line too large to hold: enough for an id at either end. */
export const OVERSIZE_EDGE_BYTES = 4096

/**
 * A piece of an unfinished line shorter than this is copied into a block of this size instead
 * of kept as a view of the read it came from: a process writing a line a few bytes at a time
 * costs the gateway the bytes, not an object (or a whole pipe read) per write.
 */
const COPY_BELOW_BYTES = 16 * 1024

/**
 * Splits stdout chunks into lines and parses each. A line longer than `maxMessageBytes`
 * (without its newline) is dropped up to its newline, holding no more than `maxMessageBytes`
 * of it at any time and, once past it, only its first and last `OVERSIZE_EDGE_BYTES`: the
 * process goes on (one huge reply of a shared process must not end every user's session),
 * and the lines after it frame as before. A line within one read is parsed from it; one across
 * reads is kept as a list of its large pieces (small ones copied together, COPY_BELOW_BYTES)
 * and joined once, so every byte of it costs a copy or two, however it was cut.
 */
export class FrameReader {
  private chunks: Buffer[] = []
  private held = 0
  /**
   * Where small pieces are copied: `block[blockStart, blockEnd)` not yet in `chunks`. Kept for
   * the next lines once made (one block per process, reused from its start at each line).
   */
  private block: Buffer | undefined
  private blockStart = 0
  private blockEnd = 0
  /** The line being dropped, past the cap: its length and ends. */
  private over: Oversize | undefined

  /**
   * `maxJsonDepth`: a line nesting deeper is skipped before it is parsed. A process's message
   * is serialized again on its way to the client (and measured by output caps); a line of
   * thousands of brackets parses but overflows the stack when serialized.
   */
  constructor(
    private readonly maxMessageBytes: number,
    private readonly maxJsonDepth = DEFAULT_CHILD_MAX_JSON_DEPTH,
  ) {}

  /** Every complete line in `chunk` (and what came before it), in order. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = []
    let start = 0
    for (;;) {
      const at = chunk.indexOf(NEWLINE, start)
      if (at === -1) {
        this.take(chunk.subarray(start), false)
        return frames
      }
      this.take(chunk.subarray(start, at), true)
      const frame = this.endLine()
      if (frame !== undefined) frames.push(frame)
      start = at + 1
    }
  }

  /** `last`: the line ends after `part`, which is joined before this read is gone. */
  private take(part: Buffer, last: boolean): void {
    if (part.length === 0) return
    if (this.over !== undefined) return this.over.add(part)
    if (this.held + part.length > this.maxMessageBytes) return this.drop(part)
    this.held += part.length
    if (last || part.length >= COPY_BELOW_BYTES) {
      this.flush()
      this.chunks.push(part)
      return
    }
    let block = this.block
    if (block === undefined || block.length - this.blockEnd < part.length) {
      this.flush()
      // Kept as long as the process lives: memory of its own, not a slice of Node's shared pool
      // (64 KiB slabs since Node 24, where 16 KiB is pooled: a block would pin a slab each).
      block = this.block = Buffer.allocUnsafeSlow(COPY_BELOW_BYTES)
      this.blockStart = this.blockEnd = 0
    }
    part.copy(block, this.blockEnd)
    this.blockEnd += part.length
  }

  /** What the block holds of the line goes to the line's list, in order. */
  private flush(): void {
    if (this.blockEnd === this.blockStart) return
    this.chunks.push(this.block!.subarray(this.blockStart, this.blockEnd))
    this.blockStart = this.blockEnd
  }

  /** Past the cap: from here on only the line's ends are kept. */
  private drop(part: Buffer): void {
    this.flush()
    const over = new Oversize()
    for (const c of this.chunks) over.add(c)
    over.add(part)
    this.clear()
    this.over = over
  }

  private clear(): void {
    this.chunks = []
    this.held = 0
    // Nothing refers to the block's bytes any more (a line is parsed before the next read).
    this.blockStart = this.blockEnd = 0
  }

  private endLine(): Frame | undefined {
    const over = this.over
    if (over !== undefined) {
      this.over = undefined
      const reply = oversizeReplyId(over.head, over.tail)
      return { skipped: 'too large', bytes: over.bytes, ...(reply !== undefined ? { reply } : {}) }
    }
    this.flush()
    const line = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.held)
    const frame = parseLine(line, this.maxJsonDepth)
    this.clear()
    return frame
  }
}

/**
 * A line too large to hold: its length, and copies of its first and last bytes, each kept in
 * a buffer of its own (the last ones in a ring): a piece costs its own bytes, at most
 * OVERSIZE_EDGE_BYTES of copying, however small the pieces come. Of its own: allocUnsafeSlow,
 * not a slice of Node's pool (whose slabs are 64 KiB since Node 24).
 */
class Oversize {
  bytes = 0
  private readonly first = Buffer.allocUnsafeSlow(OVERSIZE_EDGE_BYTES)
  private firstEnd = 0
  private readonly ring = Buffer.allocUnsafeSlow(OVERSIZE_EDGE_BYTES)
  /** Where the ring's next byte goes; `filled`: how many of its bytes are the line's. */
  private ringAt = 0
  private filled = 0

  add(part: Buffer): void {
    this.bytes += part.length
    if (this.firstEnd < OVERSIZE_EDGE_BYTES)
      this.firstEnd += part.copy(this.first, this.firstEnd, 0, OVERSIZE_EDGE_BYTES - this.firstEnd)
    const size = OVERSIZE_EDGE_BYTES
    const end = part.subarray(-size)
    // The piece's last bytes, from ringAt on, wrapping at the ring's end.
    const copied = end.copy(this.ring, this.ringAt)
    if (copied < end.length) end.copy(this.ring, 0, copied)
    this.ringAt = (this.ringAt + end.length) % size
    this.filled = Math.min(size, this.filled + end.length)
  }

  get head(): Buffer {
    return this.first.subarray(0, this.firstEnd)
  }

  /** The last bytes in order (a copy once the ring has wrapped). */
  get tail(): Buffer {
    if (this.filled < OVERSIZE_EDGE_BYTES) return this.ring.subarray(0, this.filled)
    if (this.ringAt === 0) return this.ring
    return Buffer.concat([this.ring.subarray(this.ringAt), this.ring.subarray(0, this.ringAt)])
  }
}

function parseLine(line: Buffer, maxDepth: number): Frame | undefined {
  // A trailing \r (a server that writes CRLF) is whitespace to JSON.parse; blank lines are nothing.
  if (line.every((byte) => byte === 0x20 || byte === 0x09 || byte === 0x0d)) return undefined
  const text = line.toString('utf8')
  // A line shorter than the bound cannot nest deeper than it: only long lines are scanned.
  if (text.length > maxDepth && deeperThan(text, maxDepth)) return { skipped: 'nested too deep' }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { skipped: 'not JSON' }
  }
  return envelope(value).kind === 'invalid'
    ? { skipped: 'not JSON-RPC' }
    : { message: value as JSONRPCMessage }
}

/**
 * The writers that sent in this turn of the event loop: one `setImmediate` ends the turn for
 * all of them (16 sessions' requests read in one poll phase cost one, not one per process).
 */
let sentThisTurn: FrameWriter[] = []

function endTurn(): void {
  const writers = sentThisTurn
  sentThisTurn = []
  for (const w of writers) w.endTurn()
}

/**
 * Writes messages to a child's stdin: the first one sent in a turn of the event loop at once,
 * the rest of that turn joined into one write when the turn ends (every HTTP request read in
 * one poll phase: two pipe writes at most, not one each). A lone request reaches its process
 * as soon as it is sent, so the process works on it while the gateway finishes the request's
 * own work (its reply stream, its bookkeeping) instead of after it. Resolves once the write is
 * done (its bytes are in the pipe: the process can read them); rejects when it failed or stdin
 * closed first (the process is gone), so a message that never reached the process is never
 * taken for one it was sent (shared-crashes.ts charges an exit to the requests sent).
 */
export class FrameWriter {
  private pending: string[] = []
  private waiting: Waiter[] = []
  /** This turn has written already: what is sent now waits for the turn's end. */
  private turn = false

  constructor(private readonly stdin: Writable) {}

  send(message: JSONRPCMessage): Promise<void> {
    if (!this.open()) return Promise.reject(notRunning())
    const text = `${JSON.stringify(message)}\n`
    if (!this.turn) {
      this.turn = true
      if (sentThisTurn.push(this) === 1) setImmediate(endTurn)
      return new Promise((resolve, reject) => this.write(text, [{ resolve, reject }]))
    }
    this.pending.push(text)
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }))
  }

  private open(): boolean {
    return !this.stdin.destroyed && !this.stdin.writableEnded
  }

  /** @internal The turn's end: what was sent after its first message, in one write. */
  endTurn(): void {
    this.turn = false
    if (this.pending.length === 0) return
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join('')
    const waiting = this.waiting
    this.pending = []
    this.waiting = []
    if (!this.open()) return unsent(waiting)
    this.write(text, waiting)
  }

  private write(text: string, waiting: Waiter[]): void {
    const stdin = this.stdin
    let closed: (() => void) | undefined
    // Sent once the write is done, not when `write` returns true: a write behind one still in
    // the pipe (a process not reading) returns true, and fails with it when the process goes.
    // Done after the stream was destroyed: Node reports a write its close cut short (the process
    // exited: ChildProcess destroys its stdin) as done, so only one done at once (in the pipe
    // before write() returned; told on the next tick) is sent then.
    let now = false
    const done = (err?: Error | null) => {
      if (closed !== undefined) stdin.off('close', closed)
      if (err == null && (now || !stdin.destroyed)) for (const w of waiting) w.resolve()
      else unsent(waiting)
    }
    const taken = stdin.write(text, done)
    now = stdin.writableLength === 0
    if (taken) return
    // The pipe is full: a stream that is closed before it took the write may never call back.
    closed = () => unsent(waiting)
    stdin.once('close', closed)
  }
}

/** What `waiting` sent never reached the process: each refused (a promise settles once). */
function unsent(waiting: Waiter[]): void {
  const err = notRunning()
  for (const w of waiting) w.reject(err)
}

interface Waiter {
  resolve: () => void
  reject: (err: Error) => void
}

function notRunning(): Error {
  return new Error('the MCP server process is not running')
}
