import { existsSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import { ConfigError } from '../config/errors.js'
import type { GatewayConfig } from '../config/schema.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import { ToolPins, type PendingTool } from './pins.js'
import { watchPins, type PinWatcher } from './watch.js'

/** The pins of a running gateway, and the watch that reloads them. */
export interface PinSetup {
  pins: ToolPins
  watcher: PinWatcher
}

/**
 * Tool pinning as configured: nothing when no server has `pinTools: true`; else the pin file
 * loaded (a file that does not load stops the start, like a bad config), watched, and every
 * new unapproved definition logged at warn, audited and counted once.
 * @throws ConfigError
 */
export function setUpToolPins(
  config: GatewayConfig,
  o: { log: Logger; audit: AuditLog; metrics: Metrics; now?: () => number },
): PinSetup | undefined {
  const servers = new Set(
    Object.entries(config.servers)
      .filter(([, s]) => s.pinTools)
      .map(([name]) => name),
  )
  if (servers.size === 0) return undefined
  const { file, learn, maxFileBytes, maxPending, reloadDebounce } = config.toolPins
  if (!existsSync(dirname(file)))
    throw new ConfigError([
      { file: 'configuration', path: 'toolPins.file', message: `no folder ${dirname(file)}` },
    ])
  const log = o.log.child({ component: 'tool-pins' })
  const pins = new ToolPins({
    file,
    learn,
    maxFileBytes,
    maxPending,
    servers,
    now: o.now ?? Date.now,
    log,
    events: {
      pending(p: PendingTool, principal) {
        const kind = p.previous === undefined ? 'new' : 'changed'
        o.metrics.toolPinChanges.inc({ server: p.server, kind })
        log.warn(
          { server: p.server, tool: p.tool, hash: p.hash, previous: p.previous, where: p.where },
          kind === 'changed'
            ? 'tool definition changed since it was approved; hidden until an operator approves it (mcp-edge tools approve)'
            : 'tool no one approved; hidden until an operator approves it (mcp-edge tools approve)',
        )
        o.audit.record({
          sub: principal.sub,
          iss: principal.iss,
          clientId: principal.clientId,
          server: p.server,
          method: 'tools/list',
          name: p.tool,
          decision: 'unapproved',
          rule: `tool pins: ${kind} ${p.hash}${p.previous ? ` (approved ${p.previous})` : ''}`,
          outcome: 'hidden',
        })
      },
      learned(server, tool) {
        o.metrics.toolPinChanges.inc({ server, kind: 'learned' })
        log.info({ server, tool }, 'tool pinned on first sight')
      },
    },
  })
  pins.load()
  if (!learn && !existsSync(file))
    log.warn({ file }, 'no pin file and learn is off: every tool of a pinned server is hidden')
  const watcher = watchPins(pins, file, reloadDebounce, (r) => {
    if (r.ok) log.info({ file }, 'tool pins reloaded')
    else log.error({ problems: r.problems }, 'tool pins reload refused; the last good pins stay')
  })
  return { pins, watcher }
}
