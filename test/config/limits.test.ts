// Every operator-settable limit: left out it is its default, written as its default it loads,
// and a value out of range is refused at start-up at its own file:line, with the reason.
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { stringify } from 'yaml'
import type { z } from 'zod'
import * as S from '../../gateway/config/schema.js'
import { ConfigError } from '../../gateway/config/errors.js'
import { loadConfigFile, validateConfig } from '../../gateway/config/load.js'

const SERVERS = { servers: { echo: { command: '/bin/echo' } } }
const ENDPOINT = { ...SERVERS, endpoints: { all: { servers: '*' } } }
const EXCHANGE = {
  ...SERVERS,
  auth: { tokenExchange: { clientId: 'gateway', clientAuth: 'none' } },
}
const BROKER = {
  ...SERVERS,
  auth: {
    broker: {
      upstream: {
        issuer: 'https://idp.example.com',
        clientId: 'gateway',
        clientSecret: { env: 'S' },
      },
    },
  },
}

/** `>= n` and `<= n`, as zod says them. */
const min = (n: number) => `Too small: expected number to be >=${n}`
const max = (n: number) => `Too big: expected number to be <=${n}`

interface LimitCase {
  /** Dotted path of the key in gateway.yaml. */
  key: string
  default: number
  /** A value out of range, and the message that refuses it. */
  bad: number
  message: string
  /** What else the file needs for the key to be read (a server, an endpoint, the broker…). */
  base?: Record<string, unknown>
}

