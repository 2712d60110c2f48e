import { isIP } from 'node:net'
import { DEFAULT_INHERITED_ENV_VARS } from '@modelcontextprotocol/client/stdio'
import { z } from 'zod'
import { loopbackUrl } from './loopback.js'
import { runAsProblems, runAsSchema } from './run-as.js'

/** Request body cap in bytes (→ 413). A JSON-RPC message larger than this is not a tool call. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
/** Live MCP sessions and sessionless lanes the gateway holds at once (→ 503 past it). */
export const DEFAULT_MAX_SESSIONS = 1000
/** Allowed clock skew when checking `exp`/`nbf`, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE_S = 30
/** Minimum time between two JWKS refetches triggered by an unknown `kid`, in ms. */
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000
/** How long a fetched JWKS is trusted before a refetch, in ms. */
export const DEFAULT_JWKS_MAX_AGE_MS = 10 * 60_000
/** Connect, header and body timeout for every call to the IdP, in ms. */
export const DEFAULT_IDP_TIMEOUT_MS = 5_000
/** Token exchange (RFC 8693): answer timeout, how long before expiry a token is renewed, answer size, tokens cached. */
export const DEFAULT_EXCHANGE_TIMEOUT_MS = 10_000
export const DEFAULT_EXCHANGE_RENEW_BEFORE_MS = 60_000
export const DEFAULT_EXCHANGE_MAX_RESPONSE_BYTES = 65_536
export const DEFAULT_EXCHANGE_CACHE_MAX = 10_000
/** How long a call waits for its user to set a missing secret after a URL elicitation, in ms. */
export const DEFAULT_CREDENTIAL_ELICITATION_TIMEOUT_MS = 600_000
/** How often a waiting call looks whether the secret is set (in the shared store), in ms. */
export const DEFAULT_CREDENTIAL_POLL_INTERVAL_MS = 1_000
/** Calls of one user (iss+sub) waiting for a missing secret at once; another is refused at once. */
export const DEFAULT_CREDENTIAL_WAITING_PER_SUBJECT = 4
/** The account page's session (a sealed cookie) lasts this long, in s. */
export const DEFAULT_ACCOUNT_SESSION_TTL_S = 15 * 60
/** The account page's sign-in at the broker must come back within this, in s. */
export const DEFAULT_ACCOUNT_LOGIN_TTL_S = 10 * 60
/**
 * Largest request body of the account page's forms and API, in bytes: the longest secret
 * (8192 characters) percent-encoded in a form, whatever its characters.
 */
export const DEFAULT_ACCOUNT_MAX_BODY_BYTES = 128 * 1024
/** The account page's code exchange at the broker's own token endpoint, in ms. */
export const DEFAULT_ACCOUNT_TOKEN_TIMEOUT_MS = 10_000
/** Verified tokens remembered (LRU), keyed by the token's SHA-256. */
export const DEFAULT_TOKEN_CACHE_MAX = 10_000
/** A cached verification is reused at most this long, and never past the token's `exp`, in s. */
export const DEFAULT_TOKEN_CACHE_TTL_S = 300
/** A child request with no reply after this long fails with a JSON-RPC error, in ms. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000
/**
 * Session idle time after which the session and its process are ended, in ms. Clients that
 * never send DELETE (most) leave a ~60 MB process behind; idle sessions are also reclaimed,
 * least recently used first, whenever a limit is reached.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000
/** Live sessions and lanes of one server per subject at most, unless the server says otherwise (→ 429). */
export const DEFAULT_SERVER_SESSIONS_PER_SUBJECT = 8
/** Live sessions and lanes per subject across all servers at most (→ 429): one user never takes the gateway. */
export const DEFAULT_SESSIONS_PER_SUBJECT = 32
/**
 * Users' own start-failure windows remembered at most (identityEnv, credentials, a session's own
 * initialize failing): past it the least recently failed is forgotten, and that user may try one
 * start again before their window ends.
 */
export const DEFAULT_START_FAILURE_USERS = 10_000
/**
 * Server processes started (or taken from a warm pool) for one subject per window at most, per
 * replica (→ 429 with Retry-After): opening and ending sessions, or cancelling sessionless calls,
 * in a loop costs a spawn each. Shared-mode processes are not counted. 0: no limit.
 */
export const DEFAULT_PROCESS_STARTS_PER_SUBJECT = 60
/** The sliding window `limits.processStartsPerSubject` counts over, in ms. */
export const DEFAULT_PROCESS_STARTS_WINDOW_MS = 60_000
/**
 * Exits of a shared process one subject may be blamed for per window, per server and replica
 * (→ 429 with Retry-After on its next requests to that server): each exit is one charge,
 * divided equally among the subjects with requests in flight on the process (bridge/shared-crashes.ts).
 * 0: no limit.
 */
export const DEFAULT_SHARED_CRASHES_PER_SUBJECT = 3
/** The sliding window `limits.sharedCrashesPerSubject` counts over, in ms. */
export const DEFAULT_SHARED_CRASHES_WINDOW_MS = 600_000
/**
 * Subjects one shared server's exits are charged to at most (per replica): an exit with more in
 * flight charges no one, and the smallest totals are forgotten first past it (bridge/shared-crashes.ts).
 */
export const DEFAULT_SHARED_CRASHES_SUBJECTS = 1000
/** JSON-RPC messages in one batch at most (→ 400 -32600), on every transport. */
export const DEFAULT_MAX_BATCH = 100
/** Nesting depth of a request body at most (→ 400 -32600): no MCP message nests deeper. */
export const DEFAULT_MAX_JSON_DEPTH = 64
/** Tasks one session remembers the tool of, at most: past it the oldest one's result gets the server's strictest output cap. */
export const DEFAULT_TASKS_PER_SESSION = 1000
/** Characters of a task's `statusMessage` at most, in every result and status notification (longer: cut, marked with `…`). */
export const DEFAULT_MAX_TASK_STATUS_LENGTH = 1000
/** Characters of a `taskId` at most (→ -32602, before any process sees it). */
export const DEFAULT_MAX_TASK_ID_LENGTH = 1024
/** Time to receive a whole request body once it has started, in ms (→ 408). */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000
/** Warm processes kept ready per session-mode server. */
export const DEFAULT_POOL_MIN = 0
/** Processes per session-mode server at most (warm and in use). */
export const DEFAULT_POOL_MAX = 1000
/**
 * Warm processes a session-mode server keeps at most while sessions are starting faster than the
 * pool refills. Off (0) by default: demand warming keeps about two extra processes of every
 * server in use (an endpoint over twenty servers: forty), so an operator opts in per server.
 */
export const DEFAULT_POOL_BURST = 0
/** Time without a pool miss after which the warm target falls back to pool.min, in ms. */
export const DEFAULT_POOL_COOLDOWN_MS = 60_000
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
/** The tool pin file's name, next to the config file, when `toolPins.file` is not set. */
export const DEFAULT_TOOL_PINS_FILE = 'tool-pins.yaml'
/** Largest tool pin file read or written, in bytes: a larger one is refused, the last good pins stay. */
export const DEFAULT_TOOL_PINS_MAX_FILE_BYTES = 1024 * 1024
/** Pending tool changes held in memory per server (not written: learn false, or the file unwritable). */
export const DEFAULT_TOOL_PINS_MAX_PENDING = 1000
/** The dev IdP's loopback port when the gateway runs it. */
export const DEFAULT_DEV_IDP_PORT = 8090
/** The dev IdP's users when none are configured: one, logged in automatically, not an admin. */
export const DEFAULT_DEV_IDP_USERS = [{ sub: 'dev-user', roles: ['mcp-user', 'mcp-developer'] }]

// The gateway's own listener and process (`limits`, `log`).
/** Idle keep-alive connections are closed after this long, in ms: longer than a proxy's idle timeout (nginx 60 s). */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000
/** A comment line on every idle SSE stream this often, in ms, so proxies keep it open. */
export const DEFAULT_SSE_KEEPALIVE_MS = 15_000
/** After SIGTERM or SIGINT, the process exits after this long even if shutdown has not finished, in ms. */
export const DEFAULT_SHUTDOWN_DEADLINE_MS = 10_000
/** After this long with (almost) no CPU used, one full collection gives back what a burst grew the heap to, in ms; 0: never. */
export const DEFAULT_IDLE_GC_AFTER_MS = 10_000
/** Quiet time after the last policy file event before a reload, in ms (editors write in bursts). */
export const DEFAULT_RELOAD_DEBOUNCE_MS = 150
/** Bytes of log lines gathered before a write to stdout (one write per many lines under load). */
export const DEFAULT_LOG_BUFFER_BYTES = 16 * 1024
/** Characters of an audit event's method, name or rule written at most (the rest is counted). */
export const DEFAULT_AUDIT_FIELD_MAX = 1024
/** Lines waiting in the log buffer are written at the latest after this long, in ms. */
export const DEFAULT_LOG_FLUSH_MS = 200
/** At exit, a reader that takes none of the last log or audit lines for this long is given up, in ms. */
export const DEFAULT_LOG_EXIT_WAIT_MS = 1_000
/** Bytes of log lines waiting for a reader of stdout that is behind, at most (the rest are dropped and counted). */
export const DEFAULT_LOG_MAX_PENDING_BYTES = 16 * 1024 * 1024
/** First wait before an audit file that failed a write is opened again, in ms (doubling after each failure). */
export const DEFAULT_AUDIT_RETRY_MS = 1_000
/** Longest wait between attempts to open a failing audit file again, in ms. */
export const DEFAULT_AUDIT_RETRY_MAX_MS = 30_000
/** Audit lines of requests naming a session id this replica does not hold, per window at most. */
export const DEFAULT_UNKNOWN_SESSION_AUDIT_LINES = 20
/** The window of `log.unknownSessionAudit.linesPerWindow`, in ms. */
export const DEFAULT_UNKNOWN_SESSION_AUDIT_WINDOW_MS = 60_000

// The IdP as the gateway reaches it (`auth`), for discovery, JWKS and token exchange.
/** Sockets kept open to the IdP at most. */
export const DEFAULT_IDP_CONNECTIONS = 4
/** Largest discovery or JWKS document accepted, in bytes. */
export const DEFAULT_IDP_MAX_RESPONSE_BYTES = 256 * 1024
/** An idle connection to the IdP is closed after this long, in ms. */
export const DEFAULT_IDP_KEEP_ALIVE_MS = 30_000
/** After a failed discovery or JWKS fetch, wait this long before the next, in ms (requests meanwhile get 503). */
export const DEFAULT_DISCOVERY_RETRY_MS = 5_000
/** How long clients may cache an RFC 9728 metadata document (Cache-Control max-age, RFC 9728 §7.10), in s. */
export const DEFAULT_METADATA_MAX_AGE_S = 300
/** Token exchange: a token whose answer had no expires_in is reused for this long, in ms, then exchanged anew. */
export const DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS = 60_000
/** Token exchange: a token is reused at most this long, in ms, whatever its lifetime: the IdP re-decides at least hourly. */
export const DEFAULT_EXCHANGE_MAX_REUSE_MS = 3_600_000
/** Token exchange: sockets kept open to the token endpoint at most. */
export const DEFAULT_EXCHANGE_CONNECTIONS = 8

