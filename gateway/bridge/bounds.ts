import type { Logger } from 'pino'
import type { GatewayConfig } from '../config/schema.js'
import { BridgeError } from './errors.js'

/**
 * One of a subject's holds on a server: a session, or a lane (the process of a sessionless
 * request: running, idle, or parked on an input_required round). Each is a process, or a view
 * of a shared one. An endpoint's session is a hold too, on no server (`endpointHold`).
 */
export interface Hold {
  /** The server; an endpoint session's is `endpointHold`'s, which no server is named. */
  readonly server: string
  /** The subject (`ownerKey`: issuer and sub). */
  readonly owner: string
}

/**
 * Which holds a bound counts. With `where` (see `scopeOf`) the test is exactly "on that server,
 * of that owner" (either left out: any), so a holder may count from an index instead of testing
 * every hold.
 */
export type Scope = ((h: Hold) => boolean) & { readonly where?: Where }

/** The server and owner a scope is limited to; undefined: any. */
export interface Where {
  readonly server?: string
  readonly owner?: string
}

/**
 * What an endpoint session of `endpoint` holds as its `server`: no server is named so (server
 * names have no space), so it counts toward its subject's and the gateway's bounds, never a
 * server's. Its calls run on its user's lanes, which count on their own.
 */
export function endpointHold(endpoint: string): string {
  return `endpoint ${endpoint}`
}

/** The holds on `where.server` of `where.owner` (every hold, with neither), as a Scope. */
export function scopeOf(where: Where): Scope {
  const { server, owner } = where
  const test = (h: Hold) =>
    (server === undefined || h.server === server) && (owner === undefined || h.owner === owner)
  return Object.assign(test, { where })
}

/** A kind of hold the bounds count and may end to make room: sessions, lanes. */
export interface Holders {
  /**
   * Holds in `scope`: live, being opened, or ended with their process not gone yet (exited,
   * its stdout read, the stop ladder on its group over: ending-holds.ts).
   */
  count(scope: Scope): number
  /**
   * Ends the least recently used idle hold in `scope`; resolves true once one was ended and
   * its process is gone.
   */
  reclaimIdle(scope: Scope, reason: string): Promise<boolean>
  /** When each hold in `scope` being ended is gone (none: none is). */
  ending(scope: Scope): Promise<void>[]
  /**
   * When the least recently used idle hold in `scope` was last active (epoch ms; undefined:
   * none is idle): at a bound, the idlest session of any kind is ended first.
   */
  idleSince?(scope: Scope): number | undefined
  /** The owners of the holds in `scope` (endpoint sessions: whose calls run on their lanes). */
  owners?(scope: Scope): Iterable<string>
}

/** The kinds of holds the bounds count: server sessions, endpoint sessions, lanes, rounds. */
interface Kinds {
  sessions?: Holders
  endpoints?: Holders
  lanes?: Holders
  rounds?: ParkedRounds
}

/** Rounds waiting for their client's answers (input_required), each holding a lane. */
export interface ParkedRounds {
  /**
   * Ends the oldest waiting round in `scope` (its requestState answers as expired from then
   * on, and its lane is released); true when one was ended.
   */
  endOldest(scope: Scope): boolean
}

/** One limit on holds: whose it counts, how many, and the refusal once nothing makes room. */
export interface Bound {
  scope: Scope
  max: number
  refuse(): BridgeError
}

/**
 * The limits on what subjects hold, for sessions and lanes together: a server's
 * `maxSessionsPerSubject` bounds one subject's sessions and lanes on it (every client id,
 * identity and credential alike), `limits.maxSessionsPerSubject` one subject's on every server,
 * `maxSessions` a server's, `limits.maxSessions` the gateway's; an endpoint's sessions count in
 * the two `limits` ones (`endpointHold`). At a bound, room is made before anything is refused:
 * an idle lane (it holds no client state), else the least recently used idle session (of a
 * server or an endpoint), else the requesting subject's oldest parked round, never another
 * subject's.
 */
export class SubjectBounds {
  private readonly holders: Kinds = {}

  constructor(private readonly o: { config: GatewayConfig; log: Logger }) {}

  /**
   * A holder counts under these bounds from its construction on (each is given the bounds in
   * its constructor and joins): nothing is patched in from outside afterwards.
   * @throws Error when a kind of holder joins twice (two registries would count apart)
   */
  join(holder: Kinds): void {
    for (const [kind, h] of Object.entries(holder) as [keyof typeof holder, never][]) {
      if (this.holders[kind] !== undefined) throw new Error(`the bounds already count ${kind}`)
      this.holders[kind] = h
    }
  }

  /** Ends the longest-unused idle lane in `scope` to make room (a pool at `pool.max`); true when one ended. */
  async reclaimIdleLane(scope: Scope, reason: string): Promise<boolean> {
    return (await this.holders.lanes?.reclaimIdle(scope, reason)) ?? false
  }

