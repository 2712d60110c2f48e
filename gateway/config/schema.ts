import { z } from 'zod'

/** Request body cap in bytes (→ 413). A JSON-RPC message larger than this is not a tool call. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
/** Live MCP sessions the gateway holds at once (→ 503 past it). */
export const DEFAULT_MAX_SESSIONS = 1000
/** Allowed clock skew when checking `exp`/`nbf`, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE_S = 30
/** Minimum time between two JWKS refetches triggered by an unknown `kid`, in ms. */
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000
/** How long a fetched JWKS is trusted before a refetch, in ms. */
export const DEFAULT_JWKS_MAX_AGE_MS = 10 * 60_000
/** Connect, header and body timeout for every call to the IdP, in ms. */
export const DEFAULT_IDP_TIMEOUT_MS = 5_000
/** Verified tokens remembered (LRU), keyed by the token's SHA-256. */
export const DEFAULT_TOKEN_CACHE_MAX = 10_000
/** A cached verification is reused at most this long, and never past the token's `exp`, in s. */
export const DEFAULT_TOKEN_CACHE_TTL_S = 300
/** A child request with no reply after this long fails with a JSON-RPC error, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000
/** Session idle time after which the session and its process are ended, in ms. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000
/** Warm processes kept ready per session-mode server. */
export const DEFAULT_POOL_MIN = 0
/** Processes per session-mode server at most (warm and in use). */
export const DEFAULT_POOL_MAX = 1000
/** On shutdown, time for requests in flight to finish before processes are stopped, in ms. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000
/** SSE events a session keeps for resumption with Last-Event-ID, at most. */
export const DEFAULT_RESUME_MAX_EVENTS = 1000
/** Serialized size of the SSE events a session keeps for resumption, at most, in bytes. */
export const DEFAULT_RESUME_MAX_BYTES = 1024 * 1024
/** How long an SSE event stays replayable, in ms: how long a dropped client has to come back. */
export const DEFAULT_RESUME_MAX_AGE_MS = 5 * 60_000
/** SSE polling: the reconnection delay suggested to clients in the `retry` field, in ms. */
export const DEFAULT_SSE_POLL_RETRY_MS = 1_000
/** SSE bytes one stream may queue for a client that is not reading; past it notifications are dropped. */
export const DEFAULT_STREAM_QUEUE_BYTES = 1024 * 1024
/** SSE events one stream may queue for a client that is not reading. */
export const DEFAULT_STREAM_QUEUE_EVENTS = 1000
/** SSE bytes all streams of one session (or one principal's sessionless streams) may queue together. */
export const DEFAULT_SESSION_QUEUE_BYTES = 4 * 1024 * 1024
/** SSE events all streams of one session (or one principal's sessionless streams) may queue together. */
export const DEFAULT_SESSION_QUEUE_EVENTS = 4000
/** The dev IdP's loopback port when the gateway runs it. */
export const DEFAULT_DEV_IDP_PORT = 8090

/** Asymmetric algorithms accepted by default: never `none`, never HS* (RFC 8725 §3.1, §3.2). */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
] as const

const SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })

/** A URL used as an identifier: no query, no fragment, no trailing slash (MCP canonical URI). */
const canonicalUrl = httpUrl.refine(
  (u) => !u.includes('?') && !u.includes('#') && !u.endsWith('/'),
  'must have no query, no fragment and no trailing slash',
)

const ms = z.number().int().nonnegative()