// Shared state (`store`), users' secrets (`credentials`).
/** How often readiness asks the shared store whether it answers (with the broker), in ms. */
export const DEFAULT_STORE_PING_MS = 5_000
/** How long a caller waits for a per-user lock another replica holds before giving up, in ms. */
export const DEFAULT_LOCK_WAIT_MS = 5_000
/** Redis: how long one connection attempt may take, and how long start-up waits for Redis, in ms. */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 5_000
/** Redis: how long one operation waits before it fails as `unavailable`, in ms. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2_000
/**
 * Redis: how often each replica publishes a heartbeat on the channel it listens to for
 * revocations, in ms. Its own heartbeat not heard for two of these, the subscription counts as
 * dead even without an error (a connection dropped silently): not ready, the list polled from
 * the store every heartbeat, the subscription made anew.
 */
export const DEFAULT_REDIS_HEARTBEAT_MS = 5_000
/** Redis: reconnect attempts back off exponentially from 50 ms up to this, in ms (plus jitter). */
export const DEFAULT_REDIS_RECONNECT_MAX_DELAY_MS = 2_000
/** The in-memory store: keys held at most; a write that would add one more is refused (`full`). */
export const DEFAULT_MEMORY_MAX_KEYS = 100_000
/** The in-memory store: expired keys are swept this often, in ms. */
export const DEFAULT_MEMORY_SWEEP_INTERVAL_MS = 60_000
/** Longest secret value a user may set, in characters. */
export const DEFAULT_SECRET_MAX_LENGTH = 8192
/** Secrets one user may hold at most. */
export const DEFAULT_SECRETS_PER_USER = 64
/** A user's secret no process was started with for this long (nor set again) is gone, in ms: 90 days. */
export const DEFAULT_SECRET_UNUSED_TTL_MS = 90 * 24 * 3600 * 1000

// The broker's upstream IdP and registrations (`auth.broker`).
/** Largest answer of the upstream IdP accepted (discovery, token, userinfo, JWKS), in bytes. */
export const DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES = 256 * 1024
/** Sockets kept open to the upstream IdP at most. */
export const DEFAULT_UPSTREAM_CONNECTIONS = 8
/** An idle connection to the upstream IdP is closed after this long, in ms. */
export const DEFAULT_UPSTREAM_KEEP_ALIVE_MS = 30_000
/** After a failed upstream discovery, logins are refused for this long before it is tried again, in ms. */
export const DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS = 5_000
/** How long a per-user upstream re-check lock lives unless renewed (a holder renews it while working), in ms. */
export const DEFAULT_RECHECK_LOCK_MS = 30_000
/** An upstream token handed to a process is refreshed first when less than this is left of it, in ms. */
export const DEFAULT_UPSTREAM_RENEW_BEFORE_MS = 60_000
/** Longest client_name a registration may carry, in UTF-16 code units (it is shown on the consent page). */
export const DEFAULT_CLIENT_NAME_MAX_LENGTH = 256
/** `Retry-After` when the client cap is reached, in s: unused clients expire slowly. */
export const DEFAULT_CLIENT_CAP_RETRY_AFTER_S = 3600

// A server's processes (`servers.<name>`).
/**
 * How long a starting process may take to answer the gateway's initialize, in ms at least: a
 * start is not a request (a server fetched by npx, a JVM), so a short `requestTimeout` does not
 * cut it; a longer `requestTimeout` extends it.
 */
export const DEFAULT_INITIALIZE_TIMEOUT_MS = 30_000
/** Longest wait for a warm process to answer its priming ping, in ms. */
export const DEFAULT_PRIME_TIMEOUT_MS = 10_000
/** How long a new session waits for a shared process that is (re)starting, in ms. */
export const DEFAULT_SHARED_READY_WAIT_MS = 10_000
/** After a failed start (of any process of a server) the next is tried this much later, in ms; each next one twice as late. */
export const DEFAULT_RESPAWN_BACKOFF_MS = 500
/** Restarts are never further apart than this, in ms. */
export const DEFAULT_RESPAWN_BACKOFF_MAX_MS = 30_000
/**
 * How long a shared process must have served before its exit restarts it after
 * `respawnBackoff` again, in ms: one that exits sooner (a client crashing it on purpose) is
 * restarted twice as late each time, up to `respawnBackoffMax`.
 */
export const DEFAULT_RESPAWN_STABLE_AFTER_MS = 60_000
/** Largest single stdout message accepted from a child, in bytes; a longer line is dropped, the child goes on. */
export const DEFAULT_CHILD_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
/** Nesting of a process's JSON-RPC message at most; a deeper line is skipped (a stack-safe bound). */
export const DEFAULT_CHILD_MAX_JSON_DEPTH = 256
/** stderr lines logged per child per window before the rest are counted and dropped. */
export const DEFAULT_STDERR_LINES_PER_WINDOW = 50
/** The stderr rate-limit window, in ms. */
export const DEFAULT_STDERR_WINDOW_MS = 10_000
/** Longest stderr line logged, in characters; the rest is cut. */
export const DEFAULT_STDERR_LINE_MAX = 2_000
/** Of the stderr lines a window suppressed, the last ones logged when it ends (a crash's last words). */
export const DEFAULT_STDERR_KEEP_LAST = 10
/** Warnings about what a child wrote (a message dropped or refused) logged per child per window; the rest counted. */
export const DEFAULT_WARNINGS_PER_WINDOW = 20
/** The window of `warnings.linesPerWindow`, in ms. */
export const DEFAULT_WARNINGS_WINDOW_MS = 10_000
/** Stopping a process: after stdin closes, then after SIGTERM, it has this long to exit before the next step (SIGTERM, SIGKILL), in ms. */
export const DEFAULT_STOP_GRACE_MS = 2_000

// Sessionless (2026-07-28) requests, per server and principal (`limits.sessionless`): lanes
// are the principal's own processes, rounds its requests waiting for the client's answers.
/**
 * Lanes (processes) one principal runs at once on one server (rounds waiting for answers
 * aside): each runs one request alone, or up to lanePlainConcurrency plain ones.
 */
export const DEFAULT_LANES_PER_SUBJECT = 4
/** Plain requests (no progress, logs, client capabilities or rounds) one lane's process runs at once. */
export const DEFAULT_LANE_PLAIN_CONCURRENCY = 16
/** How long a request waits for a process of its principal to free up, in ms (then 503). */
export const DEFAULT_LANE_WAIT_MS = 10_000
/** Requests of one principal that may wait for a lane on a server; more are refused at once (503). */
export const DEFAULT_LANE_WAITERS = 16
/** A lane unused this long is ended (unless the server's idleTimeout is shorter), in ms. */
export const DEFAULT_LANE_IDLE_MS = 5 * 60_000
/** Pages of `tools/list` read at most to learn a server's tool schemas (Mcp-Param headers). */
export const DEFAULT_TOOL_PAGES = 20
/** How long a request waiting for the client's answers (input_required) is kept, in ms. */
export const DEFAULT_INPUT_TTL_MS = 5 * 60_000
/** Requests one principal may have waiting for answers; past it the oldest is cancelled. */
export const DEFAULT_WAITING_PER_SUBJECT = 4
/** `subscriptions/listen` streams one principal may hold open per server (→ 429, -32000). */
export const DEFAULT_LISTENS_PER_SUBJECT = 8
/** Resources one listen stream may subscribe to (→ -32602). */
export const DEFAULT_LISTEN_RESOURCES = 64
/** How often an open listen stream checks that the policy still lets its caller in, in ms. */
export const DEFAULT_LISTEN_RECHECK_MS = 30_000
/** How long subscribing a process to one resource for a listen stream may take, in ms. */
export const DEFAULT_SUBSCRIBE_TIMEOUT_MS = 10_000

// Endpoints (`endpoints.<name>`): several servers at one URL.
/** Pages of a backend's list read at most (each page is one request to its process). */
export const DEFAULT_BACKEND_LIST_PAGES = 20
/** How long a backend has to answer one page of a list before it is left out, in ms. */
export const DEFAULT_BACKEND_LIST_TIMEOUT_MS = 10_000
/** How long an endpoint's session-era session lives without a request or an open stream, in ms. */
export const DEFAULT_ENDPOINT_SESSION_IDLE_MS = 10 * 60_000
/**
 * Resource subscriptions one endpoint session may hold (or be taking) at once. Each is kept by
 * the gateway and pins a process, and a template names as many URIs as a client can make up.
 */
export const DEFAULT_SESSION_SUBSCRIPTIONS = 256

/** Asymmetric algorithms accepted by default: never `none`, never HS* (RFC 8725 §3.1, §3.2). */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const

const SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })

/** A URL used as an identifier: no query, no fragment, no trailing slash (MCP canonical URI). */
const canonicalUrl = httpUrl
  .refine(
    (u) => !u.includes('?') && !u.includes('#') && !u.endsWith('/'),
    'must have no query, no fragment and no trailing slash',
  )
  // Published as written (issuer, metadata): where WHATWG reads `127.0.0.1`, other parsers read
  // the host after the last `@` of `http://127.0.0.1\@evil.example`, or keep a space.
  .refine(
    (u) => !/[\\@\s\p{C}]/u.test(u),
    'must have no user name, password, backslash, space or control character (other URL parsers read another host in them)',
  )

const ms = z.number().int().nonnegative()

/** A dev IdP user: the `sub` of its tokens, and the roles the policy's role map expands. */
const devUserSchema = z.strictObject({
  sub: z.string().regex(/^[\w.@+-]{1,100}$/, 'letters, digits and . _ @ + - (1 to 100)'),
  roles: z.array(z.string().min(1)).default([]),
})

/**
 * Session era (2025-03-26 … 2025-11-25): SSE event ids, priming events (2025-11-25 and
 * later) and replay after `Last-Event-ID`, from a bounded buffer per session.
 */
const resumabilitySchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    maxEvents: z.number().int().min(1).default(DEFAULT_RESUME_MAX_EVENTS),
    maxBytes: z.number().int().min(1024).default(DEFAULT_RESUME_MAX_BYTES),
    maxAge: ms.min(1000).default(DEFAULT_RESUME_MAX_AGE_MS),
  })
  .prefault({})

