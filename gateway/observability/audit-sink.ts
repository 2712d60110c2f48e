// The audit file (or stderr) as a destination that survives its own failures. sonic-boom emits
// a failed write (ENOSPC, EIO, EBADF, EISDIR at open…) as an 'error' event: unheard, it ended
// the process and every session with it. Here a failure is heard: the destination is dropped
// with the lines it held, events are counted as lost while there is none, and it is opened again
// with backoff (a rotated file, a freed disk, a directory made again). The first line each
// attempt writes says how many events were lost and since when, so the file tells its own gap.
import { pino, type Logger } from 'pino'

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
  destroy(): void
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
    d.on('write', (n) => {
      if (d !== dest) return
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
    return d
  }

  const fail = (d: Boom, err: NodeJS.ErrnoException) => {
    const code = err.code ?? 'EIO'
    const events = owed.length - (probing ? 1 : 0)
    dest = undefined
    owed = []
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
    owed.push(Buffer.byteLength(line))
    dest.write(line)
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
      owed.push(Buffer.byteLength(line))
      dest.write(line)
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
