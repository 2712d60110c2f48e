import type { Dispatcher } from 'undici'

/** The echo call every row makes, and the text its reply must carry. */
export const ECHO_TEXT = 'hello'
const PROTOCOL_VERSION = '2025-11-25'
const ACCEPT = 'application/json, text/event-stream'

interface RpcReply {
  id?: unknown
  result?: unknown
  error?: { code: number; message: string }
}

/** A reply that is not what a correct server sends: the row fails instead of looking fast. */
export class WrongReply extends Error {}

const snippet = (text: string) => text.slice(0, 300)

/**
 * A raw Streamable HTTP MCP session over an undici dispatcher (keep-alive pool): no SDK on
 * the client side, so the row measures the server. Replies may be JSON or SSE.
 */
export class HttpSession {
  private nextId = 1

  private constructor(
    private readonly pool: Dispatcher,
    private readonly path: string,
    private readonly headers: Record<string, string>,
  ) {}

  /**
   * initialize + notifications/initialized (MCP lifecycle). `ms` is the whole handshake:
   * from the initialize POST to the 202 of the initialized notification; `initMs` ends at
   * the initialize reply (200 with Mcp-Session-Id).
   */
  static async open(pool: Dispatcher, path: string, extra: Record<string, string>) {
    const start = performance.now()
    const headers = { 'content-type': 'application/json', accept: ACCEPT, ...extra }
    const s = new HttpSession(pool, path, headers)
    const { result, headers: got } = await s.rpc('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcp-edge-bench', version: '1.0.0' },
    })
    const initMs = performance.now() - start
    const sessionId = got['mcp-session-id']
    if (typeof sessionId !== 'string') throw new WrongReply('initialize: no Mcp-Session-Id header')
    const version = (result as { protocolVersion?: unknown }).protocolVersion
    if (typeof version !== 'string') throw new WrongReply('initialize: no protocolVersion')
    Object.assign(headers, { 'mcp-session-id': sessionId, 'mcp-protocol-version': version })
    const res = await pool.request({
      path,
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    })
    const text = await res.body.text()
    if (res.statusCode !== 202) {
      throw new WrongReply(`notifications/initialized: HTTP ${res.statusCode} ${snippet(text)}`)
    }
    return { session: s, ms: performance.now() - start, initMs }
  }

  /**
   * tools/call echo {text: hello} (`tool`: the echo tool's name, e.g. its public name on an
   * endpoint); throws unless the reply has our id and the echoed text.
   */
  async callEcho(tool = 'echo'): Promise<void> {
    const params = { name: tool, arguments: { text: ECHO_TEXT } }
    const { result } = await this.rpc('tools/call', params)
    const content = (result as { content?: { type?: string; text?: string }[] }).content
    if (content?.[0]?.text !== ECHO_TEXT) {
      throw new WrongReply(`tools/call: unexpected result ${JSON.stringify(result)}`)
    }
  }

  /** tools/list, every page: the tool names, in order. */
  async listTools(): Promise<string[]> {
    const names: string[] = []
    let cursor: string | undefined
    do {
      const { result } = await this.rpc('tools/list', cursor === undefined ? {} : { cursor })
      const page = result as { tools?: { name?: unknown }[]; nextCursor?: unknown }
      if (!Array.isArray(page.tools))
        throw new WrongReply(`tools/list: no tools in ${JSON.stringify(result)}`)
      for (const t of page.tools) if (typeof t.name === 'string') names.push(t.name)
      cursor = typeof page.nextCursor === 'string' ? page.nextCursor : undefined
    } while (cursor !== undefined)
    return names
  }

  /**
   * DELETE the session; errors ignored (the server is stopped right after anyway). Resolves
   * with the HTTP status, undefined when the request failed.
   */
  async close(): Promise<number | undefined> {
    const res = await this.pool
      .request({ path: this.path, method: 'DELETE', headers: this.headers })
      .catch(() => undefined)
    await res?.body.dump()
    return res?.statusCode
  }

  private async rpc(method: string, params: unknown) {
    const id = this.nextId++
    const res = await this.pool.request({
      path: this.path,
      method: 'POST',
      headers: this.headers,
      body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    })
    const text = await res.body.text()
    if (res.statusCode !== 200) {
      throw new WrongReply(`${method}: HTTP ${res.statusCode} ${snippet(text)}`)
    }
    const type = String(res.headers['content-type'] ?? '')
    const reply = parseMessages(type, text).find((m) => m.id === id)
    if (reply === undefined) {
      throw new WrongReply(`${method}: no reply with id ${id} in ${type} body ${snippet(text)}`)
    }
    if (reply.error) {
      throw new WrongReply(`${method}: JSON-RPC error ${JSON.stringify(reply.error)}`)
    }
    return { result: reply.result, headers: res.headers }
  }
}

const MODERN_VERSION = '2026-07-28'

/**
 * Sessionless 2026-07-28 requests over an undici dispatcher: every request carries its
 * envelope in `_meta` and the standard headers; "opening" is `server/discover`.
 */
export class ModernSession {
  private nextId = 1

  private constructor(
    private readonly pool: Dispatcher,
    private readonly path: string,
    private readonly headers: Record<string, string>,
  ) {}

  static async open(pool: Dispatcher, path: string, extra: Record<string, string>) {
    const start = performance.now()
    const s = new ModernSession(pool, path, {
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': MODERN_VERSION,
      ...extra,
    })
    const result = (await s.rpc('server/discover', {})) as { supportedVersions?: string[] }
    if (!result.supportedVersions?.includes(MODERN_VERSION))
      throw new WrongReply(`server/discover: ${MODERN_VERSION} not offered`)
    return { session: s, ms: performance.now() - start }
  }

  async callEcho(): Promise<void> {
    const result = await this.rpc(
      'tools/call',
      { name: 'echo', arguments: { text: ECHO_TEXT } },
      'echo',
    )
    const content = (result as { content?: { text?: string }[]; resultType?: string }).content
    if (content?.[0]?.text !== ECHO_TEXT)
      throw new WrongReply(`tools/call: unexpected result ${JSON.stringify(result)}`)
  }

  private async rpc(method: string, params: Record<string, unknown>, name?: string) {
    const id = this.nextId++
    const _meta = {
      'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
      'io.modelcontextprotocol/clientCapabilities': {},
    }
    const res = await this.pool.request({
      path: this.path,
      method: 'POST',
      headers: { ...this.headers, 'mcp-method': method, ...(name ? { 'mcp-name': name } : {}) },
      body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta } }),
    })
    const text = await res.body.text()
    if (res.statusCode !== 200)
      throw new WrongReply(`${method}: HTTP ${res.statusCode} ${snippet(text)}`)
    const reply = parseMessages(String(res.headers['content-type'] ?? ''), text).find(
      (m) => m.id === id,
    )
    if (reply === undefined || reply.error) throw new WrongReply(`${method}: ${snippet(text)}`)
    return reply.result
  }
}

/** JSON-RPC messages of a JSON body or an SSE stream (`data:` lines of each event). */
function parseMessages(contentType: string, text: string): RpcReply[] {
  if (contentType.startsWith('application/json')) {
    const body = JSON.parse(text) as RpcReply | RpcReply[]
    return Array.isArray(body) ? body : [body]
  }
  if (!contentType.startsWith('text/event-stream')) {
    throw new WrongReply(`unexpected content-type ${contentType}`)
  }
  const out: RpcReply[] = []
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trimStart())
      .join('\n')
    // Priming events (resumability) carry an empty data field.
    if (data !== '') out.push(JSON.parse(data) as RpcReply)
  }
  return out
}
