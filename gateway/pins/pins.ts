import type { Logger } from 'pino'
import type { Principal } from '../auth/principal.js'
import { ConfigError, formatProblem } from '../config/errors.js'
import { addPending, pinTool } from './edits.js'
import { loadPins, NO_PINS, pinnableName, type PendingPin, type PinFile } from './file.js'
import { toolHash } from './hash.js'
import { editPins } from './write.js'

/** Why a tool of a pinned server may not be used now. */
export type PinRefusal = {
  /** `changed`: its definition differs from the approved one; `unapproved`: no one approved any. */
  kind: 'changed' | 'unapproved'
  server: string
  tool: string
}

/** What `tools/call` decisions ask of the pins (http/decide.ts). */
export interface PinGate {
  /** Undefined when the tool may be called; else why not. */
  refusal(server: string, tool: string): PinRefusal | undefined
}

/** A change waiting for an operator, as `/readyz` and `mcp-edge tools pins` show it. */
export interface PendingTool {
  server: string
  tool: string
  hash: string
  previous: string | undefined
  since: string
  /** `file`: written in the pin file; `memory`: held by this gateway only (learn off, or unwritable). */
  where: 'file' | 'memory'
}

/** Where the pins report what they see (counted and audited by the gateway). */
export interface PinEvents {
  /** A definition no one approved was seen for the first time (once per server, tool and hash). */
  pending(p: PendingTool, principal: Principal): void
  /** A tool never seen was pinned on first sight (learn on). */
  learned(server: string, tool: string): void
}

export interface ToolPinsOptions {
  file: string
  learn: boolean
  maxFileBytes: number
  maxPending: number
  /** The servers with `pinTools: true`; every other server's tools pass untouched. */
  servers: ReadonlySet<string>
  now: () => number
  log: Logger
  events: PinEvents
}

/**
 * The gateway's tool pins: the last good pin file, plus pending changes it could not write.
 * `filterList` looks at every `tools/list` result of a pinned server before anything else does:
 * a tool whose definition hashes to its pinned hash, with nothing pending, passes; a tool never
 * seen is pinned on first sight when learning; anything else is recorded as pending and left
 * out. `refusal` decides calls from the same state, so a hidden tool is also uncallable.
 */
export class ToolPins implements PinGate {
  private pins: PinFile = NO_PINS
  /** Pending changes not in the file, per server (learn off, or the write failed). */
  private readonly held = new Map<string, Map<string, PendingPin>>()
  /** The hash last reported per server and tool: each new definition is logged and audited once. */
  private readonly reported = new Map<string, string>()
  private readonly full = new Set<string>()
  /** Servers already logged for listing a tool the pin file cannot name. */
  private readonly nameless = new Set<string>()
  /** The last write failed: the next failure is not logged again (a hostile server lists often). */
  private writeFailing = false

  constructor(private readonly o: ToolPinsOptions) {}

  /** Servers whose tools are pinned. */
  get servers(): ReadonlySet<string> {
    return this.o.servers
  }

  /**
   * Loads the pin file (start-up and reloads). A file that does not load leaves the pins as
   * they were.
   * @throws ConfigError
   */
  load(): void {
    this.replace(loadPins(this.o.file, this.o.maxFileBytes))
  }

  /** Reloads the file; the problems when it does not load (the last good pins stay). */
  reload(): { ok: true } | { ok: false; problems: string[] } {
    try {
      this.load()
      return { ok: true }
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return { ok: false, problems: err.problems.map(formatProblem) }
    }
  }

  /**
   * A `tools/list` result of `server` with the tools that may not be shown left out (and new
   * ones learned or recorded as pending). Other results, and servers not pinned, pass as they are.
   */
  filterList(server: string, method: string, result: unknown, principal: Principal): unknown {
    if (method !== 'tools/list' || !this.o.servers.has(server)) return result
    if (typeof result !== 'object' || result === null) return result
    const tools = (result as Record<string, unknown>).tools
    if (!Array.isArray(tools)) return result
    const learn: { tool: string; hash: string }[] = []
    const pending: PendingTool[] = []
    const hashed = new Map<unknown, { name: string; hash: string }>()
    const since = new Date(this.o.now()).toISOString()
    for (const item of tools) {
      const name = (item as Record<string, unknown> | null)?.name
      // A nameless item is no tool anyone could call; the policy filter drops it too.
      if (typeof name !== 'string') continue
      // A name the pin file cannot hold (empty) is never pinned: refused alone, or every write
      // of the server's pins would fail and all its new tools stay hidden.
      if (!pinnableName(name)) {
        this.refuseName(server, name)
        continue
      }
      let hash: string
      try {
        hash = toolHash(item)
      } catch {
        // A definition that cannot be serialized (nesting too deep) is never shown.
        continue
      }
      hashed.set(item, { name, hash })
      const verdict = this.classify(server, name, hash)
      if (verdict === 'new' && this.o.learn) learn.push({ tool: name, hash })
      else if (verdict === 'new' || verdict === 'changed') {
        const previous = this.pins.servers.get(server)?.tools.get(name)
        pending.push({ server, tool: name, hash, previous, since, where: 'file' })
      }
    }
    if (learn.length > 0 || pending.length > 0) this.record(server, learn, pending, principal)
    // Decided again on the pins as they are now: a tool learned is shown, one whose write
    // failed is not, and of two items with one name (a server listing a tool twice, two
    // definitions) at most the pinned one is, and neither once a change is pending.
    return {
      ...result,
      tools: tools.filter((item) => {
        const h = hashed.get(item)
        return h !== undefined && this.classify(server, h.name, h.hash) === 'pinned'
      }),
    }
  }

