import { createHash, randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { createAdaptorServer } from '@hono/node-server'
import type { DestinationStream, Logger } from 'pino'
import type { Context } from 'hono'
import type { AccountBroker } from './account/deps.js'
import { createResources } from './auth/resources.js'
import type { Broker } from './broker/broker.js'
import type { BrokerKeys } from './broker/keys.js'
import type { RevocationList } from './broker/revocations.js'
import { readSecret } from './config/secrets.js'
import type { Vars } from './http/request-id.js'
import { RateLimits } from './http/rate-limit.js'
import { OutputCaps } from './bridge/result-cap.js'
import type { Sealer } from './store/sealed.js'
import type { UserSecrets } from './credentials/secrets.js'
import { credentialGate, tokenExchange, usesCredentials } from './credential-setup.js'
import type { Store } from './store/store.js'
import { SubjectBounds } from './bridge/bounds.js'
import { Aggregate } from './bridge/aggregate.js'
import { AggregateSessions } from './bridge/aggregate-sessions.js'
import { InputRounds } from './bridge/input-rounds.js'
import { Backoff } from './bridge/lifecycle.js'
import { LanePool } from './bridge/lanes.js'
import { Sessionless } from './bridge/sessionless.js'
import { Outbound, queueLimits } from './bridge/outbound-budget.js'
import { SessionRegistry } from './bridge/registry.js'
import type { ResultFilter } from './bridge/session.js'
import type { FailingServer, FailureKind } from './bridge/start-failures.js'
import { capTaskStatus, filterTaskList } from './bridge/tasks.js'
import { ConfigError } from './config/errors.js'
import type { GatewayConfig } from './config/schema.js'
import type { DevIdp, DevIdpOptions } from './devidp/provider.js'
import { createApp } from './http/app.js'
import { metricsResponse } from './http/metrics.js'
import { hostname, isProbe, type OriginPolicy, requestHostAllowed } from './http/origin.js'
import { rpcErrorResponse } from './http/respond.js'
import { unknownSessionBudget } from './http/session-probe.js'
import { setUpIdentity, type Identity } from './identity.js'
import { type AuditLog, createAuditLog } from './observability/audit.js'
import { createMetrics, type Gauges, zeroGauges, type Metrics } from './observability/metrics.js'
import { startTracing, type Tracing } from './observability/tracing.js'
import { grantsOf } from './policy/evaluate.js'
import { filterListResult } from './policy/filter.js'
import { loadPolicy } from './policy/load.js'
import type { Policy } from './policy/policy.js'
import { watchPolicy, type ReloadResult } from './policy/reload.js'
import { NO_IMPLICATIONS } from './policy/implies.js'
import { scopesOfRoles } from './policy/role-scopes.js'
import { createPolicyStore } from './policy/store.js'
import type { ToolPins } from './pins/pins.js'
import { setUpToolPins } from './pins/setup.js'
import { unlessAborted } from './timeout.js'

const LOOPBACK = /^(127(?:\.\d{1,3}){3}|::1|localhost)$/

export interface StartOptions {
  log: Logger
  /** Serve without authentication (loopback only). */
  insecureNoAuth?: boolean
  /** May start the embedded dev IdP when no issuer is configured. */
  allowDevIdp?: boolean
  /** Options passed to the dev IdP (tests: keys, clients). */
  devIdp?: Partial<DevIdpOptions>
  /** Where audit events go instead of `log.audit` (tests). */
  auditDestination?: DestinationStream
  /** The broker's store instead of the configured one (tests read what it holds at rest). */
  store?: Store
  /** The account page's clock, epoch ms (tests expire its sessions without waiting). */
  accountClock?: () => number
  /** The clock of the broker's sign-in and registration counts' windows, epoch ms (tests hold it mid-window). */
  signInClock?: () => number
  /**
   * The idle clock of sessions (servers' and endpoints'), epoch ms: when each was last active,
   * and the reapers' now (tests move it rather than wait).
   */
  sessionClock?: () => number
  /** The clock of the backoff after a server failed to start, epoch ms (tests end one without waiting). */
  startClock?: () => number
  /** The clock of each subject's process-start window, ms; default monotonic (tests end one without waiting). */
  processStartClock?: () => number
  /**
   * The clock of shared processes' runs against respawnStableAfter and of each subject's
   * crash window, ms; default monotonic (tests move it rather than wait).
   */
  sharedClock?: () => number
  /**
   * Aborted when start-up is to stop (a signal): a step waiting on the network (the store, the
   * upstream IdP) is abandoned at once, what started is stopped, and the start rejects with the
   * signal's reason.
   */
  signal?: AbortSignal
}

/** A running gateway. */
export interface Gateway {
  /** Where it listens, e.g. http://127.0.0.1:8080. */
  url: string
  publicUrl: string
  issuer: string | undefined
  devIdp: DevIdp | undefined
  registry: SessionRegistry
  metrics: Metrics
  /** OpenTelemetry spans and MCP metrics (a no-op unless the OTEL_* environment turns them on). */
  tracing: Tracing
  /** Where Prometheus scrapes: the main listener's /metrics, or `metrics.listen`'s. */
  metricsUrl: string
  /** Users' secrets for servers that take per-user credentials (undefined when none does). */
  secrets: UserSecrets | undefined
  /** The bounds of every SSE stream, what they queue now and the largest queues seen. */
  outbound: Outbound
  /** Tool pinning, when a server has `pinTools: true`. */
  toolPins: ToolPins | undefined
  /** HTTP requests the main listener has received so far, probes and scrapes not counted. */
  requests(): number
  /** Calls `listener` on every request the main listener receives from now on. */
  onRequest(listener: () => void): void
  /** Reloads the policy files now (SIGHUP); undefined when no policies are configured. */
  reloadPolicy(): ReloadResult | undefined
  /** Stops accepting, ends every session and process, stops the dev IdP. */
  close(): Promise<void>
}

/**
 * The broker's code (oidc-provider, openid-client, the consent and account pages), imported
 * only when `auth.broker` is configured: a resource-server gateway never loads it, nor the
 * memory and start-up time it costs (issue 14's idle target).
 */
async function importBroker() {
  const [broker, interactions, keys, provider, revocations] = await Promise.all([
    import('./broker/broker.js'),
    import('./broker/interactions.js'),
    import('./broker/keys.js'),
    import('./broker/provider.js'),
    import('./broker/revocations.js'),
  ])
  return {
    RevocationList: revocations.RevocationList,
    revocationTtlMs: revocations.revocationTtlMs,
    startBroker: broker.startBroker,
    requireSharedKeys: broker.requireSharedKeys,
    brokerKeys: keys.brokerKeys,
    callbackPath: interactions.UPSTREAM_CALLBACK_PATH,
    routes: provider.BROKER_ROUTES,
  }
}

/**
 * Starts the gateway: listen, load policies, set up authentication (external issuer, dev
 * IdP, or explicitly none), then serve. Anything misconfigured fails here, not on a request.
 * @throws ConfigError
 */
export async function startGateway(config: GatewayConfig, o: StartOptions): Promise<Gateway> {
  const { log } = o
  // Start-up's steps stop at the signal; once started, it no longer concerns the gateway.
  let signal = o.signal
  const loopback = LOOPBACK.test(config.listen.host)
  if (!loopback && config.publicUrl === undefined) {
    throw new ConfigError([
      {
        file: 'configuration',
        path: 'publicUrl',
        message: `required when listening on ${config.listen.host} (tokens are bound to it)`,
      },
    ])
  }
  if (o.insecureNoAuth && !loopback) {
    throw new ConfigError([
      { file: 'command line', message: '--insecure-no-auth only listens on a loopback address' },
    ])
  }
  const policy = createPolicyStore(config.policies ? loadPolicy(config.policies) : emptyPolicy(log))
  // An OTEL_* variable the gateway cannot honour fails here, before anything listens.
  const tracing = await startTracing(log)
  // Filled in once the metrics exist; read by the pins gauge at scrape time.
  let pinned: ReturnType<typeof setUpToolPins>
  // Filled in once the registry and lanes exist (metrics are needed before: identity counts).
  const gauges: Gauges = {
    ...zeroGauges(),
    toolPinsPending: () => {
      const counts = new Map<string, number>()
      for (const s of pinned?.pins.servers ?? []) counts.set(s, 0)
      for (const p of pinned?.pins.pending() ?? [])
        counts.set(p.server, (counts.get(p.server) ?? 0) + 1)
      return counts
    },
  }
  const metrics = createMetrics(gauges)
  // An audit file that fails a write is opened again with backoff, its lost events counted.
  const audit = createAuditLog(
    config.log.audit,
    log,
    o.auditDestination,
    {
      retry: new Backoff({ first: config.log.auditRetry, max: config.log.auditRetryMax }),
      lost: (n) => metrics.auditEventsLost.inc(n),
      exitWait: config.log.exitWait,
    },
    config.log.auditFieldMax,
  )
  const refuseUnaudited = config.log.auditOnFailure === 'refuse'
  // A pin file that does not load stops the start, before anything listens.
  pinned = setUpToolPins(config, { log, audit, metrics })
  // Every SSE stream the gateway returns, both eras and transports, is bounded by these.
  const outbound = new Outbound(queueLimits(config), metrics, config.limits.sseKeepAlive)
  gauges.queuedBytes = () => outbound.bytes
  gauges.queuedEvents = () => outbound.events

  let handler: (req: Request, env: unknown) => Response | Promise<Response> = () =>
    new Response('starting', { status: 503 })
  const server = createAdaptorServer({ fetch: (req: Request, env: unknown) => handler(req, env) })
  // Longer than the idle timeout of proxies in front (nginx 60 s, most load balancers), so
  // a proxy never reuses a connection the gateway is closing (a POST cannot be retried).
  const http = server as import('node:http').Server
  // Requests seen so far: what tells an idle process from a lightly loaded one (idle-gc.ts).
  // Probes and scrapes are not load: a readiness probe every 5 s (compose/kubernetes) left no
  // quiet time of 10 s, and the idle collection never ran.
  let requestsSeen = 0
  http.on('request', (req: import('node:http').IncomingMessage) => {
    if (!isProbe(req.url)) requestsSeen++
  })
  http.keepAliveTimeout = config.limits.keepAliveTimeout
  // Node: a headers timeout not above the keep-alive one can cut a request racing the close.
  http.headersTimeout = config.limits.keepAliveTimeout + 1_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.listen.port, config.listen.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host
  const url = `http://${host}:${port}`
  const publicUrl = config.publicUrl ?? url
  const extraAudience = config.auth.audience === undefined ? [] : [config.auth.audience].flat()
  const resources = createResources({
    publicUrl: config.publicUrl,
    listenUrl: url,
    servers: Object.keys(config.servers),
    endpoints: Object.fromEntries(
      Object.entries(config.endpoints).map(([name, e]) => [
        name,
        {
          path: e.path ?? `/mcp/${name}`,
          servers: e.servers === '*' ? Object.keys(config.servers) : e.servers,
        },
      ]),
    ),
    hosts: config.hosts,
    extra: extraAudience,
  })

  let identity: Identity | undefined
  let store: Store | undefined
  let storing: Promise<Store> | undefined
  /**
   * The store, created on first need: at start-up with the broker or per-user credentials, else
   * when a rate limit first counts (a gateway with neither loads no store code). A creation that
   * failed is tried again by the next caller.
   */
  const sharedStore = (): Promise<Store> =>
    (storing ??= (async () => {
      const { createStore } = await import('./store/create.js')
      // Redis may not answer before its connect timeout: a stop does not wait for it.
      store =
        o.store ??
        (await unlessAborted(createStore(config.store, { log, readSecret }), signal, (s) =>
          s.close(),
        ))
      return store
    })().catch((err: unknown) => {
      storing = undefined
      throw err
    }))
  let broker: Broker | undefined
  let secrets: UserSecrets | undefined
  let sealer: Sealer | undefined
  let keys: BrokerKeys | undefined
  let brokerCode: Awaited<ReturnType<typeof importBroker>> | undefined
  /** The revocation list, once started: the broker closes it, or start-up's failure does. */
  let revocations: RevocationList | undefined
  try {
    // The broker is its own issuer, at the public URL; its keys exist before identity, which
    // trusts its tokens (and may start the dev IdP it logs users in at).
    const brokerConfig = config.auth.broker
    const code = brokerConfig && (await importBroker())
    brokerCode = code
    keys = code && (await code.brokerKeys(brokerConfig, readSecret))
    // Revoked grants and tokens, before the verifier of the broker's tokens that consults them.
    revocations =
      code &&
      keys &&
      (await unlessAborted(
        code.RevocationList.start({
          store: await sharedStore(),
          ttlMs: code.revocationTtlMs(config, brokerConfig),
          toleranceMs: config.auth.clockTolerance * 1000,
          maxEntries: brokerConfig.revocationListMax,
          tokensPerUser: brokerConfig.revocationsPerUser,
          heartbeatMs: config.store.heartbeat,
          cookieKeys: keys.cookieKeys,
          log: log.child({ component: 'revocations' }),
          onEvent: (event) => metrics.revocations.inc({ event }),
        }),
        signal,
        (list) => list.close(),
      ))
    const upstream = brokerConfig?.upstream
    identity = await setUpIdentity({
      config,
      log,
      metrics,
      resources: resources.all(),
      defaultResource:
        Object.keys(config.servers).length === 1
          ? resources.resource(Object.keys(config.servers)[0]!, 'mcp')
          : undefined,
      insecureNoAuth: o.insecureNoAuth,
      allowDevIdp: o.allowDevIdp,
      devIdp: o.devIdp,
      scopesFor: (roles) => scopesOfRoles(policy.current.roles, roles, policy.current.implies).has,
      broker: keys &&
        upstream && {
          issuer: publicUrl,
          getKey: keys.getKey,
          alg: keys.alg,
          revocations: revocations!,
          upstream: {
            issuer: upstream.issuer,
            clientId: upstream.clientId,
            clientSecret:
              upstream.clientSecret &&
              readSecret(upstream.clientSecret, 'auth.broker.upstream.clientSecret'),
            redirectUri: `${publicUrl}${code!.callbackPath}`,
          },
        },
    })
    // Shared state (the broker's clients and grants, users' secrets) lives in the store, sealed.
    if (keys || usesCredentials(config)) {
      const shared = await sharedStore()
      // Imported here: a gateway without the broker or per-user credentials seals nothing.
      const [{ sealerForStore }, { UserSecrets }, { markKeys }] = await Promise.all([
        import('./store/sealed.js'),
        import('./credentials/secrets.js'),
        import('./store/key-check.js'),
      ])
      // Every key replicas must share, named at once (the broker's, then the sealing keys).
      if (keys && config.store.kind !== 'memory') code!.requireSharedKeys(config)
      sealer = sealerForStore(config, readSecret)
      secrets = new UserSecrets({
        store: shared,
        sealer,
        maxLength: config.credentials.secretMaxLength,
        perUser: config.credentials.secretsPerUser,
        unusedTtl: config.credentials.secretUnusedTtl,
        lockWait: config.store.lockWait,
        log: log.child({ component: 'secrets' }),
      })
      // Configured keys (not a memory store's key of the moment): `secrets purge` checks its own.
      if (config.secrets !== undefined) await markKeys(shared, sealer)
      if (keys)
        // The upstream's discovery may wait for its whole timeout: a stop does not.
        broker = await unlessAborted(
          code!.startBroker({
            config,
            issuer: publicUrl,
            keys,
            store: shared,
            sealer,
            resources,
            policy,
            audit,
            log,
            readSecret,
            peer: (c) => (c as Context<Vars>).get('clientIp'),
            revocations: revocations!,
            signInClock: o.signInClock,
          }),
          signal,
          (b) => b.close(),
        )
      // Plain http is loopback only (the schema refuses it elsewhere), and browsers do not bind
      // cookies to a port: every web server on this host is sent the broker's and the account
      // page's sign-in cookies, and can replay them as the user (README, Security model).
      if (broker !== undefined && new URL(publicUrl).protocol === 'http:')
        log.warn(
          { publicUrl },
          'the broker serves on plain http: browsers send its sign-in cookies to every web server on this host, whatever its port; give it a host name of its own over https (publicUrl) before people who browse other local web apps sign in through it',
        )
    }
  } catch (err) {
    pinned?.watcher.close()
    server.close()
    await identity?.close() // the dev IdP, when it started: its state file says it runs
    // The list's heartbeat (Redis) would wake for the life of the process: the broker closes
    // it with its own close, and start-up does when the broker never started.
    if (broker === undefined) await revocations?.close()
    await broker?.close()
    await store?.close()
    await tracing.close()
    throw err
  }
  const { issuer, authenticator, devIdp } = identity
  const rates = new RateLimits({
    store: sharedStore,
    onStoreError: config.rateLimits.onStoreError,
    timeoutMs: config.store.commandTimeout,
    connectTimeoutMs: config.store.connectTimeout,
    metrics,
    log: log.child({ component: 'rate-limits' }),
  })

  // Raw server result → the names metrics may carry → tool pins (hashed as the server sent
  // it) → policy filter (its marks).
  const pins = pinned?.pins
  // Tasks: status messages cut; a task list by each task's tool (tasks.ts).
  const filter: ResultFilter = (name, method, result, principal, taskTool) => {
    tracing.listed(name, method, result)
    const capped = capTaskStatus(method, result)
    if (method === 'tasks/list')
      return filterTaskList(policy.current, name, capped, principal, taskTool ?? (() => undefined))
    return filterListResult(
      policy.current,
      name,
      method,
      pins ? pins.filterList(name, method, capped, principal) : capped,
      principal,
    )
  }
  // Output caps of every server (none configured: the relay skips the step).
  const outputCaps = new OutputCaps(config.servers, metrics)
  const caps = outputCaps.any ? outputCaps : undefined
  const exchange = await tokenExchange(config, { readSecret, log })
  const gate = await credentialGate(config, {
    secrets,
    broker,
    publicUrl,
    log,
    exchange: exchange?.exchange,
  })
  // Sessions and sessionless lanes (their waiting rounds included) share the subject limits.
  const bounds = new SubjectBounds({ config, log })
  const registry = new SessionRegistry({
    config,
    log,
    audit,
    metrics,
    filter,
    policy,
    caps,
    outbound,
    gate,
    // What the child may see: the scopes that count, with those they imply (the child does not
    // know the hierarchy, so a check of its own for `mcp:read` passes for `mcp:write`).
    scopesOf: (p) => {
      const g = grantsOf(policy.current, p)
      return [...g.scopes, ...g.implied.keys()]
    },
    bounds,
    tracing,
    now: o.sessionClock,
    startClock: o.startClock,
    processStartClock: o.processStartClock,
    sharedClock: o.sharedClock,
  })
  registry.start()
  gauges.sessions = () => registry.size
  // Sessionless (2026-07-28) requests: the principals' own processes, and their waiting rounds.
  const lanes = new LanePool({ config, source: registry, bounds, log: log.child({ lanes: true }) })
  const { inputTtl, waitingPerSubject } = config.limits.sessionless
  const rounds = new InputRounds({ ttlMs: inputTtl, perSubject: waitingPerSubject, bounds })
  gauges.lanes = () => lanes.size
  gauges.waitingRounds = () => rounds.size
  gauges.laneWaiters = () => lanes.waiters()
  gauges.listenStreams = () => lanes.listenStreams
  const aggregates = new Map(
    Object.entries(config.endpoints).map(([name, endpoint]) => [
      name,
      new Aggregate({
        name,
        endpoint,
        config,
        lanes,
        policy,
        filter,
        gate,
        cursorKey: endpointCursorKey(config),
        log: log.child({ endpoint: name }),
        onSkipped: (server) => metrics.endpointBackendsSkipped.inc({ endpoint: name, server }),
        onTableBuilt: () => metrics.endpointTablesBuilt.inc({ endpoint: name }),
        starts: registry.starts,
      }),
    ]),
  )
  gauges.endpointUserLists = () => [...aggregates.values()].reduce((n, a) => n + a.userLists, 0)
  const endpointSessions = new AggregateSessions({
    config,
    lanes,
    bounds,
    gate,
    caps,
    log: log.child({ endpoints: true }),
    audit,
    metrics,
    outbound,
    tracing,
    now: o.sessionClock,
  })
  gauges.endpointSessions = () => endpointSessions.size
  const reloader = config.policies
    ? watchPolicy(config.policies, policy, config.limits.policyReloadDebounce, (r) => {
        metrics.policyReloads.inc({ result: r.ok ? 'ok' : 'failed' })
        if (r.ok) {
          log.info({ files: r.files }, 'policy reloaded')
          // Open sessions whose user lost the server end now (their streams with them).
          registry.withdrawRevoked()
          endpointSessions.withdrawRevoked()
        } else
          log.error(
            { problems: r.problems },
            'policy reload refused; the last good policy stays in force',
          )
      })
    : undefined
  // RFC 9728 `scopes_supported` and the 401 challenge's `scope`: the least that opens a session.
  // A scope its access list implies is left out (the broader one covers it), and no broader
  // scope is added: clients without a challenge ask for all of these, and should ask for little.
  // An endpoint's list is its servers' lists together, reduced the same way.
  const scopes = (names: string | readonly string[] | undefined) =>
    config.auth.scopesSupported ??
    policy.current.implies.withoutImplied(
      (names === undefined ? [] : typeof names === 'string' ? [names] : names).flatMap(
        (name) => policy.current.servers.get(name)?.access ?? [],
      ),
    )
  const origin = {
    // A routed host is the gateway's own, as Host and as a browser origin of its clients.
    origins: [
      new URL(publicUrl).origin,
      ...Object.keys(config.hosts).map(
        (h) =>
          new URL(
            `${new URL(publicUrl).protocol}//${h}${new URL(publicUrl).port ? `:${new URL(publicUrl).port}` : ''}`,
          ).origin,
      ),
      ...config.allowedOrigins,
    ].map((s) => s.toLowerCase()),
    local: loopback,
    hosts: [
      hostname(new URL(publicUrl).host),
      ...Object.keys(config.hosts),
      ...config.allowedHosts,
    ].map((h) => h.toLowerCase()),
  }
  // Users' secrets exist (a server takes credentials, or the broker runs): the page to set them.
  const account =
    secrets &&
    sealer &&
    store &&
    (await import('./account/account.js')).createAccount({
      config,
      publicUrl,
      secrets,
      policy,
      authenticator,
      resources,
      audit,
      origin,
      sealer,
      store,
      now: o.accountClock ?? Date.now,
      broker:
        broker &&
        keys &&
        brokerCode &&
        accountBroker(broker, keys, {
          config,
          publicUrl,
          listenUrl: url,
          tokenPath: brokerCode.routes.token,
        }),
    })
  const app = createApp({
    config,
    log,
    publicUrl,
    issuer: () => issuer ?? '',
    resources,
    audit,
    metrics,
    authenticator,
    policy,
    registry,
    scopes,
    modern: {
      config,
      policy,
      engine: new Sessionless({ config, lanes, rounds, audit, metrics, filter, caps, gate }),
      lanes,
      audit,
      metrics,
      rates,
      outbound,
      pins,
      gate,
    },
    rates,
    pins,
    aggregates,
    endpointSessions,
    tracing,
    unknownSessions: unknownSessionBudget(config),
    origin,
    broker: broker?.routes,
    account,
    // Only with refuse: a gateway that continues spends nothing on it per request.
    auditFailing: refuseUnaudited ? () => audit.failing?.() : undefined,
    readiness: () => {
      const starts = registry.starts.status()
      return {
        problems: [
          identity.problem(),
          broker?.problem(),
          rates.problem().problem,
          refuseUnaudited ? auditProblem(audit, true) : undefined,
        ].filter((p): p is string => p !== undefined),
        warnings: [
          ...(refuseUnaudited ? [] : [auditProblem(audit, false)].filter((w) => w !== undefined)),
          ...(reloader?.lastError
            ? [
                `policy reload failed, the previous policy is in force: ${reloader.lastError.join('; ')}`,
              ]
            : []),
          ...[rates.problem().warning].filter((w): w is string => w !== undefined),
          ...(pinned?.watcher.lastError
            ? [
                `tool pins reload failed, the previous pins are in force: ${pinned.watcher.lastError.join('; ')}`,
              ]
            : []),
          ...startWarnings(starts),
        ],
        // Tool changes are an operator's to-do, not an outage: listed, never a 503.
        ...(pins && {
          pendingTools: pins.pending().map((p) => ({
            server: p.server,
            tool: p.tool,
            since: p.since,
            hash: p.hash,
          })),
        }),
        // Servers that cannot start are warnings, never a 503, even when every one fails: this
        // gateway still serves the others, and taken out of rotation it would get no request to
        // run the probe that ends a window; every replica of a shared image would be out at once.
        failingServers: starts.servers,
        failingUserStarts: starts.userWindows,
      }
    },
  })
  handler = (req, env) => app.fetch(req, env as never)
  signal = undefined
  const metricsServer = config.metrics.listen
    ? await listenMetrics(config.metrics.listen, metrics, {
        origins: [],
        local: true,
        hosts: [...config.allowedHosts],
      })
    : undefined
  log.info(
    {
      url,
      publicUrl,
      issuer: issuer ?? null,
      servers: Object.keys(config.servers),
      metrics: metricsServer?.url ?? `${url}/metrics`,
    },
    'listening',
  )

  let closing: Promise<void> | undefined
  return {
    url,
    publicUrl,
    issuer,
    devIdp,
    registry,
    metrics,
    tracing,
    metricsUrl: metricsServer ? `${metricsServer.url}/metrics` : `${url}/metrics`,
    secrets,
    outbound,
    toolPins: pins,
    requests: () => requestsSeen,
    onRequest: (listener) => void http.on('request', () => listener()),
    reloadPolicy: () => reloader?.reload(),
    close: () =>
      (closing ??= (async () => {
        reloader?.close()
        pinned?.watcher.close()
        // Stop accepting: new connections are refused, new requests on open ones get 503,
        // requests in flight finish (up to shutdownGrace) before the processes are stopped.
        handler = () =>
          rpcErrorResponse(503, -32000, 'the gateway is shutting down', {
            headers: { connection: 'close', 'retry-after': '1' },
          })
        const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()))
        // Requests waiting for a client's answers will not get them now.
        rounds.close()
        // Lanes may be views of shared processes: the registry waits for them before it ends those.
        await endpointSessions.closeAll()
        for (const a of aggregates.values()) a.close()
        const lanesClosed = lanes.close()
        await registry.closeAll(() => lanes.busy)
        await lanesClosed
        ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
        await listenerClosed
        await metricsServer?.close()
        await identity.close()
        await exchange?.close()
        await broker?.close()
        await store?.close()
        await audit.flush()
        audit.close?.()
        // Last: every session has ended (its duration recorded) and every span with it.
        await tracing.close()
      })()),
  }
}

