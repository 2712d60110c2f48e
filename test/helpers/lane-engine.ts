// The sessionless engine (bridge/sessionless.ts) and its lane pool over real stdio processes,
// wired as the gateway wires them but without HTTP, for tests that drive leases and calls
// directly: Alice's requests, each allowed by a test rule.
import assert from 'node:assert/strict'
import type { JSONRPCMessage, JSONRPCRequest } from '@modelcontextprotocol/server'
import { pino } from 'pino'
import { SubjectBounds } from '../../gateway/bridge/bounds.js'
import { InputRounds } from '../../gateway/bridge/input-rounds.js'
import { LanePool } from '../../gateway/bridge/lanes.js'
import { SessionRegistry } from '../../gateway/bridge/registry.js'
import type { ResultFilter } from '../../gateway/bridge/session.js'
import {
  type ArgumentMismatch,
  type CallOutcome,
  Sessionless,
} from '../../gateway/bridge/sessionless.js'
import type { GatewayConfig } from '../../gateway/config/schema.js'
import type { AuditLog } from '../../gateway/observability/audit.js'
import { createMetrics, zeroGauges } from '../../gateway/observability/metrics.js'
import { principal } from './principal.js'

const ALICE = principal()
const metrics = createMetrics(zeroGauges())

/** One call's own parts: its client going away, what it hears, its arguments' check. */
export interface LaneCallOptions {
  signal?: AbortSignal
  notify?: (m: JSONRPCMessage) => void
  check?: (schemas: Map<string, unknown>) => ArgumentMismatch | undefined
  /** The engine's answer of a round that ran, given before its audit line. */
  answer?: (outcome: CallOutcome) => void
}

/** A running engine over its own registry, lanes and input rounds. */
export interface LaneEngine {
  config: GatewayConfig
  lanes: LanePool
  rounds: InputRounds
  engine: Sessionless
  /** Alice as a lease sees her, accepted now. */
  caller(): { principal: typeof ALICE; log: pino.Logger; accepted: number }
  /** Runs `message` for Alice on `server`, allowed by a test rule (named for params.name). */
  call(server: string, message: JSONRPCRequest, o?: LaneCallOptions): Promise<CallOutcome>
  /** Ends every process and round; a second call does nothing. */
  close(): Promise<void>
}

/**
 * Starts the engine for `config`: input rounds live 60 s, 4 per subject; the audit goes to
 * `audit` (default: nowhere); results pass `filter` (default: untouched).
 */
export function startLaneEngine(
  config: GatewayConfig,
  o: { audit?: AuditLog; filter?: ResultFilter } = {},
): LaneEngine {
  const log = pino({ level: 'silent' })
  const bounds = new SubjectBounds({ config, log })
  const registry = new SessionRegistry({ config, log, bounds })
  registry.start()
  const lanes = new LanePool({ config, source: registry, bounds, log })
  const rounds = new InputRounds({ ttlMs: 60_000, perSubject: 4, bounds })
  const engine = new Sessionless({
    config,
    lanes,
    rounds,
    audit: o.audit ?? { record() {}, flush() {} },
    metrics,
    filter: o.filter ?? ((_s, _m, result) => result),
  })
  const caller = () => ({ principal: ALICE, log, accepted: Date.now() })
  let closed = false
  return {
    config,
    lanes,
    rounds,
    engine,
    caller,
    call(server, message, c = {}) {
      const name = (message.params as { name?: unknown } | undefined)?.name
      return engine.call(
        { ...caller(), signal: c.signal ?? new AbortController().signal, bearer: undefined },
        {
          server,
          message,
          decided: {
            decision: { effect: 'allow', reason: 'test rule', source: undefined },
            name: name as string | undefined,
          },
          notify: c.notify ?? (() => {}),
          checkArguments: c.check,
          answer: c.answer,
        },
      )
    },
    async close() {
      if (closed) return
      closed = true
      rounds.close()
      const lanesClosed = lanes.close()
      await registry.closeAll(() => lanes.busy)
      await lanesClosed
    },
  }
}

/** A tools/call request of `name` with `args` and, when given, `_meta`. */
export function toolCall(
  name: string,
  args: Record<string, unknown> = {},
  o: { id?: number; meta?: Record<string, unknown> } = {},
): JSONRPCRequest {
  const params = { name, arguments: args, ...(o.meta ? { _meta: o.meta } : {}) }
  return { jsonrpc: '2.0', id: o.id ?? 1, method: 'tools/call', params } as JSONRPCRequest
}

/** What every path must leave behind: no lane leased, nobody waiting for one. */
export function assertNoLaneHeld(lanes: LanePool, why: string): void {
  assert.equal(lanes.busy, false, `${why}: no lane is leased`)
  assert.equal(lanes.waiters().size, 0, `${why}: nobody waits for a lane`)
}

/** The text of a result outcome's first content item; asserts it is a result. */
export function outcomeText(o: CallOutcome): string {
  assert.equal(o.kind, 'result', JSON.stringify(o))
  const result = (o as { result: unknown }).result as { content: { text: string }[] }
  return result.content[0]?.text ?? ''
}
