import type { Principal } from '../auth/principal.js'

/** One call waiting: settled once, with whether the secrets are set, or the look's error. */
interface Waiter {
  done(result: boolean | Error): void
}

/** The waiting calls of one user on one server, and the look at the store they share. */
interface Watch {
  server: string
  principal: Principal
  waiters: Set<Waiter>
  /** The next look, while none is under way. */
  timer: NodeJS.Timeout | undefined
}

/**
 * The calls waiting for a user to set a missing secret (after a URL elicitation), and what
 * bounds them: at most `perSubject` per user (iss+sub) at once, over every session and server,
 * and one look at the store per (user, server) every `interval` however many of them wait.
 * Each call holds an HTTP request and an elicitation the user sees; without a bound one client
 * could hold any number, each reading the shared store (Redis) every interval.
 */
export class CredentialWaits {
  /** Places taken, per user. */
  private readonly places = new Map<string, number>()
  private readonly watches = new Map<string, Watch>()

  constructor(
    private readonly o: {
      perSubject: number
      interval: number
      /** Whether the user has now set every secret `server` needs (one read of the store each). */
      look: (server: string, principal: Principal) => Promise<boolean>
    },
  ) {}

  /**
   * A place for one more waiting call of `principal`: a function to give it back (once the
   * call stops waiting, on every path), or undefined when `perSubject` of theirs already wait.
   */
  enter(principal: Principal): (() => void) | undefined {
    const key = JSON.stringify([principal.iss, principal.sub])
    const taken = this.places.get(key) ?? 0
    if (taken >= this.o.perSubject) return undefined
    this.places.set(key, taken + 1)
    let left = false
    return () => {
      if (left) return
      left = true
      const rest = (this.places.get(key) ?? 1) - 1
      if (rest > 0) this.places.set(key, rest)
      else this.places.delete(key)
    }
  }

  /**
   * Resolves true once the shared look sees every secret of `server` set, false after `timeout`
   * ms or once `signal` aborts (the call no longer waits, nor keeps a look going); rejects with
   * the store's error. The first call of a (user, server) looks at once, later ones share the
   * next look.
   */
  until(
    server: string,
    principal: Principal,
    o: { timeout: number; signal?: AbortSignal },
  ): Promise<boolean> {
    if (o.signal?.aborted || o.timeout <= 0) return Promise.resolve(false)
    const key = JSON.stringify([principal.iss, principal.sub, server])
    let watch = this.watches.get(key)
    const first = watch === undefined
    if (watch === undefined) {
      watch = { server, principal, waiters: new Set(), timer: undefined }
      this.watches.set(key, watch)
    }
    const w = watch
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => leave(false), o.timeout)
      const aborted = () => leave(false)
      o.signal?.addEventListener('abort', aborted, { once: true })
      const waiter: Waiter = {
        done(result) {
          clearTimeout(timer)
          o.signal?.removeEventListener('abort', aborted)
          if (result instanceof Error) reject(result)
          else resolve(result)
        },
      }
      const leave = (result: boolean) => {
        if (!w.waiters.delete(waiter)) return
        waiter.done(result)
        // The last one gone: no further look (one under way ends the watch when it returns).
        if (w.waiters.size === 0 && w.timer !== undefined) {
          clearTimeout(w.timer)
          w.timer = undefined
          this.forget(key, w)
        }
      }
      w.waiters.add(waiter)
      if (first) void this.look(key, w)
    })
  }

  /** One look for every call waiting on `w`; the next is due an interval later while any waits. */
  private async look(key: string, w: Watch): Promise<void> {
    w.timer = undefined
    let result: boolean | Error
    try {
      result = await this.o.look(w.server, w.principal)
    } catch (err) {
      result = err instanceof Error ? err : new Error(String(err))
    }
    if (result === false && w.waiters.size > 0) {
      w.timer = setTimeout(() => void this.look(key, w), this.o.interval)
      return
    }
    // Set, failed, or nobody waits any more: this watch is over, and every waiter learns it.
    this.forget(key, w)
    const waiters = [...w.waiters]
    w.waiters.clear()
    for (const waiter of waiters) waiter.done(result)
  }

  private forget(key: string, w: Watch): void {
    if (this.watches.get(key) === w) this.watches.delete(key)
  }
}
