import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import {
  missingToolText,
  URL_ELICITATION_REQUIRED,
  urlElicitation,
} from '../credentials/elicitation.js'
import { CredentialError } from '../credentials/errors.js'
import { CredentialWaits } from '../credentials/waiting.js'
import type { AuditOutcome } from '../observability/allowed.js'
import type {
  CredentialResolver,
  MissingSecret,
  ResolvedCredentials,
} from '../credentials/resolve.js'
import {
  isObject,
  rpcError,
  rpcErrorObject,
  type RequestId,
  type RpcErrorObject,
} from './jsonrpc.js'

/**
 * Requests that act with the user's credentials: they wait for them (and run on a process
 * started with them). Lists, ping, logging/setLevel run on whatever process the session has.
 */
export const CREDENTIAL_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'resources/read',
  'resources/subscribe',
  'prompts/get',
  'completion/complete',
])

/**
 * The JSON-RPC error a request other than a tool call gets when its credential is missing or
 * cannot be supplied (a tool call gets a tool error instead, which every client shows its
 * user). In JSON-RPC's implementation-defined server range; MCP uses -32002 and -32042 there.
 */
export const CREDENTIAL_UNAVAILABLE = -32003

/** What a session offers the gate. */
export interface GatedSession {
  readonly server: string
  /** Which values the session's process was started with (ResolvedCredentials.fingerprint). */
  readonly fingerprint: string
  /** Whether a URL elicitation can reach this session's client (declared, and a stream to carry it). */
  readonly canElicitUrl: boolean
  /** Sends the client a request of the gateway's own, on the stream of `relatedId`; resolves its response (undefined: none in time, or `signal` aborted). */
  ask(
    relatedId: RequestId,
    method: string,
    params: Record<string, unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<JSONRPCMessage | undefined>
  /** Sends the client a notification of the gateway's own, on the stream of `relatedId`. */
  tell(message: JSONRPCMessage, relatedId?: RequestId): void
  /** Replaces the session's process by one started with `credentials`, once its requests in flight are done. */
  replaceChild(credentials: ResolvedCredentials): Promise<void>
}

/** One request that acts with the user's credentials. */
export interface GatedRequest {
  id: RequestId
  method: string
  principal: Principal
  bearer: string | undefined
  /** Aborts once the request is settled without the gate (cancelled, the session closed): the wait ends. */
  signal?: AbortSignal
}

/** How the gate let a request through, or answered it itself. */
export type GateOutcome =
  | { forward: true; supplied: ResolvedCredentials['supplied'] }
  | {
      forward: false
      reply: JSONRPCMessage
      outcome: AuditOutcome
      /**
       * The session ends once this answer is out: its process holds a value the user deleted,
       * and none starts without it (a server that exits when its key is not set).
       */
      end?: true
    }

/**
 * Stands before every request of a session that acts with the user's credentials: resolves
 * them now (a secret set, rotated or deleted since, a token renewed), asks the user for a
 * missing secret with a URL elicitation (MCP 2025-11-25) and waits until it is set, and
 * replaces the session's process when the values changed, at a request boundary. A client
 * that cannot be sent to a page gets a tool error naming it.
 */
export class CredentialGate {
  private readonly waits: CredentialWaits

  constructor(
    private readonly o: {
      resolver: CredentialResolver
      /** Where the account page is (the gateway's public URL). */
      publicUrl: string
      elicitationTimeout: number
      pollInterval: number
      /** Calls of one user waiting for a missing secret at once (credentials.waitingPerSubject). */
      waitingPerSubject: number
      log: Logger
    },
  ) {
    this.waits = new CredentialWaits({
      perSubject: o.waitingPerSubject,
      interval: o.pollInterval,
      look: (server, principal) => o.resolver.secretsSet(server, principal),
    })
  }

  /** Whether `server`'s processes take per-user credentials. */
  needs(server: string): boolean {
    return this.o.resolver.needs(server)
  }

  /** Whether requests of `method` to `server` wait for the user's credentials. */
  applies(server: string, method: string): boolean {
    return CREDENTIAL_METHODS.has(method) && this.o.resolver.needs(server)
  }

