import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

/** The gateway's Prometheus metrics, one registry per gateway (tests run several). */
export interface Metrics {
  registry: Registry
  decisions: Counter<'server' | 'decision'>
  authFailures: Counter<'code'>
  policyReloads: Counter<'result'>
  jwksRefreshes: Counter<'result'>
  childExits: Counter<'server'>
}

/** Creates the metrics; `sessions` is read at scrape time. */
export function createMetrics(sessions: () => number): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'mcp_edge_' })
  const metrics: Metrics = {
    registry,
    decisions: new Counter({ name: 'mcp_edge_policy_decisions_total', help: 'Policy decisions on gated requests and session access', labelNames: ['server', 'decision'], registers: [registry] }),
    authFailures: new Counter({ name: 'mcp_edge_auth_failures_total', help: 'Requests refused by authentication, by reason', labelNames: ['code'], registers: [registry] }),
    policyReloads: new Counter({ name: 'mcp_edge_policy_reloads_total', help: 'Policy reloads, by result (ok, failed)', labelNames: ['result'], registers: [registry] }),
    jwksRefreshes: new Counter({ name: 'mcp_edge_jwks_fetches_total', help: 'Issuer key set loads, by result', labelNames: ['result'], registers: [registry] }),
    childExits: new Counter({ name: 'mcp_edge_server_process_exits_total', help: 'Server processes that exited on their own (not ended by the gateway)', labelNames: ['server'], registers: [registry] }),
  }
  new Gauge({ name: 'mcp_edge_sessions', help: 'Live MCP sessions', registers: [registry], collect() { this.set(sessions()) } })
  return metrics
}