/** What a failed start was, in /readyz's words (never the process's output or environment). */
const FAILURE_WORDS: Record<FailureKind, string> = {
  spawn: 'could not be spawned',
  exit: 'exited before answering initialize',
  timeout: 'did not answer initialize in time',
  error: 'answered initialize with an error',
}

/** What /readyz says of servers failing to start, and of users' own failing starts (a count). */
function startWarnings(starts: { servers: FailingServer[]; userWindows: number }): string[] {
  const warnings = starts.servers.map((f) => {
    const next = f.probing
      ? 'a start is being tried now'
      : f.retryIn > 0
        ? `the next start is tried in ${f.retryIn} s`
        : 'the next request tries a start'
    return `server ${f.server} cannot start: ${f.failures} failed start${f.failures === 1 ? '' : 's'} in a row, the last ${FAILURE_WORDS[f.lastFailure]}; ${next}`
  })
  if (starts.userWindows > 0)
    warnings.push(
      `${starts.userWindows} user start${starts.userWindows === 1 ? '' : 's'} of their own failing (a session's own initialize, identityEnv or credentials): only those users are refused meanwhile`,
    )
  return warnings
}

/** What /readyz says while the audit log cannot be written. */
function auditProblem(audit: AuditLog, refuse: boolean): string | undefined {
  const failure = audit.failing?.()
  if (failure === undefined) return undefined
  return refuse
    ? `audit log not writable: ${failure.code}; requests that would be audited are refused`
    : `audit log not writable: ${failure.code}; audit events are being lost`
}

