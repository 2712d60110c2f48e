// The audit file (or stderr) as a destination that survives its own failures. sonic-boom emits
// a failed write (ENOSPC, EIO, EBADF, EISDIR at open…) as an 'error' event: unheard, it ended
// the process and every session with it. Here a failure is heard: the destination is dropped
// with the lines it held, events are counted as lost while there is none, and it is opened again
// with backoff (a rotated file, a freed disk, a directory made again). The first line each
// attempt writes says how many events were lost and since when, so the file tells its own gap.
import { pino, type Logger } from 'pino'
import { DEFAULT_LOG_EXIT_WAIT_MS } from '../config/schema.js'
import { exitWrite, SONIC_MAX_WRITE } from './exit-write.js'

/** The waits between attempts to open the destination again (bridge/lifecycle.ts Backoff). */
export interface Retry {
  next(): number
  reset(): void
}

/** Why audit lines are not being written now, and when the next attempt to write them is. */
export interface AuditFailure {
  /** The error code of the failed write or open (`ENOSPC`, `EIO`, `EISDIR`…). */
  code: string
  /** Epoch ms of the next attempt to open the destination again. */
  retryAt: number
}

/** A destination for audit lines: writes, counts what was lost, says when it fails. */
export interface AuditSink {
  /** Hands a line on, or counts it lost while the destination is failing. */
  write(line: string): void
  /** Resolves once every line handed on so far is written out (or was lost). */
  drained(): Promise<void> | undefined
  /** Undefined while lines are written; the failure while they are not. */
  failing(): AuditFailure | undefined
  /** Stops trying to open the destination again (the gateway is closing). */
  close(): void
}

/** What of a sonic-boom stream the sink uses. */
interface Boom {
  fd: number
  write(line: string): boolean
  on(event: 'write', fn: (n: number) => void): unknown
  on(event: 'error', fn: (err: NodeJS.ErrnoException) => void): unknown
  on(event: 'ready', fn: () => void): unknown
  destroy(): void
  flush(cb?: (err?: Error | null) => void): void
  flushSync(): void
}

/**
 * Opens `target` (`stderr` or a file path, appended, its folder made) for audit lines. The main
 * log hears each change once: `audit log not writable` (never a line's content) when writing
 * starts failing, `audit log writable again` when a line is written after that. `lost` is told
 * each event that will never be written.
 */