/**
 * SSE polling (SEP-1699), off unless set: the POST stream of a request still pending after
 * `closeAfter` ms is closed once (its priming event carried `retry`), and the client
 * resumes with GET + Last-Event-ID. For proxies that cut long responses.
 */
const ssePollingSchema = z
  .strictObject({ closeAfter: ms.min(100), retry: ms.default(DEFAULT_SSE_POLL_RETRY_MS) })
  .optional()

/** Longest tool or prompt name an endpoint shows by default (OpenAI's clients refuse longer ones). */
export const DEFAULT_ENDPOINT_MAX_NAME_LENGTH = 64
/** Items of a merged list per page an endpoint answers with. */
export const DEFAULT_ENDPOINT_PAGE_SIZE = 500
/**
 * Name and URI tables an endpoint keeps (one per set of backend lists its callers see: per
 * policy group, and per user whose processes' lists are their own); one pushed out is built
 * again, a pass over every name or URI, when next needed.
 */
export const DEFAULT_ENDPOINT_TABLES = 64

/**
 * An endpoint: one URL serving several servers' tools, prompts and resources, each namespaced
 * by `prefix` (`{server}` stands for the server's name) and decided by policy on the server's
 * own names. `servers: "*"` is every configured server.
 */
const endpointSchema = z
  .strictObject({
    /** Where it is served; default `/mcp/<endpoint name>`. `/mcp` is what claude.ai's connectors expect. */
    path: z
      .string()
      .regex(
        /^\/[a-z0-9_-]+(\/[a-z0-9_-]+)*$/,
        'a path of lowercase letters, digits, - and _ segments, like /mcp or /mcp/support',
      )
      .optional(),
    servers: z.union([
      z.literal('*'),
      z.array(z.string().regex(SERVER_NAME, 'a server name')).min(1),
    ]),
    prefix: z
      .string()
      .regex(
        /^[A-Za-z0-9_.-]*(\{server\}[A-Za-z0-9_.-]*)?$/,
        'letters, digits, _ . - and at most one {server}',
      )
      .default('{server}_'),
    maxNameLength: z.number().int().min(16).max(128).default(DEFAULT_ENDPOINT_MAX_NAME_LENGTH),
    /** Items per page of a merged list (a client pages on with nextCursor). */
    pageSize: z.number().int().min(1).max(10_000).default(DEFAULT_ENDPOINT_PAGE_SIZE),
    /** How long a backend may take to answer one page of a list; a slower one is left out of the merged list. */
    listTimeout: ms
      .min(100)
      .max(10 * 60_000)
      .default(DEFAULT_BACKEND_LIST_TIMEOUT_MS),
    /** Pages of one backend's list read at most; past them the rest of its list is left out. */
    listPages: z.number().int().min(1).max(1000).default(DEFAULT_BACKEND_LIST_PAGES),
    /** A session-era session of the endpoint with no request and no open stream ends after this. */
    idleTimeout: ms.min(1000).default(DEFAULT_ENDPOINT_SESSION_IDLE_MS),
    /** resources/subscribe of a session-era session held at once; one more new URI is refused (-32000). */
    maxSubscriptions: z.number().int().min(1).max(100_000).default(DEFAULT_SESSION_SUBSCRIPTIONS),
    /** Name and URI tables kept, built from the backends' lists; past it the least recently used is built again when needed. */
    tables: z.number().int().min(1).max(10_000).default(DEFAULT_ENDPOINT_TABLES),
    /** Shown as the endpoint's resource_name and in its initialize instructions. */
    description: z.string().max(500).optional(),
    /** The endpoint's own session-era streams (a backend's settings are its own sessions'). */
    resumability: resumabilitySchema,
    ssePolling: ssePollingSchema,
  })
  .refine((e) => e.ssePolling === undefined || e.resumability.enabled, {
    message: 'ssePolling needs resumability.enabled (clients resume from the replay buffer)',
    path: ['ssePolling'],
  })

/** A credential a server's process gets in its environment, per user (see the README). */
const credentialSchema = z.union(
  [
    /** A secret the user sets themselves (the account page, or `mcp-edge secrets set`). */
    z.strictObject({
      secret: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a secret name: letters, digits, _ . -'),
      describe: z.string().max(200).optional(),
    }),
    /** RFC 8693 token exchange at the IdP: the user's token for one meant for the downstream service. */
    z.strictObject({
      exchange: z
        .strictObject({
          audience: z.string().min(1).optional(),
          resource: z.string().min(1).optional(),
          scope: z.string().min(1).optional(),
        })
        .refine(
          (e) => e.audience !== undefined || e.resource !== undefined,
          'an exchange names an audience or a resource',
        ),
    }),
    /** The upstream token the broker got when the user logged in (needs auth.broker), refreshed with it. */
    z.strictObject({ upstreamToken: z.enum(['access_token', 'id_token']) }),
  ],
  {
    error:
      'a credential is { secret: NAME }, { exchange: { audience | resource, scope } } or { upstreamToken: access_token | id_token }',
  },
)

/** An output cap in bytes: room for a notice at least, and no more than a process may write. */
const resultBytes = z
  .number()
  .int()
  .min(1024)
  .max(1024 * 1024 * 1024)

const serverSchema = z
  .strictObject({
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).default({}),
    /** Names of the gateway's own environment variables the child may also see (besides HOME, LOGNAME, PATH, SHELL, TERM, USER). */
    inheritEnv: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'))
      .default([]),
    cwd: z.string().optional(),
    /** The OS user its processes run as: `{ uids: "from-to", gid }` a uid per live process, `{ uid, gid }` one user; absent: the gateway's. */
    runAs: runAsSchema.optional(),
    /** `session`: a process per session; `shared`: one long-lived process (per replica) for every session. */
    mode: z.enum(['session', 'shared']).default('session'),
    /** session mode: `min` processes kept spawned and ready; `max` processes at most (warm and in use). */
    pool: z
      .strictObject({
        min: z.number().int().min(0).max(256).default(DEFAULT_POOL_MIN),
        max: z.number().int().min(1).max(100_000).default(DEFAULT_POOL_MAX),
        /**
         * Demand: a session that finds no warm process (or takes the last one) doubles the warm
         * target, up to `burst` (never under `min`, never over `max`), spawned at once.
         */
        burst: z.number().int().min(0).max(256).default(DEFAULT_POOL_BURST),
        /** After this long with no session finding the pool empty, the target is `min` again and warm processes above it end. */
        cooldown: ms.min(1000).default(DEFAULT_POOL_COOLDOWN_MS),
        /**
         * Warm processes are initialized by the gateway (no client capabilities: no sampling,
         * elicitation or roots) and each session's initialize is answered from that result:
         * faster session start, for servers that need neither the client's identity nor its
         * capabilities.
         */
        preinitialize: z.boolean().default(false),
        /** How long a warm process may take to answer its first ping (its runtime loading) before it counts as warm anyway. */
        primeTimeout: ms.min(100).default(DEFAULT_PRIME_TIMEOUT_MS),
      })
      .refine((p) => p.min <= p.max, 'pool.min must not exceed pool.max')
      .prefault({}),
    /** shared mode: how many processes serve the sessions (spread by least load). */
    replicas: z.number().int().min(1).max(64).default(1),
    /**
     * shared mode: resources/subscribe one session holds at once (the gateway and the one process
     * hold every user's); one more new URI is refused (-32000).
     */
    maxSubscriptions: z.number().int().min(1).max(100_000).default(DEFAULT_SESSION_SUBSCRIPTIONS),
    /** Live sessions and sessionless lanes of this server at most (→ 503). */
    maxSessions: z.number().int().min(1).optional(),
    /**
     * Live sessions and sessionless lanes (running, idle, or waiting for input) of this server
     * per subject at most, over all its client ids: the bound on one user's processes (→ 429
     * once nothing of that subject's can be ended: an idle lane or session, or its oldest
     * request waiting for input, is ended first).
     */
    maxSessionsPerSubject: z.number().int().min(1).default(DEFAULT_SERVER_SESSIONS_PER_SUBJECT),
    /** Hand the session's subject, client id and scopes to the process as MCP_EDGE_* variables (spawns on demand, no warm pool). */
    identityEnv: z.boolean().default(false),
    /** `sse` streams every reply (progress, server→client requests on the POST stream); `json` answers each request with one JSON body. */
    responses: z.enum(['sse', 'json']).default('sse'),
    resumability: resumabilitySchema,
    ssePolling: ssePollingSchema,
    requestTimeout: ms.default(DEFAULT_REQUEST_TIMEOUT_MS),
    idleTimeout: ms.default(DEFAULT_IDLE_TIMEOUT_MS),
    /** On shutdown, how long requests in flight may finish before processes are stopped. */
    shutdownGrace: ms.default(DEFAULT_SHUTDOWN_GRACE_MS),
    /** How long a new process may take to answer initialize (at least; a longer requestTimeout extends it). */
    initializeTimeout: ms.min(100).default(DEFAULT_INITIALIZE_TIMEOUT_MS),
    /** shared mode: how long a new session waits for a (re)starting process before 503. */
    readyWait: ms.max(10 * 60_000).default(DEFAULT_SHARED_READY_WAIT_MS),
    /**
     * A server whose process failed to start is not started again for this long (requests get
     * 503, bridge/start-failures.ts), nor a failed warm or shared process; doubling up to
     * respawnBackoffMax.
     */
    respawnBackoff: ms.min(10).max(3600_000).default(DEFAULT_RESPAWN_BACKOFF_MS),
    respawnBackoffMax: ms.min(10).max(3600_000).default(DEFAULT_RESPAWN_BACKOFF_MAX_MS),
    /** shared mode: a process that served this long before it exited restarts after respawnBackoff again; sooner, the delay doubles. */
    respawnStableAfter: ms.max(24 * 3600_000).default(DEFAULT_RESPAWN_STABLE_AFTER_MS),
    /** Largest JSON-RPC message the process may write on stdout; a larger line is dropped (its request, when its ends name one, gets -32603), the process goes on. */
    maxMessageBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(1024 * 1024 * 1024)
      .default(DEFAULT_CHILD_MAX_MESSAGE_BYTES),
    /** Nesting of arrays and objects in one message from the process at most; a deeper line is skipped (logged). */
    maxJsonDepth: z.number().int().min(16).max(2048).default(DEFAULT_CHILD_MAX_JSON_DEPTH),
    /** Stopping the process: after stdin closes, then after SIGTERM, it has this long to exit before SIGTERM, then SIGKILL. */
    stopGrace: ms.min(100).max(60_000).default(DEFAULT_STOP_GRACE_MS),
    /**
     * Output caps: a `tools/call`, `resources/read` or `prompts/get` result larger than its cap
     * (its JSON, UTF-8 bytes) is cut at an item boundary with a notice the model reads, or
     * refused (`overflow`). `tools` caps tools by name pattern (first match wins) before
     * `maxResultBytes`. Unset: no cap beyond `maxMessageBytes`.
     */
    output: z
      .strictObject({
        maxResultBytes: resultBytes.optional(),
        overflow: z.enum(['truncate', 'refuse']).default('truncate'),
        tools: z.record(z.string().min(1).max(256), resultBytes).default({}),
      })
      .prefault({}),
    /** The process's stderr in the log: `linesPerWindow` lines per `window` ms (the rest counted, the last `keepLast` logged when the window ends), each cut at `lineMax` characters. */
    stderr: z
      .strictObject({
        linesPerWindow: z.number().int().min(0).default(DEFAULT_STDERR_LINES_PER_WINDOW),
        window: ms.min(100).default(DEFAULT_STDERR_WINDOW_MS),
        lineMax: z
          .number()
          .int()
          .min(80)
          .max(1024 * 1024)
          .default(DEFAULT_STDERR_LINE_MAX),
        keepLast: z.number().int().min(0).max(1000).default(DEFAULT_STDERR_KEEP_LAST),
      })
      .prefault({}),
    /** Warnings about what the process wrote (a message dropped or refused): `linesPerWindow` per `window` ms, the rest counted. */
    warnings: z
      .strictObject({
        linesPerWindow: z.number().int().min(0).default(DEFAULT_WARNINGS_PER_WINDOW),
        window: ms.min(100).default(DEFAULT_WARNINGS_WINDOW_MS),
      })
      .prefault({}),
    description: z.string().optional(),
    /**
     * Tool pinning (README "Tool pinning"): each tool's definition is recorded by hash in the
     * pin file (`toolPins`); a tool whose definition changes, or that no one approved, is hidden
     * from lists and its calls refused until an operator approves it.
     */
    pinTools: z.boolean().default(false),
    /**
     * Per-user credentials handed to the process as environment variables: the process is the
     * user's own (never pooled, never shared), started with that user's values, and replaced at
     * a request boundary when they change.
     */
    credentials: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'),
        credentialSchema,
      )
      .default({}),
  })
  .refine((s) => Object.keys(s.credentials).length === 0 || s.mode === 'session', {
    message:
      'credentials need mode: session (a shared process serves many users, and would mix their credentials)',
    path: ['credentials'],
  })
  .refine(
    (s) => Object.keys(s.credentials).length === 0 || (s.pool.min === 0 && !s.pool.preinitialize),
    {
      message:
        "credentials need pool.min: 0 and no preinitialize (each process is started with its user's own values)",
      path: ['credentials'],
    },
  )
  .refine(
    (s) => !(s.mode === 'shared' && s.identityEnv),
    'identityEnv needs mode: session (a shared process serves many subjects)',
  )
  .refine((s) => s.respawnBackoff <= s.respawnBackoffMax, {
    message: 'must not exceed respawnBackoffMax',
    path: ['respawnBackoff'],
  })
  .refine((s) => s.ssePolling === undefined || (s.responses === 'sse' && s.resumability.enabled), {
    message:
      'ssePolling needs responses: sse and resumability.enabled (clients resume from the replay buffer)',
    path: ['ssePolling'],
  })

