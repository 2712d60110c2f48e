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
 * Creates the gateway's JSON logger. `destination` defaults to stdout written asynchronously
 * (lines logged in the same tick share one write); call `logger.flush()` before exiting.
 */
export function createLogger(level: string, destination: DestinationStream = pino.destination({ dest: 1, sync: false })): Logger {
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
