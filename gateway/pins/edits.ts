import { isMap, type Document } from 'yaml'
import type { PendingPin } from './file.js'

/**
 * The changes the gateway and the CLI make to a pin file's YAML document, each saying whether it
 * changed anything (so an edit that changes nothing writes nothing). Names are set as YAML keys
 * by the document, which quotes what needs quoting.
 */

/** Pins `hash` for `tool` and drops its pending entry. */
export function pinTool(doc: Document, server: string, tool: string, hash: string): boolean {
  const same = doc.getIn(['servers', server, 'tools', tool]) === hash
  const pending = doc.hasIn(['servers', server, 'pending', tool])
  if (same && !pending) return false
  mapAt(doc, ['servers', server, 'tools']).set(tool, hash)
  if (pending) removeAt(doc, server, 'pending', tool)
  return true
}

/** Records a definition waiting for approval (replacing an older pending one). */
export function addPending(doc: Document, server: string, tool: string, p: PendingPin): boolean {
  if (doc.getIn(['servers', server, 'pending', tool, 'hash']) === p.hash) return false
  mapAt(doc, ['servers', server, 'pending']).set(
    tool,
    doc.createNode(p.previous === undefined ? { hash: p.hash, seen: p.seen } : p),
  )
  return true
}

/**
 * Approves the pending definition of `tool` (or, with `hash`, that definition whatever is
 * pending): its hash becomes the pinned one. False when there is nothing to approve.
 */
export function approveTool(doc: Document, server: string, tool: string, hash?: string): boolean {
  const pending = doc.getIn(['servers', server, 'pending', tool, 'hash'])
  const approved = hash ?? (typeof pending === 'string' ? pending : undefined)
  if (approved === undefined) return false
  return pinTool(doc, server, tool, approved)
}

/** Every server and tool with a pending entry in the document. */
export function pendingIn(doc: Document): { server: string; tool: string }[] {
  const servers = doc.get('servers', true)
  if (!isMap(servers)) return []
  const out: { server: string; tool: string }[] = []
  for (const s of servers.items) {
    const server = String((s.key as { value?: unknown } | null)?.value ?? s.key)
    const pending = doc.getIn(['servers', server, 'pending'], true)
    if (!isMap(pending)) continue
    for (const t of pending.items)
      out.push({ server, tool: String((t.key as { value?: unknown } | null)?.value ?? t.key) })
  }
  return out
}

/** The mapping at `path`, made (replacing an empty value) where there is none. */
function mapAt(doc: Document, path: string[]) {
  for (let n = 1; n <= path.length; n++) {
    if (!isMap(doc.getIn(path.slice(0, n), true))) doc.setIn(path.slice(0, n), doc.createNode({}))
  }
  const map = doc.getIn(path, true)
  if (!isMap(map)) throw new Error(`no mapping at ${path.join('.')}`)
  return map
}

function removeAt(doc: Document, server: string, section: string, tool: string): void {
  const map = doc.getIn(['servers', server, section], true)
  if (isMap(map)) map.delete(tool)
}