  /** Credentials for a new session's first process; a source that fails now is reported at the first call. */
  async initial(
    server: string,
    principal: Principal,
    bearer: string | undefined,
  ): Promise<ResolvedCredentials> {
    try {
      return await this.o.resolver.resolve(server, { principal, bearer })
    } catch (err) {
      if (!(err instanceof CredentialError)) throw err
      return { env: {}, fingerprint: 'unresolved', missing: [], supplied: [] }
    }
  }

  async run(s: GatedSession, req: GatedRequest): Promise<GateOutcome> {
    const caller = { principal: req.principal, bearer: req.bearer }
    let creds: ResolvedCredentials
    try {
      creds = await this.o.resolver.resolve(s.server, caller)
      if (creds.missing.length > 0) {
        // A value the user deleted leaves with its process now (requests in flight finish
        // first), not once the request that asks for it again is answered: this one is refused
        // or waits, and lists, pings and subscriptions would go on running with the old value.
        if (creds.fingerprint !== s.fingerprint) {
          const replaced = await s.replaceChild(creds).then(
            () => true,
            (err: Error) => {
              this.o.log.warn(
                { server: s.server, err: { message: err.message } },
                'no process starts without the deleted secret; the session ends',
              )
              return false
            },
          )
          if (!replaced)
            return {
              ...this.refuse(
                req,
                missingToolText(this.o.publicUrl, s.server, creds.missing),
                credential('missing'),
              ),
              end: true,
            }
        }
        if (!s.canElicitUrl)
          return this.refuse(
            req,
            missingToolText(this.o.publicUrl, s.server, creds.missing),
            credential('missing'),
          )
        // Past the user's bound the call is refused before the user is asked anything: the
        // calls already waiting keep their elicitation, and run once the secret is set.
        const leave = this.waits.enter(req.principal)
        if (leave === undefined) {
          this.o.log.info(
            { server: s.server, waiting: this.o.waitingPerSubject },
            'a call for a missing secret refused: the user has the most calls waiting',
          )
          return this.refuse(
            req,
            `${missingToolText(this.o.publicUrl, s.server, creds.missing)} (${this.o.waitingPerSubject} of your calls already wait for a secret)`,
            credential('missing (too many calls waiting)'),
          )
        }
        let latest: ResolvedCredentials | undefined
        let elicitationId: string
        try {
          const asked = await this.elicit(s, req, creds.missing)
          elicitationId = asked.elicitationId
          if (asked.action !== 'accept')
            return this.refuse(
              req,
              missingToolText(this.o.publicUrl, s.server, creds.missing),
              credential(`missing (elicitation ${asked.action})`),
            )
          latest = await this.waitFor(s.server, caller, req.signal)
        } finally {
          leave()
        }
        if (latest === undefined)
          return this.refuse(
            req,
            `${missingToolText(this.o.publicUrl, s.server, creds.missing)} (the request waited ${Math.round(this.o.elicitationTimeout / 1000)} s)`,
            credential('missing (not set in time)'),
          )
        creds = latest
        s.tell(
          {
            jsonrpc: '2.0',
            method: 'notifications/elicitation/complete',
            params: { elicitationId },
          } as JSONRPCMessage,
          req.id,
        )
      }
    } catch (err) {
      if (!(err instanceof CredentialError)) throw err
      this.o.log.info({ server: s.server, code: err.code }, 'a credential could not be supplied')
      return this.refuse(req, err.message, credential(err.code))
    }
    if (creds.fingerprint !== s.fingerprint) await s.replaceChild(creds)
    return { forward: true, supplied: creds.supplied }
  }

