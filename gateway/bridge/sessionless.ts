import type { JSONRPCMessage, JSONRPCRequest } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import { GatewayError } from '../errors.js'
import type { Principal } from '../auth/principal.js'
import type { GatewayConfig } from '../config/schema.js'
import type { ResolvedCredentials } from '../credentials/resolve.js'
import { auditAllowed, listOutcome, type AuditOutcome } from '../observability/allowed.js'
import type { AuditLog } from '../observability/audit.js'
import type { Metrics } from '../observability/metrics.js'
import type { Decided } from '../policy/decided.js'
import type { OutputCaps } from './result-cap.js'
import { auditChecked, auditRefused, refusedBy } from './refused.js'
import type { CredentialGate } from './credential-gate.js'
import { initialCredentials } from './initial-credentials.js'
import type { InitResult } from './handshake.js'
import type { InputRounds, RoundBinding } from './input-rounds.js'
import { isObject, rpcErrorObject, type RpcErrorObject } from './jsonrpc.js'
import type { LanePool } from './lanes.js'
import { BackendCall, isPlain, type ClientMeta, type Outcome } from './modern-call.js'
import {
  backendParams,
  clientMeta,
  completeResult,
  inputRequiredResult,
  missingCapability,
  modernError,
} from './modern-wire.js'
import { ownerKey, type ResultFilter } from './session.js'
import type { GoneSignal } from './gone.js'

/** What the sessionless engine needs. */
export interface SessionlessDeps {
  config: GatewayConfig
  lanes: LanePool
  rounds: InputRounds
  audit: AuditLog
  metrics: Metrics
  filter: ResultFilter
  /** Output caps (servers.<name>.output); none: results pass as they are. */
  caps?: OutputCaps
  /** Stands before requests of servers that take per-user credentials. */
  gate?: CredentialGate
}

/** Who a sessionless request is for, and how long it may live. */
export interface Caller {
  principal: Principal
  log: Logger
  /** When the HTTP request arrived (Date.now()): one accepted before shutdown is still served. */
  accepted: number
  /** Aborted when the client is gone: the request is cancelled and its lane released. */
  signal: GoneSignal
  /** The verified bearer token, for a credential exchange at the IdP only. */
  bearer: string | undefined
}

/** A mismatch between a tool's `Mcp-Param-*` headers and its arguments (SEP-2243). */
export interface ArgumentMismatch {
  /** The header that disagrees (`Mcp-Param-Region`): its audit line's rule names it. */
  header: string
  message: string
  data: unknown
}

/** One allowed 2026-07-28 request for a server's process (routed already, at an endpoint). */
export interface SessionlessRequest {
  server: string
  message: JSONRPCRequest
  /** The policy's verdict (audited with the outcome); undefined for methods policy does not gate. */
  decided: Decided | undefined
  /**
   * Checks the request's arguments against its tool's input schemas (by tool name): before any
   * lane is leased when the schemas are known, else once the leased lane has read them.
   */
  checkArguments?: (schemas: Map<string, unknown>) => ArgumentMismatch | undefined
  /** Progress and log notifications of the request, as they come (the caller streams them). */
  notify(message: JSONRPCMessage): void
  /** Through an endpoint: the result in its public form (resource URIs, names). */
  publish?: (result: Record<string, unknown>) => Promise<Record<string, unknown>>
  /**
   * The caller's answer, given the outcome of a round that ran before its audit line is made
   * (the line is not on the client's path); `call` still resolves with the same outcome.
   */
  answer?: (outcome: CallOutcome) => void
}

/** The gateway's own refusal of a sessionless request, by code (mapped to a response in one place). */
export type CallRefusal =
  /** `requestState` is not a string. */
  | { code: 'request_state_type' }
  /** `requestState` failed verification, or names no waiting request (any more). */
  | { code: 'request_state'; refusal: 'invalid' | 'gone' }
  /** `inputResponses` is not an object. */
  | { code: 'input_responses' }
  /** The `Mcp-Param-*` headers disagree with the arguments. */
  | { code: 'header_mismatch'; mismatch: ArgumentMismatch }
  /** The user's credentials are missing or unavailable, and the method answers with an error. */
  | { code: 'credential'; error: RpcErrorObject }

