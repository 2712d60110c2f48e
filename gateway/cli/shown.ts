import { unitEscapes } from '../observability/unit-escapes.js'

/**
 * Text that came from outside the operator's files (a tool name a server chose, a subject or a
 * role from a token's claims) as a command prints it for a person: as it is when it is plain,
 * else as a JSON string with every control, format (bidi) and line-separator character escaped.
 * Printed raw, an escape sequence or a line break in it would redraw the operator's terminal:
 * a line hidden, another faked.
 */
export function shown(text: string): string {
  if (!/[\p{C}\p{Z}"\\]/u.test(text)) return text
  return JSON.stringify(text).replace(/[\p{C}\p{Zl}\p{Zp}]/gu, unitEscapes)
}