const serverSchema = z
  .strictObject({
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).default({}),
    /** Names of the gateway's own environment variables the child may also see (besides HOME, LOGNAME, PATH, SHELL, TERM, USER). */
    inheritEnv: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')).default([]),
    cwd: z.string().optional(),
    /** `session`: a process per session; `shared`: one long-lived process (per replica) for every session. */
    mode: z.enum(['session', 'shared']).default('session'),
    /** session mode: `min` processes kept spawned and ready; `max` processes at most (warm and in use). */
    pool: z
      .strictObject({
        min: z.number().int().min(0).max(256).default(DEFAULT_POOL_MIN),
        max: z.number().int().min(1).max(100_000).default(DEFAULT_POOL_MAX),
        /**
         * Warm processes are initialized by the gateway (no client capabilities: no sampling,
         * elicitation or roots) and each session's initialize is answered from that result:
         * faster session start, for servers that need neither the client's identity nor its
         * capabilities.
         */
        preinitialize: z.boolean().default(false),
      })
      .refine((p) => p.min <= p.max, 'pool.min must not exceed pool.max')
      .prefault({}),
    /** shared mode: how many processes serve the sessions (spread by least load). */
    replicas: z.number().int().min(1).max(64).default(1),
    /** Live sessions of this server at most (→ 503). */
    maxSessions: z.number().int().min(1).optional(),
    /** Live sessions of this server per subject at most (→ 429). */
    maxSessionsPerSubject: z.number().int().min(1).optional(),
    /** Hand the session's subject, client id and scopes to the process as MCP_EDGE_* variables (spawns on demand, no warm pool). */
    identityEnv: z.boolean().default(false),
    /** `sse` streams every reply (progress, server→client requests on the POST stream); `json` answers each request with one JSON body. */
    responses: z.enum(['sse', 'json']).default('sse'),
    /**
     * Session era (2025-03-26 … 2025-11-25): SSE event ids, priming events (2025-11-25 and
     * later) and replay after `Last-Event-ID`, from a bounded buffer per session.
     */
    resumability: z
      .strictObject({
        enabled: z.boolean().default(true),
        maxEvents: z.number().int().min(1).default(DEFAULT_RESUME_MAX_EVENTS),
        maxBytes: z.number().int().min(1024).default(DEFAULT_RESUME_MAX_BYTES),
        maxAge: ms.min(1000).default(DEFAULT_RESUME_MAX_AGE_MS),
      })
      .prefault({}),
    /**
     * SSE polling (SEP-1699), off unless set: the POST stream of a request still pending after
     * `closeAfter` ms is closed once (its priming event carried `retry`), and the client
     * resumes with GET + Last-Event-ID. For proxies that cut long responses.
     */
    ssePolling: z.strictObject({ closeAfter: ms.min(100), retry: ms.default(DEFAULT_SSE_POLL_RETRY_MS) }).optional(),
    requestTimeout: ms.default(DEFAULT_REQUEST_TIMEOUT_MS),
    idleTimeout: ms.default(DEFAULT_IDLE_TIMEOUT_MS),
    /** On shutdown, how long requests in flight may finish before processes are stopped. */
    shutdownGrace: ms.default(DEFAULT_SHUTDOWN_GRACE_MS),
    description: z.string().optional(),
  })
  .refine((s) => !(s.mode === 'shared' && s.identityEnv), 'identityEnv needs mode: session (a shared process serves many subjects)')
  .refine((s) => s.ssePolling === undefined || (s.responses === 'sse' && s.resumability.enabled), {
    message: 'ssePolling needs responses: sse and resumability.enabled (clients resume from the replay buffer)',
    path: ['ssePolling'],
  })

const authSchema = z.strictObject({
  issuer: httpUrl.optional(),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  jwksUri: httpUrl.optional(),
  algorithms: z
    .array(z.enum(ASYMMETRIC_ALGORITHMS, { error: 'only asymmetric algorithms are accepted' }))
    .min(1)
    .default([...ASYMMETRIC_ALGORITHMS]),
  clockTolerance: z.number().int().min(0).max(300).default(DEFAULT_CLOCK_TOLERANCE_S),
  /**
   * Dotted claim paths holding role lists; `*` matches any key. The default reads Keycloak's
   * realm roles and the client roles of a client named `mcp-edge`, not every client's: a role
   * called `mcp-admin` on some unrelated client must not count.
   */
  roleClaims: z.array(z.string().min(1)).default(['realm_access.roles', 'resource_access.mcp-edge.roles']),
  /** Require `typ: at+jwt` (RFC 9068 §4). Off by default: many IdPs issue `typ: JWT`. */
  requireJwtAccessTokenType: z.boolean().default(false),
  scopesSupported: z.array(z.string().min(1)).optional(),
  jwksCooldown: ms.default(DEFAULT_JWKS_COOLDOWN_MS),
  jwksMaxAge: ms.default(DEFAULT_JWKS_MAX_AGE_MS),
  idpTimeout: ms.min(100).default(DEFAULT_IDP_TIMEOUT_MS),
  tokenCacheMax: z.number().int().min(0).default(DEFAULT_TOKEN_CACHE_MAX),
  tokenCacheTtl: z.number().int().min(0).default(DEFAULT_TOKEN_CACHE_TTL_S),
})

