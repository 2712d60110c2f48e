import { readFileSync } from 'node:fs'
import { ConfigError, type ConfigProblem } from '../config/errors.js'
import type { GatewayConfig } from '../config/schema.js'
import { readSecret } from '../config/secrets.js'
import { sealerFromConfig } from '../store/sealed.js'
import { clientPolicy } from './client-policy.js'
import { ACCOUNT_CALLBACK_PATH } from './first-party.js'
import { UPSTREAM_CALLBACK_PATH } from './interactions.js'
import { brokerKeys } from './keys.js'
import { upstreamSetup } from './upstream-setup.js'

/**
 * Everything start-up checks of the broker that needs no network: secrets readable (upstream
 * client secret or key, signing and cookie keys, sealing keys, the store URL), keys usable,
 * redirect patterns sound, a shared store with the keys it needs. `mcp-edge validate` runs it,
 * so a deployment fails in CI rather than at its first login. Every problem is listed.
 * @throws ConfigError
 */
export async function validateBroker(config: GatewayConfig, issuer: string): Promise<void> {
  const broker = config.auth.broker
  if (broker === undefined) return
  const problems: ConfigProblem[] = []
  const collect = async (fn: () => unknown) => {
    try {
      await fn()
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems)
      else
        problems.push({
          file: 'configuration',
          path: 'auth.broker',
          message: (err as Error).message,
        })
    }
  }
  const callback = `${issuer.replace(/\/$/, '')}${UPSTREAM_CALLBACK_PATH}`
  await collect(() => upstreamSetup(broker.upstream, callback, readSecret))
  await collect(() => brokerKeys(broker, readSecret))
  await collect(() =>
    clientPolicy(broker.registration, {
      ownCallbacks: [callback, `${issuer.replace(/\/$/, '')}${ACCOUNT_CALLBACK_PATH}`],
    }),
  )
  await collect(() => sealerFromConfig(config.secrets, readSecret))
  if (broker.cimd.caFile) await collect(() => readFileSync(broker.cimd.caFile!, 'utf8'))
  if (config.store.kind !== 'memory') {
    if (broker.signingKeys === undefined || broker.cookieKeys === undefined) {
      problems.push({
        file: 'configuration',
        path: 'auth.broker.signingKeys',
        message:
          'signingKeys and cookieKeys are required with a shared store (every replica signs and verifies with the same keys)',
      })
    }
    if (config.secrets === undefined)
      problems.push({
        file: 'configuration',
        path: 'secrets',
        message: 'required with a shared store: upstream tokens are sealed at rest with these keys',
      })
    if (config.store.url) await collect(() => readSecret(config.store.url!, 'store.url'))
  }
  if (problems.length > 0) throw new ConfigError(problems)
}
