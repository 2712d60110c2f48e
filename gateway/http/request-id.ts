import { randomUUID } from 'node:crypto'
import type { Context, Next } from 'hono'
import type { Logger } from 'pino'

/** Hono context variables set by the gateway's middleware. */
export interface Vars {
  Variables: { log: Logger; requestId: string }
}

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/

/**
 * Gives every request an id (the proxy's `X-Request-Id` when trusted and well-formed) and a
 * child logger carrying it, so every line of a request can be found; echoes it back.
 */
export function requestId(log: Logger, trustProxy: boolean) {
  return async function assignRequestId(c: Context<Vars>, next: Next): Promise<void> {
    const incoming = trustProxy ? c.req.header('x-request-id') : undefined
    const id = incoming && SAFE_ID.test(incoming) ? incoming : randomUUID()
    c.set('requestId', id)
    c.set('log', log.child({ req: id }))
    await next()
    c.res.headers.set('x-request-id', id)
  }
}
