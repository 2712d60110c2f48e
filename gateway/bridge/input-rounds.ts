import { randomBytes } from 'node:crypto'
import {
  createRequestStateCodec,
  type RequestStateCodec,
  type ServerContext,
} from '@modelcontextprotocol/server'
import type { ParkedRounds, Scope, SubjectBounds } from './bounds.js'
import type { BackendCall } from './modern-call.js'

/** What a `requestState` carries: which waiting request, and which of its rounds. */
interface RoundState {
  call: string
  round: number
}

/** Who may continue a waiting request: the same principal, server, method and target. */
export interface RoundBinding {
  owner: string
  server: string
  method: string
  name: string | undefined
}

/** Why a `requestState` cannot continue a request. */
export type ClaimRefusal = 'invalid' | 'gone'

interface Parked {
  call: BackendCall
  owner: string
  server: string
  round: number
  timer: NodeJS.Timeout
  onExpire: () => void
}

/**
 * Requests waiting between multi-round-trip rounds (2026-07-28 `input_required`), and the
 * `requestState` handles that continue them. A handle is opaque, HMAC-sealed by the SDK's
 * codec with a key that never leaves this process, bound to the principal, server, method and
 * target (so another user's, or another tool's, retry is refused), expires, and names one
 * round: an older round's handle is refused once a newer one was issued.
 */
export class InputRounds implements ParkedRounds {
  private readonly codec: RequestStateCodec<RoundState>
  private readonly parked = new Map<string, Parked>()

  /**
   * `ttlMs`: how long a request waits for answers; `perSubject`: waiting requests per principal
   * at most; `bounds`: the limits whose room a waiting request may be ended to make.
   */
  constructor(private readonly o: { ttlMs: number; perSubject: number; bounds?: SubjectBounds }) {
    o.bounds?.join({ rounds: this })
    this.codec = createRequestStateCodec<RoundState>({
      key: randomBytes(32),
      ttlSeconds: Math.ceil(o.ttlMs / 1000),
      // The codec binds through a server context; ours carries the binding string only.
      bind: (ctx) => (ctx as unknown as { binding: string }).binding,
    })
  }

  /** Requests waiting for answers. */
  get size(): number {
    return this.parked.size
  }

  /**
   * Keeps `call` waiting for the client's answers and returns the handle that continues it.
   * `onExpire` runs if no answer comes within the TTL (the caller cancels and frees the lane).
   */
  async park(call: BackendCall, binding: RoundBinding, onExpire: () => void): Promise<string> {
    // Never waiting already: a request leaves waiting when claimed, before its next round.
    const key = callKey(call)
    const round = (rounds.get(call) ?? 0) + 1
    rounds.set(call, round)
    // A principal's abandoned rounds each hold a process: past the bound, the oldest goes.
    const mine = [...this.parked.entries()].filter(([, p]) => p.owner === binding.owner)
    for (const [k] of mine.slice(0, Math.max(0, mine.length - this.o.perSubject + 1)))
      this.expire(k)
    const timer = setTimeout(() => this.expire(key), this.o.ttlMs).unref()
    this.parked.set(key, {
      call,
      owner: binding.owner,
      server: binding.server,
      round,
      timer,
      onExpire,
    })
    if (call.lane.user === call) call.lane.parked = true
    return this.codec.mint({ call: key, round }, context(binding))
  }

  /** The waiting request a handle continues, taken out of waiting; or why not. */
  async claim(
    state: string,
    binding: RoundBinding,
  ): Promise<{ call: BackendCall } | { refused: ClaimRefusal }> {
    let payload: RoundState
    try {
      payload = await this.codec.verify(state, context(binding))
    } catch {
      return { refused: 'invalid' }
    }
    const parked = this.parked.get(payload.call)
    if (parked === undefined || parked.round !== payload.round) return { refused: 'gone' }
    clearTimeout(parked.timer)
    this.parked.delete(payload.call)
    // A request that ended while waiting (its server answered anyway, or its process died)
    // is still handed back: the retry gets how it ended.
    if (parked.call.lane.user === parked.call) parked.call.lane.parked = false
    return { call: parked.call }
  }

  /**
   * Ends the oldest waiting request in `scope` to make room at a limit on processes: it is
   * cancelled exactly as if its TTL had passed, so its requestState answers as expired.
   */
  endOldest(scope: Scope): boolean {
    // Map order is parking order: a request re-parked after a round moves to the end.
    for (const [key, p] of this.parked) {
      if (!scope(p)) continue
      this.expire(key)
      return true
    }
    return false
  }

  private expire(key: string): void {
    const p = this.parked.get(key)
    if (p === undefined) return
    clearTimeout(p.timer)
    this.parked.delete(key)
    p.onExpire()
  }

  /** Cancels every waiting request (shutdown). */
  close(): void {
    for (const p of this.parked.values()) {
      clearTimeout(p.timer)
      p.onExpire()
    }
    this.parked.clear()
  }
}

const keys = new WeakMap<BackendCall, string>()
/** Rounds issued per request, so a handle of an earlier round never continues a later one. */
const rounds = new WeakMap<BackendCall, number>()

/** A random handle per waiting request: nothing about the process or lane is guessable from it. */
function callKey(call: BackendCall): string {
  let key = keys.get(call)
  if (key === undefined) {
    key = randomBytes(12).toString('base64url')
    keys.set(call, key)
  }
  return key
}

function context(b: RoundBinding): ServerContext {
  return {
    binding: `${b.owner}\n${b.server}\n${b.method}\n${b.name ?? ''}`,
  } as unknown as ServerContext
}
