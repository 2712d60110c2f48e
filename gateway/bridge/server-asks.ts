import { randomBytes } from 'node:crypto'
import type { Child } from './child.js'
import type { RequestId } from './jsonrpc.js'

/**
 * A server→client request relayed to the client: which process asked (undefined once it was
 * replaced: an answer goes nowhere), with which id of its own.
 */
export interface ServerAsk {
  child: Child | undefined
  id: RequestId
}

/**
 * A session's server→client requests relayed to its client and not answered yet, by the id the
 * client knows each by, so the client's answer (or cancellation) reaches the process that asked
 * and no other. A session's process is replaced when the user's credentials change
 * (session.ts `replaceChild`); both processes number their own requests (often from 0), so a
 * late answer to the old one's would match a request the new one has pending. A request whose
 * id is still outstanding from a process of the session is relayed under a gateway id instead
 * (the client never sees two requests with one id), and its answer goes back under the
 * process's own. Bounded like the requests a session holds before the client's `initialized`
 * (`limits.sessionQueueEvents`, `limits.sessionQueueBytes`, early-requests.ts): in requests, and
 * in the bytes of the ids held (a process's id may be a string of megabytes, kept until the
 * client answers); past either a request is refused to the process. One is always taken.
 */
export class ServerAsks {
  private readonly byClientId = new Map<RequestId, ServerAsk>()
  /** The id the client knows each request by, per process and its own id. */
  private readonly byChild = new Map<Child, Map<RequestId, RequestId>>()
  /** UTF-8 bytes of the ids held (the process's, and the gateway's it is relayed under). */
  private bytes = 0

  constructor(
    private readonly max: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Requests awaiting the client's answer. */
  get size(): number {
    return this.byClientId.size
  }

  /**
   * `child` asks the client something with `id`: the id to relay it under, or undefined past
   * the bound (the request is to be refused to the process, not relayed).
   */
  relay(child: Child, id: RequestId): RequestId | undefined {
    const clientId = this.byClientId.has(id)
      ? `mcp-edge-server-${randomBytes(9).toString('base64url')}`
      : id
    const size = idBytes(id, clientId)
    if (
      this.byClientId.size > 0 &&
      (this.byClientId.size >= this.max || this.bytes + size > this.maxBytes)
    )
      return undefined
    this.bytes += size
    this.byClientId.set(clientId, { child, id })
    let own = this.byChild.get(child)
    if (own === undefined) this.byChild.set(child, (own = new Map()))
    own.set(id, clientId)
    return clientId
  }

  /**
   * `child` was replaced (its input closed): its requests keep their ids reserved until answered
   * (a late answer must reach no other process) but no longer hold the process, which a session
   * would otherwise keep in memory for each replacement whose request the client left unanswered.
   */
  retire(child: Child): void {
    const own = this.byChild.get(child)
    if (own === undefined) return
    this.byChild.delete(child)
    for (const clientId of own.values()) {
      const ask = this.byClientId.get(clientId)
      if (ask !== undefined) ask.child = undefined
    }
  }

  /** The client answered (or cancelled) the request it knows as `clientId`: who asked it, forgotten. */
  take(clientId: RequestId): ServerAsk | undefined {
    const ask = this.byClientId.get(clientId)
    if (ask === undefined) return undefined
    this.byClientId.delete(clientId)
    this.bytes -= idBytes(ask.id, clientId)
    if (ask.child === undefined) return ask
    const own = this.byChild.get(ask.child)
    own?.delete(ask.id)
    if (own?.size === 0) this.byChild.delete(ask.child)
    return ask
  }

  /** `child` withdrew its own request `id` (its cancellation): the id the client knows it by, forgotten. */
  withdraw(child: Child, id: RequestId): RequestId | undefined {
    const clientId = this.byChild.get(child)?.get(id)
    if (clientId !== undefined) this.take(clientId)
    return clientId
  }

  /** The session ended: nothing is awaited any more. */
  clear(): void {
    this.byClientId.clear()
    this.byChild.clear()
    this.bytes = 0
  }
}

/** What a held request costs: its id's bytes, and the gateway id's when it is relayed under one. */
function idBytes(id: RequestId, clientId: RequestId): number {
  const own = Buffer.byteLength(String(id))
  return clientId === id ? own : own + Buffer.byteLength(String(clientId))
}
