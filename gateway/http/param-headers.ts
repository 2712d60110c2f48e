import { decodeHeaderValue, type HeaderMismatch } from './modern-headers.js'

/** A tool argument a client mirrors into an `Mcp-Param-{Name}` header (`x-mcp-header`, SEP-2243). */
export interface ParamHeader {
  name: string
  path: string[]
  type: string | undefined
}

const PRIMITIVE = new Set(['string', 'integer', 'number', 'boolean'])
const CANONICAL_DECIMAL = /^-?\d+(\.\d+)?$/

/**
 * The `x-mcp-header` declarations of a tool's input schema: on primitive properties reached
 * through `properties` only, as the revision allows. Anything else is ignored, not refused:
 * validating the server's schemas is not the gateway's job.
 */
export function paramHeadersOf(inputSchema: unknown): ParamHeader[] {
  const out: ParamHeader[] = []
  const walk = (node: unknown, path: string[]) => {
    if (typeof node !== 'object' || node === null) return
    const props = (node as { properties?: unknown }).properties
    if (typeof props !== 'object' || props === null) return
    for (const [key, child] of Object.entries(props)) {
      if (typeof child !== 'object' || child === null) continue
      const c = child as Record<string, unknown>
      const header = c['x-mcp-header']
      const type = typeof c.type === 'string' ? c.type : undefined
      if (
        typeof header === 'string' &&
        header.length > 0 &&
        (type === undefined || PRIMITIVE.has(type))
      )
        out.push({ name: header, path: [...path, key], type })
      walk(child, [...path, key])
    }
  }
  walk(inputSchema, [])
  return out
}

/**
 * SEP-2243: for each declared argument present in the body, its `Mcp-Param-{Name}` header
 * must be there and equal it (decoded from Base64 when so encoded); an argument that is
 * absent or null expects no header.
 */
export function paramHeaderMismatch(
  decls: readonly ParamHeader[],
  args: unknown,
  headers: Headers,
): HeaderMismatch | undefined {
  for (const d of decls) {
    const raw = valueAt(args, d.path)
    if (raw === undefined || raw === null) continue
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') continue
    const headerName = `Mcp-Param-${d.name}`
    const value = headers.get(headerName)?.trim()
    const where = d.path.join('.')
    if (value === undefined)
      return mismatch(
        headerName,
        `the body carries ${where}=${JSON.stringify(raw)} but the ${headerName} header is absent`,
      )
    const decoded = decodeHeaderValue(value)
    if (decoded === undefined)
      return mismatch(headerName, `the ${headerName} header carries an invalid Base64 value`)
    const equal =
      typeof raw === 'number' && CANONICAL_DECIMAL.test(decoded)
        ? Number(decoded) === raw
        : decoded === String(raw)
    if (!equal)
      return mismatch(
        headerName,
        `the ${headerName} header says ${JSON.stringify(decoded)} but the body carries ${where}=${JSON.stringify(raw)}`,
      )
  }
  return undefined
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[key]
  }
  return node
}

function mismatch(header: string, body: string): HeaderMismatch {
  return {
    header,
    message: `Bad Request: the request headers and body disagree: ${body}`,
    data: { mismatch: { header, body } },
  }
}