const cases: LimitCase[] = [
  // limits and log: the gateway's own listener and process.
  {
    key: 'limits.keepAliveTimeout',
    default: S.DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    bad: 999,
    message: min(1000),
  },
  { key: 'limits.sseKeepAlive', default: S.DEFAULT_SSE_KEEPALIVE_MS, bad: 999, message: min(1000) },
  {
    key: 'limits.shutdownDeadline',
    default: S.DEFAULT_SHUTDOWN_DEADLINE_MS,
    bad: 3_600_001,
    message: max(3_600_000),
  },
  {
    key: 'limits.idleGcAfter',
    default: S.DEFAULT_IDLE_GC_AFTER_MS,
    bad: 3_600_001,
    message: max(3_600_000),
  },
  {
    key: 'limits.idleGcAfter',
    default: S.DEFAULT_IDLE_GC_AFTER_MS,
    bad: 999,
    message: 'at least 1000 (ms), or 0: never',
  },
  {
    key: 'limits.policyReloadDebounce',
    default: S.DEFAULT_RELOAD_DEBOUNCE_MS,
    bad: 60_001,
    message: max(60_000),
  },
  {
    key: 'limits.startFailureUsers',
    default: S.DEFAULT_START_FAILURE_USERS,
    bad: 0,
    message: min(1),
  },
  {
    key: 'limits.processStartsPerSubject',
    default: S.DEFAULT_PROCESS_STARTS_PER_SUBJECT,
    bad: -1,
    message: min(0),
  },
  {
    key: 'limits.processStartsPerSubject',
    default: S.DEFAULT_PROCESS_STARTS_PER_SUBJECT,
    bad: 100_001,
    message: max(100_000),
  },
  {
    key: 'limits.processStartsWindow',
    default: S.DEFAULT_PROCESS_STARTS_WINDOW_MS,
    bad: 999,
    message: min(1000),
  },
  {
    key: 'limits.sharedCrashesPerSubject',
    default: S.DEFAULT_SHARED_CRASHES_PER_SUBJECT,
    bad: -1,
    message: min(0),
  },
  {
    key: 'limits.sharedCrashesSubjects',
    default: S.DEFAULT_SHARED_CRASHES_SUBJECTS,
    bad: 9,
    message: min(10),
  },
  {
    key: 'limits.sharedCrashesWindow',
    default: S.DEFAULT_SHARED_CRASHES_WINDOW_MS,
    bad: 999,
    message: min(1000),
  },
  { key: 'log.bufferBytes', default: S.DEFAULT_LOG_BUFFER_BYTES, bad: -1, message: min(0) },
  { key: 'log.auditFieldMax', default: S.DEFAULT_AUDIT_FIELD_MAX, bad: 63, message: min(64) },
  { key: 'log.flushInterval', default: S.DEFAULT_LOG_FLUSH_MS, bad: 9, message: min(10) },
  {
    key: 'log.exitWait',
    default: S.DEFAULT_LOG_EXIT_WAIT_MS,
    bad: 60_001,
    message: max(60_000),
  },
  { key: 'log.auditRetry', default: S.DEFAULT_AUDIT_RETRY_MS, bad: 9, message: min(10) },
  {
    key: 'log.auditRetryMax',
    default: S.DEFAULT_AUDIT_RETRY_MAX_MS,
    bad: 600_001,
    message: max(600_000),
  },
  // limits.sessionless: each principal's sessionless processes, waiters, rounds and streams.
  {
    key: 'limits.sessionless.lanesPerSubject',
    default: S.DEFAULT_LANES_PER_SUBJECT,
    bad: 0,
    message: min(1),
  },
  {
    key: 'limits.sessionless.lanePlainConcurrency',
    default: S.DEFAULT_LANE_PLAIN_CONCURRENCY,
    bad: 0,
    message: min(1),
  },
  {
    key: 'limits.sessionless.laneWait',
    default: S.DEFAULT_LANE_WAIT_MS,
    bad: 600_001,
    message: max(600_000),
  },
  {
    key: 'limits.sessionless.laneWaiters',
    default: S.DEFAULT_LANE_WAITERS,
    bad: -1,
    message: min(0),
  },
  {
    key: 'limits.sessionless.laneIdle',
    default: S.DEFAULT_LANE_IDLE_MS,
    bad: 999,
    message: min(1000),
  },
  { key: 'limits.sessionless.toolPages', default: S.DEFAULT_TOOL_PAGES, bad: 0, message: min(1) },
  {
    key: 'limits.sessionless.inputTtl',
    default: S.DEFAULT_INPUT_TTL_MS,
    bad: 999,
    message: min(1000),
  },
  {
    key: 'limits.sessionless.waitingPerSubject',
    default: S.DEFAULT_WAITING_PER_SUBJECT,
    bad: 0,
    message: min(1),
  },
  {
    key: 'limits.sessionless.listensPerSubject',
    default: S.DEFAULT_LISTENS_PER_SUBJECT,
    bad: 1001,
    message: max(1000),
  },
  {
    key: 'limits.sessionless.listenResources',
    default: S.DEFAULT_LISTEN_RESOURCES,
    bad: 0,
    message: min(1),
  },
  {
    key: 'limits.sessionless.listenRecheck',
    default: S.DEFAULT_LISTEN_RECHECK_MS,
    bad: 10,
    message: min(1000),
  },
  {
    key: 'limits.sessionless.subscribeTimeout',
    default: S.DEFAULT_SUBSCRIBE_TIMEOUT_MS,
    bad: 99,
    message: min(100),
  },
  // auth: the IdP as the gateway reaches it.
  { key: 'auth.idpConnections', default: S.DEFAULT_IDP_CONNECTIONS, bad: 0, message: min(1) },
  {
    key: 'auth.idpMaxResponseBytes',
    default: S.DEFAULT_IDP_MAX_RESPONSE_BYTES,
    bad: 4095,
    message: min(4096),
  },
  { key: 'auth.idpKeepAlive', default: S.DEFAULT_IDP_KEEP_ALIVE_MS, bad: 999, message: min(1000) },
  { key: 'auth.discoveryRetry', default: S.DEFAULT_DISCOVERY_RETRY_MS, bad: 99, message: min(100) },
  // At 0 a made-up kid was a JWKS fetch per request (no credentials needed): 0 only in tests.
  { key: 'auth.jwksCooldown', default: S.DEFAULT_JWKS_COOLDOWN_MS, bad: 0, message: min(1000) },
  // Past it every request refreshes the keys (a made-up bearer too): at 0 each was a fetch.
  { key: 'auth.jwksMaxAge', default: S.DEFAULT_JWKS_MAX_AGE_MS, bad: 999, message: min(1000) },
  { key: 'auth.jwksCooldown', default: S.DEFAULT_JWKS_COOLDOWN_MS, bad: 999, message: min(1000) },
  {
    key: 'auth.metadataMaxAge',
    default: S.DEFAULT_METADATA_MAX_AGE_S,
    bad: 86_401,
    message: max(86_400),
  },
  {
    key: 'auth.tokenExchange.unknownLifetime',
    default: S.DEFAULT_EXCHANGE_UNKNOWN_LIFETIME_MS,
    bad: -1,
    message: min(0),
    base: EXCHANGE,
  },
  {
    key: 'auth.tokenExchange.maxReuse',
    default: S.DEFAULT_EXCHANGE_MAX_REUSE_MS,
    bad: 999,
    message: min(1000),
    base: EXCHANGE,
  },
  {
    key: 'auth.tokenExchange.connections',
    default: S.DEFAULT_EXCHANGE_CONNECTIONS,
    bad: 0,
    message: min(1),
    base: EXCHANGE,
  },
  // auth.broker: the upstream IdP and registrations.
  {
    key: 'auth.broker.upstream.maxResponseBytes',
    default: S.DEFAULT_UPSTREAM_MAX_RESPONSE_BYTES,
    bad: 4095,
    message: min(4096),
    base: BROKER,
  },
  {
    key: 'auth.broker.upstream.connections',
    default: S.DEFAULT_UPSTREAM_CONNECTIONS,
    bad: 257,
    message: max(256),
    base: BROKER,
  },
  {
    key: 'auth.broker.upstream.keepAlive',
    default: S.DEFAULT_UPSTREAM_KEEP_ALIVE_MS,
    bad: 999,
    message: min(1000),
    base: BROKER,
  },
  {
    key: 'auth.broker.upstream.discoveryRetry',
    default: S.DEFAULT_UPSTREAM_DISCOVERY_RETRY_MS,
    bad: 99,
    message: min(100),
    base: BROKER,
  },
  {
    key: 'auth.broker.upstream.recheckLock',
    default: S.DEFAULT_RECHECK_LOCK_MS,
    bad: 600_001,
    message: max(600_000),
    base: BROKER,
  },
  {
    key: 'auth.broker.upstream.renewBefore',
    default: S.DEFAULT_UPSTREAM_RENEW_BEFORE_MS,
    bad: -1,
    message: min(0),
    base: BROKER,
  },
  {
    key: 'auth.broker.registration.maxClientNameLength',
    default: S.DEFAULT_CLIENT_NAME_MAX_LENGTH,
    bad: 15,
    message: min(16),
    base: BROKER,
  },
  {
    key: 'auth.broker.registration.retryAfterWhenFull',
    default: S.DEFAULT_CLIENT_CAP_RETRY_AFTER_S,
    bad: 0,
    message: min(1),
    base: BROKER,
  },
  // store and credentials: shared state, users' secrets.
  { key: 'store.pingInterval', default: S.DEFAULT_STORE_PING_MS, bad: 99, message: min(100) },
  { key: 'store.lockWait', default: S.DEFAULT_LOCK_WAIT_MS, bad: 99, message: min(100) },
  {
    key: 'store.connectTimeout',
    default: S.DEFAULT_REDIS_CONNECT_TIMEOUT_MS,
    bad: 99,
    message: min(100),
  },
  {
    key: 'store.commandTimeout',
    default: S.DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
    bad: 99,
    message: min(100),
  },
  {
    key: 'store.reconnectMaxDelay',
    default: S.DEFAULT_REDIS_RECONNECT_MAX_DELAY_MS,
    bad: 99,
    message: min(100),
  },
  { key: 'store.maxKeys', default: S.DEFAULT_MEMORY_MAX_KEYS, bad: 999, message: min(1000) },
  {
    key: 'store.sweepInterval',
    default: S.DEFAULT_MEMORY_SWEEP_INTERVAL_MS,
    bad: 999,
    message: min(1000),
  },
  {
    key: 'credentials.waitingPerSubject',
    default: S.DEFAULT_CREDENTIAL_WAITING_PER_SUBJECT,
    bad: 0,
    message: min(1),
  },
  {
    key: 'credentials.secretMaxLength',
    default: S.DEFAULT_SECRET_MAX_LENGTH,
    bad: 0,
    message: min(1),
  },
  {
    key: 'credentials.secretsPerUser',
    default: S.DEFAULT_SECRETS_PER_USER,
    bad: 10_001,
    message: max(10_000),
  },
  // servers.<name>: a server's processes.
  {
    key: 'servers.echo.initializeTimeout',
    default: S.DEFAULT_INITIALIZE_TIMEOUT_MS,
    bad: 99,
    message: min(100),
  },
  {
    key: 'servers.echo.pool.primeTimeout',
    default: S.DEFAULT_PRIME_TIMEOUT_MS,
    bad: 99,
    message: min(100),
  },
  {
    key: 'servers.echo.readyWait',
    default: S.DEFAULT_SHARED_READY_WAIT_MS,
    bad: 600_001,
    message: max(600_000),
  },
  {
    key: 'servers.echo.respawnBackoff',
    default: S.DEFAULT_RESPAWN_BACKOFF_MS,
    bad: 9,
    message: min(10),
  },
  {
    key: 'servers.echo.respawnBackoffMax',
    default: S.DEFAULT_RESPAWN_BACKOFF_MAX_MS,
    bad: 3_600_001,
    message: max(3_600_000),
  },
  {
    key: 'servers.echo.respawnStableAfter',
    default: S.DEFAULT_RESPAWN_STABLE_AFTER_MS,
    bad: 86_400_001,
    message: max(86_400_000),
  },
  {
    key: 'servers.echo.stopGrace',
    default: S.DEFAULT_STOP_GRACE_MS,
    bad: 60_001,
    message: max(60_000),
  },
  {
    key: 'servers.echo.maxMessageBytes',
    default: S.DEFAULT_CHILD_MAX_MESSAGE_BYTES,
    bad: 65_535,
    message: min(65_536),
  },
  {
    key: 'servers.echo.stderr.linesPerWindow',
    default: S.DEFAULT_STDERR_LINES_PER_WINDOW,
    bad: -1,
    message: min(0),
  },
  {
    key: 'servers.echo.stderr.window',
    default: S.DEFAULT_STDERR_WINDOW_MS,
    bad: 99,
    message: min(100),
  },
  {
    key: 'servers.echo.stderr.lineMax',
    default: S.DEFAULT_STDERR_LINE_MAX,
    bad: 79,
    message: min(80),
  },
  {
    key: 'servers.echo.stderr.keepLast',
    default: S.DEFAULT_STDERR_KEEP_LAST,
    bad: 1001,
    message: max(1000),
  },
  {
    key: 'servers.echo.warnings.linesPerWindow',
    default: S.DEFAULT_WARNINGS_PER_WINDOW,
    bad: -1,
    message: min(0),
  },
  {
    key: 'servers.echo.warnings.window',
    default: S.DEFAULT_WARNINGS_WINDOW_MS,
    bad: 99,
    message: min(100),
  },
  // endpoints.<name>: an endpoint's lists of its backends, and its session-era sessions.
  {
    key: 'endpoints.all.listTimeout',
    default: S.DEFAULT_BACKEND_LIST_TIMEOUT_MS,
    bad: 99,
    message: min(100),
    base: ENDPOINT,
  },
  {
    key: 'endpoints.all.listPages',
    default: S.DEFAULT_BACKEND_LIST_PAGES,
    bad: 1001,
    message: max(1000),
    base: ENDPOINT,
  },
  {
    key: 'endpoints.all.idleTimeout',
    default: S.DEFAULT_ENDPOINT_SESSION_IDLE_MS,
    bad: 999,
    message: min(1000),
    base: ENDPOINT,
  },
  {
    key: 'endpoints.all.maxSubscriptions',
    default: S.DEFAULT_SESSION_SUBSCRIPTIONS,
    bad: 0,
    message: min(1),
    base: ENDPOINT,
  },
]