/**
 * Where a secret comes from: an environment variable or a file (a mounted Kubernetes secret),
 * read at start-up. Never inline in the YAML, which ends up in repositories and logs.
 */
export const secretRef = z.union(
  [
    z.strictObject({
      env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'),
    }),
    z.strictObject({ file: z.string().min(1) }),
  ],
  { error: 'a secret is { env: NAME } or { file: /path }, never a literal value' },
)

const cidr = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'an IP address or CIDR range')

const roleClaimSchema = z.union([
  z.string().min(1),
  z.strictObject({
    path: z.string().min(1),
    format: z.enum(['array', 'space-separated']).default('array'),
  }),
])

/** Access tokens the broker issues live this long, in s (MCP: short-lived access tokens). */
export const DEFAULT_BROKER_ACCESS_TOKEN_TTL_S = 300
/** Refresh tokens the broker issues live at most this long, in s (each use rotates them). */
export const DEFAULT_BROKER_REFRESH_TOKEN_TTL_S = 14 * 24 * 3600
/**
 * Revoked grants and access tokens one replica holds in memory until their tokens expire; past
 * it every broker token issued before then is refused until the overflow has expired.
 */
export const DEFAULT_BROKER_REVOCATION_LIST_MAX = 100_000
/**
 * Access tokens one user may revoke at /revoke within one token lifetime (accessTokenTtl), on
 * every replica together: past it /revoke answers 503 and the token stays valid until it
 * expires, so one user cannot fill the revocation list every replica shares (which would then
 * refuse everyone's tokens). Revoked grants are not counted.
 */
export const DEFAULT_BROKER_REVOCATIONS_PER_USER = 100
/** Authorization codes live this long, in s (single use). */
export const DEFAULT_BROKER_CODE_TTL_S = 60
/** A login (consent page, upstream round trip) must finish within this, in s. */
export const DEFAULT_BROKER_LOGIN_TTL_S = 600
/** How often a refresh re-checks the user at the upstream IdP, in s (0: at every refresh). */
export const DEFAULT_BROKER_RECHECK_S = 15 * 60
/** Remembered consent (per user, client, redirect URI and scope set) lasts this long, in s. */
export const DEFAULT_BROKER_CONSENT_TTL_S = 30 * 24 * 3600
/** Dynamically registered clients at most (→ 429 at /register). */
export const DEFAULT_BROKER_MAX_CLIENTS = 1000
/** A registration unused for this long is forgotten, in s. */
export const DEFAULT_BROKER_CLIENT_UNUSED_TTL_S = 30 * 24 * 3600
/** Registration request body at most, in bytes. */
export const DEFAULT_BROKER_REGISTRATION_MAX_BYTES = 8192
/** Redirect URIs one client may register at most. */
export const DEFAULT_BROKER_MAX_REDIRECT_URIS = 10
/** Registrations one address may make per minute. */
export const DEFAULT_BROKER_REGISTRATIONS_PER_MINUTE = 20
/** Registrations one IPv6 /48 may make per minute: 4× one address's (16% of those in all). */
export const DEFAULT_BROKER_REGISTRATIONS_PER_NETWORK_PER_MINUTE = 80
/**
 * Registrations every address together may make per minute: an MCP client registers once, so
 * 25 addresses at their bound; holds the counters to about 1000 a window (1% of store.maxKeys),
 * however many addresses register (refused registrations add no client to the client cap).
 */
export const DEFAULT_BROKER_REGISTRATIONS_IN_ALL_PER_MINUTE = 500
/**
 * Sign-in steps that store state (an authorization request, a trip to the upstream IdP: two per
 * sign-in) one address may start per minute: 30 sign-ins a minute from one office NAT, while one
 * address holds at most 60 × (loginTtl / 60 + 1) records (660 of store.maxKeys' 100,000).
 */
export const DEFAULT_BROKER_SIGN_INS_PER_ADDRESS_PER_MINUTE = 60
/**
 * Sign-in steps one IPv6 /48 (its 65,536 /64s together) may start per minute: 4× one address's,
 * so a site's few busy /64s sign in, while one person's delegation (a home /56, a free tunnel
 * /48) spends at most 12% of the bound in all instead of all of it.
 */
export const DEFAULT_BROKER_SIGN_INS_PER_NETWORK_PER_MINUTE = 240
/**
 * Sign-in steps every address together may start per minute: bounds what logins in progress
 * hold (22,000 records at the default loginTtl) so that many addresses cannot fill the store
 * (refreshes and grants keep their room) nor grow Redis without bound.
 */
export const DEFAULT_BROKER_SIGN_INS_PER_MINUTE = 2000
/** Timeout of one upstream IdP call (discovery, token, userinfo), in ms. */
export const DEFAULT_BROKER_UPSTREAM_TIMEOUT_MS = 10_000
/** Timeout of one Client ID Metadata Document fetch, in ms (oidc-provider caps it at 2500). */
export const DEFAULT_CIMD_TIMEOUT_MS = 2_500
/** Largest Client ID Metadata Document accepted, in bytes (the CIMD draft: 5 KB). */
export const DEFAULT_CIMD_MAX_BYTES = 5_120
/** Client ID Metadata Documents fetched at once at most; one more is refused, not queued. */
export const DEFAULT_CIMD_MAX_CONCURRENT = 16
/** Longest a Client ID Metadata Document is cached, in s (oidc-provider's own ceiling: one day). */
export const DEFAULT_CIMD_MAX_CACHE_AGE_S = 86_400

/**
 * Redirect URIs dynamically registered clients may use unless the operator sets their own:
 * loopback (any port, RFC 8252 §7.3), private-use schemes of desktop apps (RFC 8252 §7.1:
 * `cursor://`, `vscode://`), and the hosted clients' callbacks.
 */
export const DEFAULT_BROKER_REDIRECT_URIS = [
  'http://127.0.0.1:*/*',
  'http://localhost:*/*',
  'http://[::1]:*/*',
  'cursor://*',
  'vscode://*',
  'vscode-insiders://*',
  'https://claude.ai/api/mcp/auth_callback',
  'https://claude.com/api/mcp/auth_callback',
  'https://chatgpt.com/connector_platform_oauth_redirect',
  'https://chatgpt.com/connector/oauth/*',
  'https://vscode.dev/redirect',
  'https://insiders.vscode.dev/redirect',
  'https://www.cursor.com/agents/mcp/oauth/callback',
]

