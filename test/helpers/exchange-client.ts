import assert from 'node:assert/strict'
import { pino } from 'pino'
import type { Dispatcher } from 'undici'
import {
  DEFAULT_EXCHANGE_CONNECTIONS,
  DEFAULT_EXCHANGE_MAX_REUSE_MS,
  DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS,
} from '../../gateway/config/schema.js'
import { CredentialError, type CredentialErrorCode } from '../../gateway/credentials/errors.js'
import { TokenExchange, type TokenExchangeConfig } from '../../gateway/credentials/exchange.js'
import { EXCHANGE_CLIENTS, type ExchangeIdp } from './exchange-idp.js'

/** A TokenExchange under test, its clock and every log line it wrote. */
export interface Harness {
  x: TokenExchange
  clock: { t: number }
  lines: string[]
}

export type HarnessOptions = Partial<
  Omit<TokenExchangeConfig, 'clientAuth' | 'clientId' | 'clientSecret'>
> & {
  client?: keyof typeof EXCHANGE_CLIENTS
  secret?: string
  endpoint?: () => Promise<string>
}

/**
 * A TokenExchange against `idp` through `dispatcher` (which trusts the test CA), logging at
 * debug to memory through a plain pino (no redaction: the code itself must keep tokens out),
 * on a clock the test moves. Its lines are also appended to `allLines`.
 */
export function harness(
  idp: ExchangeIdp,
  dispatcher: Dispatcher,
  allLines: string[],
  o: HarnessOptions = {},
): Harness {
  const client = EXCHANGE_CLIENTS[o.client ?? 'basic']
  const clock = { t: 1_000_000 }
  const lines: string[] = []
  const log = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        lines.push(line)
        allLines.push(line)
      },
    },
  )
  const config: TokenExchangeConfig = {
    clientId: client.clientId,
    clientAuth: client.clientAuth,
    timeout: o.timeout ?? 5_000,
    renewBefore: o.renewBefore ?? 60_000,
    maxResponseBytes: o.maxResponseBytes ?? 65_536,
    cacheMax: o.cacheMax ?? 100,
    unknownLifetime: o.unknownLifetime ?? DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS,
    maxReuse: o.maxReuse ?? DEFAULT_EXCHANGE_MAX_REUSE_MS,
    connections: o.connections ?? DEFAULT_EXCHANGE_CONNECTIONS,
  }
  const secret = o.secret ?? ('clientSecret' in client ? client.clientSecret : undefined)
  const x = new TokenExchange({
    config,
    ...(secret === undefined ? {} : { clientSecret: secret }),
    tokenEndpoint: o.endpoint ?? (async () => idp.tokenEndpoint),
    log,
    now: () => clock.t,
    dispatcher,
  })
  return { x, clock, lines }
}

/** Asserts `p` rejects with a CredentialError of `code`, whose message names `mentions` and no token in `secrets`. */
export async function rejectsWith(
  p: Promise<unknown>,
  code: CredentialErrorCode,
  mentions: RegExp,
  secrets: string[] = [],
): Promise<CredentialError> {
  let caught: CredentialError | undefined
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof CredentialError, `not a CredentialError: ${String(err)}`)
    assert.equal(err.code, code, err.message)
    assert.match(err.message, mentions)
    for (const s of secrets)
      assert.ok(!err.message.includes(s), `the message carries a token: ${err.message}`)
    caught = err
    return true
  })
  return caught!
}

/** The parsed log lines with `msg`. */
export function logged(lines: string[], msg: string): Array<Record<string, unknown>> {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg)
}

/**
 * Asserts no line carries any of `tokens`, whole or in part: for a JWT, its payload and
 * signature are checked by 24-character pieces from their middle and end (its header is the
 * same for every token of an IdP, and secret to no one).
 */
export function assertNoTokenIn(lines: string[], tokens: Iterable<string>): void {
  const pieces = new Set<string>()
  for (const token of tokens) {
    const parts = token.split('.')
    for (const part of parts.length === 3 ? parts.slice(1) : parts) {
      if (part.length >= 40) pieces.add(part.slice(12, 36)).add(part.slice(-24))
      else if (part.length >= 8) pieces.add(part)
    }
  }
  for (const line of lines)
    for (const piece of pieces)
      assert.ok(!line.includes(piece), `a token (part) in the log: ${line}`)
}
