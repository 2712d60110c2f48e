import type { Logger } from 'pino'
import { ConfigError } from '../config/errors.js'
import type { GatewayConfig } from '../config/schema.js'
import type { readSecret as ReadSecret } from '../config/secrets.js'
import { createMemoryStore } from './memory.js'
import type { Store } from './store.js'

/**
 * The store the configuration asks for: in memory (one replica), or Redis at the URL read from
 * `store.url` (env or file, as it may hold a password), every key under `store.keyPrefix`.
 * @throws ConfigError when the URL is missing, unreadable or not a redis:// / rediss:// URL
 * @throws StoreError unavailable when Redis cannot be reached at start-up
 */
export async function createStore(
  config: GatewayConfig['store'],
  deps: { log: Logger; readSecret: typeof ReadSecret },
): Promise<Store> {
  if (config.kind === 'memory')
    return createMemoryStore({ maxKeys: config.maxKeys, sweepIntervalMs: config.sweepInterval })
  if (config.url === undefined) throw problem('required with kind: redis')
  const url = deps.readSecret(config.url, 'store.url')
  // Checked here so a typo fails as configuration; the value itself is never echoed.
  if (!URL.canParse(url))
    throw problem('not a URL (its value is not shown: it may hold a password)')
  const { protocol, hostname } = new URL(url)
  if ((protocol !== 'redis:' && protocol !== 'rediss:') || hostname === '') {
    throw problem('not a redis:// or rediss:// URL with a host')
  }
  // Imported here: the Redis client (hundreds of modules) is loaded only when configured.
  const { createRedisStore } = await import('./redis.js')
  return createRedisStore({
    url,
    keyPrefix: config.keyPrefix,
    log: deps.log,
    connectTimeoutMs: config.connectTimeout,
    commandTimeoutMs: config.commandTimeout,
    reconnectMaxDelayMs: config.reconnectMaxDelay,
  })
}

function problem(message: string): ConfigError {
  return new ConfigError([{ file: 'configuration', path: 'store.url', message }])
}