  /** Why `tool` of `server` may not be called, from the pins alone (not from what was listed). */
  refusal(server: string, tool: string): PinRefusal | undefined {
    if (!this.o.servers.has(server)) return undefined
    // More changes than maxPending: some are not held, so which tools changed is not known.
    // Closed until an operator deals with what is pending: every call of the server is refused.
    if (this.full.has(server)) return { kind: 'changed', server, tool }
    const pending = this.pendingOf(server, tool)
    const pinned = this.pins.servers.get(server)?.tools.get(tool)
    if (pending === undefined && pinned !== undefined) return undefined
    return { kind: pinned === undefined ? 'unapproved' : 'changed', server, tool }
  }

  /** Every change waiting for an operator, from the file and from memory. */
  pending(): PendingTool[] {
    const out: PendingTool[] = []
    for (const server of this.o.servers) {
      const inFile = this.pins.servers.get(server)?.pending ?? new Map<string, PendingPin>()
      for (const [tool, p] of inFile)
        out.push({ server, tool, hash: p.hash, previous: p.previous, since: p.seen, where: 'file' })
      for (const [tool, p] of this.held.get(server) ?? [])
        if (!inFile.has(tool))
          out.push({
            server,
            tool,
            hash: p.hash,
            previous: p.previous,
            since: p.seen,
            where: 'memory',
          })
    }
    return out
  }

  /** `pinned`: may be shown; `pending`: already waiting with this very hash; else new or changed. */
  private classify(
    server: string,
    tool: string,
    hash: string,
  ): 'pinned' | 'pending' | 'new' | 'changed' {
    const pending = this.pendingOf(server, tool)
    const pinned = this.pins.servers.get(server)?.tools.get(tool)
    // While a change waits, the tool stays hidden whatever is listed, the approved definition
    // included (processes of one server may disagree): an operator decides, once.
    if (pending !== undefined)
      return pending.hash === hash || pinned === hash ? 'pending' : 'changed'
    if (pinned === undefined) return 'new'
    return pinned === hash ? 'pinned' : 'changed'
  }

  private pendingOf(server: string, tool: string): PendingPin | undefined {
    return this.pins.servers.get(server)?.pending.get(tool) ?? this.held.get(server)?.get(tool)
  }

  /**
   * Writes what one list taught (learn on), else holds it in memory; reports each new pending
   * definition once. The state changes before the list result leaves, so a call right after it
   * is decided on the same pins.
   */
  private record(
    server: string,
    learn: { tool: string; hash: string }[],
    pending: PendingTool[],
    principal: Principal,
  ): void {
    let written = false
    if (this.o.learn) {
      try {
        const next = editPins(this.o.file, this.o.maxFileBytes, (doc) => {
          let changed = false
          for (const l of learn) changed = pinTool(doc, server, l.tool, l.hash) || changed
          for (const p of pending) {
            const entry = { hash: p.hash, seen: p.since, previous: p.previous }
            changed = addPending(doc, server, p.tool, entry) || changed
          }
          return changed
        })
        if (next !== undefined) this.replace(next)
        written = true
        if (this.writeFailing) this.o.log.info('tool pins: the pin file is written again')
        this.writeFailing = false
        for (const l of learn) this.o.events.learned(server, l.tool)
      } catch (err) {
        const problems =
          err instanceof ConfigError ? err.problems.map(formatProblem) : [String(err)]
        if (!this.writeFailing)
          this.o.log.error(
            { server, problems },
            'tool pins: the pin file was not written; changes are held in memory and their tools stay hidden',
          )
        this.writeFailing = true
      }
    }
    // Not written: a tool to learn is one more definition no one approved.
    const all = written
      ? pending
      : [
          ...pending,
          ...learn.map((l) => ({
            server,
            tool: l.tool,
            hash: l.hash,
            previous: undefined,
            since: pending[0]?.since ?? new Date(this.o.now()).toISOString(),
            where: 'memory' as const,
          })),
        ]
    for (const p of all) {
      const where = written ? 'file' : 'memory'
      // Past the memory bound a change is hidden all the same, but neither held nor reported.
      if (!written && !this.hold(p)) continue
      const key = `${server}\0${p.tool}`
      if (this.reported.get(key) === p.hash) continue
      this.reported.set(key, p.hash)
      this.o.events.pending({ ...p, where }, principal)
    }
  }

  /** Logs, once per server, a tool left out because the pin file cannot name it. */
  private refuseName(server: string, name: string): void {
    if (this.nameless.has(server)) return
    this.nameless.add(server)
    this.o.log.warn(
      { server, tool: JSON.stringify(name) },
      "tool pins: a tool with an empty name is never pinned; it stays hidden and uncallable, the server's other tools are pinned as usual",
    )
  }

  /** Holds a change in memory; false past the bound. */
  private hold(p: PendingTool): boolean {
    let held = this.held.get(p.server)
    if (held === undefined) this.held.set(p.server, (held = new Map()))
    if (!held.has(p.tool) && held.size >= this.o.maxPending) {
      // Past the bound the tool is still hidden (it is not pinned); it is only not listed.
      if (!this.full.has(p.server)) {
        this.full.add(p.server)
        this.o.log.warn(
          { server: p.server, maxPending: this.o.maxPending },
          'tool pins: too many pending changes held in memory; more are hidden but not listed',
        )
      }
      return false
    }
    held.set(p.tool, { hash: p.hash, seen: p.since, previous: p.previous })
    return true
  }

  /** New file pins; held changes now approved in the file (their hash pinned) are dropped. */
  private replace(next: PinFile): void {
    this.pins = next
    for (const [server, held] of this.held) {
      const tools = next.servers.get(server)?.tools
      for (const [tool, p] of held) if (tools?.get(tool) === p.hash) held.delete(tool)
      if (held.size === 0) {
        this.held.delete(server)
        this.full.delete(server)
      }
    }
  }
}