/** The company IdP the broker logs users in at, with the gateway's own registered client. */
const upstreamSchema = z
  .strictObject({
    /** OIDC issuer (discovery at {issuer}/.well-known/openid-configuration); or `endpoints`. */
    issuer: httpUrl.optional(),
    /** A plain OAuth 2.0 provider without discovery (GitHub): its endpoints. */
    endpoints: z
      .strictObject({ authorization: httpUrl, token: httpUrl, userinfo: httpUrl.optional() })
      .optional(),
    clientId: z.string().min(1),
    /** client_secret_basic (or _post with `tokenEndpointAuth: client_secret_post`). */
    clientSecret: secretRef.optional(),
    /** private_key_jwt: a PEM (PKCS#8) or JWK private key, and its key id. */
    privateKey: secretRef.optional(),
    privateKeyId: z.string().min(1).optional(),
    tokenEndpointAuth: z
      .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'])
      .optional(),
    /** Scopes asked of the upstream. Default: openid profile email (OIDC), none (OAuth 2.0). */
    scopes: z.array(z.string().min(1)).optional(),
    /** Extra authorization parameters (Google: access_type=offline, prompt=consent, hd). */
    authorizeParams: z.record(z.string(), z.string()).default({}),
    /** Send RFC 8707 `resource` upstream (Entra and Google refuse it). */
    sendResource: z.boolean().default(false),
    /** The claim (ID token, else userinfo) that names the user: Entra `oid`, GitHub `id`. */
    subjectClaim: z.string().min(1).default('sub'),
    /** Where the upstream keeps roles or groups, in the syntax of auth.roleClaims. */
    roleClaims: z.array(roleClaimSchema).default(['roles', 'groups']),
    /** Upstream role or group values (Entra group ids) → role names of the policy's role map. */
    roleMap: z.record(z.string(), z.array(z.string().min(1))).default({}),
    /** Only users whose email domain (or Google `hd`) is listed may log in. */
    allowedDomains: z.array(z.string().min(1)).optional(),
    /** How often a refresh re-checks the user upstream, in s; 0 = every refresh. */
    recheckInterval: z.number().int().min(0).default(DEFAULT_BROKER_RECHECK_S),
    timeout: ms.min(500).default(DEFAULT_BROKER_UPSTREAM_TIMEOUT_MS),
    /** A larger answer of the upstream (discovery, token, userinfo, JWKS) is refused. */
    maxResponseBytes: z
      .number()
      .int()
      .min(4096)
      .max(16 * 1024 * 1024)
      .default(DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES),
    /** Connections to the upstream at most. */
    connections: z.number().int().min(1).max(256).default(DEFAULT_UPSTREAM_CONNECTIONS),
    /** An idle connection to the upstream is closed after this. */
    keepAlive: ms.min(1000).max(600_000).default(DEFAULT_UPSTREAM_KEEP_ALIVE_MS),
    /** After a failed discovery, logins are refused for this long before it is tried again. */
    discoveryRetry: ms.min(100).max(600_000).default(DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS),
    /** A user's re-check lock lives this long unless renewed (its holder renews it while working; replicas wait); it must exceed timeout. */
    recheckLock: ms.min(1000).max(600_000).default(DEFAULT_RECHECK_LOCK_MS),
    /** An upstream token handed to a process (upstreamToken credentials) is refreshed when less than this is left. */
    renewBefore: ms.max(3600_000).default(DEFAULT_UPSTREAM_RENEW_BEFORE_MS),
    /**
     * Open every connection to the upstream at this host instead of the one its URLs name; the
     * port, the Host header and the name TLS checks stay the URL's (curl's --connect-to). For an
     * IdP whose public name leads elsewhere from where the gateway runs: a container network
     * where the public host is the gateway's own loopback, split-horizon DNS, hairpin NAT.
     */
    connectTo: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$|^[0-9A-Fa-f:]+$/, 'a host name or IP address, without a port')
      .optional(),
    /** A CA certificate (PEM file) trusted for the upstream besides the system's (a private CA). */
    caFile: z.string().min(1).optional(),
  })
  .refine(
    (u) => (u.issuer === undefined) !== (u.endpoints === undefined),
    'set exactly one of issuer (OIDC discovery) or endpoints (plain OAuth 2.0)',
  )
  .refine(
    (u) => (u.clientSecret === undefined) !== (u.privateKey === undefined),
    'set exactly one of clientSecret or privateKey',
  )
  .refine(
    (u) =>
      u.tokenEndpointAuth === undefined ||
      (u.tokenEndpointAuth === 'private_key_jwt') === (u.privateKey !== undefined),
    'tokenEndpointAuth private_key_jwt goes with privateKey, the others with clientSecret',
  )
  .refine((u) => u.recheckLock > u.timeout, {
    message: 'must exceed timeout (a re-check calls the upstream while it holds the lock)',
    path: ['recheckLock'],
  })

/**
 * The OAuth broker: the gateway is the authorization server MCP clients register with and log
 * in through; users authenticate at `upstream`. Off unless this section is present.
 */
const brokerSchema = z.strictObject({
  upstream: upstreamSchema,
  /** Private JWKS signing the broker's tokens (first key signs; rotate by prepending). Default: generated at start (one replica only). */
  signingKeys: secretRef.optional(),
  /** Keys signing the broker's cookies (JSON list of strings, ≥ 32 chars; first signs). Default: generated at start (one replica only). */
  cookieKeys: secretRef.optional(),
  accessTokenTtl: z.number().int().min(30).max(3600).default(DEFAULT_BROKER_ACCESS_TOKEN_TTL_S),
  refreshTokenTtl: z.number().int().min(60).default(DEFAULT_BROKER_REFRESH_TOKEN_TTL_S),
  /** Revoked grants and tokens held in memory (see DEFAULT_BROKER_REVOCATION_LIST_MAX). */
  revocationListMax: z.number().int().min(100).default(DEFAULT_BROKER_REVOCATION_LIST_MAX),
  /** Access tokens one user may revoke per token lifetime (see DEFAULT_BROKER_REVOCATIONS_PER_USER). */
  revocationsPerUser: z.number().int().min(1).default(DEFAULT_BROKER_REVOCATIONS_PER_USER),
  codeTtl: z.number().int().min(10).max(600).default(DEFAULT_BROKER_CODE_TTL_S),
  loginTtl: z.number().int().min(60).max(3600).default(DEFAULT_BROKER_LOGIN_TTL_S),
  /** Sign-in steps that store state (authorization requests, trips upstream) per minute. */
  signIn: z
    .strictObject({
      /** From one address (an IPv6 /64), see DEFAULT_BROKER_SIGN_INS_PER_ADDRESS_PER_MINUTE. */
      perAddressPerMinute: z
        .number()
        .int()
        .min(2)
        .default(DEFAULT_BROKER_SIGN_INS_PER_ADDRESS_PER_MINUTE),
      /** From one IPv6 /48, see DEFAULT_BROKER_SIGN_INS_PER_NETWORK_PER_MINUTE. */
      perNetworkPerMinute: z
        .number()
        .int()
        .min(2)
        .default(DEFAULT_BROKER_SIGN_INS_PER_NETWORK_PER_MINUTE),
      /** From every address together, see DEFAULT_BROKER_SIGN_INS_PER_MINUTE. */
      perMinute: z.number().int().min(2).default(DEFAULT_BROKER_SIGN_INS_PER_MINUTE),
    })
    .prefault({}),
  consent: z
    .strictObject({
      /** Remember a user's consent per client, redirect URI and scope set (else ask every time). */
      remember: z.boolean().default(true),
      rememberFor: z.number().int().min(60).default(DEFAULT_BROKER_CONSENT_TTL_S),
    })
    .prefault({}),
  registration: z
    .strictObject({
      enabled: z.boolean().default(true),
      maxClients: z.number().int().min(1).default(DEFAULT_BROKER_MAX_CLIENTS),
      unusedTtl: z.number().int().min(60).default(DEFAULT_BROKER_CLIENT_UNUSED_TTL_S),
      maxBodyBytes: z
        .number()
        .int()
        .min(512)
        .max(65536)
        .default(DEFAULT_BROKER_REGISTRATION_MAX_BYTES),
      maxRedirectUris: z.number().int().min(1).max(100).default(DEFAULT_BROKER_MAX_REDIRECT_URIS),
      perAddressPerMinute: z.number().int().min(1).default(DEFAULT_BROKER_REGISTRATIONS_PER_MINUTE),
      /** From one IPv6 /48, see DEFAULT_BROKER_REGISTRATIONS_PER_NETWORK_PER_MINUTE. */
      perNetworkPerMinute: z
        .number()
        .int()
        .min(1)
        .default(DEFAULT_BROKER_REGISTRATIONS_PER_NETWORK_PER_MINUTE),
      /** From every address together, see DEFAULT_BROKER_REGISTRATIONS_IN_ALL_PER_MINUTE. */
      perMinute: z.number().int().min(1).default(DEFAULT_BROKER_REGISTRATIONS_IN_ALL_PER_MINUTE),
      /** Longest client_name accepted (shown on the consent page). */
      maxClientNameLength: z
        .number()
        .int()
        .min(16)
        .max(4096)
        .default(DEFAULT_CLIENT_NAME_MAX_LENGTH),
      /** Retry-After of a registration refused because maxClients are registered, in s. */
      retryAfterWhenFull: z
        .number()
        .int()
        .min(1)
        .max(86_400)
        .default(DEFAULT_CLIENT_CAP_RETRY_AFTER_S),
      /** Patterns a registered redirect URI must match (`*` any run of characters; `:*` any port). */
      redirectUris: z.array(z.string().min(1)).default(DEFAULT_BROKER_REDIRECT_URIS),
    })
    .prefault({}),
  /** Client ID Metadata Documents (client_id is an https URL). */
  cimd: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Only documents on these hosts (default: any public host). */
      allowHosts: z.array(z.string().min(1)).optional(),
      /** Addresses a document host may resolve to although private, loopback or special-use (tests, intranets). */
      allowPrivate: z.array(cidr).default([]),
      timeout: ms.min(100).max(2_500).default(DEFAULT_CIMD_TIMEOUT_MS),
      maxBytes: z.number().int().min(512).max(5_120).default(DEFAULT_CIMD_MAX_BYTES),
      /** Documents fetched at once at most (every outsider's /authorize can start one); one more is refused. */
      maxConcurrent: z.number().int().min(1).max(1024).default(DEFAULT_CIMD_MAX_CONCURRENT),
      /** s a fetched document is used at most (its own Cache-Control max-age up to this); 0: fetched at every request. */
      maxCacheAge: z.number().int().min(0).max(86_400).default(DEFAULT_CIMD_MAX_CACHE_AGE_S),
      /** A CA certificate (PEM file) trusted for document hosts besides the system's (tests, intranets). */
      caFile: z.string().min(1).optional(),
    })
    .prefault({}),
})

