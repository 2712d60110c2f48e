// A 2026-07-28 (sessionless) request as a client sends it by raw HTTP: the protocol version and
// the client's capabilities in the request's _meta, its method (and a tool call's name)
// mirrored in the Mcp-Method and Mcp-Name headers.

/** The sessionless protocol version. */
export const MODERN_VERSION = '2026-07-28'

/** What a 2026-07-28 request carries besides its method and params. */
export interface ModernOptions {
  /** The JSON-RPC id (default 1). */
  id?: number
  /** The client's capabilities (default none). */
  caps?: Record<string, unknown>
  /** More `_meta` (a progress token, a log level). */
  meta?: Record<string, unknown>
  /** The Mcp-Name header, when the method names something. */
  name?: string
}

/** The undici request options of a 2026-07-28 `method` request with `params`, bearing `token`. */
export function modernRequest(
  token: string,
  method: string,
  params: Record<string, unknown>,
  o: ModernOptions = {},
): { method: 'POST'; headers: Record<string, string>; body: string } {
  const body = {
    jsonrpc: '2.0',
    id: o.id ?? 1,
    method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
        'io.modelcontextprotocol/clientCapabilities': o.caps ?? {},
        ...o.meta,
      },
    },
  }
  return {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': MODERN_VERSION,
      'mcp-method': method,
      ...(o.name !== undefined ? { 'mcp-name': o.name } : {}),
    },
    body: JSON.stringify(body),
  }
}

/** The undici request options of a 2026-07-28 tools/call of `name` with `args`. */
export function modernToolCall(
  token: string,
  name: string,
  args: Record<string, unknown> = {},
  o: Omit<ModernOptions, 'name'> = {},
): ReturnType<typeof modernRequest> {
  return modernRequest(token, 'tools/call', { name, arguments: args }, { ...o, name })
}