/** How a sessionless request ended, for the HTTP layer to turn into a response. */
export type CallOutcome =
  /** A complete result (the server's, or the gateway's tool error for missing credentials). */
  | { kind: 'result'; result: Record<string, unknown> }
  /** The process waits for the client: the `input_required` result, with its `requestState`. */
  | { kind: 'input_required'; result: Record<string, unknown> }
  /**
   * A JSON-RPC error of the server, or of the gateway when the process failed or timed out.
   * `traced`: its message as a trace may carry it (the user's credentials blotted out).
   */
  | { kind: 'error'; status: number; error: RpcErrorObject; traced?: string }
  /** Refused by the gateway before (or instead of) running. */
  | { kind: 'refused'; refusal: CallRefusal }
  /** The client went away: the request was cancelled at the process. */
  | { kind: 'cancelled' }

/**
 * The sessionless (2026-07-28) call lifecycle: leases one of the caller's lanes, runs the
 * request and its multi-round-trip rounds there, and returns a typed outcome. It owns the
 * lease: the lane is given back on every path (reply, error, timeout, client gone, refusal
 * after the lease, process exit, an unexpected throw); a round waiting for the client's
 * answers keeps it until the answers come, the round expires, or the gateway shuts down
 * (`InputRounds`). Every allowed request is audited once with its outcome.
 */
export class Sessionless {
  constructor(private readonly d: SessionlessDeps) {}

  /**
   * The initialize result of a server's processes for `caller` (`server/discover`): the one
   * known, else from a process started for the caller (kept for its next requests).
   * @throws BridgeError from leasing: `too_many_sessions`, `subject_session_limit`, `spawn_failed`, `client_gone`
   */
  async discover(server: string, caller: Caller): Promise<InitResult> {
    const known = this.d.lanes.initOf(server, caller.principal)
    if (known !== undefined) return known
    const credentials = await initialCredentials(
      this.d.gate,
      server,
      caller.principal,
      caller.bearer,
    )
    // Not cancelled by the caller's going: the process is kept for its next requests.
    const { lane, holder } = await this.d.lanes.lease(
      server,
      { ...caller, signal: undefined },
      credentials,
    )
    this.d.lanes.release(lane, holder)
    return lane.init
  }

  /**
   * Runs `r` for `caller`, a new request or the retry of a waiting one (`requestState`).
   * @throws BridgeError from leasing: `too_many_sessions`, `subject_session_limit`, `spawn_failed`, `client_gone`
   */
  async call(caller: Caller, r: SessionlessRequest): Promise<CallOutcome> {
    const start = performance.now()
    const audit = (outcome: AuditOutcome, credentials?: ResolvedCredentials['supplied']) => {
      if (r.decided !== undefined)
        auditAllowed(this.d.audit, this.d.metrics, {
          principal: caller.principal,
          server: r.server,
          method: r.message.method,
          decided: r.decided,
          start,
          outcome,
          credentials,
        })
    }
    const params = (r.message.params ?? {}) as Record<string, unknown>
    const binding: RoundBinding = {
      owner: ownerKey(caller.principal),
      server: r.server,
      method: r.message.method,
      name: r.decided?.name,
    }
    const meta = clientMeta(r.message)
    const leased =
      params.requestState === undefined
        ? await this.begin(caller, r, params, meta, audit, start)
        : await this.claim(params, binding, audit)
    // Answered without a lease (a refusal, the gateway's own tool error): nothing to give back.
    if ('settled' in leased) {
      const o = leased.settled
      const line = o.kind === 'refused' ? checkLine(o.refusal) : undefined
      if (line !== undefined)
        auditChecked(this.d.audit, this.d.metrics, {
          principal: caller.principal,
          server: r.server,
          method: r.message.method,
          name: r.decided?.name,
          ...line,
        })
      return o
    }
    const { backend, credentials, answers } = leased
    let kept = false
    try {
      const ran = await this.run(caller, r, backend, binding, answers, meta, audit, credentials)
      kept = ran.kept
      return ran.outcome
    } finally {
      // A round waiting for input keeps its lane (InputRounds gives it back); every other end
      // gives it back here. Named as the holder: a lane someone else holds by now is left alone.
      if (!kept) this.d.lanes.release(backend.lane, backend)
    }
  }

