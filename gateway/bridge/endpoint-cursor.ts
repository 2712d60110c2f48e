/**
 * The `nextCursor` an aggregated endpoint hands its client: which backend the next page comes
 * from and that backend's own cursor, sealed so a client can only give back what the gateway
 * gave it. Pure: the key is passed in.
 *
 * Format: base64url( JSON `[backend]` or `[backend, cursor]` ‖ HMAC-SHA256 tag ). The tag covers
 * a fixed context, the length-prefixed `bind` (what the cursor is for: the endpoint and the list
 * method, so a `tools/list` cursor from `/mcp` is refused at `prompts/list` or `/mcp/support`)
 * and the JSON. The backend cursor is readable by the client; it is the backend's own opaque
 * string and the client saw nothing else. Anything that is not exactly such a text is refused:
 * wrong alphabet, non-canonical base64url, longer than 2 KiB, too short to hold a tag, a tag
 * that does not verify, or JSON of the wrong shape.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Longest cursor issued or accepted, in characters; a client's cursor is measured before any
 * work. Not a setting: a cursor is the gateway's own opaque token (a position and a backend's
 * cursor under an HMAC); it only bounds what a client must echo and the gateway must check.
 */
export const MAX_CURSOR_CHARS = 2048
/** Shortest key accepted, in bytes: the HMAC-SHA256 output size (RFC 2104 §3). */
export const MIN_CURSOR_KEY_BYTES = 32

const TAG_BYTES = 32
const CONTEXT = 'mcp-edge endpoint cursor v1'
const BASE64URL = /^[A-Za-z0-9_-]+$/
/** Bytes that are not UTF-8 are refused, not patched with U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** Where the next page of an aggregated list comes from. */
export interface CursorState {
  /** Index of the backend in the endpoint's backend list. */
  backend: number
  /** That backend's own cursor; absent for its first page. */
  cursor?: string
}

/**
 * Seals a cursor state. Throws a RangeError for a key shorter than 32 bytes, a backend that is
 * not a non-negative safe integer, or a result past MAX_CURSOR_CHARS (a backend's cursor too long
 * to carry: the caller ends that backend's pages there).
 */
export function encodeCursor(state: CursorState, key: Uint8Array, bind = ''): string {
  checkKey(key)
  if (!Number.isSafeInteger(state.backend) || state.backend < 0)
    throw new RangeError(`backend must be a non-negative integer, not ${state.backend}`)
  if (state.cursor !== undefined && typeof state.cursor !== 'string')
    throw new RangeError('a backend cursor is a string')
  const body = Buffer.from(
    JSON.stringify(state.cursor === undefined ? [state.backend] : [state.backend, state.cursor]),
  )
  const text = Buffer.concat([body, tag(key, bind, body)]).toString('base64url')
  if (text.length > MAX_CURSOR_CHARS)
    throw new RangeError(`the cursor would be ${text.length} characters, past ${MAX_CURSOR_CHARS}`)
  return text
}

/**
 * Opens a cursor a client sent (any value: it is checked before it is read). Undefined for
 * anything the gateway did not seal with this key and `bind`; throws a RangeError only for a
 * key shorter than 32 bytes.
 */
export function decodeCursor(text: unknown, key: Uint8Array, bind = ''): CursorState | undefined {
  checkKey(key)
  if (typeof text !== 'string' || text.length > MAX_CURSOR_CHARS || !BASE64URL.test(text))
    return undefined
  const raw = Buffer.from(text, 'base64url')
  if (raw.length <= TAG_BYTES || raw.toString('base64url') !== text) return undefined // Buffer skips stray bits
  const body = raw.subarray(0, raw.length - TAG_BYTES)
  if (!timingSafeEqual(raw.subarray(raw.length - TAG_BYTES), tag(key, bind, body))) return undefined
  // Past the tag the body is the gateway's own; its shape is still checked, never assumed.
  let value: unknown
  try {
    value = JSON.parse(UTF8.decode(body))
  } catch {
    return undefined
  }
  if (!Array.isArray(value) || value.length < 1 || value.length > 2) return undefined
  const [backend, cursor] = value as unknown[]
  if (typeof backend !== 'number' || !Number.isSafeInteger(backend) || backend < 0) return undefined
  if (value.length === 1) return { backend }
  return typeof cursor === 'string' ? { backend, cursor } : undefined
}

function tag(key: Uint8Array, bind: string, body: Uint8Array): Buffer {
  return createHmac('sha256', key)
    .update(`${CONTEXT}\n${Buffer.byteLength(bind)}:${bind}\n`)
    .update(body)
    .digest()
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.byteLength < MIN_CURSOR_KEY_BYTES)
    throw new RangeError(`the cursor key must be at least ${MIN_CURSOR_KEY_BYTES} bytes`)
}
