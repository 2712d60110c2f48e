import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { validateConfig } from '../../gateway/config/load.js'
import type { GatewayConfig } from '../../gateway/config/schema.js'
import { startGateway, type Gateway } from '../../gateway/gateway.js'
import {
  EXCHANGE_CLIENTS,
  GATEWAY_AUDIENCE,
  startExchangeIdp,
  type ExchangeIdp,
} from './exchange-idp.js'
import { freePort } from './ports.js'
import { SERVERS_DIR } from './stack.js'
import { makeTestCa } from './test-ca.js'

/** A gateway trading the MCP client's own token (no broker) for its `warehouse` server's process. */
export interface ExchangeStack {
  idp: ExchangeIdp
  gateway: Gateway
  close(): Promise<void>
}

/** A folder holding the IdP's CA (`ca.pem`) and a policy letting `mcp:read` use `warehouse`. */
export function exchangeDir(ca: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'exchange-stack-'))
  writeFileSync(join(dir, 'ca.pem'), ca)
  writeFileSync(
    join(dir, 'policy.yaml'),
    'servers:\n  warehouse:\n    access: ["mcp:read"]\n    tools: { "*": ["mcp:read"] }\n',
  )
  return dir
}

/**
 * The gateway's config: the fixture as `warehouse`, whose WAREHOUSE_TOKEN is an RFC 8693
 * exchange at `idp` of the presented bearer (no broker); `secretEnv` names the variable holding
 * the exchange client's secret, `exchange` sets more of auth.tokenExchange, `credentials` adds
 * more of the server's credentials (a user's secret beside the exchange).
 */
export async function exchangeConfig(o: {
  dir: string
  idp: ExchangeIdp
  secretEnv: string
  exchange?: Record<string, unknown>
  credentials?: Record<string, unknown>
  /** More of `warehouse`'s settings (its `env`), and of the gateway's (its `endpoints`). */
  server?: Record<string, unknown>
  config?: Record<string, unknown>
}): Promise<GatewayConfig> {
  return validateConfig(
    {
      listen: { host: '127.0.0.1', port: await freePort() },
      auth: {
        issuer: o.idp.issuer,
        caFile: 'ca.pem',
        audience: GATEWAY_AUDIENCE,
        roleClaims: [],
        // No broker: the token the MCP client presented is the one traded.
        tokenExchange: {
          clientId: EXCHANGE_CLIENTS.basic.clientId,
          clientSecret: { env: o.secretEnv },
          clientAuth: 'client_secret_basic',
          ...o.exchange,
        },
      },
      servers: {
        warehouse: {
          command: process.execPath,
          args: [join(SERVERS_DIR, 'fixture.js')],
          credentials: {
            WAREHOUSE_TOKEN: { exchange: { audience: 'warehouse-api', scope: 'read' } },
            ...o.credentials,
          },
          ...o.server,
        },
      },
      policies: join(o.dir, 'policy.yaml'),
      ...o.config,
    },
    { file: 'test', baseDir: o.dir },
  )
}

/**
 * {@link exchangeConfig} served, in front of its own IdP (alice may have `warehouse-api`);
 * `secretEnv` carries the exchange client's secret; `credentials`: more of the server's;
 * `more`: more of the server's settings and the gateway's (see exchangeConfig).
 */
export async function startExchangeStack(
  secretEnv: string,
  credentials: Record<string, unknown> = {},
  more: { server?: Record<string, unknown>; config?: Record<string, unknown> } = {},
): Promise<ExchangeStack> {
  const ca = makeTestCa()
  const dir = exchangeDir(ca.ca)
  const idp = await startExchangeIdp({
    tls: ca,
    allow: { alice: ['warehouse-api'] },
    targets: { 'warehouse-api': ['read'] },
  })
  process.env[secretEnv] = EXCHANGE_CLIENTS.basic.clientSecret
  const config = await exchangeConfig({ dir, idp, secretEnv, credentials, ...more })
  const gateway = await startGateway(config, {
    log: pino({ level: 'silent' }),
    auditDestination: { write: () => {} },
  })
  return {
    idp,
    gateway,
    async close() {
      await gateway.close()
      await idp.close()
      delete process.env[secretEnv]
    },
  }
}