  /** A new request: credentials, a lease, the argument check, a backend call not yet begun. */
  private async begin(
    caller: Caller,
    r: SessionlessRequest,
    params: Record<string, unknown>,
    meta: ClientMeta,
    audit: (o: AuditOutcome) => void,
    start: number,
  ): Promise<Leased | { settled: CallOutcome }> {
    const { lanes, gate } = this.d
    const toolCall = r.message.method === 'tools/call' && r.checkArguments !== undefined
    // Known schemas: a bad header is refused before any process is taken.
    const known = toolCall ? lanes.knownToolSchemas(r.server, caller.principal) : undefined
    const early = known && r.checkArguments!(known)
    if (early) return refused({ code: 'header_mismatch', mismatch: early })
    let credentials: ResolvedCredentials | undefined
    // The user's own credentials, for a server that takes them: a missing one is asked for.
    if (gate?.needs(r.server)) {
      const got = await gate.sessionless(
        r.server,
        r.message.method,
        { principal: caller.principal, bearer: caller.bearer },
        meta.capabilities,
      )
      if (!got.ok) {
        // A secret deleted: the lanes still holding it end (the refusal takes no lease that would).
        if (got.current) lanes.retireStale(r.server, caller.principal, got.current)
        audit(got.outcome)
        if (got.error) return refused({ code: 'credential', error: got.error })
        return {
          settled: {
            kind: 'result',
            result: completeResult(
              r.message.method,
              { content: [{ type: 'text', text: got.toolText }], isError: true },
              undefined,
            ),
          },
        }
      }
      credentials = got.credentials
    }
    // Traced: the lease is a step of the request's span.
    const step = r.decided?.span?.step('lease')
    // Plain: it may share a process with the principal's other plain requests.
    const plain = isPlain(r.message.method, params, meta)
    const lease = await lanes.lease(r.server, caller, credentials, plain).catch((err: unknown) => {
      step?.end(err instanceof GatewayError ? err.code : '_OTHER')
      // Thrown to the one place errors become answers (http/respond.ts), audited here: the
      // limit that refused it names its rule, a start that failed is this request's outcome.
      auditRefused(this.d.audit, this.d.metrics, {
        principal: caller.principal,
        server: r.server,
        method: r.message.method,
        decided: r.decided,
        start,
        err,
      })
      throw err
    })
    step?.end()
    const { lane, holder } = lease
    try {
      if (toolCall && known === undefined) {
        const bad = r.checkArguments!(await lanes.toolSchemas(lane, caller.principal))
        if (bad) {
          lanes.release(lane, holder)
          return refused({ code: 'header_mismatch', mismatch: bad })
        }
      }
    } catch (err) {
      lanes.release(lane, holder)
      throw err
    }
    const given = params.inputResponses
    const request = { method: r.message.method, params: backendParams(params) }
    const span = r.decided?.span
    const backend = new BackendCall(
      lane,
      // Traced: the process gets the gateway's CLIENT span as its parent, in `_meta`.
      span ? span.toChild(request, { server: r.server }) : request,
      meta,
      this.d.config.servers[r.server]!.requestTimeout,
      isObject(given) ? { ...given } : {},
    )
    lanes.assign(lease, backend, backend.backendId)
    return { backend, credentials: credentials?.supplied, answers: undefined }
  }

