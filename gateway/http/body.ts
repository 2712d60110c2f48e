import type { IncomingMessage } from 'node:http'
import { deeperThan } from '../bridge/json-depth.js'
import { GatewayError } from '../errors.js'

/** What a request body may be: its size, how long it may take to arrive, its shape. */
export interface BodyLimits {
  maxBodyBytes: number
  /** Time from the first read to the last byte, in ms (→ 408). */
  bodyTimeout: number
  /** Nesting of arrays and objects at most (→ 400 -32600). */
  maxJsonDepth: number
  /** Messages in one JSON-RPC batch at most (→ 400 -32600); an empty batch is refused too. */
  maxBatch: number
}

/**
 * Reads a request body within `limits` and parses it as JSON: the one reader every MCP
 * transport uses, so every transport has the same bounds.
 * @throws GatewayError `body_too_large` (413), `body_timeout` (408), `parse_error` (400),
 * `unsupported_encoding` (415), `invalid_message` (400, nesting or batch size), `client_gone` (499)
 */
export async function readJsonBody(
  req: Request,
  limits: BodyLimits,
  incoming?: IncomingMessage,
): Promise<unknown> {
  const bytes = await readBody(req, limits, incoming)
  let text: string
  try {
    // MCP transports: messages MUST be UTF-8; fatal decoding refuses anything else.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new GatewayError('parse_error', 'the request body is not valid UTF-8', {
      status: 400,
      expose: true,
    })
  }
  // Checked on the text, before parsing: a deep body costs the parser (and every later
  // serializer) a stack frame per level.
  if (deeperThan(text, limits.maxJsonDepth)) {
    throw new GatewayError(
      'invalid_message',
      `Invalid Request: the body nests deeper than ${limits.maxJsonDepth} levels`,
      { status: 400, expose: true },
    )
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new GatewayError('parse_error', 'the request body is not valid JSON', {
      status: 400,
      expose: true,
    })
  }
  if (Array.isArray(body) && (body.length === 0 || body.length > limits.maxBatch)) {
    const why =
      body.length === 0 ? 'an empty batch' : `a batch of more than ${limits.maxBatch} messages`
    throw new GatewayError('invalid_message', `Invalid Request: ${why}`, {
      status: 400,
      expose: true,
    })
  }
  return body
}

/**
 * Reads a whole request body within `maxBodyBytes` (a declared or actual size past it is
 * refused without reading on) and `bodyTimeout`: from Node's request itself when there is one
 * (`incoming`, not read yet: no web stream is made for it), else from the web request.
 * @throws GatewayError `body_too_large` (413), `body_timeout` (408), `parse_error` (400, no body),
 * `unsupported_encoding` (415, a Content-Encoding other than identity), `client_gone` (499: the client left before its body was read)
 */
export async function readBody(
  req: Request,
  limits: Pick<BodyLimits, 'maxBodyBytes' | 'bodyTimeout'>,
  incoming?: IncomingMessage,
): Promise<Buffer> {
  const limit = limits.maxBodyBytes
  // RFC 9110 §8.4.1: a content coding the gateway does not decode is refused, never read as
  // identity: a compressed body is not inflated (no decompression bomb), and a body labelled
  // gzip is not relayed as the JSON it is, which a filter in front that decodes saw otherwise.
  const coding = req.headers.get('content-encoding')
  if (coding !== null && !/^\s*(identity\s*)?$/i.test(coding))
    throw new GatewayError(
      'unsupported_encoding',
      'Unsupported Media Type: a request body must not be compressed (no Content-Encoding)',
      { status: 415, expose: true },
    )
  const declared = Number(req.headers.get('content-length') ?? NaN)
  if (declared > limit) throw tooLarge(limit)
  if (incoming !== undefined && !incoming.readableDidRead && !incoming.readableEnded)
    return readIncoming(incoming, limit, limits.bodyTimeout)
  if (req.body === null)
    throw new GatewayError('parse_error', 'the request body is empty', {
      status: 400,
      expose: true,
    })
  const reader = req.body.getReader()
  let timedOut = false
  // A client that declares a body and then stalls holds a connection and a slot: not for long.
  const timer = setTimeout(() => {
    timedOut = true
    void reader.cancel('body timeout').catch(() => {})
  }, limits.bodyTimeout)
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (timedOut)
        throw new GatewayError(
          'body_timeout',
          `the request body did not arrive within ${limits.bodyTimeout} ms`,
          { status: 408, expose: true },
        )
      if (done) break
      size += value.byteLength
      if (size > limit) throw tooLarge(limit)
      chunks.push(value)
    }
  } catch (err) {
    if (err instanceof GatewayError) {
      void reader.cancel().catch(() => {})
      throw err
    }
    if (timedOut)
      throw new GatewayError(
        'body_timeout',
        `the request body did not arrive within ${limits.bodyTimeout} ms`,
        { status: 408, expose: true },
      )
    throw err
  } finally {
    clearTimeout(timer)
  }
  return Buffer.concat(chunks)
}

/** Reads Node's request body within `limit` bytes and `timeoutMs`. */
function readIncoming(
  incoming: IncomingMessage,
  limit: number,
  timeoutMs: number,
): Promise<Buffer> {
  // Gone already (while authentication waited, say): Node destroyed the request and dropped
  // what it held, and its 'close' was emitted then; no event is left to wait for.
  if (incoming.destroyed) return Promise.reject(clientGone())
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (err: Error | undefined) => {
      clearTimeout(timer)
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('error', onGone)
      incoming.off('close', onGone)
      if (err !== undefined) {
        // Nothing more is read: the framework drains or drops the rest after the answer.
        incoming.pause()
        reject(err)
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    }
    // A client that declares a body and then stalls holds a connection and a slot: not for long.
    const timer = setTimeout(() => done(bodyTimeout(timeoutMs)), timeoutMs)
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength
      if (size > limit) done(tooLarge(limit))
      else chunks.push(chunk)
    }
    const onEnd = () => done(undefined)
    const onGone = () => done(clientGone())
    incoming.on('data', onData)
    incoming.on('end', onEnd)
    incoming.on('error', onGone)
    incoming.on('close', onGone)
  })
}

/** Nobody reads the answer: refused as the bridge refuses a request whose client left (499, logged as a refusal, not an error). */
function clientGone(): GatewayError {
  return new GatewayError('client_gone', 'the client went away before its body arrived', {
    status: 499,
    expose: true,
  })
}

function bodyTimeout(ms: number): GatewayError {
  return new GatewayError('body_timeout', `the request body did not arrive within ${ms} ms`, {
    status: 408,
    expose: true,
  })
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError('body_too_large', `the request body is larger than ${limit} bytes`, {
    status: 413,
    expose: true,
  })
}
