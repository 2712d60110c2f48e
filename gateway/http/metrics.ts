import type { Context } from 'hono'
import type { GatewayConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import type { Vars } from './request-id.js'
import { rpcErrorResponse } from './respond.js'
import { trustedPeer } from './trust.js'

/**
 * `GET /metrics` on the main listener: Prometheus text, unless the operator moved metrics to
 * their own listener (`metrics.listen`: 404 here) or limited who may read them
 * (`metrics.allowFrom`: other peers get 403). The peer is the connection's own address, never
 * a forwarded header.
 */
export function metricsEndpoint(metrics: Metrics, config: GatewayConfig['metrics']) {
  const allowed = config.allowFrom === undefined ? () => true : trustedPeer(config.allowFrom)
  return async function serveMetrics(c: Context<Vars>): Promise<Response> {
    if (config.listen !== undefined) return rpcErrorResponse(404, -32601, 'not found')
    if (!allowed(c.env?.incoming?.socket?.remoteAddress))
      return rpcErrorResponse(403, -32000, 'metrics are not served to this address')
    return metricsResponse(metrics)
  }
}

/** The metrics as a Prometheus text response. */
export async function metricsResponse(metrics: Metrics): Promise<Response> {
  return new Response(await metrics.registry.metrics(), {
    headers: { 'content-type': metrics.registry.contentType },
  })
}
