import dns, { type LookupAddress } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import {
  Agent,
  buildConnector,
  fetch as undiciFetch,
  type RequestInit as UndiciRequestInit,
} from 'undici'
import { DEFAULT_CIMD_MAX_CONCURRENT } from '../config/schema.js'
import { compileCidrs, isSpecialUseAddress } from './addresses.js'
import { CimdFetchError } from './client-errors.js'

/**
 * Fetches Client ID Metadata Documents (and whatever else oidc-provider fetches on a client's
 * word) without letting a stranger aim the broker at the inside: https only, no redirects,
 * a bounded body and time, optional host allow-list, and every address it connects to checked
 * when it is resolved (so a DNS answer cannot change between the check and the connect).
 * Names are resolved by DNS queries on the event loop, never by getaddrinfo on libuv's thread
 * pool: a stranger's name that takes long to resolve must not hold the threads that verify
 * every token (WebCrypto), read files and inflate bodies.
 * Loopback, private and special-use addresses are refused unless inside `allowPrivate`.
 */

export interface CimdFetchOptions {
  /** CIDR ranges a host may resolve to although special-use (tests, intranets). */
  allowPrivate: readonly string[]
  /** Only these host names (`*.example.com`: any name below it); unset: any host. */
  allowHosts?: readonly string[]
  /** The whole fetch, connect to last body byte, in ms. */
  timeoutMs: number
  /** Largest body accepted, in bytes (decoded), checked while it streams. */
  maxBytes: number
  /** Told why each document was not fetched, or its status when not 200 (info; never the body). */
  log?: Logger
  /** Fetches under way at most; one more is refused (`busy`), not queued. Default: the schema's. */
  maxConcurrent?: number
  /** A PEM CA certificate trusted besides the system's roots. */
  ca?: string
  /** DNS servers to ask (`ip[:port]`) instead of the system's (tests). */
  dnsServers?: readonly string[]
}

/** What oidc-provider hands its `fetch` hook: fetch options plus its own `dispatcher`, which is ignored. */
export type CimdFetchInit = RequestInit & { dispatcher?: unknown }

/** A fetch-compatible function for oidc-provider's `fetch` configuration, and its connection pool's close. */
export interface CimdFetch {
  (input: string | URL | Request, init?: CimdFetchInit): Promise<Response>
  close(): Promise<void>
}

/**
 * Builds the fetcher. Resolves a `Response` with the body fully read (≤ `maxBytes`) or
 * rejects with a `CimdFetchError`: `bad_url`, `not_https`, `host_not_allowed`, `busy`,
 * `address_refused`, `redirect_refused`, `too_large`, `timeout`, `aborted`, `fetch_failed`.
 * @throws CimdFetchError `bad_options` when `allowPrivate` or `allowHosts` cannot work
 */
