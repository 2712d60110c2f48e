import { fileURLToPath } from 'node:url'
import { ConfigError } from './errors.js'
import { validateConfig } from './load.js'
import type { GatewayConfig } from './schema.js'

/** The installed package's root folder (this file is dist/gateway/config/defaults.js). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/**
 * The embedded default: the demo servers of `servers/`, the example policies of `policies/`,
 * no issuer (so the dev IdP runs), listening on 127.0.0.1:8080. Used when no `--config` is given.
 * @throws ConfigError when an environment override is invalid
 */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const node = process.execPath
  const server = (name: string, description: string) => ({
    command: node,
    args: [fileURLToPath(new URL(`../../servers/${name}.js`, import.meta.url))],
    pool: { min: 1 },
    description,
  })
  return validateConfig(
    {
      listen: { host: '127.0.0.1', port: 8080 },
      servers: {
        echo: server('echo', 'Echoes text back (demo)'),
        notes: server('notes', 'In-memory notes (demo)'),
      },
      policies: 'policies',
    },
    { file: '(embedded default config)', baseDir: PACKAGE_ROOT, env },
  )
}

export { ConfigError }