  /** A retry with `requestState`: the waiting call it continues, with the client's answers. */
  private async claim(
    params: Record<string, unknown>,
    binding: RoundBinding,
    audit: (o: AuditOutcome) => void,
  ): Promise<Leased | { settled: CallOutcome }> {
    const state = params.requestState
    if (typeof state !== 'string') return refused({ code: 'request_state_type' })
    const claimed = await this.d.rounds.claim(state, binding)
    if ('refused' in claimed) {
      audit({ kind: 'request_state', refusal: claimed.refused })
      return refused({ code: 'request_state', refusal: claimed.refused })
    }
    const backend = claimed.call
    const answers = params.inputResponses
    if (answers !== undefined && !isObject(answers)) {
      backend.cancel('invalid inputResponses')
      this.d.lanes.release(backend.lane, backend)
      return refused({ code: 'input_responses' })
    }
    return { backend, credentials: undefined, answers: answers ?? {} }
  }

  /** One round on a leased lane: begun or resumed, cancelled if the client goes. */
  private async run(
    caller: Caller,
    r: SessionlessRequest,
    backend: BackendCall,
    binding: RoundBinding,
    answers: Record<string, unknown> | undefined,
    meta: ClientMeta,
    audit: (o: AuditOutcome, credentials?: ResolvedCredentials['supplied']) => void,
    credentials: ResolvedCredentials['supplied'] | undefined,
  ): Promise<{ outcome: CallOutcome; kept: boolean }> {
    let gone = false
    const onAbort = () => {
      if (gone || backend.done) return
      gone = true
      backend.cancel('the client disconnected')
    }
    const cancelled = () => {
      audit({ kind: 'cancelled' })
      return { outcome: { kind: 'cancelled' } as const, kept: false }
    }
    // Gone already (while its lane started, say): nothing is sent to the process.
    if (caller.signal.aborted) {
      onAbort()
      return cancelled()
    }
    caller.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const o =
        answers === undefined
          ? await backend.begin(r.notify)
          : await backend.resume(answers, meta, r.notify)
      if (gone) return cancelled()
      // Refused in the process's place by a limit (a shared process's crash budget): thrown to
      // the one place errors become answers, as a refusal at the lease is, and audited once.
      const limited = o.kind === 'response' ? refusedBy(o.message) : undefined
      if (limited !== undefined) {
        auditRefused(this.d.audit, this.d.metrics, {
          principal: caller.principal,
          server: r.server,
          method: r.message.method,
          decided: r.decided,
          err: limited,
        })
        throw limited
      }
      const settled = await this.settle(caller, r, backend, binding, o)
      // Gone while the round was being parked: it waits for nobody.
      if (gone) return cancelled()
      // The answer goes first, its audit line after (as a session's reply does).
      r.answer?.(settled.outcome)
      audit(settled.audit, credentials)
      return settled
    } finally {
      caller.signal.removeEventListener('abort', onAbort)
    }
  }

  /** Turns how a round ended into the outcome, parking the request if it waits for input. */
  private async settle(
    caller: Caller,
    r: SessionlessRequest,
    backend: BackendCall,
    binding: RoundBinding,
    o: Outcome,
  ): Promise<{ outcome: CallOutcome; audit: AuditOutcome; kept: boolean }> {
    if (o.kind === 'input') {
      const requestState = await this.d.rounds.park(backend, binding, () => {
        backend.cancel('the client did not answer in time')
        this.d.lanes.release(backend.lane, backend)
      })
      return {
        outcome: { kind: 'input_required', result: inputRequiredResult(o.requests, requestState) },
        audit: { kind: 'input_required', keys: [...o.requests.keys()] },
        kept: true,
      }
    }
    // The request is over at the process. Through an endpoint its lane is free before the
    // result is shaped (publishing may need a lane of the same server); else `call` gives it
    // back after the answer has gone, off the client's path.
    if (r.publish !== undefined) this.d.lanes.release(backend.lane, backend)
    if (o.kind === 'failed') {
      return {
        outcome: { kind: 'error', status: 200, error: rpcErrorObject(o.code, o.message) },
        audit: { kind: 'error', code: o.code },
        kept: false,
      }
    }
    const m = o.message as {
      result?: Record<string, unknown>
      error?: { code?: unknown; message?: unknown; data?: unknown }
    }
    if (m.error !== undefined) {
      const cut = this.d.caps?.applyError(r.server, r.message.method, r.decided?.name, m.error)
      const e = modernError(cut ?? m.error, backend.refused)
      const redact = backend.lane.child.redact
      return {
        outcome: {
          kind: 'error',
          status: e.status,
          error: e.error,
          ...(redact ? { traced: redact(e.error.message) } : {}),
        },
        audit: { kind: 'error', code: e.error.code },
        kept: false,
      }
    }
    // MCP results are objects: anything else (a string would be spread into one key per
    // character by the 2026-07-28 envelope) is the server's error, not passed on.
    if (
      m.result !== undefined &&
      (typeof m.result !== 'object' || m.result === null || Array.isArray(m.result))
    ) {
      return {
        outcome: {
          kind: 'error',
          status: 200,
          error: rpcErrorObject(-32603, 'the MCP server sent a result that is not an object'),
        },
        audit: { kind: 'error', code: -32603 },
        kept: false,
      }
    }
    const result = m.result ?? {}
    if (result.isError === true && backend.refused.size > 0) {
      const e = missingCapability(backend.refused)
      return {
        outcome: { kind: 'error', status: e.status, error: e.error },
        audit: { kind: 'error', code: e.error.code },
        kept: false,
      }
    }
    const capped = this.d.caps?.apply(r.server, r.message.method, r.decided?.name, result)
    if (capped && 'error' in capped)
      return {
        outcome: {
          kind: 'error',
          status: 200,
          error: rpcErrorObject(capped.error.code, capped.error.message),
        },
        audit: capped.audit,
        kept: false,
      }
    const shown = (capped?.result ?? result) as Record<string, unknown>
    const filtered = this.d.filter(r.server, r.message.method, shown, caller.principal) as Record<
      string,
      unknown
    >
    return {
      outcome: {
        kind: 'result',
        // Through an endpoint: its resource URIs in their public form.
        result: completeResult(
          r.message.method,
          r.publish ? await r.publish(filtered) : filtered,
          backend.lane.init.serverInfo,
        ),
      },
      audit: capped
        ? capped.audit
        : filtered === result
          ? { kind: 'ok' }
          : listOutcome(result, filtered),
      kept: false,
    }
  }
}

/** A leased lane's call, what it acts with, and the client's answers when it is a retry. */
interface Leased {
  backend: BackendCall
  credentials: ResolvedCredentials['supplied'] | undefined
  answers: Record<string, unknown> | undefined
}

/**
 * The audit line of a refusal nothing else audits (a request-state or credential refusal has
 * its line already): `Mcp-Param-*` headers that disagree with the arguments are `deny`, the
 * header named in the rule; a malformed `requestState` or `inputResponses` is `invalid`.
 */
function checkLine(r: CallRefusal): { decision: 'deny' | 'invalid'; rule: string } | undefined {
  switch (r.code) {
    case 'header_mismatch':
      return { decision: 'deny', rule: `headers.${r.mismatch.header}` }
    case 'input_responses':
      return { decision: 'invalid', rule: 'inputResponses is not an object' }
    case 'request_state_type':
      return { decision: 'invalid', rule: 'requestState is not a string' }
    default:
      return undefined
  }
}

function refused(refusal: CallRefusal): { settled: CallOutcome } {
  return { settled: { kind: 'refused', refusal } }
}