export function openAuditSink(o: {
  target: string
  log: Logger
  retry: Retry
  lost: (n: number) => void
  /** At exit, ms the reader may take nothing before the last lines are given up. */
  exitWait?: number
  now?: () => number
}): AuditSink {
  const now = o.now ?? Date.now
  let dest: Boom | undefined
  // Bytes still owed of each line handed to `dest`, oldest first.
  let owed: number[] = []
  let waiting: (() => void)[] = []
  let failure: AuditFailure | undefined
  // Events lost since writing last failed, and when it did.
  let lostSince = 0
  let since = ''
  // The gap line written by an attempt is in `owed`, not an event.
  let probing = false
  let timer: NodeJS.Timeout | undefined
  // Lines wait here while `dest` has a write out (or is opening), gathered into chunks of at most
  // SONIC_MAX_WRITE bytes as sonic-boom gathers them, and the next chunk is handed on when the write
  // lands: sonic-boom measured the byte length of the chunk it was gathering at each line (a
  // copy of up to 16 KiB per line, in a burst), here each line is measured once. The writes,
  // their bytes and their order are what sonic-boom made of the lines.
  let chunks: string[] = []
  let chunkBytes: number[] = []
  // Bytes handed to `dest` and not yet written out; whether it is open.
  let out = 0
  let ready = false

  const wake = () => {
    const next = waiting
    waiting = []
    for (const fn of next) fn()
  }

  const open = (): Boom => {
    const d = pino.destination({
      dest: o.target === 'stderr' ? 2 : o.target,
      sync: false,
      mkdir: true,
    }) as unknown as Boom
    ready = d.fd >= 0
    d.on('ready', () => {
      if (d !== dest) return
      ready = true
      if (out === 0) handOn(d)
    })
    d.on('write', (n) => {
      if (d !== dest) return
      out -= n
      if (out === 0) handOn(d)
      while (n > 0 && owed.length > 0) {
        const first = owed[0]!
        if (first <= n) {
          n -= first
          owed.shift()
        } else {
          owed[0] = first - n
          n = 0
        }
      }
      if (probing && owed.length === 0) recovered()
      if (owed.length === 0) wake()
    })
    // pino's own listener hears the error first and emits it once more: each is seen twice.
    d.on('error', (err) => {
      if (d === dest) fail(d, err)
    })
    // A flush (pino's at beforeExit) writes what waits here too; the sync flush at exit (pino's)
    // too, after a write refused (exit-write.ts), within `exitWait` of the reader taking nothing.
    const boomFlush = d.flush.bind(d)
    d.flush = (cb) => {
      handOnAll(d)
      boomFlush(cb)
    }
    const exit = exitWrite(d, { wait: o.exitWait ?? DEFAULT_LOG_EXIT_WAIT_MS })
    d.flushSync = () => {
      const more = d === dest && ready ? chunks : []
      chunks = []
      chunkBytes = []
      try {
        exit.write(more)
      } catch {
        // the reader is not taking it, or went away: what is unwritten is lost, the process ends
      }
    }
    return d
  }

  /** The next chunk waiting, handed to `d` (with no write out: it writes it at once). */
  const handOn = (d: Boom) => {
    const chunk = chunks.shift()
    if (chunk === undefined) return
    out += chunkBytes.shift()!
    d.write(chunk)
  }
  const handOnAll = (d: Boom) => {
    while (chunks.length > 0) handOn(d)
  }

  /** Hands `line` on, or gathers it while a write is out; counted owed either way. */
  const put = (d: Boom, line: string) => {
    const n = Buffer.byteLength(line)
    owed.push(n)
    if (ready && out === 0 && chunks.length === 0) {
      out = n
      d.write(line)
      return
    }
    const last = chunks.length - 1
    if (last < 0 || chunkBytes[last]! + n > SONIC_MAX_WRITE) {
      chunks.push(line)
      chunkBytes.push(n)
    } else {
      chunks[last] += line
      chunkBytes[last]! += n
    }
  }

  const fail = (d: Boom, err: NodeJS.ErrnoException) => {
    const code = err.code ?? 'EIO'
    const events = owed.length - (probing ? 1 : 0)
    dest = undefined
    owed = []
    chunks = []
    chunkBytes = []
    out = 0
    probing = false
    abandon(d, code)
    if (events > 0) {
      lostSince += events
      o.lost(events)
    }
    if (failure === undefined) {
      since = new Date(now()).toISOString()
      o.log.error(
        { code, target: o.target },
        `audit log not writable: ${code}; audit events are being lost`,
      )
    }
    const delay = o.retry.next()
    failure = { code, retryAt: now() + delay }
    timer = setTimeout(attempt, delay)
    // Whoever waits for the lines to be written waits no more: they will not be.
    wake()
  }

  // An attempt: a new destination, whose first line is the gap's record.
  const attempt = () => {
    dest = open()
    probing = true
    const line = `{"level":"warn","time":"${new Date(now()).toISOString()}","service":"mcp-edge","log":"audit","lost":${lostSince},"since":"${since}","msg":"audit events lost"}\n`
    put(dest, line)
  }

  const recovered = () => {
    probing = false
    failure = undefined
    o.retry.reset()
    o.log.info({ target: o.target, lost: lostSince, since }, 'audit log writable again')
    lostSince = 0
  }

  dest = open()
  return {
    write(line) {
      // While failing (an attempt under way included) an event is lost, not held in memory.
      if (failure !== undefined || dest === undefined) {
        lostSince++
        o.lost(1)
        return
      }
      put(dest, line)
    },
    drained() {
      if (owed.length === 0) return undefined
      return new Promise<void>((resolve) => {
        const look = () =>
          owed.length === 0 || dest === undefined ? resolve() : waiting.push(look)
        waiting.push(look)
      })
    },
    failing: () => failure,
    close: () => clearTimeout(timer),
  }
}

/**
 * A destination given up: closed when it has a descriptor of its own (after EBADF the number
 * may already be another file's), and never flushed at exit (pino flushes its destinations
 * synchronously at exit, which throws on one that failed; pino silences one that hit EPIPE
 * the same way).
 */
function abandon(d: Boom, code: string): void {
  d.flushSync = () => {}
  if (d.fd >= 0 && code !== 'EBADF') d.destroy()
}
