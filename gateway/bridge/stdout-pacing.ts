/**
 * Reads a child's stdout in as few reads as its writes allow. A process writing a line a few
 * bytes per write(2) costs the gateway a read and a 'data' event per write, as fast as it
 * writes: while a line comes in small reads, reading stops for PACE_MS after each one past the
 * first PACE_AFTER_READS, so the writes pile up in the pipe and the next read takes them
 * together (and a process that never stops writing so waits on the gateway: its writes block
 * while the pipe is full). A line that arrives in one read, or in a few, or in large ones, is
 * read as it comes: ordinary traffic never waits.
 *
 * Node's `pause()` stops the events, not the reads: a pipe's socket goes on reading into its
 * buffer up to its highWaterMark, a read per write. The reading itself is stopped, on the
 * stream's handle (`readStop`/`readStart`, what Node's own backpressure calls).
 */
import type { Readable } from 'node:stream'

const NEWLINE = 0x0a

/** A read shorter than this, in the middle of a line, is a small one. */
export const PACE_BELOW_BYTES = 1024

/** Small reads of one line read as they come before reading rests after each. */
export const PACE_AFTER_READS = 8

/** How long reading rests after a small read (ms): what piles up in the pipe meanwhile is read at once. */
export const PACE_MS = 1

/** Calls `resume` once reading has rested (the default: after PACE_MS). */
export type Rest = (resume: () => void) => void

interface ReadHandle {
  readStop(): number
  readStart(): number
}

/**
 * Hands each read of `stream` to `onChunk`, resting (`rest`) after the small reads of a line in
 * progress once it has had PACE_AFTER_READS of them. A stream without a handle that can stop
 * reading (not a pipe) is read as it comes.
 */
export function readPaced(
  stream: Readable,
  onChunk: (chunk: Buffer) => void,
  rest: Rest = (resume) => setTimeout(resume, PACE_MS),
): void {
  const handle = (stream as unknown as { _handle?: Partial<ReadHandle> | null })._handle
  const pausable =
    typeof handle?.readStop === 'function' && typeof handle.readStart === 'function'
      ? (handle as ReadHandle)
      : undefined
  /** Small reads of the line in progress, in a row. */
  let small = 0
  let resting = false
  const resume = () => {
    resting = false
    // Ended or destroyed while it rested: its handle is closed, nothing is left to read.
    if (stream.destroyed || stream.readableEnded) return
    pausable!.readStart()
  }
  stream.on('data', (chunk: Buffer) => {
    onChunk(chunk)
    if (pausable === undefined || resting) return
    if (chunk.length >= PACE_BELOW_BYTES) {
      small = 0
      return
    }
    const lf = chunk.lastIndexOf(NEWLINE)
    // Ends with its line: nothing in progress. A newline inside: the line in progress began here.
    if (lf === chunk.length - 1) {
      small = 0
      return
    }
    small = lf === -1 ? small + 1 : 1
    if (small <= PACE_AFTER_READS) return
    // Node still counts the handle as reading: it does not start it again under us.
    resting = true
    pausable.readStop()
    rest(resume)
  })
}
