import { pino, type DestinationStream, type Logger } from 'pino'

/** One audit event: who did what on which server, what the policy said, how it ended. */
export interface AuditEvent {
  sub: string
  iss: string
  clientId: string | undefined
  server: string
  method: string
  /** Tool or prompt name, or resource URI, when the method names one. */
  name?: string
  /**
   * `invalid`: refused before any decision, the message being malformed where policy reads it;
   * `unapproved`: a tool of a pinned server whose definition no operator approved (hidden, or its call refused);
   * `rate_limited`: a rate limit of the policy refused it.
   */
  decision: 'allow' | 'deny' | 'challenge' | 'filter' | 'invalid' | 'unapproved' | 'rate_limited'
  /** The rule that decided: `file:line pattern`, or the reason when no rule did. */
  rule: string
  /** Milliseconds from decision to the server's reply (allowed requests only). */
  durationMs?: number
  /** `ok`, `error <code>`, `refused`, or for lists `kept N of M`. */
  outcome: string
  /** The user's credentials the server's process acted with: each variable and where its value came from. */
  credentials?: { name: string; source: 'secret' | 'exchange' | 'upstreamToken' }[]
}

/** Where audit events go: a dedicated logger, so they can be routed apart from the rest. */
export interface AuditLog {
  record(event: AuditEvent): void
  flush(): void
}

/**
 * Creates the audit log: JSON lines with `"log":"audit"`, to stdout (through the main
 * logger's stream, so lines never interleave), stderr or a file (appended), or nowhere with
 * `off`. Always at level info, whatever the main log level.
 */
export function createAuditLog(
  target: string,
  main: Logger,
  destination?: DestinationStream,
): AuditLog {
  if (target === 'off') return { record() {}, flush() {} }
  if (target === 'stdout' && destination === undefined) {
    const logger = main.child({ log: 'audit' }, { level: 'info' })
    return { record: (event) => logger.info(event, 'audit'), flush: () => logger.flush() }
  }
  const dest =
    destination ??
    pino.destination({ dest: target === 'stderr' ? 2 : target, sync: false, mkdir: true })
  const logger = pino(
    {
      level: 'info',
      base: { service: 'mcp-edge', log: 'audit' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  )
  return {
    record: (event) => logger.info(event, 'audit'),
    flush: () => logger.flush(),
  }
}
