import type { Context } from 'hono'
import { protectedResourceMetadata } from '../auth/metadata.js'
import type { Endpoint, Resources } from '../auth/resources.js'
import type { GatewayConfig } from '../config/schema.js'
import { rpcErrorResponse } from './respond.js'

/**
 * RFC 9728 metadata documents: one per server, at the well-known path built from its
 * resource URL; the root form only when one gateway-wide audience is configured (else 404,
 * so a token for one server is never advertised as good for another: checklist A7).
 * Public (no auth), cacheable, readable cross-origin.
 */
export function wellKnown(d: {
  config: GatewayConfig
  issuer: () => string
  publicUrl: string
  resources: Resources
  scopes: (servers: string | readonly string[] | undefined) => string[]
}) {
  const respond = (doc: Record<string, unknown>) =>
    new Response(JSON.stringify(doc), {
      headers: {
        'content-type': 'application/json',
        'cache-control': `public, max-age=${d.config.auth.metadataMaxAge}`,
        'access-control-allow-origin': '*',
      },
    })
  return {
    /** The document of `server`'s Streamable HTTP (`mcp`) or legacy HTTP+SSE (`sse`) endpoint. */
    server(c: Context, endpoint: Endpoint): Response {
      const server = c.req.param('server') ?? ''
      // /sse/<endpoint>: an endpoint's legacy transport is a resource of its own.
      if (endpoint === 'sse' && d.config.endpoints[server] !== undefined)
        return this.target(c, { endpoint: server }, 'sse')
      const config = d.config.servers[server]
      if (config === undefined) return rpcErrorResponse(404, -32001, 'no such protected resource')
      return respond(
        protectedResourceMetadata({
          resource: d.resources.resource(server, endpoint, c.req.header('host')),
          issuer: d.issuer(),
          scopes: d.scopes(server),
          name: config.description ? `${server}: ${config.description}` : `MCP server ${server}`,
        }),
      )
    },
    /** The document of what a routed host's `/mcp` or an endpoint's path serves. */
    target(
      c: Context,
      target: ({ server: string } | { endpoint: string }) & { routed?: boolean },
      transport: Endpoint = 'mcp',
    ): Response {
      const host = c.req.header('host')
      if ('server' in target) {
        const config = d.config.servers[target.server]
        if (config === undefined) return rpcErrorResponse(404, -32001, 'no such protected resource')
        return respond(
          protectedResourceMetadata({
            resource: d.resources.resource(target.server, 'mcp', host, target.routed === true),
            issuer: d.issuer(),
            scopes: d.scopes(target.server),
            name: config.description
              ? `${target.server}: ${config.description}`
              : `MCP server ${target.server}`,
          }),
        )
      }
      const endpoint = d.config.endpoints[target.endpoint]
      if (endpoint === undefined) return rpcErrorResponse(404, -32001, 'no such protected resource')
      const servers = endpoint.servers === '*' ? Object.keys(d.config.servers) : endpoint.servers
      return respond(
        protectedResourceMetadata({
          resource: d.resources.endpointResource(
            target.endpoint,
            host,
            transport,
            target.routed === true,
          ),
          issuer: d.issuer(),
          scopes: d.scopes(servers),
          name: endpoint.description
            ? `${target.endpoint}: ${endpoint.description}`
            : `MCP endpoint ${target.endpoint}`,
        }),
      )
    },
    root(): Response {
      if (d.config.auth.audience === undefined)
        return rpcErrorResponse(
          404,
          -32001,
          'no gateway-wide resource; use /.well-known/oauth-protected-resource/mcp/<server>',
        )
      return respond(
        protectedResourceMetadata({
          resource: d.publicUrl,
          issuer: d.issuer(),
          scopes: d.scopes(undefined),
          name: 'mcp-edge gateway',
        }),
      )
    },
  }
}
