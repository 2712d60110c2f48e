import type { JSONRPCRequest } from '@modelcontextprotocol/server'

/** A header/body disagreement (2026-07-28 HeaderMismatch: 400, -32020). */
export interface HeaderMismatch {
  /** The header checked (`Mcp-Method`, `Mcp-Param-Region`…): its audit line's rule names it. */
  header: string
  message: string
  data: { mismatch: { header: string; body: string } }
}

/** The body field `Mcp-Name` mirrors, per method (2026-07-28 §Standard Request Headers). */
const NAME_SOURCE: Record<string, string> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
}

const BASE64_PREFIX = '=?base64?'
const BASE64_SUFFIX = '?='
const BASE64_CANONICAL = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** The standard headers of one request, as sent (trimmed of optional whitespace). */
export interface StandardHeaders {
  protocolVersion: string | undefined
  method: string | undefined
  name: string | undefined
}

/** Reads the standard MCP headers (names are case-insensitive; values are not). */
export function standardHeaders(h: Headers): StandardHeaders {
  const get = (n: string) => h.get(n)?.trim() ?? undefined
  return {
    protocolVersion: get('mcp-protocol-version'),
    method: get('mcp-method'),
    name: get('mcp-name'),
  }
}

/**
 * SEP-2243 server validation of a modern request, after the SDK's classifier has compared
 * version and method where both are present: the headers that are required must be there,
 * and `Mcp-Name`, decoded from its Base64 form if it has one, must equal the body's target.
 * The gateway decides policy from the body only, so a lying header can at worst be refused.
 */
export function headerMismatch(
  h: StandardHeaders,
  message: JSONRPCRequest,
): HeaderMismatch | undefined {
  const method = message.method
  if (h.protocolVersion === undefined)
    return mismatch(
      'MCP-Protocol-Version',
      '(missing)',
      'the required MCP-Protocol-Version header is absent',
    )
  if (h.method === undefined)
    return mismatch(
      'Mcp-Method',
      '(missing)',
      `the body names method ${method} but the required Mcp-Method header is absent`,
    )
  if (h.method !== method)
    return mismatch(
      'Mcp-Method',
      h.method,
      `the body names method ${method} but the Mcp-Method header names ${h.method}`,
    )
  const field = NAME_SOURCE[method]
  if (field === undefined) return undefined
  const raw = (message.params as Record<string, unknown> | undefined)?.[field]
  const body = typeof raw === 'string' ? raw : undefined
  if (h.name === undefined) {
    return body === undefined
      ? undefined
      : mismatch(
          'Mcp-Name',
          '(missing)',
          `the body carries params.${field}="${body}" but the required Mcp-Name header is absent`,
        )
  }
  const decoded = decodeHeaderValue(h.name)
  if (decoded === undefined)
    return mismatch('Mcp-Name', h.name, 'the Mcp-Name header carries an invalid Base64 value')
  if (body !== undefined && decoded !== body)
    return mismatch(
      'Mcp-Name',
      h.name,
      `the body carries params.${field}="${body}" but the Mcp-Name header names "${decoded}"`,
    )
  return undefined
}

/** A header value, decoded when it is in the `=?base64?…?=` form; undefined when that form is broken. */
export function decodeHeaderValue(value: string): string | undefined {
  if (!(value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX))) return value
  const b64 = value.slice(BASE64_PREFIX.length, value.length - BASE64_SUFFIX.length)
  if (!BASE64_CANONICAL.test(b64)) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(b64, 'base64'))
  } catch {
    return undefined
  }
}

function mismatch(name: string, header: string, body: string): HeaderMismatch {
  return {
    header: name,
    message: `Bad Request: the request headers and body disagree: ${body}`,
    data: { mismatch: { header, body } },
  }
}
