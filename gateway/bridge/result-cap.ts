import { RELATED_TASK_META_KEY } from '@modelcontextprotocol/server'
import { DEFAULT_MAX_TASK_ID_LENGTH } from '../config/schema.js'
import { compileGlob } from '../policy/glob.js'

/**
 * Output caps: a server's result larger than its cap is cut to fit, or refused, before it reaches
 * the client. A model's context is the scarce thing a large tool result wastes (a 3 MB file
 * listing), and a client buffers every byte of it; the cap is where an operator says how much
 * one call may bring back.
 */

/** What happens to a result over its cap. */
export type Overflow = 'truncate' | 'refuse'

/** A server's output settings, as the config gives them. */
export interface OutputSettings {
  /** Bytes of a result (its JSON, UTF-8) at most; unset: no cap. */
  maxResultBytes?: number
  overflow: Overflow
  /** Caps by tool name pattern (`*` globs), first match wins, before `maxResultBytes`. */
  tools: Record<string, number>
}

/** The cap one result is held to. */
export interface OutputCap {
  maxBytes: number
  overflow: Overflow
}

/** What capping did to a result. */
export type CapOutcome =
  | { kind: 'within' }
  | { kind: 'truncated'; bytes: number; of: number }
  | { kind: 'refused'; of: number }

/** How a capped reply is audited (observability/allowed.ts `AuditOutcome`). */
export type CapAudit =
  | { kind: 'truncated'; bytes: number; of: number }
  | { kind: 'too_large'; of: number }

/** A capped reply: a result, or (a refused read or prompt) an error for the client. */
export type Capped =
  | { result: unknown; outcome: CapOutcome }
  | { error: { code: number; message: string }; outcome: CapOutcome & { kind: 'refused' } }

/** The JSON-RPC code of a refused result: the request was valid, its answer too large to pass. */
export const RESULT_TOO_LARGE = -32603

/** The `_meta` key saying a result was cut, and how much of it is left. */
export const TRUNCATED_META = 'mcp-edge/truncated'

/** Methods whose results are capped, and the array of items a cut keeps a prefix of. */
const CAPPED: Record<string, string> = {
  'tools/call': 'content',
  // A task's result is its tool's result (MCP 2025-11-25 tasks): `name` is the task's tool.
  'tasks/result': 'content',
  'resources/read': 'contents',
  'prompts/get': 'messages',
}

/** Methods whose result is a tool's result (CallToolResult). */
const TOOL_RESULT = new Set(['tools/call', 'tasks/result'])

/**
 * A server's caps compiled once: the cap a request's result is held to, if any. For
 * `tasks/result`, `name` is the task's tool; undefined (a task whose creation the gateway did not
 * see) gets the strictest cap the server has, so asking for a task never widens a cap.
 */
export type CapFinder = (method: string, name: string | undefined) => OutputCap | undefined

