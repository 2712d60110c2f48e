// A sessionless request's "the client went away" signal. An AbortController costs more than
// everything else a request allocates on its way to the process (Node builds a full
// EventTarget for each signal, and each listener is an event-target registration), and the
// engine only ever asks whether the client is gone and to be told once when it goes.

/** What the engine reads of a client's going: an AbortSignal has this shape too. */
export interface GoneSignal {
  readonly aborted: boolean
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}

/**
 * A one-shot signal: `abort()` calls each listener once, in the order added, and later
 * listeners are not called (`aborted` says so). Listeners are always once.
 */
export class ClientGone implements GoneSignal {
  private listeners: (() => void)[] | undefined
  private gone = false

  get aborted(): boolean {
    return this.gone
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.gone) return
    if (this.listeners === undefined) this.listeners = [listener]
    else this.listeners.push(listener)
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.listeners?.indexOf(listener) ?? -1
    if (at >= 0) this.listeners!.splice(at, 1)
  }

  /** The client is gone: every listener is told, once. */
  abort(): void {
    if (this.gone) return
    this.gone = true
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners !== undefined) for (const listener of listeners) listener()
  }
}
