import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { Agent } from 'undici'
import { createIdpHttp } from './auth/idp-http.js'
import type { Broker } from './broker/broker.js'
import type { CredentialGate } from './bridge/credential-gate.js'
import type { GatewayConfig } from './config/schema.js'
import type { readSecret } from './config/secrets.js'
import type { TokenExchange } from './credentials/exchange.js'
import type { UserSecrets } from './credentials/secrets.js'

// How the gateway puts per-user credentials together: the sources a config names (users'
// secrets, the broker's upstream tokens, RFC 8693 exchange) behind the gate of its servers.
// Their code is imported only when the config names them: a gateway without per-user
// credentials never loads it (issue 14's idle memory target).

/** Whether any server takes per-user credentials (then users' secrets need the store). */
export function usesCredentials(config: GatewayConfig): boolean {
  return Object.values(config.servers).some((s) => Object.keys(s.credentials).length > 0)
}

/**
 * The gate before requests of servers that take per-user credentials, with the sources those
 * name: users' secrets, the broker's upstream tokens. Undefined when no server takes any.
 */
export async function credentialGate(
  config: GatewayConfig,
  o: {
    secrets: UserSecrets | undefined
    broker: Broker | undefined
    publicUrl: string
    log: Logger
    exchange: TokenExchange | undefined
  },
): Promise<CredentialGate | undefined> {
  if (!usesCredentials(config)) return undefined
  const [{ CredentialGate }, { CredentialResolver }] = await Promise.all([
    import('./bridge/credential-gate.js'),
    import('./credentials/resolve.js'),
  ])
  const accounts = o.broker?.accounts
  const resolver = new CredentialResolver({
    config,
    secrets: o.secrets,
    exchange: o.exchange,
    // Accounts count in s: a token with less than `renewBefore` left is refreshed first.
    upstream: accounts && {
      issuer: o.broker!.issuer,
      token: (sub, kind) =>
        accounts.upstreamToken(
          sub,
          kind,
          Math.ceil(config.auth.broker!.upstream.renewBefore / 1000),
        ),
    },
    subjectToken: config.auth.tokenExchange?.subjectToken ?? (o.broker ? 'upstream' : 'bearer'),
  })
  return new CredentialGate({
    resolver,
    publicUrl: o.publicUrl,
    elicitationTimeout: config.credentials.elicitationTimeout,
    pollInterval: config.credentials.pollInterval,
    waitingPerSubject: config.credentials.waitingPerSubject,
    log: o.log.child({ component: 'credentials' }),
  })
}

/**
 * RFC 8693 token exchange for `exchange` credentials, when configured: at the configured token
 * endpoint, else the one the IdP's discovery names (the broker's upstream with the broker, the
 * issuer otherwise). Its own connection pool; a private CA of the upstream is trusted.
 */
export async function tokenExchange(
  config: GatewayConfig,
  o: { readSecret: typeof readSecret; log: Logger },
): Promise<{ exchange: TokenExchange; close(): Promise<void> } | undefined> {
  const x = config.auth.tokenExchange
  if (x === undefined) return undefined
  const [{ TokenExchange, tokenEndpointFor }, { discoveredTokenEndpoint }] = await Promise.all([
    import('./credentials/exchange.js'),
    import('./credentials/exchange-discovery.js'),
  ])
  const upstream = config.auth.broker?.upstream
  const issuer = upstream?.issuer ?? config.auth.issuer
  const caFile = upstream ? upstream.caFile : config.auth.caFile
  const ca = caFile ? readFileSync(caFile, 'utf8') : undefined
  const { auth } = config
  const http = createIdpHttp(x.timeout, ca, {
    connections: auth.idpConnections,
    maxResponseBytes: auth.idpMaxResponseBytes,
    keepAliveMs: auth.idpKeepAlive,
  })
  const dispatcher = ca
    ? new Agent({
        connect: { ca, timeout: x.timeout },
        headersTimeout: x.timeout,
        bodyTimeout: x.timeout,
        connections: x.connections,
      })
    : undefined
  const discovered = issuer === undefined ? undefined : discoveredTokenEndpoint(issuer, http)
  const known = x.tokenEndpoint ?? upstream?.endpoints?.token
  const exchange = new TokenExchange({
    config: x,
    clientSecret: x.clientSecret && o.readSecret(x.clientSecret, 'auth.tokenExchange.clientSecret'),
    tokenEndpoint: async () =>
      tokenEndpointFor(
        { tokenEndpoint: known },
        known === undefined ? await discovered?.() : undefined,
      ),
    log: o.log.child({ component: 'token-exchange' }),
    ...(dispatcher ? { dispatcher } : {}),
  })
  return {
    exchange,
    async close() {
      await exchange.close()
      await http.close()
      await dispatcher?.destroy()
    },
  }
}
