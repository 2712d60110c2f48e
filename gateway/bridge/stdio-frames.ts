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
 * Splits stdout chunks into lines and parses each. A line longer than `maxMessageBytes`
 * (without its newline) is dropped up to its newline, holding no more than `maxMessageBytes`
 * of it at any time and, once past it, only its first and last `OVERSIZE_EDGE_BYTES`: the
 * process goes on (one huge reply of a shared process must not end every user's session),
 * and the lines after it frame as before. Chunks are kept as a list and joined once per line,
 * so a large message costs one copy.
 */
export class FrameReader {
  private chunks: Buffer[] = []
  private held = 0
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
      this.take(chunk.subarray(start, at === -1 ? chunk.length : at))
      if (at === -1) return frames
      const frame = this.endLine()
      if (frame !== undefined) frames.push(frame)
      start = at + 1
    }
  }

  private take(part: Buffer): void {
    if (part.length === 0) return
    if (this.over !== undefined) return this.over.add(part)
    if (this.held + part.length <= this.maxMessageBytes) {
      this.chunks.push(part)
      this.held += part.length
      return
    }
    // Past the cap: from here on only the line's ends are kept.
    const over = new Oversize()
    for (const c of this.chunks) over.add(c)
    over.add(part)
    this.chunks = []
    this.held = 0
    this.over = over
  }

  private endLine(): Frame | undefined {
    const over = this.over
    if (over !== undefined) {
      this.over = undefined
      const reply = oversizeReplyId(over.head, over.tail)
      return { skipped: 'too large', bytes: over.bytes, ...(reply !== undefined ? { reply } : {}) }
    }
    const line = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.held)
    this.chunks = []
    this.held = 0
    return parseLine(line, this.maxJsonDepth)
  }
}

/** A line too large to hold: its length, and copies of its first and last bytes. */
class Oversize {
  bytes = 0
  head = Buffer.alloc(0)
  tail = Buffer.alloc(0)

  add(part: Buffer): void {
    this.bytes += part.length
    if (this.head.length < OVERSIZE_EDGE_BYTES)
      this.head = Buffer.concat([
        this.head,
        part.subarray(0, OVERSIZE_EDGE_BYTES - this.head.length),
      ])
    // Copied, never a view of `part`: a view would keep the whole chunk it came from.
    this.tail =
      part.length >= OVERSIZE_EDGE_BYTES
        ? Buffer.from(part.subarray(-OVERSIZE_EDGE_BYTES))
        : Buffer.concat([this.tail, part]).subarray(-OVERSIZE_EDGE_BYTES)
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
 * own work (its reply stream, its bookkeeping) instead of after it. Resolves when the write
 * was taken (at once unless the pipe is full, then on `drain`); rejects when stdin is closed
 * (the process is gone), as a write to it would fail.
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
    if (!this.open()) {
      const err = notRunning()
      for (const w of waiting) w.reject(err)
      return
    }
    this.write(text, waiting)
  }

  private write(text: string, waiting: Waiter[]): void {
    if (this.stdin.write(text)) {
      for (const w of waiting) w.resolve()
      return
    }
    // The pipe is full: taken on drain, or lost if the process goes first.
    const drained = () => {
      this.stdin.off('close', closed)
      for (const w of waiting) w.resolve()
    }
    const closed = () => {
      this.stdin.off('drain', drained)
      const err = notRunning()
      for (const w of waiting) w.reject(err)
    }
    this.stdin.once('drain', drained)
    this.stdin.once('close', closed)
  }
}

interface Waiter {
  resolve: () => void
  reject: (err: Error) => void
}

function notRunning(): Error {
  return new Error('the MCP server process is not running')
}
