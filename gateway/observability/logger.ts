import { pino, type DestinationStream, type Logger } from 'pino'

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

/** Bytes of log lines gathered before a write to stdout (one write per many lines under load). */
export const DEFAULT_LOG_BUFFER_BYTES = 4096
/** Lines waiting in the buffer are written at the latest after this long, in ms. */
export const DEFAULT_LOG_FLUSH_MS = 200

/**
 * Creates the gateway's JSON logger. `destination` defaults to stdout, buffered: under load a
 * write carries many lines (a write per line cost more than the line itself), and what waits
 * is written within DEFAULT_LOG_FLUSH_MS, and synchronously when the process exits.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  if (destination === undefined) {
    const stdout = pino.destination({ dest: 1, sync: false, minLength: DEFAULT_LOG_BUFFER_BYTES })
    setInterval(() => stdout.flush(), DEFAULT_LOG_FLUSH_MS).unref()
    process.once('exit', () => stdout.flushSync())
    destination = stdout
  }
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