/** The whole gateway.yaml. Every field has a default except `servers`. */
export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
    })
    .prefault({}),
  publicUrl: canonicalUrl.optional(),
  /**
   * Proxies whose X-Forwarded-For and X-Request-Id are believed: `true` (any peer), `false`
   * (none), or a list of peer addresses (IPv4/IPv6, or CIDR ranges). Resource URLs and
   * audiences never come from headers, only from `publicUrl`.
   */
  trustProxy: z.union([z.boolean(), z.array(z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'an IP address or CIDR range')).min(1)]).default(false),
  /**
   * This replica's name, the prefix of every session id it mints (`<replicaId>.<random>`),
   * so a proxy can route a session back to the replica that holds its process.
   */
  replicaId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and -, at most 32').optional(),
  allowedOrigins: z.array(z.string().min(1)).default([]),
  /**
   * Host names (no port) the MCP endpoints answer to besides `publicUrl`'s and the loopback
   * names; any other `Host` is refused with 403 before authentication (DNS rebinding).
   */
  allowedHosts: z.array(z.string().regex(/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/, 'a host name or [IPv6] address, without a port')).default([]),
  auth: authSchema.prefault({}),
  devIdp: z
    .strictObject({ port: z.number().int().min(0).max(65535).default(DEFAULT_DEV_IDP_PORT) })
    .prefault({}),
  servers: z
    .record(z.string().regex(SERVER_NAME, 'server names are lowercase letters, digits, - and _'), serverSchema)
    .refine((s) => Object.keys(s).length > 0, 'at least one server is required'),
  policies: z.string().min(1).optional(),
  limits: z
    .strictObject({
      maxBodyBytes: z.number().int().min(1024).default(DEFAULT_MAX_BODY_BYTES),
      maxSessions: z.number().int().min(1).default(DEFAULT_MAX_SESSIONS),
      /**
       * What the gateway holds for a client that reads its SSE streams slower than they fill:
       * per stream, and per session (a principal's sessionless streams count as one). Past a
       * bound notifications and keep-alives are dropped; a stream that owes its client a reply
       * or a request is closed (session era: the client resumes it from the replay buffer).
       */
      streamQueueBytes: z.number().int().min(1024).default(DEFAULT_STREAM_QUEUE_BYTES),
      streamQueueEvents: z.number().int().min(1).default(DEFAULT_STREAM_QUEUE_EVENTS),
      sessionQueueBytes: z.number().int().min(1024).default(DEFAULT_SESSION_QUEUE_BYTES),
      sessionQueueEvents: z.number().int().min(1).default(DEFAULT_SESSION_QUEUE_EVENTS),
    })
    .refine((l) => l.streamQueueBytes <= l.sessionQueueBytes, { message: 'must not exceed sessionQueueBytes', path: ['streamQueueBytes'] })
    .refine((l) => l.streamQueueEvents <= l.sessionQueueEvents, { message: 'must not exceed sessionQueueEvents', path: ['streamQueueEvents'] })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** Audit events: `stdout`, `stderr`, a file path (appended), or `off`. */
      audit: z.string().min(1).default('stdout'),
    })
    .prefault({}),
})

/** A validated configuration, with every default filled in and paths made absolute. */
export type GatewayConfig = z.infer<typeof configSchema>
/** One `servers.<name>` entry. */
export type ServerConfig = z.infer<typeof serverSchema>
/** The `auth` section. */
export type AuthConfig = z.infer<typeof authSchema>
