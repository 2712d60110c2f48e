import { createRequire } from 'node:module'
import { pino, type DestinationStream, type Logger } from 'pino'
import { DEFAULT_LOG_EXIT_WAIT_MS } from '../config/schema.js'
import { exitWrite, SONIC_MAX_WRITE } from './exit-write.js'
import { countWritten } from './written.js'
import { unitEscapes } from './unit-escapes.js'

/**
 * Paths never written to the log: credentials in headers, token-bearing fields, secrets.
 * pino's redaction runs on every line, so a mistaken `log.info({ headers })` stays safe.
 */
export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'clientSecret',
  '*.clientSecret',
  'client_secret',
  '*.client_secret',
]

/** How log lines are written: as configured (`log.format`), and as decided for this process. */
export type LogFormat = 'auto' | 'json' | 'pretty'

/**
 * `json` or `pretty` as asked; `auto` is pretty only for a person at a terminal: stdout a TTY
 * and no `CI` variable (CI runners may attach a pseudo-terminal, and their logs are read by
 * programs). Pipes, files and containers without a TTY get JSON.
 */
export function resolveLogFormat(
  format: LogFormat,
  o: { isTTY: boolean | undefined; env: NodeJS.ProcessEnv },
): 'json' | 'pretty' {
  if (format !== 'auto') return format
  if (o.isTTY !== true) return 'json'
  const ci = o.env.CI
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0' ? 'json' : 'pretty'
}

/**
 * Creates the gateway's logger. JSON to stdout by default, buffered: under load a write
 * carries many lines (a write per line cost more than the line itself), and what waits is
 * written within `flushInterval` ms, and synchronously when the process exits. In `pretty`
 * format (see `resolveLogFormat`) each line is rewritten by pino-pretty as it is written,
 * after pino's redaction, so a secret is as hidden on a terminal as in JSON.
 */
export function createLogger(
  o: {
    level: string
    bufferBytes: number
    flushInterval: number
    exitWait?: number
    format?: LogFormat
  },
  destination?: DestinationStream,
): Logger {
  const { level } = o
  const format = resolveLogFormat(o.format ?? 'json', {
    isTTY: destination === undefined ? process.stdout.isTTY : false,
    env: process.env,
  })
  if (format === 'pretty') destination = prettyDestination(destination)
  else if (destination === undefined)
    destination = bufferedStdout(
      o.bufferBytes,
      o.flushInterval,
      o.exitWait ?? DEFAULT_LOG_EXIT_WAIT_MS,
    )
  return pino(
    {
      level,
      base: { service: 'mcp-edge' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  )
}

/**
 * A destination that writes each JSON line as a readable one, to `to` (default stdout,
 * written at once: a person is reading, and nothing is left in a buffer at exit). pino-pretty
 * is loaded only here, so JSON deployments never load it; its colours follow the terminal
 * (`NO_COLOR`, `FORCE_COLOR`, `TERM=dumb`).
 */
function prettyDestination(to?: DestinationStream): DestinationStream {
  const { prettyFactory } = createRequire(import.meta.url)(
    'pino-pretty',
  ) as typeof import('pino-pretty')
  const prettify = prettyFactory({
    translateTime: 'SYS:HH:MM:ss.l',
    // Same on every line, or noise for a person.
    ignore: 'pid,hostname,service',
  })
  const out = to ?? pino.destination({ dest: 1, sync: true })
  return {
    write: (line: string) => {
      let record: unknown
      try {
        record = JSON.parse(line)
      } catch {
        return void out.write(prettify(line))
      }
      out.write(prettify(visible(record, true) as object))
    },
  }
}

/**
 * What a terminal would act on rather than show, or show as nothing: controls but tab and line
 * feed, format characters (bidi marks and overrides, zero-width ones, the BOM, tag characters).
 */
const UNSHOWN = /(?![\t\n])[\p{Cc}\p{Cf}]/gu
/** The same, and line breaks: in the message, which pino-pretty writes at the line's start. */
const UNSHOWN_IN_MSG = /[\p{Cc}\p{Cf}\u2028\u2029]/gu

/**
 * A record's strings as a terminal should show them: what it would act on (escape sequences,
 * carriage returns, bidi overrides) or hide (zero-width text) written as `\uXXXX`. pino-pretty
 * writes the message, an error's stack and fields' names as they are, so a subject, a server's
 * error text or any string a client chose could redraw the operator's screen, start a forged
 * line or pass for another (JSON lines are read by programs, not shown on a terminal).
 */
function visible(value: unknown, top = false): unknown {
  if (typeof value === 'string') return value.replace(UNSHOWN, unitEscapes)
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map((v) => visible(v))
  const copy: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value))
    copy[k.replace(UNSHOWN, unitEscapes)] =
      top && k === 'msg' && typeof v === 'string'
        ? v.replace(UNSHOWN_IN_MSG, unitEscapes)
        : visible(v)
  return copy
}

