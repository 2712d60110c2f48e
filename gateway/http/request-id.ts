import { randomUUID } from 'node:crypto'
import { isIP } from 'node:net'
import type { HttpBindings } from '@hono/node-server'
import type { Context, Next } from 'hono'
import type { Logger } from 'pino'
import { alreadySent } from './reply.js'
import { TRUST_ANY_PEER, type TrustedPeer } from './trust.js'

/** Hono context variables set by the gateway's middleware. */
export interface Vars {
  Bindings: Partial<HttpBindings>
  Variables: {
    log: Logger
    requestId: string /** The client's address (from a trusted proxy's X-Forwarded-For, else the peer). */
    clientIp: string | undefined
    /** Headers every response gets, for a handler that writes its response itself (reply.ts). */
    replyHeaders: Record<string, string>
  }
}

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/

/**
 * Gives every request an id and a child logger carrying it and the client's address, so
 * every line of a request can be found; echoes the id back. From a trusted proxy, its
 * `X-Request-Id` (when well-formed) and the first `X-Forwarded-For` address are believed;
 * from anyone else they are ignored.
 */
export function requestId(log: Logger, trusted: TrustedPeer) {
  return async function assignRequestId(c: Context<Vars>, next: Next): Promise<void> {
    const peer = c.env?.incoming?.socket?.remoteAddress
    const viaProxy = trusted(peer)
    const incoming = viaProxy ? c.req.header('x-request-id') : undefined
    const id = incoming && SAFE_ID.test(incoming) ? incoming : randomUUID()
    const forwarded = viaProxy ? clientAddress(c.req.header('x-forwarded-for'), trusted) : undefined
    c.set('requestId', id)
    c.set('clientIp', forwarded || peer)
    c.set('log', requestLogger(log, { req: id, ip: forwarded || peer }))
    c.set('replyHeaders', { 'x-request-id': id })
    await next()
    if (!alreadySent(c.res)) c.res.headers.set('x-request-id', id)
  }
}

/**
 * The request's child logger, made on first use: a pino child costs its bindings'
 * serialization and redaction, and an answered request logs nothing. Whether a level is
 * enabled is the parent's answer until then (a child starts at its parent's level).
 */
function requestLogger(parent: Logger, bindings: { req: string; ip: string | undefined }): Logger {
  let made: Logger | undefined
  return new Proxy({} as Logger, {
    get(_, key) {
      if (made === undefined && key === 'isLevelEnabled')
        return (level: string) => parent.isLevelEnabled(level)
      made ??= parent.child(bindings)
      const value = Reflect.get(made, key, made) as unknown
      return typeof value === 'function' ? value.bind(made) : value
    },
  })
}

/**
 * The client's address from X-Forwarded-For: the rightmost entry that is not a trusted proxy
 * (entries further left were written by the client and prove nothing). With every peer trusted
 * (`trustProxy: true`) nothing marks where the proxies end: the rightmost entry, which the peer
 * wrote (the leftmost is the client's own word behind any proxy that appends).
 */
function clientAddress(header: string | undefined, trusted: TrustedPeer): string | undefined {
  const hops = (header ?? '')
    .split(',')
    .map((s) => addressOf(s.trim()))
    .filter((s) => s !== '')
  if (trusted === TRUST_ANY_PEER) return hops.at(-1)
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted(hops[i])) return hops[i]
  return hops[0]
}

/**
 * An X-Forwarded-For entry's address: without the port or brackets some proxies write
 * (`203.0.113.5:40001`, `[2001:db8::5]:443`). Kept, the port made each connection its own
 * address: a new one for every per-address limit, and a trusted proxy taken for a client.
 */
function addressOf(entry: string): string {
  const spelled = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(entry) ?? /^([\d.]+):\d{1,5}$/.exec(entry)
  return spelled !== null && isIP(spelled[1]!) !== 0 ? spelled[1]! : entry
}