/**
 * A listener of its own for `/metrics` (`metrics.listen`): nothing else is served there, and
 * its Host is checked like every route's (IP addresses and loopback names, plus allowedHosts).
 */
async function listenMetrics(
  at: { host: string; port: number },
  metrics: Metrics,
  hosts: OriginPolicy,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createAdaptorServer({
    fetch: (req: Request, env: unknown) => {
      const path = new URL(req.url).pathname
      if (!requestHostAllowed(req.headers.get('host') ?? undefined, env, hosts, true))
        return rpcErrorResponse(403, -32000, 'host not allowed')
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD'))
        return rpcErrorResponse(404, -32601, 'not found')
      return metricsResponse(metrics)
    },
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port, at.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const host = at.host.includes(':') ? `[${at.host}]` : at.host
  return {
    url: `http://${host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/**
 * The broker as the account page signs in with it: its first-party client, its keys (in
 * memory), and its token endpoint reached at this process's own listener with the public Host
 * (the public URL may lead through a proxy this process cannot reach).
 */
function accountBroker(
  broker: Broker,
  keys: BrokerKeys,
  o: { config: GatewayConfig; publicUrl: string; listenUrl: string; tokenPath: string },
): AccountBroker {
  const listen = new URL(o.listenUrl)
  // A wildcard listener is reached on loopback.
  if (listen.hostname === '0.0.0.0') listen.hostname = '127.0.0.1'
  if (listen.hostname === '[::]') listen.hostname = '[::1]'
  const path = new URL(o.publicUrl).pathname.replace(/\/$/, '')
  const upstream = o.config.auth.broker!.upstream
  return {
    issuer: broker.issuer,
    client: broker.firstParty,
    tokenEndpoint: `${listen.origin}${path}${o.tokenPath}`,
    tokenHost: new URL(o.publicUrl).host,
    getKey: keys.getKey,
    alg: keys.alg,
    account: async (sub) => {
      const a = await broker.accounts.find(sub)
      return a && { roles: a.roles, label: a.email ?? a.name ?? a.sub }
    },
    holdsUpstreamToken: (sub) => broker.accounts.holdsTokens(sub),
    endBrowserSession: (cookie) => broker.endBrowserSession(cookie),
    upstream: new URL(upstream.issuer ?? upstream.endpoints!.authorization).host,
  }
}

function emptyPolicy(log: Logger): Policy {
  log.warn('no policies configured: every MCP request is denied (set `policies:` in the config)')
  return {
    roles: new Map(),
    implies: NO_IMPLICATIONS,
    servers: new Map(),
    rateLimits: [],
    files: [],
  }
}

/**
 * The key endpoint cursors are authenticated with: derived from the sealing keys when they are
 * configured, so every replica accepts the others' cursors; random per process otherwise.
 */
function endpointCursorKey(config: GatewayConfig): Uint8Array {
  if (config.secrets === undefined) return randomBytes(32)
  return createHash('sha256')
    .update('mcp-edge endpoint cursor\0')
    .update(readSecret(config.secrets.keys, 'secrets.keys'))
    .digest()
}