const authSchema = z.strictObject({
  issuer: httpUrl.optional(),
  /** A CA certificate (PEM file) trusted for the issuer (discovery, JWKS, token exchange) besides the system's: a private CA. */
  caFile: z.string().min(1).optional(),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  jwksUri: httpUrl.optional(),
  algorithms: z
    .array(z.enum(ASYMMETRIC_ALGORITHMS, { error: 'only asymmetric algorithms are accepted' }))
    .min(1)
    .default([...ASYMMETRIC_ALGORITHMS]),
  clockTolerance: z.number().int().min(0).max(300).default(DEFAULT_CLOCK_TOLERANCE_S),
  /**
   * Claim paths holding role lists: dotted paths through nested objects (`*` matches any key),
   * or a claim name with `://` taken whole; each value must be an array of strings, or with
   * `{ path, format: space-separated }` one string. The default reads Keycloak's realm roles
   * and the client roles of a client named `mcp-edge`, not every client's: a role called
   * `mcp-admin` on some unrelated client must not count.
   */
  roleClaims: z
    .array(roleClaimSchema)
    .default(['realm_access.roles', 'resource_access.mcp-edge.roles']),
  /** Require `typ: at+jwt` (RFC 9068 §4). Off by default: many IdPs issue `typ: JWT`. */
  requireJwtAccessTokenType: z.boolean().default(false),
  scopesSupported: z.array(z.string().min(1)).optional(),
  /**
   * Unknown-`kid` refetches at most this often. At least 1 s: at 0 a healthy JWKS was fetched
   * once per request carrying a made-up `kid` (no credentials needed, each token unsigned), a
   * flood at the gateway becoming one at the IdP; 1 s bounds that to one fetch a second per
   * issuer whatever the request rate, and still picks up a rotated key within a second.
   */
  jwksCooldown: ms.min(1000).default(DEFAULT_JWKS_COOLDOWN_MS),
  /**
   * Keys fetched longer ago are fetched again first (a cache hit too): a removed key stops working
   * within it. At least 1 s: below, each request (a made-up bearer too) was a fetch at the IdP.
   */
  jwksMaxAge: ms.min(1000).default(DEFAULT_JWKS_MAX_AGE_MS),
  idpTimeout: ms.min(100).default(DEFAULT_IDP_TIMEOUT_MS),
  /** Connections to the IdP (discovery, JWKS) at most. */
  idpConnections: z.number().int().min(1).max(256).default(DEFAULT_IDP_CONNECTIONS),
  /** A larger discovery or JWKS document is refused (the IdP counts as unreachable). */
  idpMaxResponseBytes: z
    .number()
    .int()
    .min(4096)
    .max(16 * 1024 * 1024)
    .default(DEFAULT_IDP_MAX_RESPONSE_BYTES),
  /** An idle connection to the IdP is closed after this. */
  idpKeepAlive: ms.min(1000).max(600_000).default(DEFAULT_IDP_KEEP_ALIVE_MS),
  /**
   * After a failed discovery or JWKS fetch, requests that need the IdP are refused (503) for
   * this long before it is tried again (a failed fetch starts no JWKS cooldown).
   */
  discoveryRetry: ms.min(100).max(600_000).default(DEFAULT_DISCOVERY_RETRY_MS),
  /** Cache-Control max-age of the RFC 9728 metadata documents, in s. */
  metadataMaxAge: z.number().int().min(0).max(86_400).default(DEFAULT_METADATA_MAX_AGE_S),
  tokenCacheMax: z.number().int().min(0).default(DEFAULT_TOKEN_CACHE_MAX),
  tokenCacheTtl: z.number().int().min(0).default(DEFAULT_TOKEN_CACHE_TTL_S),
  /** The gateway as the authorization server, federating to an upstream IdP (see brokerSchema). */
  broker: brokerSchema.optional(),
  /**
   * RFC 8693 token exchange at the IdP, for `credentials` of kind `exchange`: the user's token
   * traded for one meant for a downstream service. `subjectToken`: which of the user's tokens
   * is traded: the bearer the client presented (`bearer`, with an external issuer) or the
   * access token the broker got upstream (`upstream`, the default with the broker).
   */
  tokenExchange: z
    .strictObject({
      /** Default: the token endpoint of the issuer's discovery document (the broker's upstream with the broker). */
      tokenEndpoint: httpUrl.optional(),
      clientId: z.string().min(1),
      clientSecret: secretRef.optional(),
      clientAuth: z
        .enum(['client_secret_basic', 'client_secret_post', 'none'])
        .default('client_secret_basic'),
      subjectToken: z.enum(['bearer', 'upstream']).optional(),
      timeout: ms.min(100).default(DEFAULT_EXCHANGE_TIMEOUT_MS),
      renewBefore: ms.default(DEFAULT_EXCHANGE_RENEW_BEFORE_MS),
      maxResponseBytes: z.number().int().min(1024).default(DEFAULT_EXCHANGE_MAX_RESPONSE_BYTES),
      cacheMax: z.number().int().min(1).default(DEFAULT_EXCHANGE_CACHE_MAX),
      /** A token whose answer had no expires_in is reused this long. */
      unknownLifetime: ms.max(24 * 3600_000).default(DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS),
      /** A token is reused at most this long, whatever its lifetime (the IdP decides again). */
      maxReuse: ms
        .min(1000)
        .max(24 * 3600_000)
        .default(DEFAULT_EXCHANGE_MAX_REUSE_MS),
      /** Connections to the token endpoint at most. */
      connections: z.number().int().min(1).max(256).default(DEFAULT_EXCHANGE_CONNECTIONS),
    })
    .refine(
      (x) => (x.clientAuth === 'none') === (x.clientSecret === undefined),
      'clientSecret goes with clientAuth client_secret_basic or client_secret_post; none has no secret',
    )
    .optional(),
})

