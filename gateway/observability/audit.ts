import { pino, type DestinationStream, type Logger } from 'pino'
import { DEFAULT_AUDIT_FIELD_MAX } from '../config/schema.js'
import { type AuditFailure, openAuditSink, type Retry } from './audit-sink.js'

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
  /** An operator's `secrets purge`: the secret names it deleted, each as the command printed it. */
  names?: string[]
  /** An operator's `secrets purge`: whether it signed the user out everywhere (the broker). */
  signedOut?: boolean
  /** An operator's command: who ran it, as the operating system names them. */
  operator?: string
}

/** Where audit events go: a dedicated logger, so they can be routed apart from the rest. */
export interface AuditLog {
  record(event: AuditEvent): void
  /** Resolves once every line recorded so far is written out (or writing failed). */
  flush(): void | Promise<void>
  /** The audit file's (or stderr's) failure while events cannot be written; else undefined. */
  failing?(): AuditFailure | undefined
  /** Stops what the log runs in the background (attempts to open a failing file again). */
  close?(): void
}

/** What a file or stderr audit log does when a write fails (audit-sink.ts). */
export interface AuditFailureHandling {
  retry: Retry
  /** Told each event lost because the destination failed. */
  lost: (n: number) => void
  /** At exit, ms the reader may take nothing before the last lines are given up (`log.exitWait`). */
  exitWait?: number
}

/**
 * Creates the audit log: JSON lines with `"log":"audit"`, to stdout (through the main
 * logger's stream, so lines never interleave), stderr or a file (appended), or nowhere with
 * `off`. Always at level info, whatever the main log level.
 *
 * A line is the one pino writes for `logger.info(event, 'audit')` (level, time, bindings,
 * the event's fields in order, message), built here as `JSON.stringify` writes the event: a
 * pino call ran the main logger's redaction over every field, and an event carries no
 * credential (names and sources only), so there is nothing to redact. Tests:
 * test/observability/audit-line.test.ts holds the lines to pino's, audit-bytes.test.ts pins
 * their bytes.
 */
export function createAuditLog(
  target: string,
  main: Logger,
  destination?: DestinationStream,
  failures?: AuditFailureHandling,
  fieldMax: number = DEFAULT_AUDIT_FIELD_MAX,
): AuditLog {
  if (target === 'off') return { record() {}, flush() {} }
  return neverThrows(
    openAuditLog(target, main, destination, failures, fieldMax),
    main,
    failures?.lost ?? (() => {}),
  )
}

/**
 * `log` whose `record` never throws. An event is recorded in a child's stdout callback or exit
 * handler, or before its request's reply: a throw there (a field that does not serialise, a
 * getter that throws, a destination that throws) ended the gateway and every session, or left
 * the request unanswered. Such an event is lost, counted as a failed write's are, and the main
 * log says so with the error's type only (its message may quote the event).
 */
function neverThrows(log: AuditLog, main: Logger, lost: (n: number) => void): AuditLog {
  const record = log.record
  log.record = (event) => {
    try {
      record(event)
    } catch (err) {
      lost(1)
      main.error({ err: { type: typeOf(err) } }, 'audit event could not be written; it is lost')
    }
  }
  return log
}

/** What was thrown, by its constructor's name (reading it may throw too: then `unknown`). */
function typeOf(err: unknown): string {
  try {
    return err instanceof Error ? String(err.name) : typeof err
  } catch {
    return 'unknown'
  }
}

function openAuditLog(
  target: string,
  main: Logger,
  destination: DestinationStream | undefined,
  failures: AuditFailureHandling | undefined,
  fieldMax: number,
): AuditLog {
  if (target === 'stdout' && destination === undefined) {
    const m = main as unknown as Record<symbol, unknown>
    const stream = m[pino.symbols.streamSym] as DestinationStream
    const line = auditLine({
      head: (m[pino.symbols.lsCacheSym] as Record<number, string>)[INFO]!,
      time: sameMs(m[pino.symbols.timeSym] as () => string),
      bindings: `${m[pino.symbols.chindingsSym] as string},"log":"audit"`,
      end: m[pino.symbols.endSym] as string,
      fieldMax,
    })
    return { record: (event) => stream.write(line(event)), flush: () => main.flush() }
  }
  const line = auditLine({
    head: '{"level":"info"',
    time: sameMs(pino.stdTimeFunctions.isoTime),
    bindings: ',"service":"mcp-edge","log":"audit"',
    end: '}\n',
    fieldMax,
  })
  // A destination handed in (tests) is written as it is.
  if (destination !== undefined)
    return { record: (event) => destination.write(line(event)), flush() {} }
  // sonic-boom writes each line at once but asynchronously, and its flush() returns at once
  // when nothing is held back: so the sink counts the lines out, and a flush waits for the
  // count (a shutdown that exits before the writes land would lose the drain's last lines). A
  // failed write never throws nor crashes: the sink counts the lost events and tries again.
  const sink = openAuditSink({
    target,
    log: main,
    retry: failures?.retry ?? { next: () => 1_000, reset() {} },
    lost: failures?.lost ?? (() => {}),
    exitWait: failures?.exitWait,
  })
  return {
    record: (event) => sink.write(line(event)),
    flush: () => sink.drained(),
    failing: () => sink.failing(),
    close: () => sink.close(),
  }
}