/**
 * Stdout, buffered (`bytes`, flushed every `interval` ms), written synchronously at exit
 * (exit-write.ts): what a write out was refused (EAGAIN: the reader is behind), then the rest, in
 * order, while the reader takes bytes within `wait` ms. sonic-boom's own `flushSync` (pino calls
 * it at exit too) retries for ever, EPIPE (the reader went away) included, and leaves out a write
 * refused; it is not used. Nothing is written at exit once a write failed.
 */
function bufferedStdout(bytes: number, interval: number, wait: number): DestinationStream {
  let failed = false
  let pending = 0
  const stdout = pino.destination({
    dest: 1,
    sync: false,
    minLength: bytes,
    // sonic-boom refuses a minLength not under maxWrite (16 KiB by default): room for any.
    maxWrite: Math.max(SONIC_MAX_WRITE, bytes * 2),
  })
  const written = countWritten(stdout)
  const exit = exitWrite(stdout, { wait })
  // pino's own listener stops writing on EPIPE; this one remembers any failure.
  stdout.on('error', () => {
    failed = true
    written.wake()
  })
  // Lines are gathered here and handed to sonic-boom as one chunk once they reach `bytes`, or
  // when a flush comes: sonic-boom measures the byte length of all it holds at each write (a
  // copy of up to `maxWrite` bytes, per line: three quarters of a busy gateway's audit line),
  // here each line is measured once. The bytes and their order are sonic-boom's alone.
  let held = ''
  let heldBytes = 0
  const write = stdout.write.bind(stdout)
  const handOn = () => {
    if (held === '') return true
    const chunk = held
    held = ''
    heldBytes = 0
    return write(chunk)
  }
  const boomFlush = stdout.flush.bind(stdout)
  const flush = (cb?: (err?: Error | null) => void) => {
    handOn()
    boomFlush(cb)
  }
  // Counted only when given a callback: sonic-boom fsyncs a flush that has one, so none is
  // added to a flush asked for without.
  //
  // sonic-boom calls a flush back when the write in flight ends with under `minLength` left
  // (at once when `minLength` is 0), not when nothing is left: a line logged while that write
  // was out (the shutdown's last lines, the drain's audit lines) would still be buffered when
  // the exit's flush says done. So a flush goes on until every byte given to the stream has
  // been written out, or a write failed.
  stdout.flush = (cb?: (err?: Error) => unknown) => {
    if (cb === undefined) return flush()
    pending++
    const settle = (err?: Error | null) => {
      // A write that failed is an 'error' (failed); an fsync refused (EINVAL on a pipe) is not.
      if (!failed && written.outstanding > 0) {
        written.afterNextWrite(settle)
        // Lines under minLength wait for a flush: one is sent now (none if one is out).
        flush()
        return
      }
      pending--
      cb(err ?? undefined)
    }
    flush(settle)
  }
  // At exit (a flush with a callback may be under way: serve's exit after its deadline).
  stdout.flushSync = () => {
    if (failed) return
    const chunk = held
    held = ''
    heldBytes = 0
    try {
      exit.write([chunk])
    } catch {
      // the reader is not taking it, or went away: what is unwritten is lost, the process ends
    }
  }
  // Flushed `interval` ms after the first line written since the last flush, without a
  // callback: a timer armed by a write, not a ticking one (a flush of nothing is still a write,
  // and an interval ticking five times a second was most of what an idle gateway did). A flush
  // with a callback under way writes out everything given meanwhile; the timer looks again later.
  let armed = false
  const due = () => {
    armed = false
    if (pending > 0) return void arm()
    flush()
    // A write still out (a slow reader) takes no flush, and once back it leaves what is under
    // `bytes` buffered: looked at again then, or a line logged last would wait for the next
    // one (on an idle gateway, for ever). A flush that wrote everything arms nothing more.
    written.afterNextWrite(() => {
      if (!failed && written.outstanding > 0) arm()
    })
  }
  const arm = () => {
    if (armed) return
    armed = true
    setTimeout(due, interval).unref()
  }
  stdout.write = (chunk: string) => {
    arm()
    const n = Buffer.byteLength(chunk)
    written.given(n)
    held += chunk
    heldBytes += n
    return heldBytes >= bytes ? handOn() : true
  }
  process.once('exit', () => stdout.flushSync())
  return stdout
}
