import { metadataUrl } from './metadata.js'

/** The two ways a server is reached: Streamable HTTP (`/mcp/<server>`) and legacy HTTP+SSE (`/sse/<server>`). */
export type Endpoint = 'mcp' | 'sse'

/** What a host name's `/mcp` serves (config `hosts:`). */
export type HostRoute = { server: string } | { endpoint: string }

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]']
const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d+)?$/i

/**
 * The protected resources of the gateway (RFC 9728): each server's resource URL per endpoint,
 * each aggregating endpoint's, each routed host's, the metadata URL a challenge names, and
 * the `aud` values a token for it may carry.
 *
 * A resource URL is the URL the client used (RFC 9728 §3.3: a client refuses metadata whose
 * `resource` differs from it). With a configured `publicUrl` that is always `publicUrl/…`, or
 * `https://<routed host>/mcp` for a host that `hosts:` routes. Without one the gateway listens
 * on loopback, where a user may type `localhost` or `127.0.0.1` (or `[::1]`): the resource
 * follows the loopback name the request's Host names, and a token for any of them is accepted.
 * The legacy endpoint `/sse/<server>` is a resource of its own for the same server, so clients
 * that discover OAuth from it find matching metadata. A token is good at one resource only: a
 * server's, an endpoint's, or a routed host's (unless the gateway-wide `extra` audience).
 */
export interface Resources {
  /**
   * The resource URL of `server`'s `endpoint`, as addressed by a request with this Host;
   * `routed`: the request came to a routed host's `/mcp` (else the URL is the path's own).
   */
  resource(server: string, endpoint: Endpoint, host?: string, routed?: boolean): string
  /** Its RFC 9728 metadata URL (the well-known segment before the path, §3.1). */
  metadata(server: string, endpoint: Endpoint, host?: string, routed?: boolean): string
  /** Every `aud` accepted for `server` (the same array each time: its canonical form is cached). */
  audiences(server: string): readonly string[]
  /** The resource URL of an aggregating endpoint (its path, or the legacy `/sse/<name>`), as addressed with this Host. */
  endpointResource(name: string, host?: string, transport?: Endpoint, routed?: boolean): string
  endpointMetadata(name: string, host?: string, transport?: Endpoint, routed?: boolean): string
  /** Every `aud` accepted at an endpoint: its own URLs, never a backend's. */
  endpointAudiences(name: string): readonly string[]
  /** What `host`'s `/mcp` serves, if `hosts:` routes it. */
  routeOf(host: string | undefined): HostRoute | undefined
  /** Every resource URL, for an IdP that must know them (the dev IdP). */
  all(): string[]
  /** The servers a resource URL opens: one for a server's, the backends for an endpoint's; [] for none. */
  serversOf(resource: string): string[]
}

/**
 * @param publicUrl the configured public URL, or undefined (then `listenUrl` is on loopback)
 * @param listenUrl where the gateway listens, e.g. http://127.0.0.1:8080
 * @param endpoints aggregating endpoints: their path and backend servers
 * @param hosts host names whose `/mcp` is a server or an endpoint
 * @param extra gateway-wide audiences (`auth.audience`)
 */
export function createResources(o: {
  publicUrl: string | undefined
  listenUrl: string
  servers: readonly string[]
  endpoints?: Readonly<Record<string, { path: string; servers: readonly string[] }>>
  hosts?: Readonly<Record<string, HostRoute>>
  extra: readonly string[]
}): Resources {
  const port = new URL(o.listenUrl).port
  const bases =
    o.publicUrl !== undefined
      ? [o.publicUrl]
      : [
          o.listenUrl,
          ...LOOPBACK_NAMES.map((h) => `http://${h}:${port}`).filter((b) => b !== o.listenUrl),
        ]
  const base = (host: string | undefined): string => {
    if (o.publicUrl !== undefined || host === undefined || !LOOPBACK_HOST.test(host))
      return bases[0]!
    const name = host.replace(/:\d+$/, '').toLowerCase()
    // Only the loopback names tokens are issued for (127.9.9.9 is loopback, but no resource).
    return LOOPBACK_NAMES.includes(name) ? `http://${name}:${port}` : bases[0]!
  }
  const endpoints = o.endpoints ?? {}
  const hosts = o.hosts ?? {}
  // A routed host keeps the public URL's scheme and port: https://notes.example.com/mcp.
  const origin = new URL(bases[0]!)
  const hostUrl = (host: string) =>
    `${origin.protocol}//${host}${origin.port ? `:${origin.port}` : ''}/mcp`
  const hostsOf = (match: (r: HostRoute) => boolean) =>
    Object.entries(hosts)
      .filter(([, r]) => match(r))
      .map(([h]) => hostUrl(h))
  const routeOf = (host: string | undefined): HostRoute | undefined => {
    if (host === undefined) return undefined
    const name = host.replace(/:\d+$/, '').replace(/\.$/, '').toLowerCase()
    return Object.hasOwn(hosts, name) ? hosts[name] : undefined
  }
  const urlOf = (b: string, server: string, endpoint: Endpoint) => `${b}/${endpoint}/${server}`
  const serverUrls = (s: string) => [
    ...bases.flatMap((b) => [urlOf(b, s, 'mcp'), urlOf(b, s, 'sse')]),
    ...hostsOf((r) => 'server' in r && r.server === s),
  ]
  const endpointUrls = (e: string) => [
    ...bases.flatMap((b) => [`${b}${endpoints[e]!.path}`, urlOf(b, e, 'sse')]),
    ...hostsOf((r) => 'endpoint' in r && r.endpoint === e),
  ]
  const lists = new Map(o.servers.map((s) => [s, [...serverUrls(s), ...o.extra]]))
  const endpointLists = new Map(
    Object.keys(endpoints).map((e) => [e, [...endpointUrls(e), ...o.extra]]),
  )
  const owners = new Map<string, string[]>([
    ...o.servers.flatMap((s) => serverUrls(s).map((u) => [u, [s]] as [string, string[]])),
    ...Object.keys(endpoints).flatMap((e) =>
      endpointUrls(e).map((u) => [u, [...endpoints[e]!.servers]] as [string, string[]]),
    ),
  ])
  const serverResource = (server: string, endpoint: Endpoint, host?: string, routed = false) => {
    const route = endpoint === 'mcp' && routed ? routeOf(host) : undefined
    return route !== undefined && 'server' in route && route.server === server
      ? hostUrl(host!.replace(/:\d+$/, '').replace(/\.$/, '').toLowerCase())
      : urlOf(base(host), server, endpoint)
  }
  const endpointResource = (
    name: string,
    host?: string,
    transport: Endpoint = 'mcp',
    routed = false,
  ) => {
    if (transport === 'sse') return urlOf(base(host), name, 'sse')
    const route = routed ? routeOf(host) : undefined
    return route !== undefined && 'endpoint' in route && route.endpoint === name
      ? hostUrl(host!.replace(/:\d+$/, '').replace(/\.$/, '').toLowerCase())
      : `${base(host)}${endpoints[name]?.path ?? ''}`
  }
  return {
    resource: serverResource,
    metadata: (server, endpoint, host, routed) =>
      metadataUrl(serverResource(server, endpoint, host, routed)),
    audiences: (server) => lists.get(server) ?? o.extra,
    endpointResource,
    endpointMetadata: (name, host, transport, routed) =>
      metadataUrl(endpointResource(name, host, transport, routed)),
    endpointAudiences: (name) => endpointLists.get(name) ?? o.extra,
    routeOf,
    all: () => [...owners.keys()],
    serversOf: (resource) => owners.get(resource) ?? [],
  }
}