/**
 * pino's ISO time made once per millisecond (a busy gateway writes several lines in one);
 * any other time function as it is.
 */
function sameMs(time: () => string): () => string {
  if (time !== pino.stdTimeFunctions.isoTime) return time
  let ms = Number.NaN
  let text = ''
  return () => {
    const now = Date.now()
    if (now !== ms) {
      ms = now
      text = `,"time":"${new Date(now).toISOString()}"`
    }
    return text
  }
}

/** `text` cut at `max` characters (never inside a surrogate pair), the rest counted. */
export function cut(text: string, max: number): string {
  if (text.length <= max) return text
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]!) ? max - 1 : max
  return `${text.slice(0, end)}…[${text.length - end} more characters]`
}

/** pino's level number for info. */
const INFO = 30

/** Makes audit lines from pino's parts: `head` (level), `time`, `bindings`, `end`. */
function auditLine(p: {
  head: string
  time: () => string
  bindings: string
  end: string
  fieldMax: number
}): (event: AuditEvent) => string {
  const { head, time, bindings, end, fieldMax } = p
  const fields = eventFields()
  return (event) => {
    // What the client wrote is cut at `log.auditFieldMax`: a method or tool name as long as the
    // body would otherwise be written out whole, per request; so is the outcome, which carries
    // the error code a process wrote (any JSON value, as long as its line).
    if (
      event.method.length > fieldMax ||
      (event.name?.length ?? 0) > fieldMax ||
      event.rule.length > fieldMax ||
      event.outcome.length > fieldMax
    ) {
      event = {
        ...event,
        method: cut(event.method, fieldMax),
        rule: cut(event.rule, fieldMax),
        outcome: cut(event.outcome, fieldMax),
        ...(event.name === undefined ? {} : { name: cut(event.name, fieldMax) }),
      }
    }
    return `${head}${time()}${bindings},${fields(event)},"msg":"audit"${end}`
  }
}

/** The keys an event may have (AuditEvent's), written as they are: none needs escaping. */
const EVENT_KEYS: ReadonlySet<string> = new Set<keyof AuditEvent>([
  'sub',
  'iss',
  'clientId',
  'server',
  'method',
  'name',
  'decision',
  'rule',
  'durationMs',
  'outcome',
  'credentials',
  'names',
  'signedOut',
  'operator',
])

/**
 * An event's fields as `JSON.stringify(event)` writes them, without its braces: its own keys
 * in their order, undefined left out, non-finite numbers null. A string field's text is kept
 * per key and reused while the value is the same (subject, issuer, client, server, method and
 * rule repeat call after call): a fifth of a line's cost was escaping them again. An event
 * with a key AuditEvent does not have is stringified whole.
 */
function eventFields(): (event: AuditEvent) => string {
  const value: Record<string, unknown> = Object.create(null)
  const text: Record<string, string> = Object.create(null)
  return (event) => {
    const e = event as unknown as Record<string, unknown>
    let out = ''
    for (const k of Object.keys(e)) {
      const v = e[k]
      if (typeof v === 'string' && value[k] === v) {
        out += text[k]
        continue
      }
      if (!EVENT_KEYS.has(k)) return JSON.stringify(event).slice(1, -1)
      const json = JSON.stringify(v)
      if (json === undefined) continue
      const field = `,"${k}":${json}`
      if (typeof v === 'string') {
        value[k] = v
        text[k] = field
      }
      out += field
    }
    return out.slice(1)
  }
}
