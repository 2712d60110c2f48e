// The gateway's stdout as the log's destination: lines gathered, then written from the event
// loop, never from the thread pool, so the exit always knows which bytes are out. sonic-boom
// (pino.destination, async) handed each write to the thread pool: a process ending with one
// there could not know whether its bytes had landed, so its exit write either left them to a
// thread that the exit ends (the bytes lost, the lines behind them written: a gap in the log and
// the audit trail in it) or could overtake them. Here a write is tried at once on the descriptor,
// which is non-blocking for a pipe or a socket, as libuv's own `uv_try_write` does; what the
// reader has no room for (EAGAIN, or a part written) waits here, in order, and is tried again on
// a timer. At exit it is all written synchronously (exit-write.ts `writeAll`), for as long as
// the reader takes bytes within `log.exitWait`. What waits is bounded (`log.maxPendingBytes`): a
// reader that stops reading costs that much memory at most, and the lines past it are dropped,
// counted, and said once the reader has taken what waited.

import fs from 'node:fs'
import type { DestinationStream } from 'pino'
import { readerBehind, writeAll } from './exit-write.js'

/** The first wait before bytes the reader refused are tried again, in ms (then doubled). */
const RETRY_FIRST_MS = 1
/** The longest wait between tries while the reader takes nothing (sonic-boom's), in ms. */
const RETRY_MAX_MS = 100

/** The log's stdout: pino writes lines to it, flushes it, and it writes what is left at exit. */
export interface StdoutStream extends DestinationStream {
  write(chunk: string): boolean
  /** Writes what is gathered; `cb` once every byte given so far is out, or writing failed. */
  flush(cb?: (err?: Error) => void): void
  /** At exit: everything not yet out, synchronously (given up after `wait` ms without progress). */
  flushSync(): void
}

/**
 * Stdout (or `fd`), buffered: lines are gathered up to `bytes` (a write per line cost more than
 * the line), and what waits is written within `interval` ms of the first line since the last
 * write: a timer armed by a line, not a ticking one (an interval ticking was most of what an idle
 * gateway did). After a write fails (EPIPE: the reader went away), lines are dropped.
 */
export function bufferedStdout(o: {
  bytes: number
  interval: number
  wait: number
  /** Bytes waiting for the reader at most; a line given past it is dropped and counted. */
  maxPending: number
  /** Told, once the reader has taken what waited, how many lines were dropped since when. */
  lost?: (lines: number, since: Date) => void
  fd?: number
}): StdoutStream {
  const fd = o.fd ?? 1
  // Node opens its own stdout as libuv does any pipe or socket: non-blocking (a file or a
  // terminal stays blocking, as Node writes to them). Read here so that holds before a write.
  if (fd === 1) void process.stdout.isTTY
  let failed: Error | undefined
  // Lines gathered and not yet written, and their bytes.
  let held = ''
  let heldBytes = 0
  // Bytes the reader had no room for, oldest first; while any wait, lines queue behind them.
  let queue: Buffer[] = []
  let queued = 0
  // Lines dropped while the reader was behind, and when the first was.
  let lost = 0
  let lostSince = new Date(0)
  let retryMs = RETRY_FIRST_MS
  let retrying = false
  // Flushes waiting for the queue to be written out.
  let waiting: ((err?: Error) => void)[] = []

  const settle = () => {
    const next = waiting
    waiting = []
    for (const cb of next) cb(failed)
  }
  /** Nothing held or waiting any more (written at exit, or dropped after a failure). */
  const clear = () => {
    held = ''
    heldBytes = 0
    queue = []
    queued = 0
  }
  const fail = (err: Error) => {
    failed = err
    clear()
    settle()
  }
  const retryLater = () => {
    if (retrying) return
    retrying = true
    setTimeout(retry, retryMs).unref()
  }
  const retry = () => {
    retrying = false
    if (failed !== undefined) return
    let n: number
    try {
      n = fs.writevSync(fd, queue)
    } catch (err) {
      if (!readerBehind(err)) return fail(err as Error)
      n = 0
    }
    retryMs = n > 0 ? RETRY_FIRST_MS : Math.min(retryMs * 2, RETRY_MAX_MS)
    queued -= n
    while (n > 0) {
      const first = queue[0]!
      if (first.length > n) {
        queue[0] = first.subarray(n)
        break
      }
      n -= first.length
      queue.shift()
    }
    if (queue.length > 0) return retryLater()
    settle()
    if (lost > 0) {
      const lines = lost
      lost = 0
      o.lost?.(lines, lostSince)
    }
  }
  const enqueue = (buf: Buffer) => {
    queue.push(buf)
    queued += buf.length
  }
  const handOn = () => {
    if (held === '' || failed !== undefined) return
    const chunk = held
    const bytes = heldBytes
    held = ''
    heldBytes = 0
    if (queue.length > 0) return enqueue(Buffer.from(chunk))
    let n: number
    try {
      n = fs.writeSync(fd, chunk)
    } catch (err) {
      if (!readerBehind(err)) return fail(err as Error)
      n = 0
    }
    if (n === bytes) return
    enqueue(Buffer.from(chunk).subarray(n))
    retryLater()
  }

  let armed = false
  const due = () => {
    armed = false
    handOn()
  }
  const arm = () => {
    if (armed) return
    armed = true
    setTimeout(due, o.interval).unref()
  }

  const stream: StdoutStream = {
    write(chunk) {
      if (failed !== undefined) return true
      const n = Buffer.byteLength(chunk)
      // Once one is dropped, every line is until the reader has taken what waits: the log keeps
      // no gap but the one the warning names.
      if (lost > 0 || (queued > 0 && queued + heldBytes + n > o.maxPending)) {
        if (lost++ === 0) lostSince = new Date()
        return true
      }
      held += chunk
      heldBytes += n
      if (heldBytes >= o.bytes) handOn()
      else arm()
      return true
    },
    flush(cb) {
      handOn()
      if (cb === undefined) return
      if (failed === undefined && queue.length > 0) return void waiting.push(cb)
      process.nextTick(cb, failed)
    },
    flushSync() {
      if (failed !== undefined) return
      const rest = [...queue, Buffer.from(held)]
      clear()
      try {
        writeAll(fd, rest, o.wait)
      } catch {
        // the reader is not taking it, or went away: what is unwritten is lost, the process ends
      }
    },
  }
  process.once('exit', () => stream.flushSync())
  return stream
}
