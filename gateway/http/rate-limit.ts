import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { BurstyRateLimiter, RateLimiterRes } from 'rate-limiter-flexible'
import type { Principal } from '../auth/principal.js'
import type { Metrics } from '../observability/metrics.js'
import { conditionsHold, grantsOf, type Grants } from '../policy/evaluate.js'
import type { Policy } from '../policy/policy.js'
import { ruleCounts, type Counted, type PerKey, type RateRule } from '../policy/rate-limits.js'
import type { RateCounter, Store } from '../store/store.js'
import { within } from '../timeout.js'

/** A request a rate limit refused: which rule, and how long until it would be counted again. */
export interface RateLimited {
  effect: 'limited'
  rule: RateRule
  /** Whole seconds until the rule's window lets the request through (at least 1). */
  retryAfter: number
  /** `store`: the counts could not be reached and `onStoreError` is `closed`. */
  why: 'limit' | 'store'
  /** The refused request was `initialize`: no session exists yet, so HTTP 429 answers it. */
  opensSession: boolean
  /** Answered as a `tools/call` error result rather than a JSON-RPC error. */
  asToolResult: boolean
  reason: string
  source: RateRule['source']
}

/**
 * Rate limits at run time: for a request, every rule of the policy in force that covers it
 * (server, method, tool, caller conditions) counts it in the store, under a key made of what the
 * rule counts `per` (hashed, so no subject or client id is written to the store as it is). The
 * first rule out of points refuses it. Every rule met counts the request, even when a later one
 * refuses it. Counters are kept per rule signature (`RateRule.key`), so a reload that leaves a
 * rule unchanged keeps its counts and an edited one starts afresh.
 */
export class RateLimits {
  private counters = new Map<string, RateCounter>()
  private builtFor: Policy | undefined
  private store: Store | undefined
  /** Whether the last check reached the store (readiness says when it did not). */
  private storeDown = false
  /** A first connection to the store failed (or took longer than it may). */
  private connectFailed = false

  constructor(
    private readonly o: {
      /** The store, created on first need (it may fail, and is asked again next time). */
      store: () => Promise<Store>
      onStoreError: 'closed' | 'open'
      /** A count the store has not answered in this long counts as unreachable. */
      timeoutMs: number
      /** The store's first connection, made on the first count, may take this long (and then the count). */
      connectTimeoutMs: number
      metrics: Metrics
      log: Logger
    },
  ) {}

  /**
   * Counts a request against the policy's rate limits. Resolves undefined when it may go on,
   * else the refusal.
   */
  async check(
    policy: Policy,
    principal: Principal,
    request: Counted,
  ): Promise<RateLimited | undefined> {
    const rules = policy.rateLimits
    if (rules.length === 0) return undefined
    if (this.builtFor !== policy) this.rebuild(policy)
    let grants: Grants | undefined
    for (const rule of rules) {
      if (!ruleCounts(rule, request)) continue
      if (rule.when) {
        grants ??= grantsOf(policy, principal)
        if (!conditionsHold(rule.when, principal, grants)) continue
      }
      const refused = await this.count(rule, keyOf(rule, principal, request), request)
      if (refused) return refused
    }
    return undefined
  }

  /** A sentence for readiness when the store could not be reached at the last check. */
  problem(): { problem?: string; warning?: string } {
    if (!this.storeDown) return {}
    const text = `rate limits: the store could not be reached at the last check; requests under a rate limit are ${this.o.onStoreError === 'closed' ? 'refused' : 'let through uncounted'} (rateLimits.onStoreError: ${this.o.onStoreError})`
    return this.o.onStoreError === 'closed' ? { problem: text } : { warning: text }
  }

  private async count(
    rule: RateRule,
    key: string,
    request: Counted,
  ): Promise<RateLimited | undefined> {
    const limited = (retryAfterMs: number, why: RateLimited['why']): RateLimited => {
      this.o.metrics.rateLimited.inc({ server: request.server, rule: rule.id })
      const retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000))
      return {
        effect: 'limited',
        rule,
        retryAfter,
        why,
        opensSession: request.method === 'initialize',
        asToolResult: rule.refuseAs === 'toolResult' && request.method === 'tools/call',
        reason:
          why === 'limit'
            ? `rate limit ${rule.id}: ${rule.limit} per ${rule.intervalSec} s`
            : `rate limit ${rule.id}: the counts cannot be reached`,
        source: rule.source,
      }
    }
    try {
      // The first count connects the store: a connection has its own time, not a command's.
      // Once a connection has failed, later requests wait no longer than a command (each a
      // new try), so a gateway started while the store is away does not hold every request.
      const counter = await within(
        this.counterOf(rule),
        this.store === undefined && !this.connectFailed
          ? this.o.connectTimeoutMs
          : this.o.timeoutMs,
      )
      await within(counter.consume(key), this.o.timeoutMs)
      this.storeDown = false
      return undefined
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        this.storeDown = false
        return limited(err.msBeforeNext, 'limit')
      }
      this.storeDown = true
      if (this.store === undefined) this.connectFailed = true
      this.o.metrics.rateLimitStoreErrors.inc({ handling: this.o.onStoreError })
      this.o.log.warn(
        { rule: rule.id, err: { message: (err as Error).message }, handling: this.o.onStoreError },
        'rate limits: the store did not answer',
      )
      return this.o.onStoreError === 'closed' ? limited(1000, 'store') : undefined
    }
  }

  /** Counters of the policy in force only: those of rules a reload removed or edited go. */
  private rebuild(policy: Policy): void {
    const keep = new Set(policy.rateLimits.map((r) => r.key))
    for (const key of this.counters.keys()) if (!keep.has(key)) this.counters.delete(key)
    this.builtFor = policy
  }

  /** A rule's counter, made on its first count; unchanged rules keep theirs across reloads. */
  private async counterOf(rule: RateRule): Promise<RateCounter> {
    const known = this.counters.get(rule.key)
    if (known) return known
    this.store ??= await this.o.store()
    const prefix = `rl:${hash(rule.key)}`
    const main = this.store.counter(prefix, rule.limit, rule.intervalSec)
    const counter =
      rule.burst === 0
        ? main
        : new BurstyRateLimiter(
            main as never,
            this.store.counter(`${prefix}:burst`, rule.burst, rule.burstIntervalSec) as never,
          )
    this.counters.set(rule.key, counter)
    return counter
  }
}

/** The key one request is counted under for a rule: what the rule counts `per`, hashed. */
function keyOf(rule: RateRule, p: Principal, r: Counted): string {
  const part: Record<PerKey, () => unknown> = {
    subject: () => [p.iss, p.sub],
    client: () => p.clientId ?? '',
    server: () => r.server,
    tool: () => r.name ?? r.method,
  }
  const parts = rule.per.map((per) => part[per]())
  return hash(JSON.stringify(parts))
}

const hash = (s: string) => createHash('sha256').update(s).digest('base64url')
