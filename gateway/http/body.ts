import { GatewayError } from '../errors.js'

/** Reads a request body up to `limit` bytes and parses it as JSON. */
export async function readJsonBody(req: Request, limit: number): Promise<unknown> {
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (declared > limit) throw tooLarge(limit)
  if (req.body === null) throw new GatewayError('parse_error', 'the request body is empty', { status: 400, expose: true })
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > limit) throw tooLarge(limit)
    chunks.push(chunk)
  }
  let text: string
  try {
    // MCP transports: messages MUST be UTF-8; fatal decoding refuses anything else.
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))
  } catch {
    throw new GatewayError('parse_error', 'the request body is not valid UTF-8', { status: 400, expose: true })
  }
  try {
    return JSON.parse(text)
  } catch {
    throw new GatewayError('parse_error', 'the request body is not valid JSON', { status: 400, expose: true })
  }
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError('body_too_large', `the request body is larger than ${limit} bytes`, { status: 413, expose: true })
}