/** `obj` with `value` at dotted `key` (objects on the way created or copied). */
function withValue(
  obj: Record<string, unknown>,
  key: string,
  value: unknown,
): Record<string, unknown> {
  const out = structuredClone(obj)
  let node = out
  const parts = key.split('.')
  for (const part of parts.slice(0, -1)) {
    node[part] = typeof node[part] === 'object' && node[part] !== null ? node[part] : {}
    node = node[part] as Record<string, unknown>
  }
  node[parts.at(-1)!] = value
  return out
}

/** The value at dotted `key`. */
function valueAt(obj: unknown, key: string): unknown {
  return key
    .split('.')
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], obj)
}

/** The 1-based line of dotted `key` in YAML text written by `stringify` (one key per line). */
function lineOf(text: string, key: string): number {
  const lines = text.split('\n')
  let at = -1
  for (const part of key.split('.'))
    at = lines.findIndex((l, i) => i > at && l.trimStart().startsWith(`${part}:`))
  assert.ok(at >= 0, `${key} not found in\n${text}`)
  return at + 1
}

let dir: string
let n = 0
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mcp-edge-limits-'))
})
after(() => rm(dir, { recursive: true, force: true }))

describe('limits: each key has its default, and accepts it written out', () => {
  for (const c of cases) {
    test(`${c.key} defaults to ${c.default}`, () => {
      const base = c.base ?? SERVERS
      const implicit = validateConfig(base, { file: 'x', baseDir: '/' })
      assert.equal(valueAt(implicit, c.key), c.default)
      const explicit = validateConfig(withValue(base, c.key, c.default), {
        file: 'x',
        baseDir: '/',
      })
      assert.equal(valueAt(explicit, c.key), c.default)
    })
  }
})

