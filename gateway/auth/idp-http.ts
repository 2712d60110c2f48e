import tls from 'node:tls'
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
 * The answer comes back read whole and decoded, at most `maxResponseBytes` of it (else the
 * fetch rejects). `ca`: a private CA (PEM) trusted besides the system's. `bounds` default to
 * the schema's.
 */
export function createIdpHttp(
  timeoutMs: number,
  ca?: string,
  bounds: Partial<IdpBounds> = {},
): IdpHttp {
  const max = bounds.maxResponseBytes ?? DEFAULT_IDP_MAX_RESPONSE_BYTES
  const agent = new Agent({
    // Given alone, `ca` would replace the system's roots (as the broker's clients do not).
    connect: { timeout: timeoutMs, ...(ca ? { ca: [...tls.rootCertificates, ca] } : {}) },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: bounds.keepAliveMs ?? DEFAULT_IDP_KEEP_ALIVE_MS,
    connections: bounds.connections ?? DEFAULT_IDP_CONNECTIONS,
    maxResponseSize: max,
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
      // maxResponseSize counts bytes on the wire: 200 KB of gzip inflates to 200 MB. Decoded too.
      return boundedResponse(res as unknown as Response, max, () => {
        return new Error(`${new URL(url).host}'s answer exceeds ${max} bytes (decoded)`)
      })
    },
    close: () => agent.destroy(),
  }
}

// Fetch (WHATWG) forbids a body on these statuses.
const NULL_BODY = new Set([101, 103, 204, 205, 304])

/**
 * `res` with its body read whole, decoded, `max` bytes at most (a Content-Length above it is
 * refused before reading), as a new Response whose framing headers describe that copy.
 * @throws what `tooLarge()` returns
 */
export async function boundedResponse(
  res: Response,
  max: number,
  tooLarge: () => Error,
): Promise<Response> {
  if (Number(res.headers.get('content-length') ?? 0) > max) {
    await res.body?.cancel().catch(() => {})
    throw tooLarge()
  }
  const body =
    NULL_BODY.has(res.status) || res.body === null
      ? null
      : await readCapped(res.body as ReadableStream<Uint8Array>, max, tooLarge)
  const headers = new Headers(res.headers)
  // The body is now decoded and whole: its original framing no longer applies.
  headers.delete('content-length')
  headers.delete('content-encoding')
  const { status, statusText } = res
  return new Response(body as BodyInit | null, { status, statusText, headers })
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
