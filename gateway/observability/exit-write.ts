// The last write of a sonic-boom stream (4.x), synchronous, at exit: every byte not yet written,
// once and in order, to a reader that is slow but reading. sonic-boom's own flushSync writes its
// queue but not the write it has out, so a write refused with EAGAIN (the reader had not taken
// the bytes before: sonic-boom retries it 100 ms later, a timer that never fires once the process
// exits) was lost, with the lines queued after it written: a gap in the log, the audit trail
// included. And it retried for ever: EAGAIN while the exit's retryEAGAIN allowed it, any other
// error (EPIPE: the reader went away) always. sonic-boom 5 writes such a write first, but pino
// (10.x) takes sonic-boom ^4.

import { writeSync, fsyncSync } from 'node:fs'

/** sonic-boom's default `maxWrite`: the most bytes of lines it gathers into one write. */
export const SONIC_MAX_WRITE = 16 * 1024

/** sonic-boom's wait before it writes again what EAGAIN or EBUSY refused, in ms. */
const RETRY_MS = 100

/** What of a sonic-boom 4.x stream the exit write reads and empties: its own fields. */
interface Boom {
  fd: number
  _writing: boolean
  _writingBuf: string | Buffer
  _bufs: (string | Buffer)[]
  _len: number
  release: (err?: NodeJS.ErrnoException | null, n?: number) => void
  retryEAGAIN: (err: Error, writing: number, queued: number) => boolean
}

/** The exit write of one stream. */
export interface ExitWrite {
  /**
   * Writes synchronously, in order: the part of the write out that EAGAIN refused, the stream's
   * queue, then `more` (lines held before the stream). Retries EAGAIN while the reader takes
   * bytes, giving up after `wait` ms (in 100 ms retries) without any taken; any other error at once. Then
   * nothing is left for the stream to write (its late retry writes nothing).
   * @throws the error given up on (what was unwritten is dropped all the same)
   */
  write(more: string[]): void
}

/**
 * Follows `stream`'s write out: refused with EAGAIN and waiting for sonic-boom's retry (its
 * bytes known unwritten), or handed to the thread pool (not known: it may have landed, so it is
 * left to the pool, as sonic-boom 5 leaves it). sonic-boom retries every EAGAIN meanwhile.
 */
export function exitWrite(stream: unknown, o: { wait: number }): ExitWrite {
  const boom = stream as Boom
  let refused = false
  boom.retryEAGAIN = () => (refused = true)
  // sonic-boom reads `release` as it hands a write to the pool (its first try and each retry),
  // and nowhere else in async mode: from then on the write's fate is the pool's.
  const release = boom.release
  Object.defineProperty(boom, 'release', {
    configurable: true,
    get() {
      refused = false
      return release
    },
  })
  return {
    write(more) {
      const bufs = boom._bufs
      if (refused && boom._writingBuf.length > 0) bufs.unshift(boom._writingBuf)
      bufs.push(...more.filter((s) => s !== ''))
      // Emptied first: whatever happens below, sonic-boom's retry (should the process go on)
      // writes nothing, and nothing twice.
      if (refused) boom._writingBuf = ''
      boom._bufs = []
      boom._len = 0
      writeAll(boom.fd, bufs, o.wait)
      try {
        fsyncSync(boom.fd)
      } catch {
        // a pipe or a terminal: nothing to sync
      }
    },
  }
}

/**
 * Writes `bufs` to `fd` in order, synchronously, retrying EAGAIN and EBUSY (a reader behind) every
 * `pauseMs` while the reader takes nothing, for `wait` ms in a row at most: counted in pauses,
 * not timed (a clock may be stopped or set back). Also the last write of `secrets purge`'s line.
 * @throws the error given up on
 */
export function writeAll(
  fd: number,
  bufs: (string | Buffer)[],
  wait: number,
  pauseMs = RETRY_MS,
): void {
  const pause = new Int32Array(new SharedArrayBuffer(4))
  const retries = Math.ceil(wait / pauseMs)
  let left = retries
  for (const b of bufs) {
    let buf = typeof b === 'string' ? Buffer.from(b) : b
    while (buf.length > 0) {
      try {
        buf = buf.subarray(writeSync(fd, buf))
        left = retries
      } catch (err) {
        if (!readerBehind(err) || left-- <= 0) throw err
        Atomics.wait(pause, 0, 0, pauseMs)
      }
    }
  }
}

/** A write refused because the reader is behind (EAGAIN, EBUSY): worth trying again later. */
export function readerBehind(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'EAGAIN' || code === 'EBUSY'
}