/** The whole gateway.yaml. Every field has a default except `servers`. */
export const configSchema = z
  .strictObject({
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
    trustProxy: z
      .union([
        z.boolean(),
        z
          .array(z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'an IP address or CIDR range'))
          .min(1),
      ])
      .default(false),
    /**
     * This replica's name, the prefix of every session id it mints (`<replicaId>.<random>`),
     * so a proxy can route a session back to the replica that holds its process.
     */
    replicaId: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and -, at most 32')
      .optional(),
    allowedOrigins: z.array(z.string().min(1)).default([]),
    /**
     * Host names (no port) the MCP endpoints answer to besides `publicUrl`'s and the loopback
     * names; any other `Host` is refused with 403 before authentication (DNS rebinding).
     */
    allowedHosts: z
      .array(
        z
          .string()
          .regex(
            /^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/,
            'a host name or [IPv6] address, without a port',
          ),
      )
      .default([]),
    auth: authSchema.prefault({}),
    devIdp: z
      .strictObject({
        port: z.number().int().min(0).max(65535).default(DEFAULT_DEV_IDP_PORT),
        /** The first is who `mcp-edge token` acts as; with several, logins show a chooser. */
        users: z
          .array(devUserSchema)
          .min(1)
          .refine((u) => new Set(u.map((x) => x.sub)).size === u.length, 'each sub once')
          .default(() => DEFAULT_DEV_IDP_USERS.map((u) => ({ ...u, roles: [...u.roles] }))),
      })
      .prefault({}),
    servers: z
      .record(
        z.string().regex(SERVER_NAME, 'server names are lowercase letters, digits, - and _'),
        serverSchema,
      )
      .refine((s) => Object.keys(s).length > 0, 'at least one server is required'),
    /** Endpoints that aggregate several servers at one URL (see the README's "Endpoints"). */
    endpoints: z
      .record(
        z.string().regex(SERVER_NAME, 'endpoint names are lowercase letters, digits, - and _'),
        endpointSchema,
      )
      .default({}),
    /**
     * Host names (no port) whose `/mcp` is one server or endpoint: `notes.example.com: { server:
     * notes }`. Each is also allowed as Host, and its URL is a resource of its own.
     */
    hosts: z
      .record(
        z
          .string()
          .regex(
            /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/,
            'a lowercase DNS host name',
          ),
        z.union(
          [
            z.strictObject({ server: z.string().regex(SERVER_NAME) }),
            z.strictObject({ endpoint: z.string().regex(SERVER_NAME) }),
          ],
          { error: 'a host routes to { server: NAME } or { endpoint: NAME }' },
        ),
      )
      .default({}),
    policies: z.string().min(1).optional(),
    /**
     * The pin file of servers with `pinTools: true` (relative to the config file). `learn`: a
     * tool never seen is pinned on first sight (trust on first use) and changes are written as
     * pending; off (replicas sharing a read-only file), an unknown tool is pending like a changed
     * one and nothing is written.
     */
    toolPins: z
      .strictObject({
        file: z.string().min(1).default(DEFAULT_TOOL_PINS_FILE),
        learn: z.boolean().default(true),
        maxFileBytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(DEFAULT_TOOL_PINS_MAX_FILE_BYTES),
        maxPending: z.number().int().min(1).max(100_000).default(DEFAULT_TOOL_PINS_MAX_PENDING),
        /** Quiet time after the pin file changes before it is reloaded. */
        reloadDebounce: ms.min(10).max(60_000).default(DEFAULT_RELOAD_DEBOUNCE_MS),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxBodyBytes: z.number().int().min(1024).default(DEFAULT_MAX_BODY_BYTES),
        maxSessions: z.number().int().min(1).default(DEFAULT_MAX_SESSIONS),
        maxSessionsPerSubject: z.number().int().min(1).default(DEFAULT_SESSIONS_PER_SUBJECT),
        /** Users' own start-failure windows remembered at most; past it the least recently failed is forgotten. */
        startFailureUsers: z
          .number()
          .int()
          .min(1)
          .max(10_000_000)
          .default(DEFAULT_START_FAILURE_USERS),
        /** Processes started for one subject per processStartsWindow at most (429); 0: no limit. */
        processStartsPerSubject: z
          .number()
          .int()
          .min(0)
          .max(100_000)
          .default(DEFAULT_PROCESS_STARTS_PER_SUBJECT),
        processStartsWindow: ms
          .min(1000)
          .max(24 * 3600_000)
          .default(DEFAULT_PROCESS_STARTS_WINDOW_MS),
        /** Exits of a shared process one subject is blamed for per sharedCrashesWindow at most (429); 0: no limit. */
        sharedCrashesPerSubject: z
          .number()
          .int()
          .min(0)
          .max(100_000)
          .default(DEFAULT_SHARED_CRASHES_PER_SUBJECT),
        sharedCrashesWindow: ms
          .min(1000)
          .max(24 * 3600_000)
          .default(DEFAULT_SHARED_CRASHES_WINDOW_MS),
        /**
         * Subjects a shared server's exits are charged to at most; more in flight at one exit: no
         * one. At least 10: with a cap of 1 or 2, a culprit with one or two decoy accounts in
         * flight at each crash was never charged.
         */
        sharedCrashesSubjects: z
          .number()
          .int()
          .min(10)
          .max(100_000)
          .default(DEFAULT_SHARED_CRASHES_SUBJECTS),
        maxBatch: z.number().int().min(1).max(10_000).default(DEFAULT_MAX_BATCH),
        maxJsonDepth: z.number().int().min(8).max(1_000).default(DEFAULT_MAX_JSON_DEPTH),
        bodyTimeout: ms.min(100).default(DEFAULT_BODY_TIMEOUT_MS),
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
        /** Idle keep-alive connections are closed after this; keep it above the idle timeout of any proxy in front. */
        keepAliveTimeout: ms.min(1000).max(3600_000).default(DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
        /** A keep-alive comment on an idle SSE stream this often (every transport), so proxies keep it open. */
        sseKeepAlive: ms.min(1000).max(3600_000).default(DEFAULT_SSE_KEEPALIVE_MS),
        /** On SIGTERM, the process exits after this even if shutdown is unfinished; must exceed every server's shutdownGrace. */
        shutdownDeadline: ms.min(1000).max(3600_000).default(DEFAULT_SHUTDOWN_DEADLINE_MS),
        /** Quiet time after which one full collection gives memory back (`mcp-edge serve` only); 0: never. */
        idleGcAfter: ms
          .max(3600_000)
          .refine((v) => v === 0 || v >= 1000, 'at least 1000 (ms), or 0: never')
          .default(DEFAULT_IDLE_GC_AFTER_MS),
        /** Quiet time after a policy file changes before it is reloaded. */
        policyReloadDebounce: ms.min(10).max(60_000).default(DEFAULT_RELOAD_DEBOUNCE_MS),
        /** Sessionless (2026-07-28) requests: each principal's processes, waiters, rounds and listen streams, per server. */
        sessionless: z
          .strictObject({
            /** Lanes running at once, a request alone or plain ones each (the server's maxSessionsPerSubject, when lower, wins). */
            lanesPerSubject: z.number().int().min(1).max(1000).default(DEFAULT_LANES_PER_SUBJECT),
            /** Plain requests one lane's process runs at once (the lane counts once in lanesPerSubject); 1: one request per process. */
            lanePlainConcurrency: z
              .number()
              .int()
              .min(1)
              .max(1000)
              .default(DEFAULT_LANE_PLAIN_CONCURRENCY),
            /** How long a request waits for a running one to finish before 503; 0: never waits. */
            laneWait: ms.max(10 * 60_000).default(DEFAULT_LANE_WAIT_MS),
            /** Requests waiting for a lane at most; 0: none waits. */
            laneWaiters: z.number().int().min(0).max(10_000).default(DEFAULT_LANE_WAITERS),
            /** An unused lane's process ends after this (or the server's idleTimeout when shorter). */
            laneIdle: ms.min(1000).default(DEFAULT_LANE_IDLE_MS),
            /** Pages of a server's tools/list read to learn its tools' input schemas. */
            toolPages: z.number().int().min(1).max(1000).default(DEFAULT_TOOL_PAGES),
            /** How long a request waits for its client's answers (input_required) before it is cancelled. */
            inputTtl: ms
              .min(1000)
              .max(24 * 3600_000)
              .default(DEFAULT_INPUT_TTL_MS),
            /** Requests waiting for answers at most; a new one cancels the oldest. */
            waitingPerSubject: z
              .number()
              .int()
              .min(1)
              .max(1000)
              .default(DEFAULT_WAITING_PER_SUBJECT),
            /** subscriptions/listen streams open at most. */
            listensPerSubject: z
              .number()
              .int()
              .min(1)
              .max(1000)
              .default(DEFAULT_LISTENS_PER_SUBJECT),
            /** resourceSubscriptions of one listen stream at most. */
            listenResources: z.number().int().min(1).max(10_000).default(DEFAULT_LISTEN_RESOURCES),
            /** How often a listen stream re-checks the policy in force (it ends when access is gone). */
            listenRecheck: ms.min(1000).default(DEFAULT_LISTEN_RECHECK_MS),
            /** How long the server may take to accept one resource subscription of a listen stream. */
            subscribeTimeout: ms.min(100).default(DEFAULT_SUBSCRIBE_TIMEOUT_MS),
          })
          .prefault({}),
      })
      .refine((l) => l.streamQueueBytes <= l.sessionQueueBytes, {
        message: 'must not exceed sessionQueueBytes',
        path: ['streamQueueBytes'],
      })
      .refine((l) => l.streamQueueEvents <= l.sessionQueueEvents, {
        message: 'must not exceed sessionQueueEvents',
        path: ['streamQueueEvents'],
      })
      .prefault({}),
    /**
     * Where `/metrics` is served: on the main listener to any peer (the default), to the peers
     * in `allowFrom` only (addresses or CIDR ranges), or only on a listener of its own
     * (`listen`), e.g. a loopback or cluster-internal port the public proxy never reaches.
     */
    metrics: z
      .strictObject({
        listen: z
          .strictObject({ host: z.string().min(1), port: z.number().int().min(0).max(65535) })
          .optional(),
        allowFrom: z
          .array(z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'an IP address or CIDR range'))
          .min(1)
          .optional(),
      })
      .prefault({}),
    /**
     * Where shared state lives (broker clients and grants, users' secrets, counters): `memory`
     * (one replica, the default) or `redis` (several replicas; `url` from env or file, as it may
     * hold a password).
     */
    store: z
      .strictObject({
        kind: z.enum(['memory', 'redis']).default('memory'),
        url: secretRef.optional(),
        keyPrefix: z.string().default('mcp-edge:'),
        /** With the broker: how often readiness asks the store whether it answers. */
        pingInterval: ms.min(100).max(600_000).default(DEFAULT_STORE_PING_MS),
        /** How long a request waits for a per-user lock (an upstream re-check) before it fails. */
        lockWait: ms.min(100).max(600_000).default(DEFAULT_LOCK_WAIT_MS),
        /** redis: connecting at most this long (at start-up, and each reconnect). */
        connectTimeout: ms.min(100).max(600_000).default(DEFAULT_REDIS_CONNECT_TIMEOUT_MS),
        /** redis: one command at most this long; past it the store counts as unavailable. */
        commandTimeout: ms.min(100).max(600_000).default(DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
        /** redis: a replica hears its own heartbeat on its revocation subscription this often (see DEFAULT_REDIS_HEARTBEAT_MS). */
        heartbeat: ms.min(100).max(600_000).default(DEFAULT_REDIS_HEARTBEAT_MS),
        /** redis: reconnect attempts back off up to this far apart. */
        reconnectMaxDelay: ms.min(100).max(600_000).default(DEFAULT_REDIS_RECONNECT_MAX_DELAY_MS),
        /** memory: keys held at most; a write that would add one more fails (never by evicting another's). */
        maxKeys: z.number().int().min(1000).default(DEFAULT_MEMORY_MAX_KEYS),
        /** memory: how often expired keys are swept. */
        sweepInterval: ms.min(1000).max(3600_000).default(DEFAULT_MEMORY_SWEEP_INTERVAL_MS),
      })
      .refine(
        (st) => st.kind === 'memory' || st.url !== undefined,
        'store.url is required with kind: redis',
      )
      .prefault({}),
    /**
     * Rate limits (written in the policy files, `rateLimits:`): counted in `store` (memory: this
     * replica; redis: every replica). When the store cannot be reached, a request a rate limit
     * covers is refused (`closed`, the default) or let through uncounted (`open`).
     */
    rateLimits: z
      .strictObject({
        onStoreError: z.enum(['closed', 'open']).default('closed'),
      })
      .prefault({}),
    /** How a call waits for a user's missing credential (see servers.<name>.credentials). */
    credentials: z
      .strictObject({
        elicitationTimeout: ms.min(1_000).default(DEFAULT_CREDENTIAL_ELICITATION_TIMEOUT_MS),
        pollInterval: ms.min(10).default(DEFAULT_CREDENTIAL_POLL_INTERVAL_MS),
        /** Calls of one user waiting for a missing secret at once, over every session and server; another is refused at once. */
        waitingPerSubject: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(DEFAULT_CREDENTIAL_WAITING_PER_SUBJECT),
        /** Longest secret value a user may set, in characters (account.maxBodyBytes must carry it). */
        secretMaxLength: z.number().int().min(1).max(65_536).default(DEFAULT_SECRET_MAX_LENGTH),
        /** Secrets one user may hold. */
        secretsPerUser: z.number().int().min(1).max(10_000).default(DEFAULT_SECRETS_PER_USER),
        /** A secret no process was started with (nor set again) for this long is deleted, in ms; 0 = never. */
        secretUnusedTtl: ms
          .max(10 * 365 * 24 * 3600 * 1000)
          .refine((v) => v === 0 || v >= 60_000, 'at least 60000 (a minute), or 0 for never')
          .default(DEFAULT_SECRET_UNUSED_TTL_MS),
      })
      .prefault({}),
    /**
     * The account page (`/account`) and its API: where users set the secrets their servers need.
     * The page signs in through the broker; the API takes any bearer token the gateway accepts.
     */
    account: z
      .strictObject({
        sessionTtl: z
          .number()
          .int()
          .min(60)
          .max(24 * 3600)
          .default(DEFAULT_ACCOUNT_SESSION_TTL_S),
        loginTtl: z.number().int().min(60).max(3600).default(DEFAULT_ACCOUNT_LOGIN_TTL_S),
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(DEFAULT_ACCOUNT_MAX_BODY_BYTES),
        tokenTimeout: ms.min(100).default(DEFAULT_ACCOUNT_TOKEN_TIMEOUT_MS),
      })
      .prefault({}),
    /**
     * Keys sealing what the gateway keeps at rest (upstream tokens, users' secrets): a JSON
     * object `{ "<key id>": "<32 bytes, base64url>" }`; `active` seals, every key opens, so a
     * key is rotated by adding one and making it active.
     */
    secrets: z.strictObject({ keys: secretRef, active: z.string().min(1) }).optional(),
    log: z
      .strictObject({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info'),
        /**
         * `json`: one JSON object a line; `pretty`: readable, coloured lines for a person;
         * `auto`: pretty when stdout is a terminal and `CI` is unset, else JSON (pipes, files,
         * containers without a TTY, CI all read JSON).
         */
        format: z.enum(['auto', 'json', 'pretty']).default('auto'),
        /** Audit events: `stdout`, `stderr`, a file path (appended), or `off`. */
        audit: z.string().min(1).default('stdout'),
        /**
         * While the audit file (or stderr) cannot be written: `continue` serves and counts the
         * events lost (a warning on /readyz); `refuse` answers every request that would be
         * audited with 503 (not ready on /readyz) until a write succeeds again.
         */
        auditOnFailure: z.enum(['continue', 'refuse']).default('continue'),
        /** First wait before a failing audit destination is opened again (then doubled). */
        auditRetry: ms.min(10).max(60_000).default(DEFAULT_AUDIT_RETRY_MS),
        /** Longest wait between attempts to open a failing audit destination again. */
        auditRetryMax: ms.min(10).max(600_000).default(DEFAULT_AUDIT_RETRY_MAX_MS),
        /**
         * Requests naming a session id this replica does not hold (ended, another replica's, made
         * up) are audited, `linesPerWindow` per `window` ms at most: a spray of random ids writes
         * no more; the rest are counted (`mcp_edge_log_lines_suppressed_total`).
         */
        unknownSessionAudit: z
          .strictObject({
            linesPerWindow: z.number().int().min(0).default(DEFAULT_UNKNOWN_SESSION_AUDIT_LINES),
            window: ms.min(1000).max(3_600_000).default(DEFAULT_UNKNOWN_SESSION_AUDIT_WINDOW_MS),
          })
          .prefault({}),
        /**
         * Characters of an audit event's `method`, `name`, `rule` and `outcome` written at most:
         * they come from the client (a method or tool name may be as long as the body) or the
         * process (an error code, any JSON value), so one request could otherwise write
         * megabytes of audit log. The rest is cut and counted.
         */
        auditFieldMax: z
          .number()
          .int()
          .min(64)
          .max(1024 * 1024)
          .default(DEFAULT_AUDIT_FIELD_MAX),
        /** Bytes of log lines gathered before a write to stdout; 0 writes each line at once. */
        bufferBytes: z
          .number()
          .int()
          .min(0)
          .max(1024 * 1024)
          .default(DEFAULT_LOG_BUFFER_BYTES),
        /** Buffered lines are written at the latest after this. */
        flushInterval: ms.min(10).max(60_000).default(DEFAULT_LOG_FLUSH_MS),
        /** At exit, the last lines are written while their reader takes some within this. */
        exitWait: ms.max(60_000).default(DEFAULT_LOG_EXIT_WAIT_MS),
        /**
         * Bytes of log lines (audit lines on stdout too) kept while the reader of stdout is behind;
         * past it lines are dropped, and counted in one warning once it has caught up.
         */
        maxPendingBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .max(1024 * 1024 * 1024)
          .default(DEFAULT_LOG_MAX_PENDING_BYTES),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    endpointProblems(c, ctx)
    // The broker's endpoints, its sign-in cookies and the codes and tokens it hands out would
    // cross a network in clear: MCP requires every authorization server endpoint on https.
    if (
      c.auth.broker !== undefined &&
      c.publicUrl !== undefined &&
      URL.parse(c.publicUrl)?.protocol === 'http:' &&
      !loopbackUrl(c.publicUrl)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['publicUrl'],
        message:
          'must be https with auth.broker (its sign-in, codes and tokens would cross the network in clear); http only for loopback',
      })
    }
    // The account page's body cap must carry at least the longest plain-ASCII secret and the
    // form's other fields (other characters take up to 9 bytes each once percent-encoded).
    const needed = c.credentials.secretMaxLength + 1024
    if (c.account.maxBodyBytes < needed) {
      ctx.addIssue({
        code: 'custom',
        path: ['account', 'maxBodyBytes'],
        message: `must be at least ${needed} to carry a secret of credentials.secretMaxLength characters`,
      })
    }
    if (c.log.auditRetry > c.log.auditRetryMax) {
      ctx.addIssue({
        code: 'custom',
        path: ['log', 'auditRetry'],
        message: 'must not exceed auditRetryMax',
      })
    }
    // The process exits at the deadline: a grace as long would never be given in full.
    const grace = Math.max(0, ...Object.values(c.servers).map((s) => s.shutdownGrace))
    if (c.limits.shutdownDeadline <= grace) {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', 'shutdownDeadline'],
        message: `must exceed the longest shutdownGrace of the servers (${grace} ms)`,
      })
    }
    // A routed host's resource is <scheme>://<host>/mcp: for the public URL's own host, or an IP
    // address (127.0.0.1 is a loopback base), that URL is also another resource's (an endpoint at
    // /mcp), and one token would be good at both.
    const own = c.publicUrl === undefined ? undefined : new URL(c.publicUrl).hostname.toLowerCase()
    for (const host of Object.keys(c.hosts)) {
      if (isIP(host) !== 0)
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', host],
          message:
            "an IP address is no routed host: its /mcp is the gateway's own (loopback) resource",
        })
      else if (host === own)
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', host],
          message:
            "the public URL's own host is no routed host: its /mcp is already a resource of the public URL",
        })
    }
    // A credential source the gateway cannot serve is a start-up error, not a failing call.
    for (const [name, server] of Object.entries(c.servers)) {
      for (const [variable, spec] of Object.entries(server.credentials)) {
        const path = ['servers', name, 'credentials', variable]
        // A value from `env` or the gateway's own environment would stand in for a user's when
        // they have none (their process starts before they set it): someone else's credential.
        const shared = Object.hasOwn(server.env, variable)
          ? 'env'
          : server.inheritEnv.includes(variable)
            ? 'inheritEnv'
            : server.identityEnv && IDENTITY_VARIABLES.includes(variable)
              ? 'identityEnv'
              : // Every process gets these from the gateway's environment (bridge/child.ts).
                DEFAULT_INHERITED_ENV_VARS.includes(variable)
                ? 'the default environment'
                : undefined
        if (shared !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `${variable} is also set by ${shared}: a user's credential variable takes no other value (a user who has not set theirs would run with it)`,
          })
        }
        if ('exchange' in spec && c.auth.tokenExchange === undefined) {
          ctx.addIssue({
            code: 'custom',
            path,
            message:
              'an exchange credential needs auth.tokenExchange (the client the gateway exchanges tokens as)',
          })
        }
        if ('upstreamToken' in spec && c.auth.broker === undefined) {
          ctx.addIssue({
            code: 'custom',
            path,
            message:
              "an upstreamToken credential needs auth.broker (only the broker holds tokens from the users' sign-in)",
          })
        }
      }
    }
    for (const issue of runAsProblems(c.servers)) ctx.addIssue({ code: 'custom', ...issue })
    // A variable the gateway reads its own secret from is never a server process's.
    const ownSecrets = ownSecretVariables(c)
    for (const [name, server] of Object.entries(c.servers))
      server.inheritEnv.forEach((variable, i) => {
        const at = ownSecrets.get(variable)
        if (at !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['servers', name, 'inheritEnv', i],
            message: `${variable} holds the gateway's own secret (${at}): a server process never gets the gateway's secrets`,
          })
      })
  })