  /**
   * Holds in `scope`: server sessions, and per owner the more of their endpoint sessions and
   * their lanes. An endpoint session's calls run on its user's lanes: counted apart, one session
   * and the lane its call needs were two, and a user one below their bound (or at a bound of 1)
   * had an endpoint whose every list was empty and every call refused. So a user holds at most
   * the bound's processes and at most the bound's sessions. `adding`: with one more hold of that
   * kind and owner (in `scope`), as `full` asks.
   */
  count(scope: Scope, adding?: { kind: 'session' | 'endpoint' | 'lane'; owner: string }): number {
    const { sessions, endpoints, lanes } = this.holders
    const e = endpoints?.count(scope) ?? 0
    const l = lanes?.count(scope) ?? 0
    let n = (sessions?.count(scope) ?? 0) + e + l + (adding === undefined ? 0 : 1)
    const overlap = new Set(e > 0 ? (endpoints?.owners?.(scope) ?? []) : [])
    if (adding !== undefined && adding.kind !== 'session') overlap.add(adding.owner)
    for (const owner of overlap) {
      const mine: Scope =
        scope.where !== undefined
          ? scopeOf({ ...scope.where, owner })
          : (h) => h.owner === owner && scope(h)
      const more = (kind: string) => (adding?.kind === kind && adding.owner === owner ? 1 : 0)
      n -= Math.min(
        (e > 0 ? (endpoints?.count(mine) ?? 0) : 0) + more('endpoint'),
        (l > 0 ? (lanes?.count(mine) ?? 0) : 0) + more('lane'),
      )
    }
    return n
  }

  /**
   * Returns once `owner` may open one more hold on `server` (an `endpointHold` for an endpoint
   * session) under every bound, running `take` synchronously after the check that found room
   * (an await in between would let concurrent opens pass the same check). At a bound, room is
   * made (`makeRoom`); with nothing ending nor to end, the bound's refusal.
   * @throws BridgeError `too_many_sessions` (503), `subject_session_limit` (429)
   */
  async room(server: string, owner: string, take?: () => void): Promise<void> {
    for (;;) {
      const kind = server.startsWith(endpointHold('')) ? 'endpoint' : 'session'
      const full = this.full(server, owner, kind)
      if (full === undefined) return take?.()
      if (!(await this.makeRoom(full, owner, 'session limit'))) throw full.refuse()
    }
  }

  /**
   * The narrowest bound one more hold of `owner` on `server` would pass, or undefined when
   * there is room. Synchronous: a caller counts its new hold in the same turn, so concurrent
   * requests cannot all pass.
   */
  full(
    server: string,
    owner: string,
    kind: 'session' | 'endpoint' | 'lane' = 'session',
  ): Bound | undefined {
    const config = this.o.config.servers[server]
    const limits = this.o.config.limits
    const bounds: Bound[] = [
      {
        scope: scopeOf({ server, owner }),
        max: config?.maxSessionsPerSubject ?? Infinity,
        refuse: () =>
          BridgeError.limited(
            'subject_session_limit',
            `you have ${config?.maxSessionsPerSubject} sessions in use on ${server} (sessionless requests count as sessions), the most allowed; end one (DELETE) or retry later`,
            `servers.${server}.maxSessionsPerSubject`,
          ),
      },
      {
        scope: scopeOf({ owner }),
        max: limits.maxSessionsPerSubject,
        refuse: () =>
          BridgeError.limited(
            'subject_session_limit',
            `you have ${limits.maxSessionsPerSubject} sessions in use on this gateway (sessionless requests count as sessions), the most allowed; end one (DELETE) or retry later`,
            'limits.maxSessionsPerSubject',
          ),
      },
      {
        scope: scopeOf({ server }),
        max: config?.maxSessions ?? Infinity,
        refuse: () =>
          BridgeError.limited(
            'too_many_sessions',
            `server ${server} is at its session limit; retry later`,
            `servers.${server}.maxSessions`,
          ),
      },
      {
        scope: scopeOf({}),
        max: limits.maxSessions,
        refuse: () =>
          BridgeError.limited(
            'too_many_sessions',
            'the gateway is at its session limit; retry later',
            'limits.maxSessions',
          ),
      },
    ]
    return bounds.find((b) => this.count(b.scope, { kind, owner }) > b.max)
  }

  /**
   * Makes room under `bound` for one more hold of `owner`: waits for the first of the holds in
   * its scope that are ending already to be gone (sessions and lanes whose process is not gone yet: a few milliseconds
   * after a DELETE, up to three stopGraces for a process whose group outlives it), else ends an
   * idle lane in its scope, else the least recently used idle session, else `owner`'s oldest
   * round waiting for input in its scope. Resolves true when something ended (the caller
   * checks the bounds again: with nothing left to end, it refuses).
   */
  async makeRoom(bound: Bound, owner: string, reason: string): Promise<boolean> {
    const { sessions, endpoints, lanes, rounds } = this.holders
    const ending = [lanes, sessions, endpoints].flatMap((h) => h?.ending(bound.scope) ?? [])
    if (ending.length > 0) {
      this.o.log.debug(
        { reason, ending: ending.length },
        'at a bound: waiting for ended sessions or lanes to have their processes gone',
      )
      // The first one gone makes room: the caller looks again (waiting for all of them held an
      // open back as long as the slowest ladder in the scope, another user's too, at a gateway bound).
      await Promise.race(ending)
      return true
    }
    if (await lanes?.reclaimIdle(bound.scope, reason)) return true
    // The least recently used idle session, of a server or of an endpoint.
    const idle = [sessions, endpoints]
      .map((h) => ({ h, since: h?.idleSince?.(bound.scope) ?? Infinity }))
      .sort((a, b) => a.since - b.since)
    for (const { h } of idle) if (await h?.reclaimIdle(bound.scope, reason)) return true
    const mine: Scope = (h) => h.owner === owner && bound.scope(h)
    if (rounds?.endOldest(mine)) {
      this.o.log.info({ reason }, 'oldest round waiting for input ended to make room')
      return true
    }
    return false
  }
}
