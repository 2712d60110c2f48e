import { createRequire } from 'node:module'
import { pino, type DestinationStream, type Logger } from 'pino'
import { DEFAULT_LOG_EXIT_WAIT_MS, DEFAULT_LOG_MAX_PENDING_BYTES } from '../config/schema.js'
import { bufferedStdout } from './stdout-stream.js'
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
    maxPendingBytes?: number
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
    destination = bufferedStdout({
      bytes: o.bufferBytes,
      interval: o.flushInterval,
      wait: o.exitWait ?? DEFAULT_LOG_EXIT_WAIT_MS,
      maxPending: o.maxPendingBytes ?? DEFAULT_LOG_MAX_PENDING_BYTES,
      lost: (lost, since) =>
        logger.warn(
          { lost, since: since.toISOString() },
          'log lines lost: the reader of stdout fell behind by log.maxPendingBytes',
        ),
    })
  const logger = pino(
    {
      level,
      base: { service: 'mcp-edge' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  )
  return logger
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