  /**
   * A sessionless (2026-07-28) request's credentials: there is no stream to ask on while the
   * request waits, so a missing secret is MCP's URLElicitationRequiredError (-32042) naming
   * the page, for a client that declared URL elicitation; the client retries once the user
   * has set it. Other clients get a tool error (or -32003) naming the page. Requests that do
   * not act with credentials (lists) get whatever is set now.
   */
  async sessionless(
    server: string,
    method: string,
    caller: { principal: Principal; bearer: string | undefined },
    capabilities: Record<string, unknown>,
  ): Promise<
    | { ok: true; credentials: ResolvedCredentials }
    | {
        ok: false
        error: RpcErrorObject | undefined
        toolText: string | undefined
        outcome: AuditOutcome
        /** A secret is missing: the user's values now (processes with others must end). */
        current?: ResolvedCredentials
      }
  > {
    if (!CREDENTIAL_METHODS.has(method))
      return { ok: true, credentials: await this.initial(server, caller.principal, caller.bearer) }
    const refuse = (text: string, outcome: AuditOutcome) =>
      method === 'tools/call'
        ? { ok: false as const, error: undefined, toolText: text, outcome }
        : {
            ok: false as const,
            error: rpcErrorObject(CREDENTIAL_UNAVAILABLE, text),
            toolText: undefined,
            outcome,
          }
    let credentials: ResolvedCredentials
    try {
      credentials = await this.o.resolver.resolve(server, caller)
    } catch (err) {
      if (!(err instanceof CredentialError)) throw err
      this.o.log.info({ server, code: err.code }, 'a credential could not be supplied')
      return refuse(err.message, credential(err.code))
    }
    if (credentials.missing.length === 0) return { ok: true, credentials }
    const elicitation = capabilities.elicitation
    if (isObject(elicitation) && 'url' in elicitation) {
      const e = urlElicitation(this.o.publicUrl, server, credentials.missing, 'retry')
      return {
        ok: false,
        error: rpcErrorObject(URL_ELICITATION_REQUIRED, e.message, { elicitations: [e] }),
        toolText: undefined,
        outcome: credential('missing (URL elicitation required)'),
        current: credentials,
      }
    }
    return {
      ...refuse(
        missingToolText(this.o.publicUrl, server, credentials.missing),
        credential('missing'),
      ),
      current: credentials,
    }
  }

  /**
   * Waits, up to elicitationTimeout, until the user has set every secret `server` needs (the
   * look shared with their other calls waiting on it), then resolves the caller's own
   * credentials; undefined when the time ran out or `signal` aborted (a request cancelled, or
   * of a session closed, no longer waits, nor reads the store).
   */
  private async waitFor(
    server: string,
    caller: { principal: Principal; bearer: string | undefined },
    signal: AbortSignal | undefined,
  ): Promise<ResolvedCredentials | undefined> {
    const deadline = Date.now() + this.o.elicitationTimeout
    for (;;) {
      const set = await this.waits.until(server, caller.principal, {
        timeout: deadline - Date.now(),
        ...(signal ? { signal } : {}),
      })
      if (!set) return undefined
      // Resolved with this request's own token (an exchange trades it), never a neighbour's.
      const latest = await this.o.resolver.resolve(server, caller)
      // Deleted again between the look and now: wait on, within the same deadline.
      if (latest.missing.length === 0) return latest
    }
  }

  /** Asks the user for the missing secrets with a URL elicitation; resolves the client's action. */
  private async elicit(
    s: GatedSession,
    req: GatedRequest,
    missing: MissingSecret[],
  ): Promise<{ action: string; elicitationId: string }> {
    const e = urlElicitation(this.o.publicUrl, s.server, missing)
    const answer = (await s.ask(
      req.id,
      'elicitation/create',
      { ...e },
      this.o.elicitationTimeout,
      req.signal,
    )) as { result?: unknown; error?: unknown } | undefined
    const action =
      answer === undefined
        ? 'unanswered'
        : answer.error !== undefined || !isObject(answer.result)
          ? 'refused by the client'
          : ['accept', 'decline', 'cancel'].includes(answer.result.action as string)
            ? (answer.result.action as string)
            : 'invalid answer'
    return { action, elicitationId: e.elicitationId }
  }

  /** The gate's own answer: a tool error for a tool call, else a JSON-RPC error; the text names the page. */
  private refuse(
    req: GatedRequest,
    text: string,
    outcome: AuditOutcome,
  ): Extract<GateOutcome, { forward: false }> {
    const reply =
      req.method === 'tools/call'
        ? ({
            jsonrpc: '2.0',
            id: req.id,
            result: { content: [{ type: 'text', text }], isError: true },
          } as JSONRPCMessage)
        : rpcError(req.id, CREDENTIAL_UNAVAILABLE, text)
    return { forward: false, reply, outcome }
  }
}

/** The audit outcome of a request the credentials stood in the way of. */
function credential(detail: string): AuditOutcome {
  return { kind: 'credential', detail }
}
