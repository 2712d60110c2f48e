// The tool and prompt names each server listed: the only ones the operation metric is
// labelled with, so a name a client makes up opens no series of its own.

/**
 * Most names kept per server and kind: the OpenTelemetry SDK's default cardinality limit per
 * instrument, past which every new series goes to its overflow series anyway.
 */
export const MAX_LISTED_NAMES = 2000

type Kind = 'tools' | 'prompts'

/** The list methods whose results name what a later call may name (`tools/call`, `prompts/get`). */
const LISTS: Readonly<Record<string, Kind>> = { 'tools/list': 'tools', 'prompts/list': 'prompts' }

/**
 * Names a server's processes listed, by server and kind. A server that answers a call of a
 * tool it never listed with an `isError` result (the Python SDKs do) answers without a
 * protocol error, so the reply alone cannot tell a real tool from a made-up one.
 */
export class ListedNames {
  private readonly names = new Map<string, Set<string>>()

  /** Takes the names of a `tools/list` or `prompts/list` result from `server`; any other is ignored. */
  record(server: string, method: string, result: unknown): void {
    const kind = LISTS[method]
    if (kind === undefined || typeof result !== 'object' || result === null) return
    const items = (result as Record<string, unknown>)[kind]
    if (!Array.isArray(items)) return
    const key = `${kind} ${server}`
    let names = this.names.get(key)
    if (names === undefined) this.names.set(key, (names = new Set()))
    for (const item of items) {
      if (names.size >= MAX_LISTED_NAMES) return
      const name = (item as { name?: unknown } | null)?.name
      if (typeof name === 'string') names.add(name)
    }
  }

  /** Whether `server` listed `name` among its tools (or prompts). */
  has(server: string, kind: Kind, name: string): boolean {
    return this.names.get(`${kind} ${server}`)?.has(name) === true
  }
}
