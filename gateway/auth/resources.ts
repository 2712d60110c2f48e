import { metadataUrl } from './metadata.js'

/** The two ways a server is reached: Streamable HTTP (`/mcp/<server>`) and legacy HTTP+SSE (`/sse/<server>`). */
export type Endpoint = 'mcp' | 'sse'

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]']
const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d+)?$/i

/**
 * The protected resources of the gateway (RFC 9728): each server's resource URL per endpoint,
 * the metadata URL a challenge names, and the `aud` values a token for it may carry.
 *
 * A resource URL is the URL the client used (RFC 9728 §3.3: a client refuses metadata whose
 * `resource` differs from it). With a configured `publicUrl` that is always `publicUrl/…`.
 * Without one the gateway listens on loopback, where a user may type `localhost` or
 * `127.0.0.1` (or `[::1]`): the resource follows the loopback name the request's Host names,
 * and a token for any of them is accepted. The legacy endpoint `/sse/<server>` is a resource of
 * its own for the same server, so clients that discover OAuth from it find matching metadata.
 */
export interface Resources {
  /** The resource URL of `server`'s `endpoint`, as addressed by a request with this Host. */
  resource(server: string, endpoint: Endpoint, host?: string): string
  /** Its RFC 9728 metadata URL (the well-known segment before the path, §3.1). */
  metadata(server: string, endpoint: Endpoint, host?: string): string
  /** Every `aud` accepted for `server` (the same array each time: its canonical form is cached). */
  audiences(server: string): readonly string[]
  /** Every resource URL of every server, for an IdP that must know them (the dev IdP). */
  all(): string[]
  /** The server a resource URL names (exactly one of `all()`), else undefined. */
  serverOf(resource: string): string | undefined
}

/**
 * @param publicUrl the configured public URL, or undefined (then `listenUrl` is on loopback)
 * @param listenUrl where the gateway listens, e.g. http://127.0.0.1:8080
 * @param extra gateway-wide audiences (`auth.audience`)
 */
export function createResources(o: { publicUrl: string | undefined; listenUrl: string; servers: readonly string[]; extra: readonly string[] }): Resources {
  const port = new URL(o.listenUrl).port
  const bases = o.publicUrl !== undefined ? [o.publicUrl] : [o.listenUrl, ...LOOPBACK_NAMES.map((h) => `http://${h}:${port}`).filter((b) => b !== o.listenUrl)]
  const base = (host: string | undefined): string => {
    if (o.publicUrl !== undefined || host === undefined || !LOOPBACK_HOST.test(host)) return bases[0]!
    const name = host.replace(/:\d+$/, '').toLowerCase()
    // Only the loopback names tokens are issued for (127.9.9.9 is loopback, but no resource).
    return LOOPBACK_NAMES.includes(name) ? `http://${name}:${port}` : bases[0]!
  }
  const urlOf = (b: string, server: string, endpoint: Endpoint) => `${b}/${endpoint}/${server}`
  const lists = new Map(o.servers.map((s) => [s, [...bases.flatMap((b) => [urlOf(b, s, 'mcp'), urlOf(b, s, 'sse')]), ...o.extra]]))
  const owners = new Map(o.servers.flatMap((s) => bases.flatMap((b) => [[urlOf(b, s, 'mcp'), s], [urlOf(b, s, 'sse'), s]] as [string, string][])))
  return {
    resource: (server, endpoint, host) => urlOf(base(host), server, endpoint),
    metadata: (server, endpoint, host) => metadataUrl(urlOf(base(host), server, endpoint)),
    audiences: (server) => lists.get(server) ?? o.extra,
    all: () => o.servers.flatMap((s) => bases.flatMap((b) => [urlOf(b, s, 'mcp'), urlOf(b, s, 'sse')])),
    serverOf: (resource) => owners.get(resource),
  }
}