/** Compiles a server's output settings; undefined when nothing is capped. */
export function capFinder(settings: OutputSettings): CapFinder | undefined {
  const patterns = Object.entries(settings.tools).map(
    ([pattern, maxBytes]) => [compileGlob(pattern), maxBytes] as const,
  )
  if (patterns.length === 0 && settings.maxResultBytes === undefined) return undefined
  const { overflow } = settings
  const all = settings.maxResultBytes
  const strictest = Math.min(all ?? Infinity, ...patterns.map(([, maxBytes]) => maxBytes))
  return (method, name) => {
    if (CAPPED[method] === undefined) return undefined
    if (method === 'tasks/result' && name === undefined) return { maxBytes: strictest, overflow }
    if (TOOL_RESULT.has(method) && name !== undefined)
      for (const [matches, maxBytes] of patterns) if (matches(name)) return { maxBytes, overflow }
    return all === undefined ? undefined : { maxBytes: all, overflow }
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

const bytesOf = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8')

/** A size as people read it: `900 B`, `25.0 kB`, `3.4 MB` (decimal units). */
export function humanBytes(n: number): string {
  if (n < 1000) return `${n} B`
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)} kB`
  return `${(n / 1_000_000).toFixed(1)} MB`
}

/**
 * Holds one result of `method` to `cap`. Within it, the result is returned as it is (the same
 * object). Over it, with `truncate`: the longest prefix of its items (content, contents or
 * messages) that fits with a notice the model can read (`… truncated: 1.2 MB of 3.4 MB; narrow
 * the request`) appended as one more item, and `_meta["mcp-edge/truncated"]`; when not even the
 * first item fits and it is text, its text is cut to fit instead (a model is better served by
 * the start of a long text than by nothing). A tool result whose `structuredContent` alone does
 * not fit cannot be cut (its schema would break) and is refused. Refused: a tool result becomes
 * an error result saying why (`isError`, so the model reads it); a read or a prompt becomes a
 * JSON-RPC error.
 */
export function capResult(method: string, result: unknown, cap: OutputCap): Capped {
  const key = CAPPED[method]
  if (key === undefined) return { result, outcome: { kind: 'within' } }
  const of = bytesOf(result)
  if (of <= cap.maxBytes) return { result, outcome: { kind: 'within' } }
  // Not an object (a string, a list: no MCP result is one): nothing to cut at, refused.
  if (!isPlainObject(result)) return refuse(method, of, cap.maxBytes)
  const record = result as Record<string, unknown>
  const items = Array.isArray(record[key]) ? (record[key] as unknown[]) : []
  const refused = () => refuse(method, of, cap.maxBytes, relatedTask(method, record))
  if (cap.overflow === 'refuse') return refused()

  // The notice's size depends on the figures it states: measured with the largest they can be.
  const notice = (kept: number) =>
    `… truncated: ${humanBytes(kept)} of ${humanBytes(of)}; narrow the request`
  // Only an object's keys are kept (spreading a hostile string `_meta` makes one key a character).
  const meta = (kept: number) => ({
    ...(isPlainObject(record._meta) ? record._meta : {}),
    [TRUNCATED_META]: { bytes: kept, of },
  })
  const shape = (kept: unknown[], size: number) => ({
    ...record,
    [key]: [...kept, noticeItem(method, items, notice(size))],
    _meta: meta(size),
  })
  const overhead = bytesOf(shape([], of)) + 8
  if (overhead > cap.maxBytes) return refused()

  const kept: unknown[] = []
  let size = overhead
  for (const item of items) {
    const n = bytesOf(item) + 1
    if (size + n > cap.maxBytes) break
    kept.push(item)
    size += n
  }
  if (kept.length === 0) {
    const cut = cutText(items[0], cap.maxBytes - overhead)
    if (cut !== undefined) kept.push(cut)
  }
  // The size stated is of the result as sent, which contains it: settled in a pass or two.
  let stated = 0
  let out = shape(kept, stated)
  for (let pass = 0; pass < 4 && bytesOf(out) !== stated; pass++) {
    stated = bytesOf(out)
    out = shape(kept, stated)
  }
  const final = bytesOf(out)
  if (final > cap.maxBytes) return refused()
  return { result: out, outcome: { kind: 'truncated', bytes: final, of } }
}

/** The related-task `_meta` a refused task result keeps (only an object's, only that key). */
function relatedTask(method: string, record: Record<string, unknown>): unknown {
  if (method !== 'tasks/result' || !isPlainObject(record._meta)) return undefined
  const related = record._meta[RELATED_TASK_META_KEY]
  // Bounded like a client's task id: the server's `_meta` is no way around the cap.
  return isPlainObject(related) &&
    typeof related.taskId === 'string' &&
    related.taskId.length <= DEFAULT_MAX_TASK_ID_LENGTH
    ? { [RELATED_TASK_META_KEY]: { taskId: related.taskId } }
    : undefined
}

function refuse(method: string, of: number, max: number, meta?: unknown): Capped {
  const text = `the result (${humanBytes(of)}) is larger than the ${humanBytes(max)} this gateway passes on; narrow the request`
  const outcome = { kind: 'refused' as const, of }
  if (TOOL_RESULT.has(method)) {
    const result = { content: [{ type: 'text', text }], isError: true }
    return { result: meta === undefined ? result : { ...result, _meta: meta }, outcome }
  }
  return { error: { code: RESULT_TOO_LARGE, message: text }, outcome }
}

/** The notice as one more item of the result's list, in that list's shape. */
function noticeItem(method: string, items: unknown[], text: string): unknown {
  if (method === 'resources/read') {
    const uri = (items[0] as { uri?: unknown } | undefined)?.uri
    return { uri: typeof uri === 'string' ? uri : 'mcp-edge:notice', mimeType: 'text/plain', text }
  }
  if (method === 'prompts/get') return { role: 'user', content: { type: 'text', text } }
  return { type: 'text', text }
}

/**
 * The first item with its text cut to at most `budget` bytes of JSON (never inside a character),
 * when it has text to cut; undefined otherwise.
 */
function cutText(item: unknown, budget: number): unknown {
  if (typeof item !== 'object' || item === null) return undefined
  const record = item as Record<string, unknown>
  // A prompt message holds its text one level down.
  if (
    typeof record.content === 'object' &&
    record.content !== null &&
    !Array.isArray(record.content)
  ) {
    const inner = cutText(record.content, budget - (bytesOf({ ...record, content: {} }) - 2))
    return inner === undefined ? undefined : { ...record, content: inner }
  }
  if (typeof record.text !== 'string') return undefined
  const room = budget - bytesOf({ ...record, text: '' })
  if (room <= 0) return undefined
  // JSON escapes make a character cost up to 6 bytes (\uXXXX, or 12 for a pair): shrink until it fits.
  let chars = Math.min(record.text.length, room)
  for (;;) {
    let text = record.text.slice(0, chars)
    // Never end on half a surrogate pair.
    if (/[\uD800-\uDBFF]$/.test(text)) text = text.slice(0, -1)
    const candidate = { ...record, text }
    if (bytesOf(candidate) <= budget) return text.length === 0 ? undefined : candidate
    const over = bytesOf(candidate) - budget
    chars = Math.max(0, text.length - Math.max(1, Math.ceil(over / 6)))
    if (chars === 0) return undefined
  }
}

/**
 * The output caps of every server, compiled once: `apply` holds one reply to its cap and
 * counts what it did. A server without caps costs one map lookup.
 */
export class OutputCaps {
  private readonly finders = new Map<string, CapFinder>()

  constructor(
    servers: Readonly<Record<string, { output: OutputSettings }>>,
    private readonly metrics?: {
      resultsCapped: { inc(labels: { server: string; action: string }): void }
    },
  ) {
    for (const [name, s] of Object.entries(servers)) {
      const finder = capFinder(s.output)
      if (finder) this.finders.set(name, finder)
    }
  }

  /** Whether any server has a cap (the relay skips the step entirely otherwise). */
  get any(): boolean {
    return this.finders.size > 0
  }

  /** A server's error to a request of `method` (naming `name`), held to that request's cap. */
  applyError(
    server: string,
    method: string,
    name: string | undefined,
    error: { code?: unknown; message?: unknown; data?: unknown },
  ): { code: number; message: string } | undefined {
    const capped = capError(this.finders.get(server)?.(method, name), error)
    if (capped) this.metrics?.resultsCapped.inc({ server, action: 'truncated' })
    return capped
  }

  /**
   * `result` of `method` (naming `name`) from `server`, held to its cap; undefined when nothing
   * caps it or it is within its cap (the caller keeps the result it has).
   */
  apply(
    server: string,
    method: string,
    name: string | undefined,
    result: unknown,
  ): (Capped & { audit: CapAudit }) | undefined {
    const cap = this.finders.get(server)?.(method, name)
    if (cap === undefined) return undefined
    const capped = capResult(method, result, cap)
    const o = capped.outcome
    if (o.kind === 'within') return undefined
    this.metrics?.resultsCapped.inc({ server, action: o.kind })
    return { ...capped, audit: o.kind === 'truncated' ? o : { kind: 'too_large', of: o.of } }
  }
}

/**
 * A JSON-RPC error from a server held to the cap its request's result would have: one larger
 * keeps its code and the start of its message, without `data` (an error is not a way around
 * the cap). Undefined when nothing caps it or it fits.
 */
export function capError(
  cap: OutputCap | undefined,
  error: { code?: unknown; message?: unknown; data?: unknown },
): { code: number; message: string } | undefined {
  if (cap === undefined) return undefined
  const of = bytesOf(error)
  if (of <= cap.maxBytes) return undefined
  const text = typeof error.message === 'string' ? error.message : ''
  const room = Math.max(0, Math.floor(cap.maxBytes / 2) - 100)
  const code = typeof error.code === 'number' ? error.code : -32603
  let message = text.slice(0, room)
  if (/[\uD800-\uDBFF]$/.test(message)) message = message.slice(0, -1)
  return { code, message: `${message} … (error truncated: ${humanBytes(of)} over the output cap)` }
}
