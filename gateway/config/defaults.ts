import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { ConfigError } from './errors.js'
import { validateConfig } from './load.js'
import { DEFAULT_DEV_IDP_PORT, type GatewayConfig } from './schema.js'

/** The installed package's root folder (this file is dist/gateway/config/defaults.js). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** The variable holding the client secret the broker and the dev IdP share in the embedded default. */
export const DEV_BROKER_SECRET_ENV = 'MCP_EDGE_DEV_BROKER_SECRET'

/** The secret the `tickets` demo server takes from each user (their own API key, set on /account). */
export const DEMO_TICKETS_SECRET = 'tickets-api-key'

/**
 * The embedded default: the demo servers of `servers/` (each at /mcp/<name>, all of them at
 * /mcp), the example policies of `policies/`, listening on 127.0.0.1:8080, with the OAuth broker on: MCP clients register with the gateway
 * and log in through it at the embedded dev IdP, which plays the company IdP (a registered app,
 * no DCR, like Entra). Used when no `--config` is given. The secret the two share is made up
 * here unless the environment sets it. `tickets` shows per-user credentials: each user's own
 * API key, set on the account page. Users' secrets live in the in-memory store, sealed under a
 * key made at each start (no `secrets.keys`: nothing outlives the process, so nothing needs it).
 * @throws ConfigError when an environment override is invalid
 */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  env[DEV_BROKER_SECRET_ENV] ||= randomBytes(24).toString('base64url')
  const devIdpPort = /^\d+$/.test(env.MCP_EDGE_DEV_IDP_PORT ?? '')
    ? Number(env.MCP_EDGE_DEV_IDP_PORT)
    : DEFAULT_DEV_IDP_PORT
  // An issuer given in the environment means a resource server in front of it: no broker.
  const broker = env.MCP_EDGE_ISSUER
    ? {}
    : {
        auth: {
          broker: {
            upstream: {
              issuer: `http://127.0.0.1:${devIdpPort}`,
              clientId: 'mcp-edge-broker',
              clientSecret: { env: DEV_BROKER_SECRET_ENV },
              scopes: ['openid'],
              roleClaims: ['roles'],
            },
          },
        },
      }
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
        // Per-user credentials: one process per user, started with that user's key (so no pool).
        tickets: {
          ...server('tickets', 'A pretend ticketing API that acts with your own API key (demo)'),
          pool: { min: 0 },
          credentials: {
            TICKETS_API_KEY: {
              secret: DEMO_TICKETS_SECRET,
              describe: 'your API key for the tickets demo',
            },
          },
        },
      },
      // One URL for every server (README "Endpoints"): what claude.ai's connectors need.
      endpoints: {
        all: { path: '/mcp', servers: '*', description: 'Every demo tool you may use' },
      },
      policies: 'policies',
      ...broker,
    },
    { file: '(embedded default config)', baseDir: PACKAGE_ROOT, env },
  )
}

export { ConfigError }
