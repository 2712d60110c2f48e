import type { Child } from '../../gateway/bridge/child.js'

let ids = 1_000_000

/**
 * Calls tool `name` on a spawned `child` directly (a probe that needs no handshake) and gives
 * back the text of its answer's first content item.
 */
export function toolText(child: Child, name: string, args: Record<string, unknown> = {}) {
  const id = ids++
  return new Promise<string>((resolve) => {
    child.onmessage = (m) => {
      const r = m as { id?: number; result?: { content: { text: string }[] } }
      if (r.id === id) resolve(r.result!.content[0]!.text)
    }
    void child.send({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name, arguments: args },
    } as never)
  })
}
