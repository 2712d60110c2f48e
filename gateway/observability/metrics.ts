import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

/** The gateway's Prometheus metrics, one registry per gateway (tests run several). */
export interface Metrics {
  registry: Registry
  decisions: Counter<'server' | 'decision'>
  authFailures: Counter<'code'>
  policyReloads: Counter<'result'>
  jwksRefreshes: Counter<'result'>
  childExits: Counter<'server'>
  logLinesSuppressed: Counter<'server' | 'source'>
  /** Failed starts of a server's process that opened a backoff window (bridge/start-failures.ts). */
  serverStartFailures: Counter<'server'>
  /** Requests refused with 503 inside such a window, no process tried. */
  serverStartsRefused: Counter<'server'>
  /** Process starts refused with 429: their subject used its budget (limits.processStartsPerSubject). */
  processStartsRefused: Counter<'server'>
  /** Requests refused with 429: a shared process exited too often with the subject's requests in flight (limits.sharedCrashesPerSubject). */
  sharedCrashesRefused: Counter<'server'>
  sessionsReclaimed: Counter<'server' | 'reason'>
  /** SSE events not sent to a client that was not reading: `reason` names the bound passed, `kind` what was dropped. */
  streamEventsDropped: Counter<'reason' | 'kind'>
  /** SSE streams the gateway closed, by reason (`slow_client`: it owed its client more than the bound). */
  streamsClosed: Counter<'reason'>
  /** Backends an endpoint left out of a list because they failed or timed out. */
  endpointBackendsSkipped: Counter<'endpoint' | 'server'>
  /** Name and URI tables an endpoint built from its backends' lists (kept until a list changes). */
  endpointTablesBuilt: Counter<'endpoint'>
  /** Results over their output cap, by server and what was done (`truncated`, `refused`). */
  resultsCapped: Counter<'server' | 'action'>
  /** Requests refused by a rate limit, by server and rule (`store`: the counts could not be reached). */
  rateLimited: Counter<'server' | 'rule'>
  /** Rate-limit checks the store could not answer, by what was done (`open`: allowed, `closed`: refused). */
  rateLimitStoreErrors: Counter<'handling'>
  /** Tool pinning: definitions seen that no one approved (`changed`, `new` with learn off) and tools pinned on first sight (`learned`). */
  toolPinChanges: Counter<'server' | 'kind'>
  /** The broker's revocation list: grants and tokens listed here or learned from other replicas, overflows, its subscription lost and back (tokens refused: authFailures `token_revoked`). */
  revocations: Counter<'event'>
  /** Audit events never written because the audit file (or stderr) could not be written. */
  auditEventsLost: Counter<string>
}

/** Live counts read at scrape time. */
export interface Gauges {
  /** Live session-era sessions at servers' own URLs (either transport). */
  sessions(): number
  /** Live session-era sessions at endpoints (their calls run on lanes, counted apart). */
  endpointSessions(): number
  /** Processes serving sessionless (2026-07-28) requests. */
  lanes(): number
  /** Sessionless requests waiting for their client's answers (input_required). */
  waitingRounds(): number
  /** Sessionless requests waiting for a process, their principal being at its bound, per server. */
  laneWaiters(): ReadonlyMap<string, number>
  /** Open `subscriptions/listen` streams. */
  listenStreams(): number
  /** Bytes queued on every SSE stream for clients that have not read them yet. */
  queuedBytes(): number
  /** SSE events queued on every stream for clients that have not read them yet. */
  queuedEvents(): number
  /** Lists endpoints keep for one user (their processes' lists differ from everyone's), all endpoints. */
  endpointUserLists(): number
  /** Tool changes waiting for an operator's approval, per server (pinned servers only). */
  toolPinsPending?(): ReadonlyMap<string, number>
}