export function createCimdFetch(o: CimdFetchOptions): CimdFetch {
  const allowPrivate = compileCidrs(o.allowPrivate)
  const hosts = compileHosts(o.allowHosts)
  const problems = [...allowPrivate.problems, ...hosts.problems]
  if (problems.length > 0) {
    throw new CimdFetchError(
      'bad_options',
      `invalid CIMD fetch options:\n  ${problems.join('\n  ')}`,
    )
  }
  const permitted = (ip: string) => !isSpecialUseAddress(ip) || allowPrivate.test(ip)

  // One try per server, each at most the fetch's time; cancelled with the fetcher.
  const resolver = new dns.promises.Resolver({ timeout: o.timeoutMs, tries: 1 })
  if (o.dnsServers !== undefined) resolver.setServers(o.dnsServers)
  const base = buildConnector({
    timeout: o.timeoutMs,
    lookup: checkedLookup(permitted, resolver),
    ...(o.ca === undefined ? {} : { ca: [...tls.rootCertificates, o.ca] }),
  })
  // Names are checked by the lookup above; an IP literal is never looked up, so check it here.
  const connect: buildConnector.connector = (opts, callback) => {
    if (isIP(opts.hostname) !== 0 && !permitted(opts.hostname)) {
      const why = `${opts.hostname} is a loopback, private or special-use address`
      callback(new CimdFetchError('address_refused', why), null)
      return
    }
    base(opts, callback)
  }
  const agent = new Agent({ connect, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs })
  // Anyone's /authorize names a document to fetch: without a bound, stalling hosts (one name
  // each, or one host and many paths) held a socket apiece, as many as requests came.
  let underWay = 0
  const maxConcurrent = o.maxConcurrent ?? DEFAULT_CIMD_MAX_CONCURRENT

  async function cimdFetch(
    input: string | URL | Request,
    init: CimdFetchInit = {},
  ): Promise<Response> {
    // A Request would carry its own method, headers and body past these checks: URLs only.
    const url = input instanceof Request ? null : URL.parse(String(input))
    // The client only learns `invalid_client`: the operator learns why (never the body).
    const host = url?.host
    try {
      const res = await checkedFetch(url, init)
      if (res.status !== 200)
        o.log?.info({ host, status: res.status }, 'client metadata document not fetched')
      return res
    } catch (err) {
      const { code, message } = err as CimdFetchError
      o.log?.info({ host, code, why: message }, 'client metadata document not fetched')
      throw err
    }
  }

  async function checkedFetch(url: URL | null, init: CimdFetchInit): Promise<Response> {
    if (url === null) throw new CimdFetchError('bad_url', 'not an absolute URL')
    if (url.protocol !== 'https:')
      throw new CimdFetchError('not_https', `${url.protocol} is not https:`)
    if (url.username !== '' || url.password !== '') {
      throw new CimdFetchError('bad_url', 'the URL has credentials')
    }
    if (!hosts.test(url.hostname)) {
      throw new CimdFetchError('host_not_allowed', `${url.hostname} is not an allowed host`)
    }
    if (underWay >= maxConcurrent) {
      const why = `${maxConcurrent} client metadata documents are being fetched already`
      throw new CimdFetchError('busy', why)
    }
    underWay++
    try {
      return await fetchOne(url, init)
    } finally {
      underWay--
    }
  }

  /** One fetch of a checked URL, body read whole. */
  async function fetchOne(url: URL, init: CimdFetchInit): Promise<Response> {
    const timeout = AbortSignal.timeout(o.timeoutMs)
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout
    const failed = (err: unknown) => translate(err, url.host, signal)
    const { dispatcher: _ignored, ...rest } = init
    // Our agent, whatever the caller passed: oidc-provider's own checks only after connecting.
    const options: UndiciRequestInit = {
      ...(rest as UndiciRequestInit),
      dispatcher: agent,
      redirect: 'manual',
      signal,
    }
    const response = await undiciFetch(url, options).catch((err) => {
      throw failed(err)
    })
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel().catch(() => {})
      const why = `${url.host} answered ${response.status}: redirects are not followed`
      throw new CimdFetchError('redirect_refused', why)
    }
    const declared = Number(response.headers.get('content-length') ?? NaN)
    if (declared > o.maxBytes) {
      await response.body?.cancel().catch(() => {})
      throw new CimdFetchError(
        'too_large',
        `${url.host} declared ${declared} bytes, more than ${o.maxBytes}`,
      )
    }
    const stream = response.body as ReadableStream<Uint8Array> | null
    const body = await readCapped(stream, o.maxBytes, url.host).catch((err) => {
      throw failed(err)
    })
    // The body is handed on decoded and whole: its framing headers describe it, not the wire.
    const headers = new Headers()
    for (const [k, v] of response.headers) if (!FRAMING.has(k)) headers.append(k, v)
    headers.set('content-length', String(body.byteLength))
    const empty = response.status === 204 || response.status === 205
    const answer = { status: response.status, statusText: response.statusText, headers }
    return new Response(empty ? null : body, answer)
  }

  return Object.assign(cimdFetch, {
    close: () => {
      resolver.cancel()
      return agent.destroy()
    },
  })
}

/**
 * A `net.connect` lookup that resolves every address of a name and refuses the name when
 * any of them is not `permitted`; the socket then connects to exactly what was checked.
 */