/** The environment variables a configuration reads its own secrets from, and where each is set. */
function ownSecretVariables(c: z.infer<typeof configSchema>): Map<string, string> {
  const broker = c.auth.broker
  const refs: [string, z.infer<typeof secretRef> | undefined][] = [
    ['auth.broker.upstream.clientSecret', broker?.upstream.clientSecret],
    ['auth.broker.upstream.privateKey', broker?.upstream.privateKey],
    ['auth.broker.signingKeys', broker?.signingKeys],
    ['auth.broker.cookieKeys', broker?.cookieKeys],
    ['auth.tokenExchange.clientSecret', c.auth.tokenExchange?.clientSecret],
    ['store.url', c.store.url],
    ['secrets.keys', c.secrets?.keys],
  ]
  // The OpenTelemetry SDK reads the collector's credential from these whenever the environment
  // turns telemetry on (observability/telemetry-env.ts), whatever the file says.
  const exporter = ['', 'TRACES_', 'METRICS_', 'LOGS_'].map((signal): [string, string] => [
    `OTEL_EXPORTER_OTLP_${signal}HEADERS`,
    'the OpenTelemetry exporter',
  ])
  return new Map([
    ...exporter,
    ...refs.flatMap(([at, ref]): [string, string][] =>
      ref !== undefined && 'env' in ref ? [[ref.env, at]] : [],
    ),
  ])
}

/** The variables `identityEnv` hands a process (bridge/registry.ts). */
const IDENTITY_VARIABLES = ['MCP_EDGE_SUBJECT', 'MCP_EDGE_CLIENT_ID', 'MCP_EDGE_SCOPES']

/** Paths the gateway serves itself: no endpoint may take one, nor a path below one. */
const RESERVED_PATHS = [
  '/sse',
  '/messages',
  '/account',
  '/authorize',
  '/token',
  '/register',
  '/revoke',
  '/jwks',
  '/interaction',
  '/oauth',
  '/healthz',
  '/readyz',
  '/metrics',
  '/whoami',
  '/.well-known',
  '/userinfo',
  '/session',
]

/** Endpoints name servers that exist, take paths of their own, and hosts name what exists. */
function endpointProblems(
  c: {
    servers: Record<string, unknown>
    endpoints: Record<
      string,
      { path?: string | undefined; servers: '*' | string[]; prefix: string }
    >
    hosts: Record<string, { server: string } | { endpoint: string }>
  },
  ctx: z.RefinementCtx,
): void {
  const taken = new Map<string, string>()
  for (const name of Object.keys(c.servers)) taken.set(`/mcp/${name}`, `server ${name}`)
  for (const [name, e] of Object.entries(c.endpoints)) {
    const at = ['endpoints', name]
    // Audit lines, metrics and the legacy transport's /sse/<name> name endpoints as they name servers.
    if (name in c.servers)
      ctx.addIssue({
        code: 'custom',
        path: at,
        message: `${name} is also a server's name; an endpoint needs a name of its own`,
      })
    const path = e.path ?? `/mcp/${name}`
    const owner = taken.get(path)
    if (owner !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: [...at, 'path'],
        message: `${path} is already ${owner}'s`,
      })
    taken.set(path, `endpoint ${name}`)
    if (RESERVED_PATHS.some((r) => path === r || path.startsWith(`${r}/`)))
      ctx.addIssue({
        code: 'custom',
        path: [...at, 'path'],
        message: `${path} is one of the gateway's own paths`,
      })
    const servers = e.servers === '*' ? Object.keys(c.servers) : e.servers
    for (const s of servers)
      if (!(s in c.servers))
        ctx.addIssue({ code: 'custom', path: [...at, 'servers'], message: `no server named ${s}` })
    // An empty prefix over several servers is allowed: names that collide get a hashed form.
    if (new Set(servers).size !== servers.length)
      ctx.addIssue({ code: 'custom', path: [...at, 'servers'], message: 'each server once' })
  }
  for (const [host, route] of Object.entries(c.hosts)) {
    if ('server' in route && !(route.server in c.servers))
      ctx.addIssue({
        code: 'custom',
        path: ['hosts', host],
        message: `no server named ${route.server}`,
      })
    if ('endpoint' in route && !(route.endpoint in c.endpoints))
      ctx.addIssue({
        code: 'custom',
        path: ['hosts', host],
        message: `no endpoint named ${route.endpoint}`,
      })
  }
}

/** A validated configuration, with every default filled in and paths made absolute. */
export type GatewayConfig = z.infer<typeof configSchema>
/** One `servers.<name>` entry. */
export type ServerConfig = z.infer<typeof serverSchema>
/** One `endpoints.<name>` entry. */
export type EndpointConfig = z.infer<typeof endpointSchema>
/** The `auth` section. */
export type AuthConfig = z.infer<typeof authSchema>
