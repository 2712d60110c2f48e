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

/**
 * Creates the gateway's JSON logger. `destination` defaults to stdout, buffered: under load a
 * write carries many lines (a write per line cost more than the line itself), and what waits
 * is written within `flushInterval` ms, and synchronously when the process exits.
 */
export function createLogger(
  o: { level: string; bufferBytes: number; flushInterval: number },
  destination?: DestinationStream,
): Logger {
  const { level } = o
  if (destination === undefined) {
    const stdout = pino.destination({ dest: 1, sync: false, minLength: o.bufferBytes })
    setInterval(() => stdout.flush(), o.flushInterval).unref()
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