function checkedLookup(
  permitted: (ip: string) => boolean,
  resolver: dns.promises.Resolver,
): LookupFunction {
  return (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family
    resolveAll(resolver, hostname, family ?? 0).then(
      (addresses) => {
        const refused = addresses.find((a) => !permitted(a.address))
        if (refused !== undefined || addresses.length === 0) {
          const why =
            refused === undefined
              ? 'no address'
              : `${refused.address}, a loopback, private or special-use address`
          return callback(
            new CimdFetchError('address_refused', `${hostname} resolves to ${why}`),
            '',
            0,
          )
        }
        if (options.all) return callback(null, addresses)
        callback(null, addresses[0]!.address, addresses[0]!.family)
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    )
  }
}

/** RFC 6761 §6.3: localhost names are loopback, answered without asking DNS. */
const LOCALHOST = /^(?:[^.]+\.)*localhost\.?$/i
const LOOPBACK_V4 = { address: '127.0.0.1', family: 4 }

/** The A and AAAA records of `name` (of `family` only, when 4 or 6), by DNS queries. */
async function resolveAll(
  resolver: dns.promises.Resolver,
  name: string,
  family: number,
): Promise<LookupAddress[]> {
  // IPv4's loopback, as the hosts file has it, unless only IPv6 is asked for.
  if (LOCALHOST.test(name)) return [family === 6 ? { address: '::1', family: 6 } : LOOPBACK_V4]
  const [v4, v6] = await Promise.allSettled([
    family === 6 ? [] : resolver.resolve4(name),
    family === 4 ? [] : resolver.resolve6(name),
  ])
  const addresses = [
    ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
    ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
  ]
  if (addresses.length > 0) return addresses
  const failed = [v4, v6].find((r) => r.status === 'rejected')
  if (failed) throw failed.reason
  return addresses
}

/** The body, read until `max` bytes at most; one byte more cancels the stream. */
async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  host: string,
): Promise<Uint8Array<ArrayBuffer>> {
  if (body === null) return new Uint8Array(0)
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return new Uint8Array(Buffer.concat(chunks))
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => {})
      throw new CimdFetchError('too_large', `${host} sent more than ${max} bytes`)
    }
    chunks.push(value)
  }
}

/** undici's own connect, headers and body timeouts (each set to `timeoutMs`). */
const UNDICI_TIMEOUTS = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])
/** Headers about the wire form of a body, dropped from the decoded copy handed on. */
const FRAMING = new Set(['content-length', 'content-encoding', 'transfer-encoding'])

/** A fetch failure as a `CimdFetchError`: ours from deep inside (lookup, connect), or by the signal. */
function translate(err: unknown, host: string, signal: AbortSignal): CimdFetchError {
  let timedOut = false
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e instanceof CimdFetchError) return e
    timedOut ||= UNDICI_TIMEOUTS.has((e as { code?: string }).code ?? '')
  }
  if (timedOut) return new CimdFetchError('timeout', `${host} did not answer in time`, err)
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined
    if (reason?.name === 'TimeoutError') {
      return new CimdFetchError('timeout', `${host} did not answer in time`, err)
    }
    return new CimdFetchError('aborted', `the fetch from ${host} was aborted`, err)
  }
  return new CimdFetchError('fetch_failed', `fetching from ${host} failed`, err)
}

/** Compiles `allowHosts`: exact host names, or `*.suffix` for any name below the suffix. */
function compileHosts(list: readonly string[] | undefined): {
  test: (host: string) => boolean
  problems: string[]
} {
  if (list === undefined) return { test: () => true, problems: [] }
  const exact = new Set<string>()
  const suffixes: string[] = []
  const problems: string[] = []
  for (const entry of list) {
    const name = entry.startsWith('*.') ? entry.slice(2) : entry
    if (URL.parse(`https://${name}/`)?.hostname !== name || name.includes('*')) {
      problems.push(`${JSON.stringify(entry)} is not a lower-case host name or *.domain`)
    } else if (entry.startsWith('*.')) suffixes.push(`.${name}`)
    else exact.add(name)
  }
  return { test: (host) => exact.has(host) || suffixes.some((s) => host.endsWith(s)), problems }
}
