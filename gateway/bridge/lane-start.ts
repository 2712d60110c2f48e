import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import { blotted, type Child } from './child.js'
import { BridgeError } from './errors.js'
import {
  exchange,
  InitializeFailed,
  initializeChild,
  initializeTimeout,
  type InitResult,
} from './handshake.js'
import { LANE_CLIENT_CAPABILITIES } from './lane.js'
import type { ProcessStarts } from './process-starts.js'
import type { SharedCrashes } from './shared-crashes.js'
import { ownerKey } from './session.js'
import { type StartFailures, spawnThrew } from './start-failures.js'

/** Where lanes' processes come from (the session registry's pools and shared processes). */
export interface ProcessSource {
  process(
    server: string,
    principal: Principal,
    log: Logger,
    accepted?: number,
    credentials?: ResolvedCredentials,
  ): Promise<Child>
  /** The identity a process of `server` is started with for `principal` (identityEnv), if any. */
  identityOf(server: string, principal: Principal): string | undefined
  /** Which servers failed to start lately: no lane is started for them meanwhile. */
  readonly starts?: StartFailures
  /** Each subject's process-start budget: checked before room is made for a lane. */
  readonly processStarts?: Pick<ProcessStarts, 'check'>
  /** Each subject's share of shared processes' exits: checked before room is made for a lane. */
  readonly sharedCrashes?: Pick<SharedCrashes, 'check'>
}

/**
 * Which of a server's lanes serve a principal: its own, and under `identityEnv` only those
 * started with the identity it has now (client, scopes), so a narrower client of the same
 * user never runs as a broader one, and a scope taken away takes effect on new processes.
 */
export function laneKey(
  source: ProcessSource,
  server: string,
  principal: Principal,
  credentials?: ResolvedCredentials,
): string {
  const identity = source.identityOf(server, principal)
  // `\n#<fingerprint>` ends a key; ` <client> <user's own values>` after it (lane-set.ts).
  const by = credentials?.presented
  const values = credentials?.fingerprint
    ? `\n#${credentials.fingerprint}${by ? ` ${by.by} ${by.shared}` : ''}`
    : ''
  return `${server}\n${ownerKey(principal)}${identity === undefined ? '' : `\n${identity}`}${values}`
}

/**
 * A process of `server` for a new lane of `principal`, initialized by the gateway with every
 * client capability a sessionless request may bring, and asked for every log level.
 * @throws BridgeError `spawn_failed` when it cannot start or initialize (it is closed),
 * `server_unavailable` while the server is failing to start (start-failures.ts)
 */
export async function startLaneProcess(
  o: { config: GatewayConfig; source: ProcessSource },
  ask: {
    server: string
    principal: Principal
    log: Logger
    accepted: number
    credentials?: ResolvedCredentials
  },
): Promise<{ child: Child; init: InitResult }> {
  const { server, principal, log, accepted, credentials } = ask
  const config = o.config.servers[server]!
  // A server that failed to start lately is refused here (503), before any process.
  const fingerprint = credentials?.fingerprint
  const attempt = await o.source.starts?.admit(server, { principal, fingerprint })
  const child = await o.source
    .process(server, principal, log, accepted, credentials)
    .catch((err: unknown) => spawnThrew(attempt, err))
  const timeout = initializeTimeout(config)
  try {
    const init = await initializeChild(child, timeout, LANE_CLIENT_CAPABILITIES)
    // Logs are filtered per request by the gateway (each names its own logLevel): the
    // process sends them all.
    if (
      init.capabilities !== null &&
      typeof init.capabilities === 'object' &&
      'logging' in init.capabilities
    ) {
      await exchange(child, 'logging/setLevel', { level: 'debug' }, timeout)
    }
    attempt?.succeeded()
    return { child, init }
  } catch (err) {
    attempt?.failed(err instanceof InitializeFailed ? err.kind : child.alive ? 'timeout' : 'exit')
    await child.close()
    // The process's own error text may quote the user's credentials or what it inherited
    // (inheritEnv): blotted out like its stderr.
    const safe = new Error(blotted(child, (err as Error).message))
    log.error({ err: { message: safe.message } }, 'server process failed to initialize')
    throw new BridgeError('spawn_failed', 'the MCP server could not be started', safe)
  }
}
