import type { JSONRPCMessage } from '@modelcontextprotocol/server'
import { type Envelope, rpcError } from './jsonrpc.js'

/**
 * A session's server→client requests that came before the client's `notifications/initialized`
 * (MCP lifecycle: the server SHOULD NOT send requests other than pings before it; checklist
 * D28), held until it arrives. Bounded like what the session's streams may queue
 * (`limits.sessionQueueEvents`, `limits.sessionQueueBytes`): past that, a request is refused
 * to the process. One request is always taken, however large (the child's message cap bounds it).
 */
export class EarlyRequests {
  /** Whether the client's `initialized` came: nothing is held from then on. */
  open = false
  private held: JSONRPCMessage[] = []
  private bytes = 0

  constructor(private readonly limits: { events: number; bytes: number }) {}

  /**
   * Whether a message of the process's must wait for the client's `initialized`: a request
   * other than ping, before it. Held (true), or, past the bounds, answered for the process with
   * `refused` (the refusal to send it) and not held.
   */
  wait(
    message: JSONRPCMessage,
    env: Envelope,
  ): { held: true } | { refused: JSONRPCMessage } | undefined {
    if (this.open || env.kind !== 'request' || env.method === 'ping') return undefined
    // Bytes as the streams count them (UTF-8), not UTF-16 units: 3 bytes a CJK character.
    const size = Buffer.byteLength(JSON.stringify(message))
    if (
      this.held.length > 0 &&
      (this.held.length >= this.limits.events || this.bytes + size > this.limits.bytes)
    )
      return {
        refused: rpcError(
          env.id,
          -32603,
          "too many requests before the client's initialized notification",
        ),
      }
    this.held.push(message)
    this.bytes += size
    return { held: true }
  }

  /** The client's `initialized` came: what was held, in order, to go now. */
  release(): JSONRPCMessage[] {
    this.open = true
    const held = this.held
    this.held = []
    this.bytes = 0
    return held
  }
}
