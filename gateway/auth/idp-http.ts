import { Agent, fetch as undiciFetch } from 'undici'
import {
  DEFAULT_IDP_CONNECTIONS,
  DEFAULT_IDP_KEEP_ALIVE_MS,
  DEFAULT_IDP_MAX_RESPONSE_BYTES,
} from '../config/schema.js'

/** How the IdP client is bounded (`auth.idpConnections`, `idpMaxResponseBytes`, `idpKeepAlive`). */
export interface IdpBounds {
  connections: number
  maxResponseBytes: number
  keepAliveMs: number
}

/** A fetch bound to a dedicated undici agent, for discovery and JWKS only. */
export interface IdpHttp {
  fetch: (
    url: string,
    init?: { headers?: Headers; signal?: AbortSignal; redirect?: 'manual' },
  ) => Promise<Response>
  /**
   * Ends the pool, aborting a request in flight: at shutdown nothing waits for an IdP's answer,
   * and one that never answers would hold the exit for its whole timeout.
   */
  close(): Promise<void>
}

/**
 * Creates the IdP client: its own connection pool with connect, header and body timeouts,
 * keep-alive, a connection cap and a response size cap, so a slow or hostile IdP cannot stall
 * or flood the gateway. Redirects are never followed (RFC 8414 §3.3: the issuer is exact).
 * `ca`: a private CA (PEM) trusted besides the system's. `bounds` default to the schema's.
 */
export function createIdpHttp(
  timeoutMs: number,
  ca?: string,
  bounds: Partial<IdpBounds> = {},
): IdpHttp {
  const agent = new Agent({
    connect: { timeout: timeoutMs, ...(ca ? { ca } : {}) },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: bounds.keepAliveMs ?? DEFAULT_IDP_KEEP_ALIVE_MS,
    connections: bounds.connections ?? DEFAULT_IDP_CONNECTIONS,
    maxResponseSize: bounds.maxResponseBytes ?? DEFAULT_IDP_MAX_RESPONSE_BYTES,
  })
  return {
    fetch: async (url, init = {}) => {
      const signal = init.signal ?? AbortSignal.timeout(timeoutMs)
      const res = await undiciFetch(url, {
        headers: init.headers as never,
        signal,
        redirect: 'manual',
        dispatcher: agent,
      })
      return res as unknown as Response
    },
    close: () => agent.destroy(),
  }
}

/**
 * A body read to its end, `max` bytes at most: one byte more cancels the stream and throws
 * `tooLarge()`, so a hostile answer costs at most `max` bytes of memory, chunked or not.
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  max: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  const reader = stream.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return Buffer.concat(chunks, size)
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => {})
      throw tooLarge()
    }
    chunks.push(value)
  }
}