/** Gauges that read zero: a gateway's until its holders exist (it replaces each), a test's with none. */
export function zeroGauges(): Gauges {
  return {
    sessions: () => 0,
    endpointSessions: () => 0,
    lanes: () => 0,
    waitingRounds: () => 0,
    laneWaiters: () => new Map<string, number>(),
    listenStreams: () => 0,
    queuedBytes: () => 0,
    queuedEvents: () => 0,
    endpointUserLists: () => 0,
  }
}

/** Creates the metrics; the gauges are read at scrape time. */
export function createMetrics(g: Gauges): Metrics {
  const registry = new Registry()
  // Event-loop lag sampled every 100 ms, not prom-client's 10: an idle gateway woke 100 times a
  // second for it.
  collectDefaultMetrics({
    register: registry,
    prefix: 'mcp_edge_',
    eventLoopMonitoringPrecision: 100,
  })
  const metrics: Metrics = {
    registry,
    resultsCapped: new Counter({
      name: 'mcp_edge_results_capped_total',
      help: 'Results over their output cap (servers.<name>.output), by server and action (truncated, refused)',
      labelNames: ['server', 'action'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'mcp_edge_rate_limited_total',
      help: 'Requests refused by a rate limit, by server and rule',
      labelNames: ['server', 'rule'],
      registers: [registry],
    }),
    rateLimitStoreErrors: new Counter({
      name: 'mcp_edge_rate_limit_store_errors_total',
      help: 'Rate-limit checks the store could not answer, by handling (open: allowed, closed: refused)',
      labelNames: ['handling'],
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'mcp_edge_policy_decisions_total',
      help: 'Policy decisions on gated requests and session access',
      labelNames: ['server', 'decision'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'mcp_edge_auth_failures_total',
      help: 'Requests refused by authentication, by reason',
      labelNames: ['code'],
      registers: [registry],
    }),
    policyReloads: new Counter({
      name: 'mcp_edge_policy_reloads_total',
      help: 'Policy reloads, by result (ok, failed)',
      labelNames: ['result'],
      registers: [registry],
    }),
    jwksRefreshes: new Counter({
      name: 'mcp_edge_jwks_fetches_total',
      help: 'Issuer key set loads, by result',
      labelNames: ['result'],
      registers: [registry],
    }),
    sessionsReclaimed: new Counter({
      name: 'mcp_edge_sessions_reclaimed_total',
      help: 'Idle sessions ended early to make room at a limit (session or process), by server and reason',
      labelNames: ['server', 'reason'],
      registers: [registry],
    }),
    logLinesSuppressed: new Counter({
      name: 'mcp_edge_log_lines_suppressed_total',
      help: "Log lines a server process's output caused that a rate limit suppressed (source: stderr, warnings)",
      labelNames: ['server', 'source'],
      registers: [registry],
    }),
    childExits: new Counter({
      name: 'mcp_edge_server_process_exits_total',
      help: 'Server processes that exited on their own (not ended by the gateway)',
      labelNames: ['server'],
      registers: [registry],
    }),
    serverStartFailures: new Counter({
      name: 'mcp_edge_server_start_failures_total',
      help: 'Failed starts of a server process (spawn error, exit or silence before initialize) that opened a backoff window',
      labelNames: ['server'],
      registers: [registry],
    }),
    serverStartsRefused: new Counter({
      name: 'mcp_edge_server_starts_refused_total',
      help: 'Requests refused with 503 while their server was in a backoff window after a failed start (no process spawned)',
      labelNames: ['server'],
      registers: [registry],
    }),
    processStartsRefused: new Counter({
      name: 'mcp_edge_subject_process_starts_refused_total',
      help: 'Process starts refused with 429: the subject started limits.processStartsPerSubject processes within limits.processStartsWindow',
      labelNames: ['server'],
      registers: [registry],
    }),
    sharedCrashesRefused: new Counter({
      name: 'mcp_edge_subject_shared_crashes_refused_total',
      help: "Requests refused with 429: a shared server's process exited limits.sharedCrashesPerSubject times within limits.sharedCrashesWindow with the subject's requests in flight (each exit divided among the subjects in flight)",
      labelNames: ['server'],
      registers: [registry],
    }),
    streamEventsDropped: new Counter({
      name: 'mcp_edge_stream_events_dropped_total',
      help: 'SSE events dropped for clients not reading their streams, by the bound passed and what was dropped',
      labelNames: ['reason', 'kind'],
      registers: [registry],
    }),
    streamsClosed: new Counter({
      name: 'mcp_edge_streams_closed_total',
      help: 'SSE streams closed by the gateway, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    endpointBackendsSkipped: new Counter({
      name: 'mcp_edge_endpoint_backends_skipped_total',
      help: 'Backends an endpoint left out of a list because they failed or timed out, by endpoint and server',
      labelNames: ['endpoint', 'server'],
      registers: [registry],
    }),
    endpointTablesBuilt: new Counter({
      name: 'mcp_edge_endpoint_tables_built_total',
      help: "Name and URI tables an endpoint built from its backends' lists, by endpoint",
      labelNames: ['endpoint'],
      registers: [registry],
    }),
    revocations: new Counter({
      name: 'mcp_edge_revocations_total',
      help: 'Revocation list events (revoked, learned, overflow, subscription_lost, resynced)',
      labelNames: ['event'],
      registers: [registry],
    }),
    auditEventsLost: new Counter({
      name: 'mcp_edge_audit_events_lost_total',
      help: 'Audit events never written because the audit file (or stderr) could not be written (log.audit)',
      registers: [registry],
    }),
    toolPinChanges: new Counter({
      name: 'mcp_edge_tool_pin_changes_total',
      help: 'Tool definitions seen that no one approved (kind changed or new), and tools pinned on first sight (learned), by server',
      labelNames: ['server', 'kind'],
      registers: [registry],
    }),
  }
  new Gauge({
    name: 'mcp_edge_sessions',
    help: "Live MCP sessions (session era), by kind: a server's own (server) or an endpoint's (endpoint); each counted once",
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.set({ kind: 'server' }, g.sessions())
      this.set({ kind: 'endpoint' }, g.endpointSessions())
    },
  })
  new Gauge({
    name: 'mcp_edge_lanes',
    help: 'Processes serving sessionless (2026-07-28) requests',
    registers: [registry],
    collect() {
      this.set(g.lanes())
    },
  })
  new Gauge({
    name: 'mcp_edge_waiting_rounds',
    help: "Sessionless requests waiting for their client's answers (input_required)",
    registers: [registry],
    collect() {
      this.set(g.waitingRounds())
    },
  })
  new Gauge({
    name: 'mcp_edge_lane_waiters',
    help: 'Sessionless requests waiting for a process, their principal being at its bound, by server',
    labelNames: ['server'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [server, n] of g.laneWaiters()) this.set({ server }, n)
    },
  })
  new Gauge({
    name: 'mcp_edge_listen_streams',
    help: 'Open subscriptions/listen streams',
    registers: [registry],
    collect() {
      this.set(g.listenStreams())
    },
  })
  new Gauge({
    name: 'mcp_edge_stream_queued_bytes',
    help: 'Bytes queued on SSE streams for clients that have not read them yet',
    registers: [registry],
    collect() {
      this.set(g.queuedBytes())
    },
  })
  new Gauge({
    name: 'mcp_edge_stream_queued_events',
    help: 'SSE events queued for clients that have not read them yet',
    registers: [registry],
    collect() {
      this.set(g.queuedEvents())
    },
  })
  new Gauge({
    name: 'mcp_edge_endpoint_user_lists',
    help: "Backend lists endpoints keep for one user whose processes differ from everyone's (dropped when the user's last process of the server ends)",
    registers: [registry],
    collect() {
      this.set(g.endpointUserLists())
    },
  })
  new Gauge({
    name: 'mcp_edge_tool_pins_pending',
    help: 'Tools hidden until an operator approves their definition (mcp-edge tools approve), by server',
    labelNames: ['server'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [server, n] of g.toolPinsPending?.() ?? []) this.set({ server }, n)
    },
  })
  return metrics
}
