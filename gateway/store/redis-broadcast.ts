import type { createClient } from '@redis/client'
import type { Logger } from 'pino'
import { StoreError } from './errors.js'
import type { Broadcast } from './store.js'
import { within } from '../timeout.js'

type RedisClient = ReturnType<typeof createClient>

/**
 * Redis pub/sub for the store: publishing goes through the store's own connection (with its
 * timeout), each subscription gets a connection of its own (a subscribed RESP connection runs
 * no other command). node-redis reconnects a lost subscriber by itself and subscribes again
 * before it reports `ready`, so `ready` after a loss means nothing from then on is missed.
 */
export function redisBroadcast(
  client: RedisClient,
  o: {
    keyPrefix: string
    log: Logger
    where: string
    redact: (err: unknown) => string
    connectTimeoutMs: number
    publish: (channel: string, message: string) => Promise<void>
  },
): Broadcast & { close(): Promise<void> } {
  const subscribers = new Set<RedisClient>()
  return {
    publish: o.publish,

    async subscribe(channel, handlers) {
      const sub = client.duplicate()
      subscribers.add(sub)
      let subscribed = false
      let up = true
      sub.on('error', (err: unknown) => {
        if (!subscribed || !up) return
        up = false
        o.log.warn(
          { redis: o.where, channel, err: o.redact(err) },
          'store: Redis subscription lost, reconnecting',
        )
        handlers.down(err)
      })
      sub.on('ready', () => {
        if (!subscribed || up) return
        up = true
        o.log.info({ redis: o.where, channel }, 'store: Redis subscription back')
        handlers.ready()
      })
      try {
        await within(sub.connect(), o.connectTimeoutMs)
        await within(
          sub.subscribe(o.keyPrefix + channel, (message: string) => handlers.message(message)),
          o.connectTimeoutMs,
        )
      } catch (err) {
        subscribers.delete(sub)
        sub.destroy()
        throw new StoreError(
          'unavailable',
          `cannot subscribe at Redis at ${o.where}: ${o.redact(err)}`,
          err,
        )
      }
      subscribed = true
      return async () => {
        subscribers.delete(sub)
        sub.destroy()
      }
    },

    async close() {
      for (const sub of subscribers) sub.destroy()
      subscribers.clear()
    },
  }
}
