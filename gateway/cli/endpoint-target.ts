// `mcp-edge policy check --endpoint`: from the name a client sees on an aggregated endpoint to
// the backend server and its own name, which is what policies are written and decided on.
import type { GatewayConfig } from '../config/schema.js'
import { buildNameTable } from '../bridge/endpoint-names.js'
import { NAMESPACE_SCHEME } from '../bridge/endpoint-uris.js'
import type { Feature } from '../policy/policy.js'

/** A check on an endpoint, taken back to one backend. */
export interface EndpointTarget {
  endpoint: string
  server: string
  /** The backend's own tool or prompt name, or resource URI. */
  name: string
  /** What the endpoint's clients see for it (when no other backend's name collides with it). */
  publicName: string
}

/** A check that cannot be taken back to one backend: a usage error, with what to give instead. */
export class EndpointTargetError extends Error {}

/**
 * Takes `name` as a client of `endpoint` sends it, or, with `server`, as that backend's own name.
 *
 * Offline there are no backend lists, so a public name is read by the naming rules' first form
 * (prefix + name) and checked by building it again; a hashed short form (a name past
 * `maxNameLength`, odd characters, or a collision) cannot be read back without the backends'
 * lists and needs `--server` with the backend's own name. A resource URI keeps its own form on
 * an endpoint unless two backends list it, so a plain URI names a backend only when the endpoint
 * has one; `mcp-edge://<server>/<uri>` names its server.
 */
export function endpointTarget(
  config: GatewayConfig,
  endpoint: string,
  feature: Feature,
  name: string,
  server?: string,
): EndpointTarget {
  const e = Object.hasOwn(config.endpoints, endpoint) ? config.endpoints[endpoint] : undefined
  if (e === undefined) {
    const known = Object.keys(config.endpoints)
    throw new EndpointTargetError(
      `endpoint ${endpoint} is not in the config (endpoints: ${known.length > 0 ? known.join(', ') : 'none'})`,
    )
  }
  const servers = e.servers === '*' ? Object.keys(config.servers) : e.servers
  const publicOf = (s: string, n: string) => {
    if (feature === 'resources') return n
    return (
      buildNameTable([{ server: s, names: [n] }], {
        prefix: e.prefix,
        maxLength: e.maxNameLength,
      }).publicName(s, n) ?? n
    )
  }
  if (server !== undefined) {
    if (!servers.includes(server)) {
      throw new EndpointTargetError(
        `server ${server} is not a backend of endpoint ${endpoint} (its servers: ${servers.join(', ')})`,
      )
    }
    return { endpoint, server, name, publicName: publicOf(server, name) }
  }
  if (feature === 'resources') return resourceTarget(endpoint, servers, name)
  const found = servers.flatMap((s) => {
    const lead = e.prefix.replaceAll('{server}', s)
    if (!name.startsWith(lead) || name.length === lead.length) return []
    const own = name.slice(lead.length)
    return publicOf(s, own) === name ? [{ endpoint, server: s, name: own, publicName: name }] : []
  })
  if (found.length === 1) return found[0]!
  const kind = feature === 'tools' ? 'tool' : 'prompt'
  if (found.length === 0) {
    throw new EndpointTargetError(
      `${kind} ${name} is no backend's name on endpoint ${endpoint} by its prefix "${e.prefix}" (a hashed short form cannot be read back offline): give --server and the backend's own name`,
    )
  }
  throw new EndpointTargetError(
    `${kind} ${name} on endpoint ${endpoint} could be ${found.map((f) => `${f.name} on ${f.server}`).join(' or ')} (the endpoint shows each a hashed name when both exist): give --server`,
  )
}

function resourceTarget(endpoint: string, servers: readonly string[], uri: string): EndpointTarget {
  const ns = `${NAMESPACE_SCHEME}://`
  if (uri.slice(0, ns.length).toLowerCase() === ns) {
    const rest = uri.slice(ns.length)
    const slash = rest.indexOf('/')
    const server = slash > 0 ? rest.slice(0, slash) : ''
    if (!servers.includes(server)) {
      throw new EndpointTargetError(
        `resource ${uri} names no backend of endpoint ${endpoint} (its servers: ${servers.join(', ')})`,
      )
    }
    return { endpoint, server, name: rest.slice(slash + 1), publicName: uri }
  }
  if (servers.length === 1) return { endpoint, server: servers[0]!, name: uri, publicName: uri }
  throw new EndpointTargetError(
    `resource ${uri} on endpoint ${endpoint}: which backend serves a plain URI is known only from their lists: give --server`,
  )
}