describe('limits: a value out of range is refused at its file:line', () => {
  for (const c of cases) {
    test(`${c.key}: ${c.bad} refused`, async () => {
      const text = stringify(withValue(c.base ?? SERVERS, c.key, c.bad))
      const file = path.join(dir, `limits-${++n}.yaml`)
      await writeFile(file, text)
      let err: unknown
      try {
        loadConfigFile(file, {})
      } catch (e) {
        err = e
      }
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`)
      assert.deepEqual(
        err.problems.map((p) => ({ file: p.file, line: p.line, path: p.path, message: p.message })),
        [{ file, line: lineOf(text, c.key), path: c.key, message: c.message }],
      )
      assert.ok(err.message.includes(`${file}:${lineOf(text, c.key)}:`), err.message)
    })
  }
})

/** A numeric key of the schema that has a default, and the range zod enforces on it. */
interface NumericKey {
  /** Dotted, `<name>` for a record's key. */
  key: string
  default: number
  min: number
  max: number
}

/** Every numeric key with a default: the class of key the cases above list by hand. */
function numericKeys(): NumericKey[] {
  const found: NumericKey[] = []
  const walk = (schema: z.ZodType, at: string[], fallback?: unknown): void => {
    const def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def
    switch (def.type) {
      case 'default':
        return walk(def.innerType as z.ZodType, at, def.defaultValue)
      case 'prefault':
      case 'optional':
        return walk(def.innerType as z.ZodType, at, fallback)
      case 'object':
        for (const [k, v] of Object.entries(def.shape as Record<string, z.ZodType>))
          walk(v, [...at, k])
        return
      case 'record':
        return walk(def.valueType as z.ZodType, [...at, '<name>'])
      case 'number': {
        if (typeof fallback !== 'number') return
        const n = schema as z.ZodNumber
        found.push({
          key: at.join('.'),
          default: fallback,
          min: n.minValue ?? Number.MIN_SAFE_INTEGER,
          max: n.maxValue ?? Number.MAX_SAFE_INTEGER,
        })
        return
      }
      default:
        return
    }
  }
  walk(S.configSchema, [])
  return found
}

/**
 * Sections a file opts into (off unless set), with what they need beside them: a key inside
 * has its default only once its section is there.
 */
const OPT_IN: Record<string, Record<string, unknown>> = {
  'servers.echo.ssePolling': {
    'servers.echo.ssePolling': { closeAfter: 30_000 },
    'servers.echo.responses': 'sse',
    'servers.echo.resumability': { enabled: true },
  },
  'endpoints.all.ssePolling': {
    'endpoints.all.ssePolling': { closeAfter: 30_000 },
    'endpoints.all.resumability': { enabled: true },
  },
}

/** A dotted schema key as a file sets it (a server echo, an endpoint all), and what it needs. */
function located(key: string): { key: string; base: Record<string, unknown> } {
  const at = key
    .replace(/^servers\.<name>\./, 'servers.echo.')
    .replace(/^endpoints\.<name>\./, 'endpoints.all.')
  let base: Record<string, unknown> = at.startsWith('auth.broker.')
    ? BROKER
    : at.startsWith('auth.tokenExchange.')
      ? EXCHANGE
      : at.startsWith('endpoints.')
        ? ENDPOINT
        : SERVERS
  for (const [section, settings] of Object.entries(OPT_IN))
    if (at.startsWith(`${section}.`))
      for (const [k, v] of Object.entries(settings)) base = withValue(base, k, v)
  return { key: at, base }
}

describe('limits: every numeric key with a default, not listed above, has it and its range', () => {
  const listed = new Set(cases.map((c) => c.key))
  const keys = numericKeys().filter((k) => !listed.has(located(k.key).key))

  test('the schema has such keys, and the walk finds the ones listed by hand', () => {
    const all = new Set(numericKeys().map((k) => located(k.key).key))
    assert.ok(all.size > 100, `${all.size} numeric keys`)
    for (const key of listed) assert.ok(all.has(key), key)
  })

  for (const k of keys) {
    const { key, base } = located(k.key)
    test(`${key} defaults to ${k.default}, and ${k.min}..${k.max} is enforced at its line`, async () => {
      const options = { file: 'x', baseDir: '/' }
      assert.equal(valueAt(validateConfig(base, options), key), k.default)
      assert.equal(
        valueAt(validateConfig(withValue(base, key, k.default), options), key),
        k.default,
      )
      const bad: [number, string][] = []
      if (k.min > Number.MIN_SAFE_INTEGER) bad.push([k.min - 1, min(k.min)])
      if (k.max < Number.MAX_SAFE_INTEGER) bad.push([k.max + 1, max(k.max)])
      assert.ok(bad.length > 0, `${key} has no bound`)
      for (const [value, message] of bad) {
        const text = stringify(withValue(base, key, value))
        const file = path.join(dir, `numeric-${++n}.yaml`)
        await writeFile(file, text)
        let err: unknown
        try {
          loadConfigFile(file, {})
        } catch (e) {
          err = e
        }
        assert.ok(err instanceof ConfigError, `${key}: ${value} loaded`)
        // The range, at the key's line; a limit bounding another may be named too (relations).
        const own = err.problems.filter((p) => p.path === key)
        assert.deepEqual(
          own.filter((p) => p.message === message).map((p) => p.line),
          [lineOf(text, key)],
          `${key}: ${value}: ${own.map((p) => p.message).join('; ')}`,
        )
      }
    })
  }
})

interface RelationCase {
  name: string
  config: Record<string, unknown>
  /** Where the problem is reported, and why. */
  key: string
  message: string
}

// Limits that bound one another: a value in range is still refused when it contradicts another.
const relations: RelationCase[] = [
  {
    name: 'a first respawn backoff longer than the longest',
    config: withValue(
      withValue(SERVERS, 'servers.echo.respawnBackoff', 2000),
      'servers.echo.respawnBackoffMax',
      1000,
    ),
    key: 'servers.echo.respawnBackoff',
    message: 'must not exceed respawnBackoffMax',
  },
  {
    name: 'a first audit reopen wait longer than the longest',
    config: withValue(withValue(SERVERS, 'log.auditRetry', 2000), 'log.auditRetryMax', 1000),
    key: 'log.auditRetry',
    message: 'must not exceed auditRetryMax',
  },
  {
    name: "a shutdown deadline that would cut a server's shutdown grace",
    config: withValue(
      withValue(SERVERS, 'servers.echo.shutdownGrace', 10_000),
      'limits.shutdownDeadline',
      10_000,
    ),
    key: 'limits.shutdownDeadline',
    message: 'must exceed the longest shutdownGrace of the servers (10000 ms)',
  },
  {
    name: 'an upstream re-check lock shorter than one upstream call',
    config: withValue(
      withValue(BROKER, 'auth.broker.upstream.timeout', 20_000),
      'auth.broker.upstream.recheckLock',
      20_000,
    ),
    key: 'auth.broker.upstream.recheckLock',
    message: 'must exceed timeout (a re-check calls the upstream while it holds the lock)',
  },
  {
    name: 'an account page body cap too small for the longest secret',
    config: withValue(
      withValue(SERVERS, 'credentials.secretMaxLength', 65_536),
      'account.maxBodyBytes',
      65_536,
    ),
    key: 'account.maxBodyBytes',
    message: 'must be at least 66560 to carry a secret of credentials.secretMaxLength characters',
  },
]

describe('limits: values that contradict another limit are refused at their file:line', () => {
  for (const c of relations) {
    test(c.name, async () => {
      const text = stringify(c.config)
      const file = path.join(dir, `relation-${++n}.yaml`)
      await writeFile(file, text)
      let err: unknown
      try {
        loadConfigFile(file, {})
      } catch (e) {
        err = e
      }
      assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`)
      assert.deepEqual(
        err.problems.map((p) => ({ file: p.file, line: p.line, path: p.path, message: p.message })),
        [{ file, line: lineOf(text, c.key), path: c.key, message: c.message }],
      )
    })
  }
})
