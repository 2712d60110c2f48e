import dns from 'node:dns'
import type { LookupFunction } from 'node:net'
import tls from 'node:tls'
import { Agent, fetch as undiciFetch } from 'undici'
import { boundedResponse } from '../auth/idp-http.js'
import {
  DEFAULT_UPSTREAM_CONNECTIONS,
  DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
  DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES,
} from '../config/schema.js'
import { UpstreamError } from './errors.js'

/** What openid-client hands its custom fetch (oauth4webapi's CustomFetchOptions, loosely). */
export interface UpstreamRequestInit {
  method?: string
  headers?: Record<string, string> | Headers
  body?: string | URLSearchParams | null
  redirect?: 'manual' | 'follow' | 'error'
  signal?: AbortSignal
}

/** A fetch to the upstream: the shape openid-client's `customFetch` takes. */
export type UpstreamFetch = (url: string, init: UpstreamRequestInit) => Promise<Response>

/** The gateway's HTTP client for one upstream IdP. */
export interface UpstreamHttp {
  fetch: UpstreamFetch
  close(): Promise<void>
}

// Fetch (WHATWG)'s redirect statuses.
const REDIRECT = new Set([301, 302, 303, 307, 308])

/**
 * Creates the upstream client: a dedicated undici Agent with connect, headers and body
 * timeouts and a connection cap, plus a deadline on the whole exchange, so a slow IdP costs at
 * most `timeoutMs` per call. A redirect is refused, never followed (the token endpoint must not
 * bounce a client secret or an assertion elsewhere); a body above `maxResponseBytes` is
 * refused while streaming, whatever Content-Length said. Both are `upstream_invalid_response`.
 * `connectTo` opens every connection at that host instead of the URL's (the URL's port, and
 * its name for SNI and the certificate check); `ca` is trusted besides the system's roots.
 * `transport` replaces the agent-bound undici fetch (tests); the checks still apply.
 */
export function createUpstreamHttp(o: {
  timeoutMs: number
  maxResponseBytes?: number
  /** Sockets to the upstream at most, and how long an idle one stays open (`upstream.connections`, `keepAlive`). */
  connections?: number
  keepAliveMs?: number
  connectTo?: string
  ca?: string
  transport?: UpstreamFetch
}): UpstreamHttp {
  const max = o.maxResponseBytes ?? DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES
  const agent = o.transport
    ? undefined
    : new Agent({
        connect: {
          timeout: o.timeoutMs,
          ...(o.connectTo !== undefined ? { lookup: lookupAt(o.connectTo) } : {}),
          ...(o.ca !== undefined ? { ca: [...tls.rootCertificates, o.ca] } : {}),
        },
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        keepAliveTimeout: o.keepAliveMs ?? DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
        connections: o.connections ?? DEFAULT_UPSTREAM_CONNECTIONS,
      })
  const transport: UpstreamFetch =
    o.transport ??
    ((url, init) =>
      undiciFetch(url, { ...init, dispatcher: agent } as never) as unknown as Promise<Response>)

  return {
    fetch: async (url, init) => {
      const deadline = AbortSignal.timeout(o.timeoutMs)
      const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline
      const res = await transport(url, { ...init, redirect: 'manual', signal })
      if (REDIRECT.has(res.status)) {
        await res.body?.cancel()
        throw new UpstreamError(
          'upstream_invalid_response',
          `the upstream answered ${res.status} with a redirect, which is not followed`,
        )
      }
      return boundedResponse(res, max, () => {
        return new UpstreamError(
          'upstream_invalid_response',
          `the upstream's response exceeds ${max} bytes`,
        )
      })
    },
    // Destroyed, requests under way included: the broker closes last, when no one is left to
    // use an answer, and a hung upstream must not hold shutdown up for its whole timeout.
    close: async () => {
      await agent?.destroy()
    },
  }
}

/**
 * A `net.connect` lookup that resolves `host` whatever name it is asked for. undici still sets
 * SNI and checks the certificate against the URL's host name, so TLS proves the peer is the
 * upstream; only the route to it changes.
 */
function lookupAt(host: string): LookupFunction {
  return (_name, options, callback) => dns.lookup(host, options, callback as never)
}
