/**
 * Which request a reply too large to hold answered, read from the only parts of its line the
 * reader keeps: its first and last bytes. The TS SDK writes `{"result":…,"jsonrpc":"2.0","id":N}`
 * (the id last), the Python SDK `{"jsonrpc":"2.0","id":N,"result":…}` (the id first). Only the
 * top-level members made of scalars at either end are read, never a member inside the result
 * (a quote inside a string is escaped, so `\"id\":5` in a file's text is not taken for one).
 * Nothing is guessed: a line that is not, by its ends, a JSON-RPC 2.0 response (a `method`
 * member, no `result`/`error`, no `jsonrpc: "2.0"`, two different ids) names no request.
 * A member written twice is read as JSON.parse reads it: the later one (at the end, the last).
 */
import type { RequestId } from './jsonrpc.js'

/** The top-level scalar members read from one end of the line. */
interface Members {
  keys: Set<string>
  id?: RequestId
  jsonrpc?: unknown
}

/**
 * The id of the response whose line begins with `head` and ends with `tail` (bytes of it,
 * either possibly cut mid-character), or undefined when the ends do not show one.
 */
export function oversizeReplyId(head: Buffer, tail: Buffer): RequestId | undefined {
  const first = fromHead(head.toString('utf8'))
  const last = fromTail(tail.toString('utf8'))
  const keys = new Set([...first.keys, ...last.keys])
  if (keys.has('method')) return undefined
  if (!keys.has('result') && !keys.has('error')) return undefined
  // A member at the end comes after one of the same name at the start: JSON.parse keeps it.
  const jsonrpc = last.keys.has('jsonrpc') ? last.jsonrpc : first.jsonrpc
  if (jsonrpc !== '2.0') return undefined
  if (first.id !== undefined && last.id !== undefined && first.id !== last.id) return undefined
  return last.keys.has('id') ? last.id : first.id
}

const WS = new Set([' ', '\t', '\r', '\n'])
const SCALAR = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$/

/** Members from the line's start, up to the first one whose value is an object or an array. */
function fromHead(s: string): Members {
  const out: Members = { keys: new Set() }
  let i = skip(s, 0)
  if (s[i] !== '{') return out
  for (;;) {
    i = skip(s, i + 1)
    const key = stringAt(s, i)
    if (key === undefined) return out
    i = skip(s, key.end)
    if (s[i] !== ':') return out
    out.keys.add(key.value)
    i = skip(s, i + 1)
    let value: { value: unknown; end: number } | undefined
    if (s[i] === '"') value = stringAt(s, i)
    else {
      let end = i
      while (end < s.length && /[0-9A-Za-z.+-]/.test(s[end]!)) end++
      const token = s.slice(i, end)
      if (SCALAR.test(token)) value = { value: JSON.parse(token), end }
    }
    // An object, an array, or a value cut by the head's end: nothing after it is read.
    if (value === undefined) return out
    i = skip(s, value.end)
    // The next character must be there: a number cut by the head's end is not the whole number.
    if (s[i] !== ',' && s[i] !== '}') return out
    record(out, key.value, value.value)
    if (s[i] === '}') return out
  }
}

/** Members from the line's end backwards, down to the first whose value is not a scalar. */
function fromTail(s: string): Members {
  const out: Members = { keys: new Set() }
  let i = back(s, s.length - 1)
  if (s[i] !== '}') return out
  for (;;) {
    i = back(s, i - 1)
    let value: unknown
    let start: number
    if (s[i] === '"') {
      start = openingQuote(s, i)
      if (start < 0) return out
      value = parse(s.slice(start, i + 1))
      if (typeof value !== 'string') return out
    } else {
      start = i
      while (start > 0 && /[0-9A-Za-z.+-]/.test(s[start - 1]!)) start--
      // Reaching the tail's start, the token may go on before it.
      if (start === 0) return out
      const token = s.slice(start, i + 1)
      if (!SCALAR.test(token)) return out
      value = JSON.parse(token)
    }
    i = back(s, start - 1)
    if (s[i] !== ':') return out
    i = back(s, i - 1)
    if (s[i] !== '"') return out
    const keyStart = openingQuote(s, i)
    if (keyStart < 0) return out
    const key = parse(s.slice(keyStart, i + 1))
    if (typeof key !== 'string') return out
    // Read backwards: a member seen already is a later one of the same name, which JSON.parse keeps.
    if (!out.keys.has(key)) record(out, key, value)
    out.keys.add(key)
    i = back(s, keyStart - 1)
    if (s[i] !== ',') return out
  }
}

function record(out: Members, key: string, value: unknown): void {
  if (key === 'jsonrpc') out.jsonrpc = value
  // A later `id` replaces an earlier one (as in JSON.parse), one naming no request too.
  if (key === 'id')
    out.id =
      typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
        ? value
        : undefined
}

/** The string starting at `i` (a quote) and the index after it, if it ends within `s`. */
function stringAt(s: string, i: number): { value: string; end: number } | undefined {
  if (s[i] !== '"') return undefined
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === '\\') j++
    else if (s[j] === '"') {
      const value = parse(s.slice(i, j + 1))
      return typeof value === 'string' ? { value, end: j + 1 } : undefined
    }
  }
  return undefined
}

/**
 * The quote opening the string whose closing quote is at `end`: the nearest quote before it
 * not escaped (an even run of backslashes before it); -1 when the tail holds none.
 */
function openingQuote(s: string, end: number): number {
  for (let j = end - 1; j >= 0; j--) {
    if (s[j] !== '"') continue
    let slashes = 0
    while (j - slashes - 1 >= 0 && s[j - slashes - 1] === '\\') slashes++
    // A run reaching the tail's start may be longer than seen: its parity is unknown.
    if (j - slashes - 1 < 0) return -1
    if (slashes % 2 === 0) return j
  }
  return -1
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function skip(s: string, i: number): number {
  while (i < s.length && WS.has(s[i]!)) i++
  return i
}

function back(s: string, i: number): number {
  while (i >= 0 && WS.has(s[i]!)) i--
  return i
}
